"""A hypergradient method's settings: the inner and outer levels' :class:`LevelConfig` and Betty's
``EngineConfig``, read from a YAML file with sections ``inner``, ``outer`` and ``engine``, and checked.

    settings = load_engine_settings("engine_configs/reverse.yaml", ["inner.unroll_steps=3"])
    inner = TaskWeightProblem("inner", settings.inner, ...)
    outer = AttentionProblem("outer", settings.outer, ...)
    Engine([inner, outer], dataclasses.replace(settings.engine, train_iters=100), dependencies)
"""

from __future__ import annotations

from dataclasses import dataclass, field

import yaml
from betty.configs import Config, EngineConfig

from .overrides import ConfigError, parse_overrides, set_path

DARTS_DIRECTIONS = ("sgd", "optimizer")


@dataclass
class LevelConfig(Config):
    """Betty's ``Config`` and the settings of this package's methods (:mod:`agwm_problems.hypergrad`).

    ``darts_direction``: ``sgd`` perturbs the inner weights along xi * v (the DARTS paper, exact for
    an SGD inner step); ``optimizer`` along the inner optimizer's own one-step response, diag(dw'/dg) v
    (exact for AdamW, Adam and SGD with momentum).
    ``implicit_weight_decay``: cg and neumann solve with H + diag(wd), the Hessian of the loss plus
    the optimizer's weight-decay term wd/2 ||w||^2 (each parameter's own ``weight_decay``).
    ``neumann_alpha`` may be ``auto``: 1 / lambda_max(H), lambda_max from ``neumann_power_iterations``
    power iterations at each outer step (warm-started from the last one's vector).
    """

    neumann_alpha: float | str = 1.0
    darts_direction: str = "sgd"
    implicit_weight_decay: bool = True
    neumann_power_iterations: int = 10


@dataclass
class EngineSettings:
    inner: LevelConfig = field(default_factory=LevelConfig)
    outer: LevelConfig = field(default_factory=lambda: LevelConfig(first_order=True, retain_graph=True))
    engine: EngineConfig = field(default_factory=EngineConfig)
    path: str = ""


def load_engine_settings(path: str, overrides: list[str] = ()) -> EngineSettings:
    """The settings in the YAML file ``path``, then ``inner.*`` / ``outer.*`` / ``engine.*``
    overrides (``key=value``; others are ignored); an unknown key or a bad value raises :class:`ConfigError`."""
    try:
        with open(path) as f:
            raw = yaml.safe_load(f) or {}
    except OSError as error:
        raise ConfigError(f"engine config {path} is not allowed: {error.strerror}") from None
    except yaml.YAMLError as error:
        raise ConfigError(f"engine config {path} is not allowed: not YAML ({str(error).splitlines()[0]})") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping with sections inner, outer, engine")
    unknown = set(raw) - {"inner", "outer", "engine"}
    if unknown:
        raise ConfigError(f"{path}: unknown section(s) {sorted(unknown)}; allowed: inner, outer, engine")
    settings = EngineSettings(path=path)
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
                                 ("inner.neumann_iterations", inner.neumann_iterations, 1),
                                 ("inner.neumann_power_iterations", inner.neumann_power_iterations, 1)):
        if value < minimum:
            raise ConfigError(f"{path}={value} is not allowed: at least {minimum}")
    for path, value in (("inner.darts_alpha", inner.darts_alpha), ("inner.sama_adam_alpha", inner.sama_adam_alpha),
                        ("inner.cg_alpha", inner.cg_alpha)):
        if not value > 0 or value == float("inf"):
            raise ConfigError(f"{path}={value} is not allowed: a finite number above 0")
    alpha = inner.neumann_alpha
    if isinstance(alpha, str) and alpha != "auto" or not isinstance(alpha, str) and not 0 < alpha < float("inf"):
        raise ConfigError(f"inner.neumann_alpha={alpha} is not allowed: a finite number above 0, or auto")
    if inner.darts_direction not in DARTS_DIRECTIONS:
        raise ConfigError(f"inner.darts_direction={inner.darts_direction} is not allowed: "
                          f"one of {', '.join(DARTS_DIRECTIONS)}")
    if settings.engine.strategy not in ("default", "cpu", "gpu"):
        raise ConfigError(f"engine.strategy={settings.engine.strategy} is not allowed: one of default, cpu, gpu "
                          "(Betty 0.2.1's accelerate strategy fails)")
    if settings.engine.early_stopping:
        raise ConfigError("engine.early_stopping=true is not allowed: it fails in Betty 0.2.1")
