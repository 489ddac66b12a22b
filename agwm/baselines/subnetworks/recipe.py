"""Methods that update a sub-network of the weights: Child-Tuning-D and -F (Xu et al. 2021) and
DPS dense (Zhang et al. 2022). Each masks the gradient g of the target parameters before the
optimizer step; weights outside a fixed mask are also kept from weight decay, so they do not move.

* Child-Tuning-D: the child is fixed before training by the Fisher information of the training
  set, F = sum_batches g^2; the top ``reserve_p`` fraction of F over all target weights (one
  threshold, as in the reference code) is updated, the rest never.
* Child-Tuning-F: each step, g <- g * M / reserve_p with M ~ Bernoulli(reserve_p).
* DPS dense: training alternates two stages of ``window`` steps. Stage I updates every weight and
  accumulates G = sum g; stage II updates only the top ``reserve_p`` fraction of |G| (the other
  target weights stay at their end-of-stage-I values); then G is reset.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

import torch
from torch import nn

from agwm.baselines.recipe import Recipe
from agwm.data import generator
from agwm.training.build import model_loss
from agwm.training.device import device_of
from agwm.training.optim import steps_for


def target_parameters(model: nn.Module, pattern: str) -> dict[str, nn.Parameter]:
    """The trainable parameters whose names match ``pattern`` (a regex on the whole name)."""
    found = {n: p for n, p in model.named_parameters() if p.requires_grad and re.fullmatch(pattern, n)}
    if not found:
        raise ValueError(f"no trainable parameter name matches {pattern!r}")
    return found


def top_fraction_masks(scores: dict[str, torch.Tensor], fraction: float) -> dict[str, torch.Tensor]:
    """Boolean masks of the entries whose score is among the top ``fraction`` of all scores
    together (ties at the threshold included)."""
    flat = torch.cat([s.flatten().float() for s in scores.values()])
    keep = max(1, int(round(fraction * flat.numel())))
    threshold = torch.topk(flat, keep, sorted=False).values.min()
    return {n: s >= threshold for n, s in scores.items()}


def fisher_information(model: nn.Module, params: dict[str, nn.Parameter], batches: Iterable,
                       loss_fn: Callable) -> dict[str, torch.Tensor]:
    """F = sum over the batches of g^2, g the gradient of the batch loss, in the model's current
    mode (the finetune loop calls it before ``model.train()``: dropout off, so F is deterministic);
    the model's gradients are left cleared."""
    fisher = {n: torch.zeros_like(p) for n, p in params.items()}
    for batch in batches:
        model.zero_grad(set_to_none=True)
        loss_fn(model, batch).backward()
        for n, p in params.items():
            if p.grad is not None:
                fisher[n] += p.grad.detach() ** 2
    model.zero_grad(set_to_none=True)
    return fisher


class FixedMask:
    """Only the entries of ``masks`` are updated: gradients are masked before the step and the
    other entries are restored after it (AdamW's decoupled weight decay would move them)."""

    def __init__(self, params: dict[str, nn.Parameter], masks: dict[str, torch.Tensor]):
        self.params, self.masks = params, masks
        self.frozen: dict[str, torch.Tensor] = {}

    def before_step(self) -> None:
        for n, p in self.params.items():
            if p.grad is not None:
                p.grad.mul_(self.masks[n])
            self.frozen[n] = p.detach()[~self.masks[n]].clone()

    def after_step(self) -> None:
        with torch.no_grad():
            for n, p in self.params.items():
                p[~self.masks[n]] = self.frozen[n]
        self.frozen.clear()


class BernoulliGradientMask:
    """Child-Tuning-F: g <- g * M / p, M ~ Bernoulli(p) drawn afresh each step from ``generator``."""

    def __init__(self, params: dict[str, nn.Parameter], reserve_p: float, generator: torch.Generator):
        self.params, self.reserve_p, self.generator = params, reserve_p, generator

    def before_step(self) -> None:
        for p in self.params.values():
            if p.grad is not None:
                keep = torch.rand(p.shape, generator=self.generator, device=p.device) < self.reserve_p
                p.grad.mul_(keep / self.reserve_p)

    def after_step(self) -> None:
        pass


class DynamicSelection:
    """DPS dense: alternating stages of ``window`` steps (see the module docstring)."""

    def __init__(self, params: dict[str, nn.Parameter], reserve_p: float, window: int):
        self.params, self.reserve_p, self.window = params, reserve_p, window
        self.step = 0
        self.accumulated = {n: torch.zeros_like(p) for n, p in params.items()}
        self.stage_two: FixedMask | None = None

    def before_step(self) -> None:
        if (self.step // self.window) % 2 == 0:  # stage I: full update, accumulate G
            for n, p in self.params.items():
                if p.grad is not None:
                    self.accumulated[n] += p.grad.detach()
        else:
            if self.stage_two is None:
                masks = top_fraction_masks({n: g.abs() for n, g in self.accumulated.items()}, self.reserve_p)
                self.stage_two = FixedMask(self.params, masks)
            self.stage_two.before_step()

    def after_step(self) -> None:
        if self.stage_two is not None:
            self.stage_two.after_step()
        self.step += 1
        if self.step % (2 * self.window) == 0:  # a new cycle: reset G and the selection
            self.stage_two = None
            for g in self.accumulated.values():
                g.zero_()




class MaskedGradients(Recipe):
    """A sub-network method: its ``mask`` object masks the gradients around each step."""

    mask = None

    def before_step(self):
        self.mask.before_step()

    def after_step(self):
        self.mask.after_step()


class ChildTuningD(MaskedGradients):
    def prepare(self, model, train_batches):
        params = target_parameters(model, self.settings.target)
        fisher = fisher_information(model, params, train_batches, model_loss)
        self.mask = FixedMask(params, top_fraction_masks(fisher, self.settings.reserve_p))
        return model


class ChildTuningF(MaskedGradients):
    def prepare(self, model, train_batches):
        params = target_parameters(model, self.settings.target)
        self.mask = BernoulliGradientMask(params, self.settings.reserve_p,
                                          generator(self.run.seed, "child-tuning-f", device_of(model)))
        return model


class Dps(MaskedGradients):
    def prepare(self, model, train_batches):
        d = self.settings
        window = max(1, round(d.update_ratio * steps_for(1, len(train_batches.dataset), self.run.batch_size)))
        self.mask = DynamicSelection(target_parameters(model, d.target), d.reserve_p, window)
        return model


