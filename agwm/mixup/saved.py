"""The alpha files a search writes: A and B of every mixup layer (``alphas.safetensors``) and their
layers' names, rank and formulation (``alphas.json``); each written whole or not at all."""

from __future__ import annotations

import os
import re

import torch
from safetensors.torch import load_file
from torch import nn

from agwm.files import read_json, save_tensors, write_json
from agwm.mixup.inject import inject_mixup, mixup_layers

ALPHA_WEIGHTS_NAME = "alphas.safetensors"  # A and B of every mixup layer
ALPHA_CONFIG_NAME = "alphas.json"  # their layers' names, rank and formulation


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


def read_alpha_settings(weights_path: str) -> dict:
    """The ``alphas.json`` beside an ``alphas.safetensors`` file."""
    config_path = os.path.join(os.path.dirname(weights_path) or ".", ALPHA_CONFIG_NAME)
    if not os.path.isfile(config_path):
        raise FileNotFoundError(f"{config_path} (written beside {weights_path} by save_alphas) is missing")
    return read_json(config_path)


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
