"""From files to examples, for a GLUE preset and a user's own files alike.

A file is read by its extension through ``datasets`` (``.csv``, ``.tsv``, ``.json``, ``.jsonl``,
``.parquet``), checked, and turned into columns ``text_a`` [, ``text_b``] and ``label`` (a class
index, or a float for regression). The file's own columns are kept beside, so predictions can be
written next to them. Every bad file or row stops with a :class:`DataError` naming the option,
the file and the row.
"""

from __future__ import annotations

import csv
import dataclasses
import math
import os
from dataclasses import dataclass, field

import datasets
import pandas as pd
import torch
from datasets import Dataset, Features, Value

from .data import generator
from .tasks import HUB_VALIDATION_SPLIT, DataError, GluePreset, Task, get_preset, metric_error, resolve_data_dir

FORMATS = {".csv": "csv", ".tsv": "csv", ".json": "json", ".jsonl": "json", ".parquet": "parquet"}
DEFAULT_TEXT_COLUMNS = (("text",), ("sentence",), ("sentence1", "sentence2"))
DEFAULT_LABEL_COLUMN = "label"
NO_ROWS = "{option} {path} is not allowed: it has no rows"


@dataclass
class Examples:
    """A task's examples: ``train`` and ``validation`` labelled, ``test`` possibly not; ``*_rows``
    hold the same examples as their files write them."""

    task: Task
    train: Dataset
    validation: Dataset | None  # None when the run scores on a part of the training sample instead
    validation_rows: pd.DataFrame | None
    test: Dataset | None = None
    test_rows: pd.DataFrame | None = None
    notes: list[str] = field(default_factory=list)  # what was guessed or held out, for the user


def read_table(path: str, option: str, quoting: int = csv.QUOTE_MINIMAL,
               column_names: tuple[str, ...] | None = None) -> Dataset:
    """The rows of ``path`` with the file's columns. Delimited files are read as text, every
    column a string, so that no value is reinterpreted; JSON and Parquet keep their types."""
    if not os.path.isfile(path):
        raise DataError(f"{option} {path} is not allowed: no such file")
    ext = os.path.splitext(path)[1].lower()
    if ext not in FORMATS:
        raise DataError(f"{option} {path} is not allowed: unknown extension {ext or '(none)'!r}; "
                        f"one of {', '.join(FORMATS)}")
    if os.path.getsize(path) == 0:
        raise DataError(f"{option} {path} is not allowed: the file is empty")
    kwargs = {}
    if FORMATS[ext] == "csv":
        delimiter = "\t" if ext == ".tsv" else ","
        names = _header(path, delimiter, quoting, option, column_names)
        kwargs = {"delimiter": delimiter, "quoting": quoting, "keep_default_na": False, "encoding": "utf-8-sig",
                  "features": Features({name: Value("string") for name in names})}
        if column_names:
            kwargs.update(header=None, column_names=list(column_names))
    datasets.disable_progress_bars()
    try:
        table = datasets.load_dataset(FORMATS[ext], data_files=path, split="train", **kwargs)
    except UnicodeDecodeError:
        raise DataError(f"{option} {path} is not allowed: it is not UTF-8 text") from None
    except Exception as error:  # the reader's own message says what is wrong with the file
        if "corresponds to no data" in str(error):
            raise DataError(NO_ROWS.format(option=option, path=path)) from None
        reason = str(error).strip().splitlines()[-1] if str(error).strip() else type(error).__name__
        raise DataError(f"{option} {path} cannot be read as {ext[1:]}: {reason}") from None
    if len(table) == 0:
        raise DataError(NO_ROWS.format(option=option, path=path))
    return table


def _header(path: str, delimiter: str, quoting: int, option: str, column_names: tuple[str, ...] | None) -> list[str]:
    """The file's columns (its first row, or ``column_names`` for a file without a header), once every
    row is checked to have as many fields: a reader would silently shift or drop the others."""
    try:
        with open(path, encoding="utf-8-sig", newline="") as f:
            rows = csv.reader(f, delimiter=delimiter, quoting=quoting)
            header = list(column_names) if column_names else next(rows, None)
            if not header:
                raise DataError(f"{option} {path} is not allowed: the file is empty")
            body = 0
            for row in rows:
                if row and len(row) != len(header):
                    raise DataError(f"{path}, line {rows.line_num}: {len(row)} fields, expected {len(header)} "
                                    f"({', '.join(header)})")
                body += bool(row)
            if not body:
                raise DataError(NO_ROWS.format(option=option, path=path))
    except UnicodeDecodeError:
        raise DataError(f"{option} {path} is not allowed: it is not UTF-8 text") from None
    return header


