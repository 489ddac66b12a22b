"""A run's settings as written beside it (config.yaml) and as grid records keep them, and what
changed between a record's settings and a grid's today (a setting the record's method never read is
no change)."""

from __future__ import annotations

import dataclasses
import json
from typing import TYPE_CHECKING, Any

import yaml

from agwm.files import atomic_path

if TYPE_CHECKING:
    from agwm_problems.engine_settings import EngineSettings


def to_dict(obj: Any) -> dict:
    return dataclasses.asdict(obj)

# A setting that only some kinds of method read -> those kinds; for every other kind its value is
# no change (a grid resumes over it, a report does not list it).
READ_ONLY_BY = {"search.finetune_start": ("mixup",), "search.problem": ("mixup",), "search.folds": ("mixup",)}


def read_by(key: str, kind: str) -> bool:
    """Whether a method of this kind reads the dotted setting ``key``."""
    return kind in READ_ONLY_BY.get(key, (kind,))


def flatten(config: dict, prefix: str = "") -> dict:
    """A nested config as ``{dotted key: value}``."""
    flat = {}
    for key, value in config.items():
        if isinstance(value, dict):
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[prefix + key] = value
    return flat


def changed_settings(recorded: dict, current: dict, kind: str) -> dict[str, tuple[Any, Any]]:
    """The dotted settings of a recorded run of this kind of method whose value differs in
    ``current``, as ``key: (recorded, current)``. A setting only one of the two holds is no change (one
    the record lacks was added to the project after the run, which had its default), nor is one this
    kind does not read (:func:`read_by`)."""
    now = flatten(current)
    return {key: (value, now[key]) for key, value in flatten(recorded).items()
            if key in now and value != now[key] and read_by(key, kind)}


def as_recorded(settings: Any) -> dict:
    """A run's settings (a dataclass) as a results record stores them: JSON values (a tuple becomes a list)."""
    return json.loads(json.dumps(to_dict(settings)))


def write_resolved(path: str, settings: Any, engine: EngineSettings | None = None) -> None:
    """config.yaml: the run's settings (a dataclass) under ``run``, and the engine's, if it has any."""
    data = {"run": to_dict(settings)}
    if engine is not None:
        data.update(engine_config=engine.path, inner=to_dict(engine.inner),
                    outer=to_dict(engine.outer), engine=to_dict(engine.engine))
    with atomic_path(path) as tmp, open(tmp, "w") as f:
        yaml.safe_dump(data, f, sort_keys=False)
