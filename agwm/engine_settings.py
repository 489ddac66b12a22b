"""A hypergradient method's settings: Betty's ``Config`` for the inner and outer levels and its
``EngineConfig``, read from a YAML file of ``engine_configs/`` and checked."""

from __future__ import annotations

import dataclasses
import importlib.util
import os
from dataclasses import dataclass

import torch
import yaml
from betty.configs import Config, EngineConfig

from .overrides import parse_overrides, set_path
from .settings import ConfigError, RunConfig


@dataclass
class EngineSettings:
    inner: Config
    outer: Config
    engine: EngineConfig
    path: str = ""


def engine_config_dir() -> str:
    """The folder of the shipped engine YAML files (the ``engine_configs`` package data), wherever installed."""
    return list(importlib.util.find_spec("engine_configs").submodule_search_locations)[0]


def engine_config_path(cfg: RunConfig) -> str:
    if cfg.engine_config:
        if not os.path.isfile(cfg.engine_config):
            raise ConfigError(f"--engine-config {cfg.engine_config} is not allowed: no such file")
        return cfg.engine_config
    return os.path.join(engine_config_dir(), f"{cfg.hypergrad}.yaml")


def load_engine_settings(path: str, overrides: list[str] = ()) -> EngineSettings:
    """Betty's ``Config`` (sections ``inner``, ``outer``) and ``EngineConfig`` (``engine``) from
    a YAML file, then ``inner.*`` / ``outer.*`` / ``engine.*`` overrides; unknown keys stop."""
    with open(path) as f:
        raw = yaml.safe_load(f) or {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping with sections inner, outer, engine")
    unknown = set(raw) - {"inner", "outer", "engine"}
    if unknown:
        raise ConfigError(f"{path}: unknown section(s) {sorted(unknown)}; allowed: inner, outer, engine")
    settings = EngineSettings(Config(), Config(first_order=True, retain_graph=True), EngineConfig(), path)
    for section in ("inner", "outer", "engine"):
        for key, value in (raw.get(section) or {}).items():
            set_path(settings, f"{section}.{key}", value, f"{path}: {section}.{key}")
    for key, value, written in parse_overrides(list(overrides)):
        if key.split(".")[0] in ("inner", "outer", "engine"):
            set_path(settings, key, value, written)
    validate_engine_settings(settings)
    return settings


def validate_engine_settings(settings: EngineSettings) -> None:
    from betty.hypergradient import jvp_fn_mapping

    import problems  # noqa: F401  (registers the project's methods)

    inner, outer = settings.inner, settings.outer
    if inner.type not in jvp_fn_mapping:
        raise ConfigError(f"inner.type={inner.type} is not allowed: one of {', '.join(sorted(jvp_fn_mapping))}")
    if inner.type in ("reinforce",):
        raise ConfigError(f"inner.type={inner.type} is not allowed: Betty 0.2.1's reinforce is a stub")
    if not (outer.first_order and outer.retain_graph):
        raise ConfigError("outer.first_order and outer.retain_graph must both be true: Betty adds the "
                          "implicit hypergradient only with first_order and reuses the outer graph")
    for path, value, minimum in (("inner.unroll_steps", inner.unroll_steps, 1),
                                 ("inner.cg_iterations", inner.cg_iterations, 1),
                                 ("inner.neumann_iterations", inner.neumann_iterations, 1)):
        if value < minimum:
            raise ConfigError(f"{path}={value} is not allowed: at least {minimum}")
    if settings.engine.strategy not in ("default", "cpu", "gpu"):
        raise ConfigError(f"engine.strategy={settings.engine.strategy} is not allowed: one of default, cpu, gpu "
                          "(Betty 0.2.1's accelerate strategy fails)")
    if settings.engine.early_stopping:
        raise ConfigError("engine.early_stopping=true is not allowed: it fails in Betty 0.2.1")


def engine_config_on(engine: EngineConfig, device: torch.device) -> EngineConfig:
    """``engine`` with Betty's strategy set to place the problems on ``device`` (Betty's
    ``default`` takes a GPU whenever there is one); an engine config that names the other one stops."""
    strategy = "gpu" if device.type == "cuda" else "cpu"
    if engine.strategy not in ("default", strategy):
        raise ConfigError(f"engine.strategy={engine.strategy} is not allowed with device {device}: "
                          f"default or {strategy}")
    return dataclasses.replace(engine, strategy=strategy)