def require_columns(table: Dataset, columns: dict[str, list[str]], path: str) -> None:
    """``columns``: option -> the columns it names; each must be in ``table``."""
    for option, names in columns.items():
        missing = [c for c in names if c not in table.column_names]
        if missing:
            raise DataError(f"{option} {' '.join(missing)} is not allowed: no such column in {path}; "
                            f"its columns are {', '.join(table.column_names)}")


def label_key(value) -> str | None:
    """A label as one string (``1``, ``1.0`` and ``"1"`` are all ``"1"``), or None if missing."""
    if value is None or isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    text = str(value).strip()
    return text or None


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
        values = table[name]
        for row, text in enumerate(values, start=1):
            if text is None or not str(text).strip():
                raise DataError(f"{path}, row {row}: empty text in column {name!r}")
        columns[f"text_{'ab'[i]}"] = [str(text) for text in values]
    if labelled:
        index = {label: i for i, label in enumerate(task.labels or ())}
        labels = []
        for row, value in enumerate(table[task.label_column], start=1):
            key = label_key(value)
            if key is None:
                raise DataError(f"{path}, row {row}: no label in column {task.label_column!r}")
            if task.is_regression:
                number = _as_number(key)
                if number is None:
                    raise DataError(f"{path}, row {row}: label {key!r} is not a number (a regression task)")
                low, high = task.label_range or (-math.inf, math.inf)
                if not low <= number <= high:
                    raise DataError(f"{path}, row {row}: label {key!r} is outside the task's range {low:g} to {high:g}")
                labels.append(number)
            elif key in index:
                labels.append(index[key])
            else:
                raise DataError(f"{path}, row {row}: label {key!r} is not one of {list(task.labels)}")
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


def load_glue(name: str, data_dir: str | None, metric: str | None = None, test_file: str | None = None) -> Examples:
    """A GLUE task's train and dev files from ``data_dir`` (or ``$GLUE_DIR``), else from the hub;
    and a test file of the user's, if given, with the task's text columns."""
    preset = get_preset(name)
    task = preset.task if metric is None else _with_metric(preset.task, metric)
    test, test_rows = load_test(test_file, task)
    data_dir = resolve_data_dir(data_dir)
    if data_dir is None:
        train, dev = (load_from_hub(preset, split) for split in ("train", "dev"))
        return Examples(task, train, dev, dev.to_pandas(), test, test_rows)
    paths = [preset.file(data_dir, split) for split in ("train", "dev")]
    tables = [read_glue_file(preset, path) for path in paths]
    train, dev = (to_examples(table, task, path) for table, path in zip(tables, paths))
    return Examples(task, train, dev, tables[1].to_pandas(), test, test_rows)


def load_test(test_file: str | None, task: Task) -> tuple[Dataset | None, pd.DataFrame | None]:
    """The examples of a test file (labels not needed) and its rows, or (None, None)."""
    if test_file is None:
        return None, None
    table = read_table(test_file, "--test-file")
    require_columns(table, {"--text-columns": list(task.text_columns)}, test_file)
    return to_examples(table, task, test_file, labelled=False), table.to_pandas()


def read_glue_file(preset: GluePreset, path: str) -> Dataset:
    table = read_table(path, "--data-dir", preset.quoting, preset.column_names)
    require_columns(table, {"--data-dir": [*preset.task.text_columns, preset.task.label_column]}, path)
    return table


def load_split(task: Task, split: str, data_dir: str | None = None) -> Dataset:
    """One split (``train`` or ``dev``) of a GLUE task, as examples."""
    if split not in ("train", "dev"):
        raise DataError(f"split must be 'train' or 'dev', got {split!r}")
    preset = get_preset(task.name)
    data_dir = resolve_data_dir(data_dir)
    if data_dir is None:
        return load_from_hub(preset, split)
    path = preset.file(data_dir, split)
    return to_examples(read_glue_file(preset, path), task, path)


def load_from_hub(preset: GluePreset, split: str) -> Dataset:
    """The ``nyu-mll/glue`` parquet files; their class indices already follow ``task.labels``."""
    name = preset.task.name
    hub_split = "train" if split == "train" else HUB_VALIDATION_SPLIT.get(name, "validation")
    ds = datasets.load_dataset("nyu-mll/glue", name, split=hub_split)
    text = [c for c in ds.column_names if c not in ("label", "idx")]
    ds = ds.rename_columns({c: f"text_{'ab'[i]}" for i, c in enumerate(text)})
    return ds.remove_columns([c for c in ds.column_names if c == "idx"])


