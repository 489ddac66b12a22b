"""Mixout (Lee et al. 2019): each task weight is replaced by its pretrained value with probability
p during training, and the result is rescaled so that its expectation is the task weight:

    W~ = (M * W0 + (1 - M) * W - p W0) / (1 - p),    M_ij ~ Bernoulli(p)

At evaluation W~ = W; with p = 0 the layer is a plain ``nn.Linear`` with weight W.
"""

from __future__ import annotations

import torch
from torch import nn

from agwm.baselines.recipe import Recipe
from agwm.data import stream_seed
from agwm.mixup import TaskWeightLayer, merge_layers, replace_module, target_linear_names


class MixoutLinear(TaskWeightLayer):
    """``y = x W~^T + bias``; ``base_layer`` keeps W0 frozen, ``weight`` is the task weight W."""

    def __init__(self, base_layer: nn.Linear, p: float, generator: torch.Generator | None = None):
        if not 0.0 <= p < 1.0:
            raise ValueError(f"mixout probability p must be in [0, 1), got {p}")
        super().__init__(base_layer)
        self.p = p
        self.generator = generator  # the masks' own stream: dropout and data order are not shifted

    def mixed_weight(self) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return self.weight
        w0 = self.base_layer.weight
        mask = torch.rand(self.weight.shape, generator=self.generator, device=w0.device) < self.p
        return (torch.where(mask, w0, self.weight) - self.p * w0) / (1.0 - self.p)

    def extra_repr(self) -> str:
        return f"p={self.p}"


def inject_mixout(model: nn.Module, p: float, seed: int, target_modules=None) -> list[str]:
    """Wrap the targeted Linears (default: every Linear of the encoder) in place."""
    names = target_linear_names(model, target_modules)
    generator = torch.Generator(device=next(model.parameters()).device).manual_seed(seed)
    for name in names:
        replace_module(model, name, MixoutLinear(model.get_submodule(name), p, generator))
    return names


def merge_mixout(model: nn.Module) -> nn.Module:
    """Replace every mixout layer by a plain ``nn.Linear`` with its task weight (in place)."""
    training = model.training
    merge_layers(model.eval(), MixoutLinear)  # W~ = W, the evaluation weight
    return model.train(training)



class Mixout(Recipe):
    def prepare(self, model, train_batches):
        inject_mixout(model, self.settings.p, stream_seed(self.run.seed, "mixout"), self.run.target_modules)
        return model

    def finished(self, model):
        return merge_mixout(model)


