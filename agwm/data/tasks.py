"""What a task is (the text and label columns, the classes or regression, the headline metric), and
the eight GLUE tasks as presets of it, with their files' layout."""

from __future__ import annotations

import csv
import dataclasses
import os
from dataclasses import dataclass

from agwm.errors import DataError

DATA_DIR_ENV = "GLUE_DIR"

TASK_TYPES = ("classification", "regression")

CLASSIFICATION_METRICS = ("accuracy", "f1", "macro-f1", "mcc")

REGRESSION_METRICS = ("spearman", "pearson")

METRICS = CLASSIFICATION_METRICS + REGRESSION_METRICS


@dataclass(frozen=True)
class Task:
    name: str
    text_columns: tuple[str, ...]  # one column, or a pair
    label_column: str
    labels: tuple[str, ...] | None  # class values as the files write them, in class-index order; None: regression
    metric: str  # the headline metric (``score``)
    names: tuple[str, ...] | None = None  # readable class names where ``labels`` are codes ("0", "1")
    label_range: tuple[float, float] | None = None  # regression: the labels' scale, if known (STS-B: 0 to 5)

    @property
    def class_names(self) -> tuple[str, ...] | None:
        """The classes in class-index order, by name (for GLUE, the ``nyu-mll/glue`` feature names)."""
        return self.names or self.labels

    @property
    def is_regression(self) -> bool:
        return self.labels is None

    @property
    def num_labels(self) -> int:
        return 1 if self.labels is None else len(self.labels)


def metric_error(metric: str, regression: bool, classes: int | None) -> str | None:
    """Why ``metric`` cannot score this kind of task, or None if it can."""
    allowed = REGRESSION_METRICS if regression else CLASSIFICATION_METRICS
    kind = "regression" if regression else "classification"
    if metric not in allowed:
        return f"--metric {metric} is not allowed for a {kind} task: one of {', '.join(allowed)}"
    if metric == "f1" and classes is not None and classes != 2:
        return f"--metric f1 is not allowed with {classes} classes: f1 scores two classes; use macro-f1"
    return None


@dataclass(frozen=True)
class GluePreset:
    """A GLUE task and the layout of its files in the standard ``glue_data`` folder."""

    task: Task
    folder: str
    dev_file: str
    column_names: tuple[str, ...] | None = None  # a header-less file's columns (CoLA)

    def file(self, data_dir: str, split: str) -> str:
        folder = os.path.join(data_dir, self.folder)
        if not os.path.isdir(data_dir):
            raise DataError(f"data folder {data_dir!r} does not exist")
        if not os.path.isdir(folder):
            raise DataError(f"task folder {folder!r} does not exist (expected the GLUE layout "
                            f"<data_dir>/{self.folder}/)")
        path = os.path.join(folder, "train.tsv" if split == "train" else self.dev_file)
        if not os.path.isfile(path):
            raise DataError(f"data file {path!r} does not exist")
        return path

    # GLUE's files are tab-separated with quotes as ordinary characters.
    quoting = csv.QUOTE_NONE


def _glue(name, folder, text, label, labels, metric, names=None, dev_file="dev.tsv", column_names=None,
          label_range=None):
    return GluePreset(Task(name, text, label, labels, metric, names, label_range), folder, dev_file, column_names)

NLI = ("entailment", "not_entailment")

TASKS: dict[str, GluePreset] = {p.task.name: p for p in [
    _glue("cola", "CoLA", ("sentence",), "label", ("0", "1"), "mcc", ("unacceptable", "acceptable"),
          column_names=("source", "label", "original_label", "sentence")),
    _glue("sst2", "SST-2", ("sentence",), "label", ("0", "1"), "accuracy", ("negative", "positive")),
    _glue("mrpc", "MRPC", ("#1 String", "#2 String"), "Quality", ("0", "1"), "f1", ("not_equivalent", "equivalent")),
    _glue("stsb", "STS-B", ("sentence1", "sentence2"), "score", None, "spearman", label_range=(0.0, 5.0)),
    _glue("qqp", "QQP", ("question1", "question2"), "is_duplicate", ("0", "1"), "f1", ("not_duplicate", "duplicate")),
    _glue("mnli", "MNLI", ("sentence1", "sentence2"), "gold_label", ("entailment", "neutral", "contradiction"),
          "accuracy", dev_file="dev_matched.tsv"),
    _glue("qnli", "QNLI", ("question", "sentence"), "label", NLI, "accuracy"),
    _glue("rte", "RTE", ("sentence1", "sentence2"), "label", NLI, "accuracy"),
]}

TASK_ALIASES = {"sst-2": "sst2", "sts-b": "stsb", "mnli-m": "mnli"}

HUB_VALIDATION_SPLIT = {"mnli": "validation_matched"}


def get_preset(name: str) -> GluePreset:
    key = TASK_ALIASES.get(name.lower(), name.lower())
    if key not in TASKS:
        raise DataError(f"--task {name} is not allowed: one of {', '.join(TASKS)}")
    return TASKS[key]


def get_task(name: str) -> Task:
    """The GLUE task ``name`` (an alias such as ``sts-b`` too)."""
    return get_preset(name).task


def resolve_data_dir(data_dir: str | None) -> str | None:
    """``data_dir``, else ``$GLUE_DIR``, else None (meaning: load from the hub)."""
    return data_dir or os.environ.get(DATA_DIR_ENV) or None


def _with_metric(task: Task, metric: str) -> Task:
    error = metric_error(metric, task.is_regression, task.num_labels)
    if error:
        raise DataError(error)
    return dataclasses.replace(task, metric=metric)
