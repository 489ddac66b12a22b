"""Mixup layers put into a model and taken out: the targeted ``nn.Linear`` layers (PEFT's
``target_modules`` rule), injection, the two levels' parameters (A, B; everything else), the
projection onto [0, 1], and merge into plain ``nn.Linear`` layers."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator

import torch
from torch import nn

from agwm.mixup.layer import MixupLinear, TaskWeightLayer


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


def inject_mixup(
    model: nn.Module,
    target_modules: str | Iterable[str] | None = None,
    rank: int = 1,
    formulation: str = "factored",
    init_mean: float = 1.0,
    init_std: float = 0.005,
    seed: int | None = None,
) -> list[str]:
    """Wrap the targeted ``nn.Linear`` layers of ``model`` in place; return their names.

    ``target_modules``: ``None`` targets every Linear inside the encoder (``model.base_model``,
    the pooler included, the classification head not); a string is a regex on the full module
    name; a list names modules by their last dotted parts (``["query", "value"]``).
    ``seed`` makes the initial A and B reproducible independently of the global random stream.
    """
    names = target_linear_names(model, target_modules)
    generator = torch.Generator().manual_seed(seed) if seed is not None else None
    for name in names:
        replace_module(model, name, MixupLinear(
            model.get_submodule(name), rank, formulation, init_mean, init_std, generator))
    return names


def mixup_layers(model: nn.Module) -> Iterator[tuple[str, MixupLinear]]:
    for name, module in model.named_modules():
        if isinstance(module, MixupLinear):
            yield name, module


def alpha_parameters(model: nn.Module) -> list[nn.Parameter]:
    """The attention factors A, B of every mixup layer: the outer level's variables."""
    return [p for _, layer in mixup_layers(model) for p in (layer.A, layer.B)]


def task_parameters(model: nn.Module) -> list[nn.Parameter]:
    """Every trainable parameter except the attention factors: the inner level's variables."""
    alphas = {id(p) for p in alpha_parameters(model)}
    return [p for p in model.parameters() if p.requires_grad and id(p) not in alphas]


@torch.no_grad()
def project_alphas(parameters: Iterable[torch.Tensor]) -> None:
    """Euclidean projection onto the box: A <- clip(A, 0, 1), B <- clip(B, 0, 1)."""
    for p in parameters:
        p.clamp_(0.0, 1.0)


def merge_mixup(model: nn.Module) -> nn.Module:
    """Replace every mixup layer by its merged ``nn.Linear`` (in place); the model's state dict
    then has the original names, so ``save_pretrained`` writes a stock Hugging Face folder."""
    return merge_layers(model, MixupLinear)
