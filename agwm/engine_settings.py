"""Where the shipped engine YAML files are, which one a run uses, and Betty's strategy for its
device; reading and checking one is :mod:`problems.engine_settings`."""

from __future__ import annotations

import dataclasses
import importlib.util
import os

import torch
from betty.configs import EngineConfig

from problems.engine_settings import EngineSettings, load_engine_settings

from .settings import ConfigError, RunConfig

__all__ = ["EngineSettings", "engine_config_dir", "engine_config_on", "engine_config_path", "load_engine_settings",
           "run_engine_settings"]


def engine_config_dir() -> str:
    """The folder of the shipped engine YAML files (the ``engine_configs`` package data), wherever installed."""
    return list(importlib.util.find_spec("engine_configs").submodule_search_locations)[0]


def engine_config_path(cfg: RunConfig) -> str:
    if cfg.engine_config:
        if not os.path.isfile(cfg.engine_config):
            raise ConfigError(f"--engine-config {cfg.engine_config} is not allowed: no such file")
        return cfg.engine_config
    return os.path.join(engine_config_dir(), f"{cfg.hypergrad}.yaml")


def run_engine_settings(cfg: RunConfig, overrides: list[str] = ()) -> EngineSettings:
    """The engine settings of a run: its engine YAML (:func:`engine_config_path`), the ``inner.*`` /
    ``outer.*`` / ``engine.*`` overrides, then ``search.alpha_every`` N as ``inner.unroll_steps``: one
    outer step every N inner steps, its schedule counted in outer steps. An unroll_steps other than 1
    from the file or an override that disagrees with N stops."""
    settings = load_engine_settings(engine_config_path(cfg), overrides)
    every = cfg.search.alpha_every
    if every is None or every == settings.inner.unroll_steps:
        return settings
    if settings.inner.unroll_steps != 1:
        raise ConfigError(f"search.alpha_every={every} is not allowed with inner.unroll_steps="
                          f"{settings.inner.unroll_steps} ({settings.path} or an override): give one of the two")
    return dataclasses.replace(settings, inner=dataclasses.replace(settings.inner, unroll_steps=every))


def engine_config_on(engine: EngineConfig, device: torch.device) -> EngineConfig:
    """``engine`` with Betty's strategy set to place the problems on ``device`` (Betty's
    ``default`` takes a GPU whenever there is one); an engine config that names the other one stops."""
    strategy = "gpu" if device.type == "cuda" else "cpu"
    if engine.strategy not in ("default", strategy):
        raise ConfigError(f"engine.strategy={engine.strategy} is not allowed with device {device}: "
                          f"default or {strategy}")
    return dataclasses.replace(engine, strategy=strategy)
