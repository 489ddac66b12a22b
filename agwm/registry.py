"""The one registry of finetune methods, as PEFT's ``register_peft_method``: a method declares itself
once, in its own module, with :func:`register_method`; ``--method`` (its choices and help), the
settings schema (a section per method's settings), the grid's method names, ``agwm select``'s
candidates and the methods table of docs/methods.md all read :data:`METHODS`.

A method runs in one of two ways:

- ``recipe``: a :class:`~agwm.baselines.recipe.Recipe` subclass, hooks into the plain finetune loop
  of :mod:`agwm.finetune` (what the method's paper changes in it);
- ``fit``: a function ``fit(cfg, data, log, dev, alphas, start_weights) -> Fitted`` that makes the
  fitted model itself (an encoder used as a sentence encoder, a soup of members, ...).

A recipe is built with its own settings section alone (and :class:`~agwm.baselines.recipe.MethodRun`:
the seed, the batch size and the layers mixup targets), as a PEFT tuner gets its own config.

Another package's methods register through the ``agwm.methods`` entry point group
(:func:`load_methods`). Both ways of running are named as ``"module:attribute"`` and imported when
the method runs, so that the registry, the schema and every ``--help`` load without torch."""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import sys
from dataclasses import dataclass
from typing import Any

from agwm.errors import first_line

TEXTS = {1: "one text column", 2: "two text columns"}
LABELS = ("classes", "two classes", "regression")  # any number of classes; two only; real values
CANDIDATES = ("everywhere", "pairs", "single texts")


def install_hint(extra: str) -> str:
    """The command, run in agwm's folder, that installs one of its optional extras (pyproject.toml)."""
    return f'pip install ".[{extra}]"'


@dataclass(frozen=True)
class FinetuneMethod:
    """``name``: as ``--method`` takes it. ``summary``: its one line of help. ``recipe`` or ``fit``:
    how it runs ("module:attribute"). ``settings``: ``(section, dataclass)`` of its own settings
    (``section.field=value`` on the command line; the dataclass's ``check()`` returns what is wrong,
    as ``(field, allowed)``, or nothing). ``texts`` and ``labels``: the tasks it takes, and ``why``:
    what it does that the others do not take. ``needs``: an optional package and its extra.
    ``from_weights``: it trains the model's weights (and so can start from a search's, ``--start-weights``).
    ``candidate``: where ``agwm select`` tries it without ``--methods``: ``"everywhere"``, ``"pairs"``
    or ``"single texts"`` (where the task's kind allows it, and it is installed)."""

    name: str
    summary: str
    recipe: str | None = None
    fit: str | None = None
    settings: tuple[str, type] | None = None
    texts: tuple[int, ...] = (1, 2)
    labels: tuple[str, ...] = ("classes", "regression")
    why: dict[str, str] | None = None
    needs: tuple[str, str] | None = None
    from_weights: bool = True
    candidate: str | None = None

    def __post_init__(self):
        if (self.recipe is None) == (self.fit is None):
            raise ValueError(f"method {self.name}: give recipe or fit, not both or neither")
        if self.candidate not in (None, *CANDIDATES):
            raise ValueError(f"method {self.name}: candidate among {CANDIDATES}")
        if not set(self.labels) <= set(LABELS) or not set(self.texts) <= set(TEXTS):
            raise ValueError(f"method {self.name}: labels among {LABELS}, texts among {tuple(TEXTS)}")

    def runner(self) -> Any:
        module, attribute = (self.recipe or self.fit).split(":")
        return getattr(importlib.import_module(module), attribute)

    def installed(self) -> bool:
        return self.needs is None or importlib.util.find_spec(self.needs[0]) is not None

    def missing(self) -> str:
        """Why it cannot run here, for a message: the package it needs."""
        return f"it needs the {self.needs[0]} package ({install_hint(self.needs[1])})"

    def task_error(self, task, option: str | None = None) -> str | None:
        """Why this method cannot learn ``task`` (any object with ``text_columns``, ``is_regression``
        and ``num_labels``), or None; ``option`` names the setting that asked for it."""
        option = option or f"--method {self.name}"
        why = self.why or {}
        texts = len(task.text_columns)
        if task.is_regression and "regression" not in self.labels:
            return (f"{option} is not allowed for a regression task: {why.get('labels', '')}; "
                    f"{_others(lambda m: 'regression' in m.labels)} take regression")
        if texts not in self.texts:
            return (f"{option} is not allowed with {TEXTS[texts]}: {why.get('texts', '')}; "
                    f"{_others(lambda m: texts in m.texts)} take {'pairs' if texts == 2 else 'single texts'}")
        if not task.is_regression and "classes" not in self.labels and (
                "two classes" not in self.labels or task.num_labels != 2):
            takes = " or ".join(label for label in self.labels)
            return (f"{option} is not allowed for a task of {task.num_labels} classes: {why.get('labels', '')}; "
                    f"it takes {takes}")
        return None


