"""Saved artefacts checked before a run uses them: an ``alphas.safetensors`` with its
``alphas.json``, and the task weights a finetune starts from. Each problem stops with a
:class:`ConfigError` naming the option, the file and what is wrong, before any data is read."""

from __future__ import annotations

import json
import os

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import nn
from transformers import AutoConfig, AutoModelForSequenceClassification

from .mixup import ALPHA_CONFIG_NAME, FORMULATIONS, read_alpha_settings
from .runtime import default_model
from .settings import ConfigError, MixupConfig, RunConfig


def read_tensors(path: str, option: str) -> dict[str, torch.Tensor]:
    """Every tensor of a safetensors file, each finite."""
    if not os.path.isfile(path):
        raise ConfigError(f"{option} {path} is not allowed: no such file")
    try:
        tensors = load_file(path)
    except (SafetensorError, OSError, ValueError) as error:
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise ConfigError(f"{option} {path} is not allowed: not a readable safetensors file (truncated or "
                          f"another format: {reason})") from None
    for name, tensor in tensors.items():
        if tensor.is_floating_point() and not torch.isfinite(tensor).all():
            raise ConfigError(f"{option} {path} is not allowed: {name} holds NaN or infinite values")
    return tensors


def model_config(model: str | None):
    """The model's configuration, read before any work: a ``--model`` that is a missing folder, a
    folder without a model, or a hub name that cannot be loaded (offline, or no such model) stops
    with one line."""
    name = model or default_model()
    if os.path.isdir(name) and not os.path.isfile(os.path.join(name, "config.json")):
        raise ConfigError(f"--model {name} is not allowed: the folder holds no model (no config.json)")
    try:
        return AutoConfig.from_pretrained(name)
    except (OSError, ValueError) as error:
        if os.path.isabs(name) or name.startswith(".") or os.path.exists(name):
            raise ConfigError(f"--model {name} is not allowed: no such folder") from None
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ConfigError(f"--model {name} is not allowed: no such folder here, and the hub did not give it "
                          f"(offline, or no such model: {reason[:160]})") from None


def model_skeleton(model: str | None) -> nn.Module:
    """The model's modules on the meta device: names and shapes, no weights read."""
    config = model_config(model)
    with torch.device("meta"):
        return AutoModelForSequenceClassification.from_config(config)


def checked_alpha_settings(path: str, option: str = "--alphas") -> dict:
    """The ``alphas.json`` beside ``path`` (:func:`agwm.mixup.read_alpha_settings`): its layers, rank
    and formulation, checked."""
    try:
        settings = read_alpha_settings(path)
    except FileNotFoundError:
        raise ConfigError(f"{option} {path} is not allowed: no {ALPHA_CONFIG_NAME} beside it (search.py writes "
                          "both)") from None
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise ConfigError(f"{option} {path} is not allowed: its {ALPHA_CONFIG_NAME} is not JSON") from None
    ok = (isinstance(settings, dict) and isinstance(settings.get("layers"), list) and settings["layers"]
          and all(isinstance(n, str) for n in settings["layers"])
          and isinstance(settings.get("rank"), int) and settings["rank"] >= 1
          and settings.get("formulation") in FORMULATIONS)
    if not ok:
        raise ConfigError(f"{option} {path} is not allowed: its {ALPHA_CONFIG_NAME} needs layers (names), rank "
                          f"(at least 1) and formulation ({', '.join(FORMULATIONS)})")
    return settings


def check_alphas(path: str, cfg: RunConfig, option: str = "--alphas") -> None:
    """The alphas at ``path`` fit ``cfg.model`` (every layer an ``nn.Linear`` of it, A of shape
    (out, r) and B (r, in)), are finite and in [0, 1], and agree with ``cfg.mixup``: a rank or
    formulation left at its default takes the file's, one set otherwise is refused."""
    settings = checked_alpha_settings(path, option)
    tensors = read_tensors(path, option)
    rank, layers = settings["rank"], settings["layers"]
    expected = {f"{layer}.{factor}" for layer in layers for factor in ("A", "B")}
    if set(tensors) != expected:
        missing, extra = sorted(expected - set(tensors)), sorted(set(tensors) - expected)
        raise ConfigError(f"{option} {path} is not allowed: its tensors do not match {ALPHA_CONFIG_NAME} "
                          f"(missing {missing[:3]}, unexpected {extra[:3]})")
    skeleton = model_skeleton(cfg.model)
    for layer in layers:
        try:
            module = skeleton.get_submodule(layer)
        except AttributeError:
            module = None
        if not isinstance(module, nn.Linear):
            raise ConfigError(f"{option} {path} is not allowed: layer {layer} is not a Linear layer of the model "
                              f"{cfg.model or 'all-MiniLM-L6-v2'} (alphas of another model?)")
        out_features, in_features = module.weight.shape
        for factor, shape in (("A", (out_features, rank)), ("B", (rank, in_features))):
            got = tuple(tensors[f"{layer}.{factor}"].shape)
            if got != shape:
                raise ConfigError(f"{option} {path} is not allowed: {layer}.{factor} has shape {got}, the model "
                                  f"needs {shape} (rank {rank}; alphas of another model?)")
    for name, tensor in tensors.items():
        if tensor.min() < 0 or tensor.max() > 1:
            raise ConfigError(f"{option} {path} is not allowed: {name} has values outside [0, 1] "
                              f"({tensor.min().item():g} to {tensor.max().item():g})")
    default = MixupConfig()
    for key, saved in (("rank", rank), ("formulation", settings["formulation"])):
        value = getattr(cfg.mixup, key)
        if value == getattr(default, key):
            setattr(cfg.mixup, key, saved)
        elif value != saved:
            raise ConfigError(f"mixup.{key}={value} is not allowed with {option} {path}: the alphas were learned "
                              f"with {key} {saved}")


def check_start_weights(path: str, option: str = "--start-weights") -> None:
    """A readable safetensors file of finite tensors (whether they fit the model is checked when
    they are loaded into it, every key and shape)."""
    read_tensors(path, option)
