"""The GLUE tasks: where their files are, which columns hold text and label, how to read them.

Examples come from a local folder in the standard GLUE layout (``glue_data/<Task>/train.tsv``),
or from the Hugging Face hub through ``datasets`` when no folder is given.
"""

from __future__ import annotations

import csv
import os
import sys
from dataclasses import dataclass

from datasets import Dataset

DATA_DIR_ENV = "GLUE_DIR"
csv.field_size_limit(sys.maxsize)


class DataError(ValueError):
    """A data folder, file or row that cannot be used; the message names it."""


@dataclass(frozen=True)
class GlueTask:
    name: str
    folder: str
    dev_file: str
    text_columns: tuple[str, ...]
    label_column: str
    labels: tuple[str, ...] | None  # label strings in class-index order; None for regression
    metric: str  # headline metric, as the paper reports it
    has_header: bool = True
    positional_columns: tuple[str, ...] | None = None  # column names of a header-less file
    names: tuple[str, ...] | None = None  # readable class names where ``labels`` are codes ("0", "1")

    @property
    def class_names(self) -> tuple[str, ...] | None:
        """The classes in class-index order, by name (the ``nyu-mll/glue`` feature names)."""
        return self.names or self.labels

    @property
    def is_regression(self) -> bool:
        return self.labels is None

    @property
    def num_labels(self) -> int:
        return 1 if self.labels is None else len(self.labels)


NLI = ("entailment", "not_entailment")
TASKS: dict[str, GlueTask] = {t.name: t for t in [
    GlueTask("cola", "CoLA", "dev.tsv", ("sentence",), "label", ("0", "1"), "mcc", has_header=False,
             positional_columns=("source", "label", "original_label", "sentence"),
             names=("unacceptable", "acceptable")),
    GlueTask("sst2", "SST-2", "dev.tsv", ("sentence",), "label", ("0", "1"), "accuracy",
             names=("negative", "positive")),
    GlueTask("mrpc", "MRPC", "dev.tsv", ("#1 String", "#2 String"), "Quality", ("0", "1"), "f1",
             names=("not_equivalent", "equivalent")),
    GlueTask("stsb", "STS-B", "dev.tsv", ("sentence1", "sentence2"), "score", None, "spearman"),
    GlueTask("qqp", "QQP", "dev.tsv", ("question1", "question2"), "is_duplicate", ("0", "1"), "f1",
             names=("not_duplicate", "duplicate")),
    GlueTask("mnli", "MNLI", "dev_matched.tsv", ("sentence1", "sentence2"), "gold_label",
             ("entailment", "neutral", "contradiction"), "accuracy"),
    GlueTask("qnli", "QNLI", "dev.tsv", ("question", "sentence"), "label", NLI, "accuracy"),
    GlueTask("rte", "RTE", "dev.tsv", ("sentence1", "sentence2"), "label", NLI, "accuracy"),
]}
TASK_ALIASES = {"sst-2": "sst2", "sts-b": "stsb", "mnli-m": "mnli"}
HUB_VALIDATION_SPLIT = {"mnli": "validation_matched"}


def get_task(name: str) -> GlueTask:
    key = TASK_ALIASES.get(name.lower(), name.lower())
    if key not in TASKS:
        raise DataError(f"unknown task {name!r}; allowed: {', '.join(TASKS)}")
    return TASKS[key]


def resolve_data_dir(data_dir: str | None) -> str | None:
    """``data_dir``, else ``$GLUE_DIR``, else None (meaning: load from the hub)."""
    return data_dir or os.environ.get(DATA_DIR_ENV) or None


def task_file(task: GlueTask, data_dir: str, split: str) -> str:
    folder = os.path.join(data_dir, task.folder)
    if not os.path.isdir(data_dir):
        raise DataError(f"data folder {data_dir!r} does not exist")
    if not os.path.isdir(folder):
        raise DataError(f"task folder {folder!r} does not exist (expected the GLUE layout <data_dir>/{task.folder}/)")
    path = os.path.join(folder, "train.tsv" if split == "train" else task.dev_file)
    if not os.path.isfile(path):
        raise DataError(f"data file {path!r} does not exist")
    return path


def read_tsv(task: GlueTask, path: str) -> Dataset:
    """Read one GLUE file into columns ``text_a`` [, ``text_b``] and ``label`` (a class index,
    or a float score for regression); a row with the wrong field count or an unknown label stops
    with its file and line number."""
    with open(path, encoding="utf-8-sig", newline="") as f:
        rows = list(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    if task.has_header:
        header, body, first_line = rows[0], rows[1:], 2
    else:
        header, body, first_line = list(task.positional_columns), rows, 1
    missing = [c for c in (*task.text_columns, task.label_column) if c not in header]
    if missing:
        raise DataError(f"{path}: header {header} lacks column(s) {missing}")
    text_idx = [header.index(c) for c in task.text_columns]
    label_idx = header.index(task.label_column)
    label_index = {label: i for i, label in enumerate(task.labels or ())}
    columns: dict[str, list] = {f"text_{'ab'[i]}": [] for i in range(len(text_idx))}
    columns["label"] = []
    for line, row in enumerate(body, start=first_line):
        if not row:
            continue
        if len(row) != len(header):
            raise DataError(f"{path}, line {line}: malformed row with {len(row)} fields, expected {len(header)}")
        raw = row[label_idx].strip()
        if task.is_regression:
            try:
                label = float(raw)
            except ValueError:
                raise DataError(f"{path}, line {line}: label {raw!r} is not a number") from None
        elif raw in label_index:
            label = label_index[raw]
        else:
            raise DataError(f"{path}, line {line}: label {raw!r} is not one of {list(task.labels)}")
        for i, j in enumerate(text_idx):
            columns[f"text_{'ab'[i]}"].append(row[j])
        columns["label"].append(label)
    return Dataset.from_dict(columns)


def load_split(task: GlueTask, split: str, data_dir: str | None = None) -> Dataset:
    """``split`` is ``train`` or ``dev``; from ``data_dir`` (or ``$GLUE_DIR``) or the hub."""
    if split not in ("train", "dev"):
        raise DataError(f"split must be 'train' or 'dev', got {split!r}")
    data_dir = resolve_data_dir(data_dir)
    if data_dir is not None:
        return read_tsv(task, task_file(task, data_dir, split))
    return load_from_hub(task, split)


def load_from_hub(task: GlueTask, split: str) -> Dataset:
    """The ``nyu-mll/glue`` parquet files; their class indices already follow ``task.labels``."""
    from datasets import load_dataset

    hub_split = "train" if split == "train" else HUB_VALIDATION_SPLIT.get(task.name, "validation")
    ds = load_dataset("nyu-mll/glue", task.name, split=hub_split)
    text = [c for c in ds.column_names if c not in ("label", "idx")]
    ds = ds.rename_columns({c: f"text_{'ab'[i]}" for i, c in enumerate(text)})
    return ds.remove_columns([c for c in ds.column_names if c == "idx"])