METHODS: dict[str, FinetuneMethod] = {}


def positive(config, names) -> list[tuple[str, str]]:
    """For a settings dataclass's ``check()``: those of its fields ``names`` not greater than 0."""
    return [(name, "greater than 0") for name in names if not getattr(config, name) > 0]


def positive_lists(config, names) -> list[tuple[str, str]]:
    """For a settings dataclass's ``check()``: those of its fields ``names`` that are not a non-empty list of
    numbers greater than 0."""
    return [(name, "a list of numbers greater than 0") for name in names
            if not (isinstance(getattr(config, name), list) and getattr(config, name)
                    and all(v > 0 for v in getattr(config, name)))]


def register_method(method: FinetuneMethod) -> FinetuneMethod:
    """Add ``method`` to :data:`METHODS` (a name is registered once). A method with settings must be
    registered before the schema (:mod:`agwm.config`) is first imported, so that its section is part
    of every run's settings: the built-in methods register from :mod:`agwm.baselines`."""
    if method.name in METHODS:
        raise ValueError(f"a finetune method named {method.name} is already registered")
    if method.settings is not None and _SCHEMA["built"]:
        raise ValueError(f"method {method.name}: a method with settings registers before agwm.config is imported")
    METHODS[method.name] = method
    return method


_SCHEMA = {"built": False}  # set by agwm.config once RunConfig has every section


ENTRY_POINTS = "agwm.methods"  # another package's methods: [project.entry-points."agwm.methods"] name = "its.module"
_LOADED = {"done": False}


def load_methods() -> None:
    """Register the built-in methods (:mod:`agwm.baselines`), then, once, every installed package's:
    each entry point of the group ``agwm.methods`` names a module whose import registers its methods
    (torch-free, as the built-ins' ``__init__``). A module that cannot be imported is said in one
    line on stderr and left out."""
    import agwm.baselines  # noqa: F401

    if _LOADED["done"]:
        return
    _LOADED["done"] = True
    for entry in sorted(importlib.metadata.entry_points(group=ENTRY_POINTS), key=lambda e: e.name):
        try:
            entry.load()
        except Exception as error:  # another package's bug must not stop agwm's own methods
            reason = first_line(error, empty="")
            print(f"agwm: the methods of {entry.value} (entry point {entry.name} of {ENTRY_POINTS}) are left out: "
                  f"{type(error).__name__}: {reason}"[:300], file=sys.stderr)


def sections_for_schema() -> list[tuple[str, type]]:
    """``(section, dataclass)`` of every registered method that has settings, in registry order, each
    section once (methods of one family may share one: lora, prefix and prompt read ``peft``); after
    this call (by :mod:`agwm.config`, once) a method with settings can no longer register."""
    load_methods()

    _SCHEMA["built"] = True
    sections: dict[str, type] = {}
    for m in METHODS.values():
        if m.settings is not None:
            name, cls = m.settings
            if sections.setdefault(name, cls) is not cls:
                raise ValueError(f"method {m.name}: section {name} is already {sections[name].__name__}'s")
    return list(sections.items())


def _others(accepts) -> str:
    names = [m.name for m in METHODS.values() if accepts(m)]
    shown = ["vanilla"] + [n for n in names if n != "vanilla"][:2] if "vanilla" in names else names[:3]
    return ", ".join(shown) + (" and the other methods" if len(names) > len(shown) else "")


def method(name: str) -> FinetuneMethod:
    load_methods()

    return METHODS[name]


def task_error(name: str, task, option: str | None = None) -> str | None:
    """Why the method ``name`` cannot learn ``task``, or None (also for a name that is no finetune method)."""
    load_methods()

    return METHODS[name].task_error(task, option) if name in METHODS else None


def method_names() -> list[str]:
    load_methods()

    return list(METHODS)


def methods_help() -> str:
    """``--method``'s help: every method registered by now, with its one line."""
    load_methods()

    return ("; ".join(f"{m.name} ({m.summary})" for m in METHODS.values())
            + "; a method's own settings as key=value (e.g. mixout.p=0.5)")


def methods_table() -> str:
    """The Markdown table of docs/methods.md."""
    load_methods()

    rows = ["| method | what it does | texts | labels | settings | runs as |", "|---|---|---|---|---|---|"]
    for m in METHODS.values():
        texts = ", ".join(str(n) for n in m.texts)
        settings = f"`{m.settings[0]}.*`" if m.settings else ""
        runs = f"recipe `{m.recipe}`" if m.recipe else f"fit `{m.fit}`"
        needs = f" (needs `{install_hint(m.needs[1])}`)" if m.needs else ""
        rows.append(f"| `{m.name}` | {m.summary}{needs} | {texts} | {', '.join(m.labels)} | {settings} | {runs} |")
    return "\n".join(rows) + "\n"
