"""Re-init (Zhang et al. 2020): before finetuning, the pooler and the top L transformer layers get
fresh weights from the model's own initialisation (BERT's: Linear and embedding weights from
N(0, initializer_range^2), biases 0, LayerNorm weight 1 and bias 0)."""

from __future__ import annotations

import torch
from torch import nn

from agwm.baselines.recipe import Recipe
from agwm.data import stream_seed


def transformer_layers(model: nn.Module) -> nn.ModuleList:
    """The encoder's stack of layers: the longest ``nn.ModuleList`` inside ``model.base_model``."""
    base = getattr(model, "base_model", model)
    lists = [m for m in base.modules() if isinstance(m, nn.ModuleList)]
    if not lists:
        raise ValueError(f"{type(model).__name__} has no stack of layers (nn.ModuleList) to re-initialise")
    return max(lists, key=len)


@torch.no_grad()
def reinit_module(module: nn.Module, std: float, generator: torch.Generator) -> None:
    for sub in module.modules():
        if isinstance(sub, (nn.Linear, nn.Embedding)):
            sub.weight.copy_(torch.randn(sub.weight.shape, generator=generator, device=sub.weight.device) * std)
            if getattr(sub, "bias", None) is not None:
                sub.bias.zero_()
        elif isinstance(sub, nn.LayerNorm):
            if sub.weight is not None:
                sub.weight.fill_(1.0)
            if sub.bias is not None:
                sub.bias.zero_()


def reinit_top_layers(model: nn.Module, layers: int, seed: int) -> list[str]:
    """Re-initialise the top ``layers`` layers and the pooler (if any); return their names."""
    stack = transformer_layers(model)
    if not 1 <= layers <= len(stack):
        raise ValueError(f"reinit.layers={layers} is not allowed: the model has {len(stack)} layers "
                         f"(1 to {len(stack)})")
    std = getattr(getattr(model, "config", None), "initializer_range", 0.02)
    generator = torch.Generator(device=next(model.parameters()).device).manual_seed(seed)
    names = {id(m): n for n, m in model.named_modules()}
    chosen = list(stack[len(stack) - layers:])
    pooler = getattr(getattr(model, "base_model", model), "pooler", None)
    if pooler is not None:
        chosen.append(pooler)
    for module in chosen:
        reinit_module(module, std, generator)
    return [names[id(m)] for m in chosen]



class Reinit(Recipe):
    def prepare(self, model, train_batches):
        reinit_top_layers(model, self.settings.layers, stream_seed(self.run.seed, "re-init"))
        return model


