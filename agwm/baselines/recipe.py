"""How a finetuning method changes the plain finetune loop of :mod:`agwm.finetune`.

A :class:`Recipe` holds the method's hooks into the loop::

    model = recipe.prepare(model, train_batches)        # before the optimizer is built
    for batch in batches:
        recipe.loss(model, batch).backward()
        recipe.before_step(); optimizer.step(); recipe.after_step()
    model = recipe.finished(model)                      # a plain model for evaluation and saving

The base class is plain finetuning; each baseline overrides what its paper changes. A method's
own random draws (masks, noise, re-initialisation) take its own stream of the run's seed, so the
data order and dropout are those of vanilla. A method that does not train through the loop gives
a ``fit`` function instead, which returns :class:`Fitted`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

from torch import nn

from agwm.training.build import model_loss


@dataclass(frozen=True)
class MethodRun:
    """What a recipe reads of its run besides its own settings section."""

    method: str
    seed: int
    batch_size: int
    target_modules: list[str] | None  # the layers mixup targets (and Mixout replaces); None: every Linear


class Recipe:
    """Plain (vanilla) finetuning of every trainable weight. ``settings``: the method's own section
    (its registered dataclass), or None."""

    def __init__(self, settings: Any, run: MethodRun):
        self.settings, self.run = settings, run

    def prepare(self, model: nn.Module, train_batches) -> nn.Module:
        return model

    def loss(self, model: nn.Module, batch: dict):
        return model_loss(model, batch)

    def before_step(self) -> None:
        pass

    def after_step(self) -> None:
        pass

    def finished(self, model: nn.Module) -> nn.Module:
        return model



class Fitted(NamedTuple):
    """What a method's ``fit`` returns: the model (its ``predict(examples)`` gives
    :class:`~agwm.metrics.Predictions`, ``save_pretrained(folder)`` saves it), what the method
    reports in metrics.json, its training steps and its last training loss."""

    model: Any
    reported: dict
    steps: int
    final_loss: float | None

