"""Where a run's settings come together: defaults (:mod:`agwm.settings`), command-line flags and
``key=value`` overrides (:mod:`agwm.overrides`), then one validation pass (:mod:`agwm.validation`).
A hypergradient method's settings are :mod:`agwm.engine_settings`; settings in records,
:mod:`agwm.records`. Every bad value stops with a :class:`ConfigError` that names the option as it
was written, the value, and what is allowed."""

from __future__ import annotations

from typing import Any

from problems.overrides import parse_overrides, set_path

from .settings import FLAGS, ConfigError, RunConfig
from .validation import validate_run_config

__all__ = ["ConfigError", "RunConfig", "build_run_config"]


def build_run_config(flags: dict[str, Any], overrides: list[str] = (), base: RunConfig | None = None) -> RunConfig:
    """``base`` (defaults) updated by ``flags`` (dotted field -> value, None meaning not given)
    and then by ``overrides`` that are not engine keys; validated."""
    cfg = base or RunConfig()
    written: dict[str, str] = {}
    for path, value in flags.items():
        if value is not None:
            set_path(cfg, path, value, FLAGS.get(path, path))
    for key, value, text in parse_overrides(list(overrides)):
        if key.split(".")[0] not in ("inner", "outer", "engine"):
            set_path(cfg, key, value, text)
            written[key] = text
    validate_run_config(cfg, written)
    return cfg
