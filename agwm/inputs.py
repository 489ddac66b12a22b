"""The files a run's settings name, checked before any work: the model (its shape and maximum
length), saved alphas (their layers, rank and formulation, which the run then takes) and start
weights. Each check takes the values it checks, not the run's settings; checks change nothing:
what a saved file decides is returned (the search and the finetune apply it)."""

from __future__ import annotations

import json
import os

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import nn
from transformers import AutoConfig, AutoModelForSequenceClassification

from agwm.config import MixupConfig
from agwm.errors import ConfigError, first_line
from agwm.mixup import ALPHA_CONFIG_NAME, FORMULATIONS, read_alpha_settings
from agwm.models import model_path


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
    name = model_path(model)
    if os.path.isdir(name) and not os.path.isfile(os.path.join(name, "config.json")):
        raise ConfigError(f"--model {name} is not allowed: the folder holds no model (no config.json)")
    try:
        return AutoConfig.from_pretrained(name)
    except (OSError, ValueError) as error:
        if os.path.isabs(name) or name.startswith(".") or os.path.exists(name):
            raise ConfigError(f"--model {name} is not allowed: no such folder") from None
        reason = first_line(error)
        raise ConfigError(f"--model {name} is not allowed: no such folder here, and the hub did not give it "
                          f"(offline, or no such model: {reason[:160]})") from None

# families whose position ids start after the padding index (pad_token_id + 1 = 2): 2 positions fewer
POSITIONS_AFTER_PADDING = ("roberta", "xlm-roberta", "xlm-roberta-xl", "camembert", "mpnet", "longformer",
                           "data2vec-text")


def check_model(model: str | None, max_length: int):
    """The model loads (:func:`model_config`) and takes ``max_length`` tokens (``--max-length``);
    returns its config."""
    config = model_config(model)
    positions = getattr(config, "max_position_embeddings", None)
    if isinstance(positions, int) and getattr(config, "position_embedding_type", "absolute") == "absolute":
        positions -= 2 if config.model_type in POSITIONS_AFTER_PADDING else 0
        if max_length > positions:
            raise ConfigError(f"--max-length {max_length} is not allowed: at most {positions}, the positions of "
                              f"{model or 'all-MiniLM-L6-v2'}")
    return config


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


def check_alphas(path: str, model: str | None, mixup: MixupConfig, option: str = "--alphas") -> dict:
    """The alphas at ``path`` fit ``model`` (every layer an ``nn.Linear`` of it, A of shape
    (out, r) and B (r, in)), are finite and in [0, 1], and agree with the run's ``mixup`` settings:
    a rank or formulation set to another value than the file's is refused (one left at its default
    takes the file's: :func:`agwm.finetune.with_saved_alphas`). Returns the file's ``alphas.json``."""
    settings = checked_alpha_settings(path, option)
    tensors = read_tensors(path, option)
    rank, layers = settings["rank"], settings["layers"]
    expected = {f"{layer}.{factor}" for layer in layers for factor in ("A", "B")}
    if set(tensors) != expected:
        missing, extra = sorted(expected - set(tensors)), sorted(set(tensors) - expected)
        raise ConfigError(f"{option} {path} is not allowed: its tensors do not match {ALPHA_CONFIG_NAME} "
                          f"(missing {missing[:3]}, unexpected {extra[:3]})")
    skeleton = model_skeleton(model)
    for layer in layers:
        try:
            module = skeleton.get_submodule(layer)
        except AttributeError:
            module = None
        if not isinstance(module, nn.Linear):
            raise ConfigError(f"{option} {path} is not allowed: layer {layer} is not a Linear layer of the model "
                              f"{model or 'all-MiniLM-L6-v2'} (alphas of another model?)")
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
        value = getattr(mixup, key)
        if value != getattr(default, key) and value != saved:
            raise ConfigError(f"mixup.{key}={value} is not allowed with {option} {path}: the alphas were learned "
                              f"with {key} {saved}")
    return settings


def check_start_weights(path: str, option: str = "--start-weights") -> None:
    """A readable safetensors file of finite tensors (whether they fit the model is checked when
    they are loaded into it, every key and shape)."""
    read_tensors(path, option)
