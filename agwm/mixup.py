"""The attention-guided weight mixup layer, its injection into a model, merge, and alpha I/O.

A wrapped ``nn.Linear`` keeps its pretrained weight W0 frozen in ``base_layer`` and learns a task
weight W (initialised to W0) together with attention factors A (out x r) and B (r x in):

* ``factored`` (default): W~ = (A B / r) * W + ((1 - A)(1 - B) / r) * W0
* ``convex``:             alpha = A B / r,  W~ = alpha * W + (1 - alpha) * W0

where ``*`` is the elementwise product and ``1 - A`` subtracts every entry from one. A and B live
in [0, 1]; :func:`project_alphas` puts them back after every update.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Iterator

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from .atomic import atomic_path
from .tuner_layer import TaskWeightLayer, merge_layers, replace_module, target_linear_names

FORMULATIONS = ("factored", "convex")
ALPHA_WEIGHTS_NAME = "alphas.safetensors"
ALPHA_CONFIG_NAME = "alphas.json"


class MixupLinear(TaskWeightLayer):
    """``y = x W~^T + bias`` with W~ the mix of the task weight W and the pretrained weight W0."""

    def __init__(
        self,
        base_layer: nn.Linear,
        rank: int = 1,
        formulation: str = "factored",
        init_mean: float = 1.0,
        init_std: float = 0.005,
        generator: torch.Generator | None = None,
    ):
        if rank < 1:
            raise ValueError(f"rank must be at least 1, got {rank}")
        if formulation not in FORMULATIONS:
            raise ValueError(f"formulation must be one of {FORMULATIONS}, got {formulation!r}")
        super().__init__(base_layer)
        self.rank = rank
        self.formulation = formulation
        w0 = base_layer.weight
        self.A = nn.Parameter(torch.empty(self.out_features, rank, dtype=w0.dtype, device=w0.device))
        self.B = nn.Parameter(torch.empty(rank, self.in_features, dtype=w0.dtype, device=w0.device))
        self._fixed_terms = None  # (key, alpha, C) while A and B are frozen: see mixed_weight
        self.reset_alpha(init_mean, init_std, generator)

    @torch.no_grad()
    def reset_alpha(self, mean: float, std: float, generator: torch.Generator | None = None) -> None:
        """Draw every entry of A and B from N(mean, std) and clamp it to [0, 1]."""
        for factor in (self.A, self.B):
            sample = torch.randn(factor.shape, generator=generator, dtype=torch.float64)
            factor.copy_((sample * std + mean).clamp_(0.0, 1.0))

    def alpha(self) -> torch.Tensor:
        """alpha = A B / r, the (out x in) attention on the task weight W."""
        return self.A @ self.B / self.rank

    def mixing_terms(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(alpha, C) with W~ = alpha * W + C: C = ((1 - A)(1 - B) / r) * W0 (factored) or
        (1 - alpha) * W0 (convex)."""
        alpha = self.alpha()
        if self.formulation == "factored":
            return alpha, ((1 - self.A) @ (1 - self.B) / self.rank) * self.base_layer.weight
        return alpha, (1 - alpha) * self.base_layer.weight

    def _fixed_mixing_terms(self) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`mixing_terms`, computed once while A and B are frozen (the finetune phase) and
        again only after A, B or W0 change: in place (their version counters) or by moving."""
        key = tuple((t._version, t.data_ptr()) for t in (self.A, self.B, self.base_layer.weight))
        if self._fixed_terms is None or self._fixed_terms[0] != key:
            with torch.no_grad():
                self._fixed_terms = (key, *self.mixing_terms())
        return self._fixed_terms[1:]

    def mixed_weight(self) -> torch.Tensor:
        """W~ = alpha * W + C (see :meth:`mixing_terms`)."""
        if self.A.requires_grad or self.B.requires_grad:
            self._fixed_terms = None
            alpha, w0_term = self.mixing_terms()
        else:
            alpha, w0_term = self._fixed_mixing_terms()
        return torch.addcmul(w0_term, alpha, self.weight)

    def extra_repr(self) -> str:
        return f"rank={self.rank}, formulation={self.formulation}"


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


def mixing_means(A: torch.Tensor, B: torch.Tensor, rank: int, formulation: str = "factored") -> tuple[float, float]:
    """The means over all entries of alpha = A B / r and of the W0 weight, (1 - A)(1 - B) / r
    (factored) or 1 - alpha (convex), without forming them: mean_ij (A B)_ij = sum_k mean_i A_ik
    mean_j B_kj."""
    alpha, w0_weight = mixing_mean_tensors(A, B, rank, formulation)
    return alpha.item(), w0_weight.item()


def mixing_mean_tensors(A: torch.Tensor, B: torch.Tensor, rank: int,
                        formulation: str = "factored") -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`mixing_means` as 0-d tensors on A's device (no host sync)."""
    alpha = (A.mean(0) @ B.mean(1)) / rank
    if formulation == "convex":
        return alpha, 1.0 - alpha
    return alpha, ((1 - A).mean(0) @ (1 - B).mean(1)) / rank


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


