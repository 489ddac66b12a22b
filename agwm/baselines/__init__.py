"""How each finetuning method changes the plain finetune loop.

A :class:`Recipe` holds the method's hooks into the loop of :mod:`agwm.finetune`::

    model = recipe.prepare(model, train_batches)        # before the optimizer is built
    for batch in batches:
        recipe.loss(model, batch).backward()
        recipe.before_step(); optimizer.step(); recipe.after_step()
    model = recipe.finished(model)                      # a plain model for evaluation and saving

The base class is plain finetuning; each baseline overrides what its paper changes, in its own
module with its settings (a dataclass, a section of :class:`~agwm.settings.RunConfig`), as a PEFT
tuner keeps its config, layer and model together. :data:`RECIPES` is the one registry. A method's
own random draws (masks, noise, re-initialisation) take its own stream of the run's seed, so the
data order and dropout are those of vanilla."""

from __future__ import annotations

from typing import TYPE_CHECKING

from torch import nn

from agwm.runtime import model_loss

if TYPE_CHECKING:
    from agwm.settings import RunConfig


class Recipe:
    """Plain (vanilla) finetuning of every trainable weight."""

    def __init__(self, cfg: RunConfig):
        self.cfg = cfg

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


# The finetune methods that train through the loop above (the baselines register at the end of this module).
RECIPES: dict[str, type[Recipe]] = {"vanilla": Recipe}
# The methods that use the encoder as a sentence encoder instead (agwm.baselines.sentence_encoder).
ENCODER_METHODS = ("probe", "probe-tuned", "setfit", "cosine", "cosine-finetune")


def make_recipe(cfg: RunConfig) -> Recipe:
    return RECIPES[cfg.finetune.method](cfg)


from . import consistency, mixout, peft_tuning, reinit, subnetworks  # noqa: E402  (each needs Recipe)

for _module in (mixout, subnetworks, consistency, reinit, peft_tuning):
    RECIPES.update(_module.RECIPES)
RECIPES["soup"] = Recipe  # vanilla members, averaged by agwm.finetune
RECIPES["vanilla-tuned"] = Recipe  # vanilla at the lr and epochs agwm.finetune chose on a held-out part of the sample
RECIPES["setfit-vanilla"] = Recipe  # vanilla from the encoder SetFit's contrastive stage made of the sample
# The one list of finetune methods (``--method``, ``finetune.method``, grid method names).
FINETUNE_METHODS = (*RECIPES, *ENCODER_METHODS)
