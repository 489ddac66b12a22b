"""``key=value`` overrides of dataclass fields: parsing, and setting a dotted field with its type.
A value that cannot be used raises :class:`ConfigError` with a one-line message for the user."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import fields
from typing import Any

import yaml


class ConfigError(ValueError):
    """A setting that cannot be used; ``str()`` is the message for the user."""


def _coerce(value: Any, default: Any, option: str, str_allowed: bool = False) -> Any:
    """``value`` (YAML-parsed) as the type of the field's ``default``; a field annotated
    ``float | str`` (``str_allowed``) also takes a word such as ``auto``."""
    if value is None and default is not None:
        raise ConfigError(f"{option} is not allowed: empty; expected {_kind(default)}")
    if isinstance(value, str) and type(default) in (int, float):
        try:  # YAML 1.1 reads 1e-3 (no dot) as a string
            value = type(default)(value)
        except ValueError:
            if str_allowed:
                return value
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"{option} is not allowed: expected a finite number")
    if isinstance(default, list) and default and all(type(d) in (int, float) for d in default):
        items = value if isinstance(value, list) else [value]  # a list of numbers: each item typed
        if not items:
            raise ConfigError(f"{option} is not allowed: empty; expected a list of numbers")
        return [_coerce(item, default[0], option) for item in items]
    if value is None or default is None or isinstance(default, (list, tuple, dict)):
        return value
    if isinstance(default, bool):
        if isinstance(value, bool):
            return value
    elif isinstance(default, int) and isinstance(value, int) and not isinstance(value, bool):
        return value
    elif isinstance(default, float) and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    elif isinstance(default, str) and isinstance(value, (str, int, float)):
        return str(value)
    raise ConfigError(f"{option}: {value!r} is not allowed: expected {_kind(default)}")


def _kind(default: Any) -> str:
    return {bool: "true or false", int: "an integer", float: "a number", str: "a string"}.get(
        type(default), f"a {type(default).__name__}")


def set_path(obj: Any, path: str, value: Any, option: str) -> None:
    *parents, leaf = path.split(".")
    for part in parents:
        if not dataclasses.is_dataclass(obj) or part not in {f.name for f in fields(obj)}:
            raise ConfigError(f"{option}: unknown key {path!r}")
        obj = getattr(obj, part)
    names = {f.name for f in fields(obj)}
    if leaf not in names or dataclasses.is_dataclass(getattr(obj, leaf)):
        allowed = ", ".join(sorted(n for n in names if not dataclasses.is_dataclass(getattr(obj, n))))
        raise ConfigError(f"{option}: unknown key {path!r}; allowed here: {allowed}")
    spec = next(f for f in fields(obj) if f.name == leaf)
    str_allowed = isinstance(spec.type, str) and "str" in [t.strip() for t in spec.type.split("|")[1:]]
    setattr(obj, leaf, _coerce(value, _reference_value(obj, leaf), option, str_allowed))


def _reference_value(obj: Any, name: str) -> Any:
    """A value of the field's type: its default, or for an optional field its annotated type's."""
    spec = next(f for f in fields(obj) if f.name == name)
    default = spec.default if spec.default is not dataclasses.MISSING else getattr(obj, name)
    if default is None and isinstance(spec.type, str):
        default = {"int": 0, "float": 0.0, "str": ""}.get(spec.type.split("|")[0].strip())
    return default


def parse_overrides(items: list[str]) -> list[tuple[str, Any, str]]:
    """``["search.alpha_lr=1e-3", ...]`` as (key, YAML-parsed value, the text as written)."""
    parsed = []
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"{item!r} is not allowed: overrides are written key=value (e.g. search.alpha_lr=1e-3)")
        try:
            value = yaml.safe_load(raw) if raw else None
        except yaml.YAMLError:
            value = raw
        parsed.append((key.strip(), value, item))
    return parsed
