"""What a task is (the text and label columns, the classes or regression, the headline metric),
the eight GLUE tasks as presets of it, and the way from a task's examples to batches: low-resource
sampling, K random splits, tokenisation, loaders.

A user's own files give a :class:`Task` whose classes are read from the training file
(:mod:`agwm.files`); a GLUE preset fixes them, with its files' layout, so both go through the same
reader. Every random choice takes its own named stream (:func:`stream_seed`), so the same seed gives
the same examples and splits to every method, and one method's extra draws never shift another's."""

from __future__ import annotations

import csv
import hashlib
import os
from dataclasses import dataclass

import torch
from datasets import Dataset, Value
from torch.utils.data import DataLoader
from transformers import DataCollatorWithPadding, PreTrainedTokenizerBase

DATA_DIR_ENV = "GLUE_DIR"
TASK_TYPES = ("classification", "regression")
CLASSIFICATION_METRICS = ("accuracy", "f1", "macro-f1", "mcc")
REGRESSION_METRICS = ("spearman", "pearson")
METRICS = CLASSIFICATION_METRICS + REGRESSION_METRICS


class DataError(ValueError):
    """A data folder, file or row that cannot be used; the message names it."""


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


def stream_seed(seed: int, stream: str) -> int:
    """A 63-bit seed for the named random stream, a pure function of (seed, stream)."""
    digest = hashlib.sha256(f"{seed}:{stream}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def generator(seed: int, stream: str, device: torch.device | str = "cpu") -> torch.Generator:
    """A generator on ``device`` seeded with the ``stream`` of ``seed`` (the CPU and CUDA
    generators draw different numbers from the same seed)."""
    return torch.Generator(device=device).manual_seed(stream_seed(seed, stream))


def sample_examples(dataset: Dataset, size: int, seed: int) -> Dataset:
    """``size`` examples drawn without replacement from ``dataset`` by ``seed``."""
    if not 2 <= size <= len(dataset):
        raise DataError(f"--train-size {size} is out of range: allowed 2 to {len(dataset)} (the training examples)")
    order = torch.randperm(len(dataset), generator=generator(seed, "sample"))[:size]
    return dataset.select(sorted(order.tolist()))


def random_splits(size: int, folds: int, ratio: float, seed: int) -> list[tuple[list[int], list[int]]]:
    """``folds`` independent random (train, validation) index splits with ``round(ratio * size)``
    training indices each (at least one index on each side)."""
    if folds < 1:
        raise DataError(f"--folds {folds} is not allowed: at least 1")
    if not 0.0 < ratio < 1.0:
        raise DataError(f"--split-ratio {ratio} is not allowed: strictly between 0 and 1")
    n_train = min(max(round(ratio * size), 1), size - 1)
    splits = []
    for k in range(folds):
        order = torch.randperm(size, generator=generator(seed, f"split{k}")).tolist()
        splits.append((sorted(order[:n_train]), sorted(order[n_train:])))
    return splits


def tokenize(dataset: Dataset, task: Task, tokenizer: PreTrainedTokenizerBase, max_length: int) -> Dataset:
    """Token ids of ``text_a`` [and ``text_b``], truncated to ``max_length``; padding is left to
    the collator (dynamic padding). Regression labels become float32; a dataset without labels
    (a test file) stays without."""
    def encode(batch):
        texts = [batch["text_a"]] + ([batch["text_b"]] if "text_b" in batch else [])
        return tokenizer(*texts, truncation=True, max_length=max_length)

    text_columns = [c for c in dataset.column_names if c.startswith("text_")]
    # the fingerprint named, not hashed: datasets would pickle the whole tokenizer (about 0.5 s a call)
    fingerprint = hashlib.sha256(f"{dataset._fingerprint} {tokenizer.name_or_path} {len(tokenizer)} "
                                 f"{max_length}".encode()).hexdigest()[:16]
    encoded = dataset.map(encode, batched=True, remove_columns=text_columns, new_fingerprint=fingerprint)
    if "label" not in encoded.column_names:
        return encoded
    encoded = encoded.rename_column("label", "labels")
    if task.is_regression:
        encoded = encoded.cast_column("labels", Value("float32"))
    return encoded


def make_loader(dataset: Dataset, tokenizer: PreTrainedTokenizerBase, batch_size: int,
                shuffle: bool, seed: int = 0, stream: str = "order", device: torch.device | str = "cpu") -> DataLoader:
    """Batches padded to their longest example, on ``device``; the shuffle order is the ``stream``
    of ``seed`` (drawn on the CPU, so it is the same on every device)."""
    pad = DataCollatorWithPadding(tokenizer)
    return DataLoader(
        dataset.with_format("torch"), batch_size=batch_size, shuffle=shuffle,
        collate_fn=lambda features: {k: v.to(device) for k, v in pad(features).items()},  # a plain dict for Betty
        generator=generator(seed, stream) if shuffle else None,
    )
