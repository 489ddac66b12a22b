"""From levels to a running Betty ``Engine``: the shipped engine configs (one YAML per hypergradient
method), Betty's strategy for a device, and one helper that builds the engine of a bi-level problem
(an inner level and the outer level above it) or of a single level.

    settings = shipped_engine_settings("cg", ["inner.cg_iterations=5"])
    inner = TaskWeightProblem("inner", settings.inner, model, fit_loss, weights, w_opt, train_loader)
    outer = AttentionProblem("outer", settings.outer, model, val_loss, penalties, p_opt, val_loader)
    build_engine(inner, outer, settings.engine, train_iters=1000).run()
"""

from __future__ import annotations

import dataclasses
import importlib.util
import logging
import os
from collections.abc import Callable
from contextlib import nullcontext

import torch
from betty.configs import EngineConfig
from betty.engine import Engine
from betty.logging.logger_base import get_logger

from .engine_settings import EngineSettings, load_engine_settings
from .overrides import ConfigError

get_logger().setLevel(logging.WARNING)  # Betty prints its problem graph at INFO for every engine

# The shipped hypergradient methods: engine_configs/<name>.yaml each.
HYPERGRADS = ("darts", "opt_darts", "sama", "reverse", "neumann", "cg")
FIRST_DERIVATIVES_ONLY = ("agwm_darts", "agwm_sama", "darts")  # finite differences of gradients


def engine_config_dir() -> str:
    """The folder of the shipped engine YAML files: ``engine_configs/`` beside this package's folder in a
    clone (and an editable install), else the installed ``agwm_engine_configs`` package data."""
    here = os.path.dirname(os.path.abspath(__file__))
    beside = os.path.join(os.path.dirname(here), "engine_configs")
    if os.path.basename(here) == "problems" and os.path.isdir(beside):
        return beside
    return list(importlib.util.find_spec("agwm_engine_configs").submodule_search_locations)[0]


def shipped_engine_settings(hypergrad: str, overrides: list[str] = ()) -> EngineSettings:
    """The settings of ``engine_configs/<hypergrad>.yaml`` with ``inner.*`` / ``outer.*`` / ``engine.*``
    overrides."""
    if hypergrad not in HYPERGRADS:
        raise ConfigError(f"hypergradient {hypergrad} is not allowed: one of {', '.join(HYPERGRADS)}")
    return load_engine_settings(os.path.join(engine_config_dir(), f"{hypergrad}.yaml"), overrides)


def engine_config_on(engine: EngineConfig, device: torch.device) -> EngineConfig:
    """``engine`` with Betty's strategy set to place the problems on ``device`` (Betty's
    ``default`` takes a GPU whenever there is one); an engine config that names the other one stops."""
    strategy = "gpu" if device.type == "cuda" else "cpu"
    if engine.strategy not in ("default", strategy):
        raise ConfigError(f"engine.strategy={engine.strategy} is not allowed with device {device}: "
                          f"default or {strategy}")
    return dataclasses.replace(engine, strategy=strategy)


def attention_kernels(method: str | None, device: torch.device):
    """The scaled-dot-product attention kernels a hypergradient ``method`` (a Betty ``Config.type``;
    None for a single level) may run on. Neumann and CG take Hessian-vector products, a backward
    pass through a backward pass, and CUDA's fused attention kernels (flash, memory-efficient) have
    no derivative of their backward: on a GPU those methods run with PyTorch's math attention. The
    finite-difference methods and every method on the CPU keep the default kernels."""
    if device.type != "cuda" or method is None or method in FIRST_DERIVATIVES_ONLY:
        return nullcontext()
    from torch.nn.attention import SDPBackend, sdpa_kernel

    return sdpa_kernel(SDPBackend.MATH)


class LevelEngine(Engine):
    """Betty's ``Engine`` over the levels of :func:`build_engine`: ``on_step(global_step)`` after every
    iteration (progress, logs, checks), and ``run`` under the attention kernels the inner level's
    hypergradient method can differentiate through."""

    def __init__(self, problems, config: EngineConfig, dependencies: dict, device: torch.device,
                 on_step: Callable[[int], None] | None = None, hypergrad: str | None = None):
        self.on_step, self.level_device, self.hypergrad = on_step, device, hypergrad
        super().__init__(problems, config, dependencies)

    def train_step(self):
        super().train_step()
        if self.on_step is not None:
            self.on_step(self.global_step)

    def run(self):
        with attention_kernels(self.hypergrad, self.level_device):
            return super().run()


def build_engine(inner, outer=None, engine: EngineConfig | None = None, train_iters: int | None = None,
                 device: torch.device | str = "cpu", on_step: Callable[[int], None] | None = None) -> LevelEngine:
    """The engine of ``outer`` over ``inner`` (the outer level's hypergradient goes through the inner
    level's response, by the method of ``inner.config.type``), or of ``inner`` alone when ``outer``
    is None; ``engine`` (default Betty's) placed on ``device``, run for ``train_iters`` iterations."""
    device = torch.device(device)
    config = engine_config_on(engine or EngineConfig(), device)
    if train_iters is not None:
        config = dataclasses.replace(config, train_iters=train_iters)
    if outer is None:
        return LevelEngine([inner], config, {"u2l": {}, "l2u": {}}, device, on_step)
    return LevelEngine([inner, outer], config, {"u2l": {outer: [inner]}, "l2u": {inner: [outer]}}, device, on_step,
                       hypergrad=inner.config.type)
