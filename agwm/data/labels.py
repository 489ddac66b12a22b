"""Labels as read from a file: each value to a key, the task type guessed from them (classes, or
real values), the classes' order, and a table's rows to examples (``text_a`` [, ``text_b``],
``label``: a class index or a float); the stratified hold-out of a user's validation split."""

from __future__ import annotations

import math
import re

import torch
from datasets import Dataset

from agwm.data.sampling import generator
from agwm.data.tasks import Task
from agwm.errors import DataError


def output_columns(task: Task) -> list[str]:
    """The columns that predictions add beside a file's own (:mod:`agwm.run_folder`)."""
    return ["prediction", *([] if task.is_regression else [f"prob_{name}" for name in task.class_names])]


def refuse_output_columns(table: Dataset, task: Task, path: str, option: str) -> None:
    """A file whose rows are written back with predictions must not hold a column they would replace."""
    taken = [c for c in output_columns(task) if c in table.column_names]
    if taken:
        raise DataError(f"{option} {path} is not allowed: its column {taken[0]!r} would be replaced by the "
                        f"predictions written beside its rows; rename it")


def label_key(value) -> str | None:
    """A label as one string, the same for every format: numbers equal as numbers are one label (``1``,
    ``1.0``, ``"1.0"`` and ``" 1 "`` are all ``"1"``), text as written without the spaces around it;
    None if missing. A NaN or infinite number stays as written, for :func:`label_problem` to refuse."""
    if value is None or isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int):
        return str(value)
    text = str(value).strip()
    if not text:
        return None
    if INTEGER.fullmatch(text):
        return str(int(text))
    try:
        number = float(text)
    except ValueError:
        return text
    if not math.isfinite(number):
        return text
    return str(int(number)) if number.is_integer() else repr(number)

INTEGER = re.compile(r"[+-]?\d+")


def label_problem(key: str) -> str | None:
    """Why ``key`` cannot be a label (a NaN or an infinity), or None."""
    try:
        number = float(key)
    except ValueError:
        return None
    return None if math.isfinite(number) else "NaN and infinite values are not labels"


def _as_number(key: str | None) -> float | None:
    try:
        number = float(key)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def guess_task_type(keys: list[str]) -> str:
    """Regression when every label is a number and one of them is not a whole number; else classification."""
    numbers = [_as_number(k) for k in keys]
    if all(n is not None for n in numbers) and any(not n.is_integer() for n in numbers):
        return "regression"
    return "classification"


def refuse_stray_non_numbers(keys: list[str], path: str, label_column: str) -> None:
    """Labels that are real numbers but for a few (fewer than half) that are not: a regression file
    with a bad value, refused at the first, rather than read as that many classes."""
    numbers = [_as_number(k) for k in keys]
    strays = [row for row, n in enumerate(numbers, start=1) if n is None]
    if strays and len(strays) < len(keys) / 2 and any(n is not None and not n.is_integer() for n in numbers):
        raise DataError(f"{path}, row {strays[0]}: label {keys[strays[0] - 1]!r} in column {label_column!r} is not a "
                        f"number, while {len(keys) - len(strays)} of {len(keys)} labels are real numbers (a "
                        "regression file); correct it, or give --task-type classification")


def class_order(keys: set[str]) -> tuple[str, ...]:
    """The classes in index order: by value when all are whole numbers, else alphabetically."""
    if all(_as_number(k) is not None and _as_number(k).is_integer() for k in keys):
        return tuple(sorted(keys, key=float))
    return tuple(sorted(keys))


def to_examples(table: Dataset, task: Task, path: str, labelled: bool = True) -> Dataset:
    """Columns ``text_a`` [, ``text_b``] and, if ``labelled``, ``label``: the class index of the
    row's label in ``task.labels``, or its value as a float for regression."""
    columns = {}
    for i, name in enumerate(task.text_columns):
        values = table[name][:]  # one list: iterating a column formats row by row
        for row, text in enumerate(values, start=1):
            if text is not None and not isinstance(text, str):
                kind = {dict: "an object", list: "a list"}.get(type(text), f"a {type(text).__name__}")
                raise DataError(f"{path}, row {row}: column {name!r} holds {kind} ({str(text)[:40]}), not text")
            if text is None or not text.strip():
                raise DataError(f"{path}, row {row}: empty text in column {name!r}")
        columns[f"text_{'ab'[i]}"] = list(values)
    if labelled:
        index = {label: i for i, label in enumerate(task.labels or ())}
        labels = []
        for row, value in enumerate(table[task.label_column][:], start=1):
            key, shown = label_key(value), str(value).strip()  # messages quote the label as written
            if key is None:
                raise DataError(f"{path}, row {row}: no label in column {task.label_column!r}")
            problem = label_problem(key)  # a NaN or an infinity: refused before it can become a class
            if problem:
                raise DataError(f"{path}, row {row}: label {shown!r} in column {task.label_column!r} is not "
                                f"allowed: {problem}")
            if task.is_regression:
                number = _as_number(key)
                if number is None:
                    raise DataError(f"{path}, row {row}: label {shown!r} is not a number (a regression task)")
                low, high = task.label_range or (-math.inf, math.inf)
                if not low <= number <= high:
                    raise DataError(f"{path}, row {row}: label {shown!r} is outside the task's range {low:g} to "
                                    f"{high:g}")
                labels.append(number)
            elif key in index:
                labels.append(index[key])
            else:
                raise DataError(f"{path}, row {row}: label {shown!r} is not one of {list(task.labels)}")
        columns["label"] = labels
    return Dataset.from_dict(columns)


def stratified_holdout(labels: list, fraction: float, seed: int, regression: bool) -> tuple[list[int], list[int]]:
    """(kept, held-out) row indices: ``round(fraction * n_c)`` rows of each class c held out, drawn
    by the ``validation`` stream of ``seed``, at least one row of each class kept (regression: one
    draw over all rows). Both lists are in file order."""
    groups: dict = {}
    for i, label in enumerate(labels):
        groups.setdefault(None if regression else label, []).append(i)
    held = []
    for k, (_, rows) in enumerate(sorted(groups.items(), key=lambda item: str(item[0]))):
        order = torch.randperm(len(rows), generator=generator(seed, f"validation/{k}")).tolist()
        take = min(round(fraction * len(rows)), len(rows) - 1)
        held += [rows[j] for j in order[:take]]
    held_set = set(held)
    return [i for i in range(len(labels)) if i not in held_set], sorted(held)