def alpha_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    return {
        f"{name}.{factor}": getattr(layer, factor).detach().cpu().contiguous()
        for name, layer in mixup_layers(model) for factor in ("A", "B")
    }


def layers_settings(model: nn.Module) -> dict:
    layers = dict(mixup_layers(model))
    if not layers:
        raise ValueError("the model has no mixup layers")
    first = next(iter(layers.values()))
    return {"layers": list(layers), "rank": first.rank, "formulation": first.formulation}


def save_alphas(model: nn.Module, directory: str) -> None:
    """Write only A and B (``alphas.safetensors``) and the layer names, rank and formulation
    (``alphas.json``); each file goes to a temporary name first and is renamed when complete."""
    os.makedirs(directory, exist_ok=True)
    save_tensors(alpha_state_dict(model), os.path.join(directory, ALPHA_WEIGHTS_NAME))
    write_json(layers_settings(model), os.path.join(directory, ALPHA_CONFIG_NAME))


def save_tensors(tensors: dict[str, torch.Tensor], path: str) -> None:
    with atomic_path(path) as tmp:
        save_file(tensors, tmp)


def write_json(obj, path: str) -> None:
    with atomic_path(path) as tmp, open(tmp, "w") as f:
        json.dump(obj, f, indent=2, allow_nan=False)  # strict JSON: an undefined value is null


def read_alpha_settings(weights_path: str) -> dict:
    """The ``alphas.json`` beside an ``alphas.safetensors`` file."""
    config_path = os.path.join(os.path.dirname(weights_path) or ".", ALPHA_CONFIG_NAME)
    if not os.path.isfile(config_path):
        raise FileNotFoundError(f"{config_path} (written beside {weights_path} by save_alphas) is missing")
    return read_json(config_path)


def read_json(path: str):
    with open(path) as f:
        return json.load(f)


def load_alphas(model: nn.Module, weights_path: str) -> None:
    """Copy the A, B saved at ``weights_path`` into the mixup layers of ``model``."""
    load_alpha_state(model, load_file(weights_path), source=weights_path)


def load_alpha_state(model: nn.Module, tensors: dict[str, torch.Tensor], source: str = "the state") -> None:
    """Copy ``{"<layer>.A": tensor, "<layer>.B": tensor}`` into the mixup layers of ``model``;
    names and shapes must match exactly."""
    own = dict(mixup_layers(model))
    expected = {f"{name}.{factor}" for name in own for factor in ("A", "B")}
    if set(tensors) != expected:
        missing, extra = sorted(expected - set(tensors)), sorted(set(tensors) - expected)
        raise ValueError(f"{source} does not fit this model: missing {missing[:3]}, unexpected {extra[:3]}")
    with torch.no_grad():
        for key, value in tensors.items():
            name, _, factor = key.rpartition(".")
            target = getattr(own[name], factor)
            if target.shape != value.shape:
                raise ValueError(f"{key}: saved shape {tuple(value.shape)}, model has {tuple(target.shape)}")
            target.copy_(value)


def inject_from_saved(model: nn.Module, weights_path: str) -> list[str]:
    """Wrap exactly the layers named in the saved ``alphas.json`` and load their A, B."""
    names = inject_from_settings(model, read_alpha_settings(weights_path))
    load_alphas(model, weights_path)
    return names


def inject_from_settings(model: nn.Module, settings: dict) -> list[str]:
    """Wrap exactly the layers of ``settings`` (:func:`layers_settings`: names, rank, formulation)."""
    return inject_mixup(model, target_modules="|".join(re.escape(n) for n in settings["layers"]),
                        rank=settings["rank"], formulation=settings["formulation"])