def _with_metric(task: Task, metric: str) -> Task:
    error = metric_error(metric, task.is_regression, task.num_labels)
    if error:
        raise DataError(error)
    return dataclasses.replace(task, metric=metric)


def default_text_columns(table: Dataset, label_column: str, path: str) -> tuple[str, ...]:
    for columns in DEFAULT_TEXT_COLUMNS:
        if all(c in table.column_names for c in columns):
            return columns
    others = [c for c in table.column_names if c != label_column]
    raise DataError(f"--text-columns is needed: {path} has no column 'text', 'sentence' or "
                    f"'sentence1'/'sentence2'; its columns are {', '.join(others)}")


def describe_task(table: Dataset, path: str, text_columns: list[str] | None, label_column: str | None,
                  task_type: str | None, metric: str | None) -> tuple[Task, str]:
    """The task a training file describes (columns, classes or regression, metric) and a line
    saying what was guessed."""
    label_column = label_column or DEFAULT_LABEL_COLUMN
    require_columns(table, {"--label-column": [label_column]}, path)
    text = tuple(text_columns) if text_columns else default_text_columns(table, label_column, path)
    require_columns(table, {"--text-columns": list(text)}, path)
    keys = [label_key(v) for v in table[label_column]]
    missing = next((row for row, key in enumerate(keys, start=1) if key is None), None)
    if missing is not None:
        raise DataError(f"{path}, row {missing}: no label in column {label_column!r}")
    guessed = task_type is None
    task_type = task_type or guess_task_type(keys)
    labels = None
    if task_type == "classification":
        labels = class_order(set(keys))
        if len(labels) < 2:
            raise DataError(f"--label-column {label_column}: {path} has one class ({labels[0]!r}); "
                            "classification needs at least two")
    metric = metric or ("accuracy" if labels else "spearman")
    error = metric_error(metric, labels is None, len(labels) if labels else None)
    if error:
        raise DataError(error)
    kind = f"{len(labels)} classes: {', '.join(labels)}" if labels else "real-valued labels"
    if labels and len(labels) == 2:
        kind += f"; f1 scores class {labels[1]!r}"
    guess = ", guessed from the labels (--task-type overrides)" if guessed else ""
    name = os.path.splitext(os.path.basename(path))[0]
    return Task(name, text, label_column, labels, metric), f"task type: {task_type} ({kind}){guess}; metric: {metric}"


def load_files(train_file: str, validation_file: str | None = None, test_file: str | None = None,
               text_columns: list[str] | None = None, label_column: str | None = None,
               task_type: str | None = None, metric: str | None = None, validation_split: float | None = None,
               seed: int = 1, with_validation: bool = True) -> Examples:
    """A user's own files. The classes (in :func:`class_order`) come from the training file; the
    task type is guessed from its labels (:func:`guess_task_type`) unless given. Without a
    validation file, a stratified ``validation_split`` (default 0.2) of the training file is held
    out by ``seed``; ``with_validation=False`` holds nothing out when there is no validation file (a run
    that scores on a part of its training sample, ``finetune.holdout``)."""
    train_table = read_table(train_file, "--train-file")
    task, note = describe_task(train_table, train_file, text_columns, label_column, task_type, metric)
    notes = [note]
    train = to_examples(train_table, task, train_file)
    if validation_file is not None:
        validation_table = read_table(validation_file, "--validation-file")
        require_columns(validation_table, {"--text-columns": list(task.text_columns),
                                           "--label-column": [task.label_column]}, validation_file)
        validation = to_examples(validation_table, task, validation_file)
        validation_rows = validation_table.to_pandas()
    elif not with_validation:
        validation = validation_rows = None
    else:
        fraction = 0.2 if validation_split is None else validation_split
        kept, held = stratified_holdout(train["label"], fraction, seed, task.is_regression)
        if not held or len(kept) < 2:
            raise DataError(f"--validation-split {fraction}: {train_file} has {len(train)} rows, too few to hold "
                            "out a validation part; give --validation-file")
        validation, train = train.select(held), train.select(kept)
        validation_rows = train_table.select(held).to_pandas()
        notes.append(f"validation: {len(held)} rows ({fraction:g}, stratified, seed {seed}) held out of "
                     f"{train_file}; {len(kept)} left for training")
    test, test_rows = load_test(test_file, task)
    return Examples(task, train, validation, validation_rows, test, test_rows, notes)
