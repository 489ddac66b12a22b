"""The files a run's settings name, checked before any work: the model (its shape and maximum
length), saved alphas (their layers, rank and formulation, which the run then takes) and start
weights. Checks do not change the settings: what a saved file decides is returned, and applied by
:func:`with_saved_alphas`."""

from __future__ import annotations

import dataclasses
import json
import os

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import nn
from transformers import AutoConfig, AutoModelForSequenceClassification

from agwm.config import MixupConfig, RunConfig
from agwm.errors import ConfigError
from agwm.mixup import ALPHA_CONFIG_NAME, FORMULATIONS, read_alpha_settings
from agwm.models import model_path
from agwm.registry import METHODS
from agwm.run_folder import TASK_WEIGHTS_NAME, check_output_dir
from agwm.settings import refuse_body, refuse_unread_outer_level


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
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ConfigError(f"--model {name} is not allowed: no such folder here, and the hub did not give it "
                          f"(offline, or no such model: {reason[:160]})") from None

# families whose position ids start after the padding index (pad_token_id + 1 = 2): 2 positions fewer
POSITIONS_AFTER_PADDING = ("roberta", "xlm-roberta", "xlm-roberta-xl", "camembert", "mpnet", "longformer",
                           "data2vec-text")


def check_model(cfg: RunConfig):
    """The model loads (:func:`model_config`) and takes ``--max-length`` tokens; returns its config."""
    config = model_config(cfg.model)
    positions = getattr(config, "max_position_embeddings", None)
    if isinstance(positions, int) and getattr(config, "position_embedding_type", "absolute") == "absolute":
        positions -= 2 if config.model_type in POSITIONS_AFTER_PADDING else 0
        if cfg.max_length > positions:
            raise ConfigError(f"--max-length {cfg.max_length} is not allowed: at most {positions}, the positions of "
                              f"{cfg.model or 'all-MiniLM-L6-v2'}")
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


def check_alphas(path: str, cfg: RunConfig, option: str = "--alphas") -> dict:
    """The alphas at ``path`` fit ``cfg.model`` (every layer an ``nn.Linear`` of it, A of shape
    (out, r) and B (r, in)), are finite and in [0, 1], and agree with ``cfg.mixup``: a rank or
    formulation set to another value than the file's is refused (one left at its default takes the
    file's: :func:`with_saved_alphas`). Returns the file's ``alphas.json``."""
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
        if value != getattr(default, key) and value != saved:
            raise ConfigError(f"mixup.{key}={value} is not allowed with {option} {path}: the alphas were learned "
                              f"with {key} {saved}")
    return settings


def with_saved_alphas(cfg: RunConfig, saved: dict) -> RunConfig:
    """``cfg`` with the rank and formulation of the alphas it finetunes with (``saved``: their
    ``alphas.json``, checked by :func:`check_alphas`)."""
    mixup = dataclasses.replace(cfg.mixup, rank=saved["rank"], formulation=saved["formulation"])
    return dataclasses.replace(cfg, mixup=mixup)


def check_start_weights(path: str, option: str = "--start-weights") -> None:
    """A readable safetensors file of finite tensors (whether they fit the model is checked when
    they are loaded into it, every key and shape)."""
    read_tensors(path, option)


def check_search_inputs(cfg: RunConfig) -> None:
    """What a search reads before any work: settings it would not read, its output folder and the model."""
    refuse_unread_outer_level(cfg)
    refuse_body(cfg)
    check_output_dir(cfg.output_dir, cfg.overwrite, "search")
    check_model(cfg)


def check_finetune_inputs(cfg: RunConfig, alphas: str | None,
                          start_weights: str | None) -> tuple[dict | None, str | None]:
    """What a finetune reads before any work: the combination of method, alphas and start weights,
    its output folder, the model, the alphas and the start weights. Returns the alphas' ``alphas.json``
    (for :func:`with_saved_alphas`) and the start weights: those given, else with ``alphas`` and
    ``search.finetune_start=fold_average`` the search's fold-averaged task weights beside them."""
    f = cfg.finetune
    if alphas is not None and f.alpha_mode != "fixed":
        raise ConfigError(f"finetune.alpha_mode={f.alpha_mode} is not allowed with --alphas: "
                          "saved alphas are used fixed (alpha_mode=fixed)")
    if alphas is not None and f.method != "vanilla":
        raise ConfigError(f"--method {f.method} is not allowed with --alphas: the mixup finetune "
                          "trains W plainly (finetune.method=vanilla)")
    if start_weights is not None and not METHODS[f.method].from_weights:
        raise ConfigError(f"--start-weights is not allowed with --method {f.method}: it starts from the encoder")
    if alphas is not None and start_weights is None and cfg.search.finetune_start == "fold_average":
        start_weights = os.path.join(os.path.dirname(alphas), TASK_WEIGHTS_NAME)
        if not os.path.isfile(start_weights):
            raise ConfigError(f"--alphas {alphas} is not allowed with search.finetune_start=fold_average (the "
                              f"default): no {TASK_WEIGHTS_NAME} beside it to start from; give --start-weights, "
                              "or search.finetune_start=pretrained to start from the pretrained weights")
    refuse_body(cfg)
    check_output_dir(cfg.output_dir, cfg.overwrite, "finetune")
    check_model(cfg)
    saved = check_alphas(alphas, cfg) if alphas is not None else None
    if start_weights is not None:
        check_start_weights(start_weights)
    return saved, start_weights
