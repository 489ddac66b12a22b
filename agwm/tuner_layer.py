"""The shape shared by the layers that mix a trained task weight with the frozen pretrained one
(mixup, Mixout), after PEFT's tuner layers: the wrapped ``nn.Linear`` stays as ``base_layer``
(its weight is W0, frozen; its bias is trained), a task weight W starts at W0, and the forward
pass uses the layer's ``mixed_weight()``; layers are injected by target names and merged back
into plain ``nn.Linear`` modules.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import torch
import torch.nn.functional as F
from torch import nn


class TaskWeightLayer(nn.Module):
    """``y = x W~^T + bias`` with W~ = ``mixed_weight()``, a function of W and W0.

    ``merge()`` writes W~ into ``base_layer`` (kept W0 aside) and the layer then runs as that plain
    Linear; ``unmerge()`` puts W0 back. ``disable_adapters = True`` runs the pretrained weight W0
    (with the trained bias), as PEFT's switch does.
    """

    def __init__(self, base_layer: nn.Linear):
        super().__init__()
        self.base_layer = base_layer
        self.base_layer.weight.requires_grad_(False)
        self.in_features = base_layer.in_features
        self.out_features = base_layer.out_features
        self.weight = nn.Parameter(base_layer.weight.detach().clone())
        self.disable_adapters = False
        self._pretrained_weight: torch.Tensor | None = None  # W0 while merged

    @property
    def bias(self) -> torch.Tensor | None:
        return self.base_layer.bias

    @property
    def merged(self) -> bool:
        return self._pretrained_weight is not None

    def get_base_layer(self) -> nn.Linear:
        return self.base_layer

    def mixed_weight(self) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.merged or self.disable_adapters:
            return self.base_layer(x)
        return F.linear(x, self.mixed_weight(), self.bias)

    @torch.no_grad()
    def finite_mixed_weight(self) -> torch.Tensor:
        """W~, refused if any entry is NaN or infinite (a diverged training must not be saved)."""
        weight = self.mixed_weight()
        if not torch.isfinite(weight).all():
            raise ValueError(f"{type(self).__name__}: the mixed weight has non-finite values; nothing merged")
        return weight

    @torch.no_grad()
    def merge(self) -> None:
        if not self.merged:
            weight = self.finite_mixed_weight()
            self._pretrained_weight = self.base_layer.weight.detach().clone()
            self.base_layer.weight.copy_(weight)

    @torch.no_grad()
    def unmerge(self) -> None:
        if self.merged:
            self.base_layer.weight.copy_(self._pretrained_weight)
            self._pretrained_weight = None

    def merged_linear(self) -> nn.Linear:
        """A plain ``nn.Linear`` computing the same function as the layer in evaluation: weight W~,
        the trained bias."""
        w0 = self.base_layer.weight
        linear = nn.Linear(self.in_features, self.out_features, bias=self.bias is not None,
                           device=w0.device, dtype=w0.dtype)
        with torch.no_grad():
            linear.weight.copy_(self.finite_mixed_weight())
            if self.bias is not None:
                linear.bias.copy_(self.bias)
        return linear


def _parent_and_attr(model: nn.Module, name: str) -> tuple[nn.Module, str]:
    parent_name, _, attr = name.rpartition(".")
    return (model.get_submodule(parent_name) if parent_name else model), attr


def replace_module(model: nn.Module, name: str, new: nn.Module) -> None:
    parent, attr = _parent_and_attr(model, name)
    setattr(parent, attr, new)


def _matches(name: str, targets: str | Iterable[str]) -> bool:
    """PEFT's rule: a regex is matched against the whole name, a list against its last parts."""
    if isinstance(targets, str):
        return re.fullmatch(targets, name) is not None
    return any(name == t or name.endswith("." + t) for t in targets)


def default_search_root(model: nn.Module) -> str:
    """The encoder of a Hugging Face model (``model.base_model``): every Linear but the head."""
    base = getattr(model, "base_model", model)
    for name, module in model.named_modules():
        if module is base:
            return name
    return ""


def target_linear_names(model: nn.Module, target_modules: str | Iterable[str] | None = None) -> list[str]:
    """The names of the ``nn.Linear`` modules that ``target_modules`` selects: ``None`` every Linear
    inside the encoder (the pooler included, the classification head not); a string is a regex on
    the full module name; a list names modules by their last dotted parts (``["query", "value"]``)."""
    if isinstance(target_modules, (list, tuple)) and not target_modules:
        raise ValueError("target_modules is empty: name at least one module, or pass None")
    root = default_search_root(model) if target_modules is None else ""
    names = [
        name for name, module in model.named_modules()
        if type(module) is nn.Linear
        and (target_modules is None and (not root or name.startswith(root + "."))
             or target_modules is not None and _matches(name, target_modules))
    ]
    if not names:
        raise ValueError(f"no nn.Linear module matches target_modules={target_modules!r}")
    return names


def merge_layers(model: nn.Module, kind: type[TaskWeightLayer]) -> nn.Module:
    """Replace every layer of ``kind`` by its merged ``nn.Linear`` (in place); the state dict then
    has the original names, so ``save_pretrained`` writes a stock Hugging Face folder."""
    for name, layer in [(n, m) for n, m in model.named_modules() if isinstance(m, kind)]:
        replace_module(model, name, layer.merged_linear())
    return model
