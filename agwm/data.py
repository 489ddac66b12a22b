"""What a task is (the text and label columns, the classes or regression, the headline metric),
the eight GLUE tasks as presets of it, the way from files to examples, and from a task's examples
to batches: low-resource sampling, K random splits, tokenisation, loaders.

A user's own files give a :class:`Task` whose classes are read from the training file; a GLUE
preset fixes them, with its files' layout, so both go through the same reader. A file is read by
its extension (``.csv``, ``.tsv``, ``.json``, ``.jsonl``, ``.parquet``), checked, and turned into
columns ``text_a`` [, ``text_b``] and ``label`` (a class index, or a float for regression); the
file's own columns are kept beside, so predictions can be written next to them. Every bad file or
row stops with a :class:`DataError` naming the option, the file and the row.

Every random choice takes its own named stream (:func:`stream_seed`), so the same seed gives the
same examples and splits to every method, and one method's extra draws never shift another's."""

from __future__ import annotations

import csv
import dataclasses
import functools
import hashlib
import io
import json
import math
import os
import re
from collections import Counter
from dataclasses import dataclass, field

import datasets
import pandas as pd
import torch
from datasets import Dataset, Features, Value
from torch.utils.data import DataLoader
from transformers import DataCollatorWithPadding, PreTrainedTokenizerBase

from agwm.errors import DataError  # noqa: F401  (part of this module's interface)

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
               column_names: tuple[str, ...] | None = None, notes: list[str] | None = None) -> Dataset:
    """The rows of ``path`` with the file's columns. Delimited files are read here as text, every
    value a string, so that no value is reinterpreted: a CSV as the csv module reads it; a TSV too
    where a CSV writer quoted it (:func:`written_quoted`), else as written (tabs separate, quotes are
    text, as in the GLUE files); JSON and Parquet keep their types. What was ignored (pandas'
    unnamed index column, an empty last column left by a comma at the end of each line) is added to
    ``notes``."""
    datasets.disable_progress_bars()  # a file's rows are read (and later tokenised) without a bar each
    if os.path.isdir(path):
        raise DataError(f"{option} {path} is not allowed: it is a folder, not a file")
    if not os.path.isfile(path):
        raise DataError(f"{option} {path} is not allowed: no such file")
    ext = os.path.splitext(path)[1].lower()
    if ext not in FORMATS:
        raise DataError(f"{option} {path} is not allowed: unknown extension {ext or '(none)'!r}; "
                        f"one of {', '.join(FORMATS)}")
    if os.path.getsize(path) == 0:
        raise DataError(f"{option} {path} is not allowed: the file is empty")
    if not os.access(path, os.R_OK):
        raise DataError(f"{option} {path} is not allowed: it cannot be read (no read permission)")
    if FORMATS[ext] == "csv":
        delimiter = "\t" if ext == ".tsv" else ","
        if ext == ".tsv" and quoting != csv.QUOTE_NONE and not written_quoted(path):
            quoting = csv.QUOTE_NONE  # quotes that are text, as in the GLUE files: read as written
        return read_delimited(path, option, delimiter, quoting, column_names, notes if notes is not None else [])
    if FORMATS[ext] == "json":
        check_json_syntax(path, option, lines=ext == ".jsonl")
    try:
        table = datasets.load_dataset(FORMATS[ext], data_files=path, split="train")
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


def check_json_syntax(path: str, option: str, lines: bool) -> None:
    """Stop at the first line that is not JSON (a JSON Lines file: one object a line), naming it."""
    try:
        with open(path, encoding="utf-8-sig") as f:
            if not lines:
                json.load(f)
                return
            for number, line in enumerate(f, start=1):
                if line.strip():
                    try:
                        if not isinstance(json.loads(line), dict):
                            raise DataError(f"{path}, line {number}: not a JSON object (one object a line: "
                                            '{"text": ..., "label": ...})')
                    except json.JSONDecodeError as error:
                        raise DataError(f"{path}, line {number}: not JSON ({error.msg}, column {error.colno})") \
                            from None
    except json.JSONDecodeError as error:
        raise DataError(f"{path}, line {error.lineno}: not JSON ({error.msg}, column {error.colno})") from None
    except UnicodeDecodeError:
        raise DataError(f"{option} {path} is not allowed: it is not UTF-8 text") from None
    except OSError as error:
        raise DataError(f"{option} {path} is not allowed: it cannot be read ({error.strerror})") from None


def written_quoted(path: str) -> bool:
    """Whether a TSV's quotes are a CSV writer's (pandas encloses a field holding a quote, a tab or
    a line break in quotes, doubling the quotes inside): the file has a quote, and reading it as the
    csv module does and writing it back gives the file again. Quotes that are text (a field
    ``"quoted" start``) do not come back."""
    try:
        with open(path, encoding="utf-8-sig", newline="") as f:
            text = f.read().replace("\r\n", "\n")
    except (OSError, UnicodeDecodeError):
        return False  # read_delimited names the problem
    if '"' not in text:
        return False
    try:
        rows = list(csv.reader(io.StringIO(text), delimiter="\t"))
    except csv.Error:
        return False
    again = io.StringIO()
    csv.writer(again, delimiter="\t", lineterminator="\n").writerows(rows)
    return again.getvalue() == (text if text.endswith("\n") else text + "\n")


def read_delimited(path: str, option: str, delimiter: str, quoting: int, column_names: tuple[str, ...] | None,
                   notes: list[str]) -> Dataset:
    """A delimited file's rows, every value a string; every row is checked to have as many fields
    as the header (a reader would silently shift or drop the others), and a bad row is named by
    the line it starts on."""
    rows, starts, ends = [], [], []
    try:
        with open(path, encoding="utf-8-sig", newline="") as f:
            reader = csv.reader(f, delimiter=delimiter, quoting=quoting)
            while True:
                start = reader.line_num + 1
                try:
                    row = next(reader)
                except StopIteration:
                    break
                except csv.Error as error:
                    raise DataError(f"{path}, line {start}: {error}") from None
                if row:
                    rows.append(row)
                    starts.append(start)
                    ends.append(reader.line_num)
    except UnicodeDecodeError:
        raise DataError(f"{option} {path} is not allowed: it is not UTF-8 text") from None
    except OSError as error:
        raise DataError(f"{option} {path} is not allowed: it cannot be read ({error.strerror})") from None
    header = list(column_names) if column_names else (rows.pop(0) if rows else [])
    if not column_names and starts:
        starts.pop(0)
        ends.pop(0)
    if not header:
        raise DataError(f"{option} {path} is not allowed: the file is empty")
    if not rows:
        raise DataError(NO_ROWS.format(option=option, path=path))
    keep = list(range(len(header)))
    if header[0] == "" and len(header) > 1:  # pandas' to_csv() without index=False
        keep.remove(0)
        notes.append(f"{path}: its first column has no name (the index pandas' to_csv writes without "
                     "index=False): ignored")
    if header[-1] == "" and len(header) > 1 and all(len(r) != len(header) or r[-1] == "" for r in rows):
        keep.remove(len(header) - 1)
        notes.append(f"{path}: its last column has no name and no values (a {delimiter_name(delimiter)} at the end "
                     "of each line): ignored")
    elif all(len(r) == len(header) + 1 and r[-1] == "" for r in rows):
        notes.append(f"{path}: each line ends with a {delimiter_name(delimiter)}: the empty last field is ignored")
        rows = [r[:-1] for r in rows]
    for row, start, end in zip(rows, starts, ends):
        if len(row) != len(header):
            spans = end - start + 1
            hint = (f"; a quote opens a field here that runs over {spans} lines (a quote not closed?)" if spans > 1
                    else delimiter_hint(header, delimiter))
            raise DataError(f"{path}, line {start}: {len(row)} fields, expected {len(header)} "
                            f"({', '.join(header)}){hint}")
    names = [header[i] for i in keep]
    unnamed = [i for i in keep if not header[i]]
    if unnamed:
        raise DataError(f"{option} {path} is not allowed: column {unnamed[0] + 1} of its header has no name")
    duplicated = sorted({n for n in names if names.count(n) > 1})
    if duplicated:
        raise DataError(f"{option} {path} is not allowed: column {duplicated[0]!r} appears twice in its header "
                        f"({', '.join(header)})")
    return Dataset.from_dict({header[i]: [row[i] for row in rows] for i in keep},
                             features=Features({header[i]: Value("string") for i in keep}))


DELIMITERS = ("\t", ";", ",", "|")  # what a misnamed delimited file is likely separated by


def delimiter_name(delimiter: str) -> str:
    return {"\t": "tab", ",": "comma", ";": "semicolon"}.get(delimiter, repr(delimiter))


def delimiter_hint(header: list[str], delimiter: str) -> str:
    """A hint when the header looks separated by another character than the extension says."""
    for other in DELIMITERS:
        if other != delimiter and len(header) == 1 and other in header[0]:
            fix = "save it as .tsv" if other == "\t" else f"save it with {delimiter_name(delimiter)}s"
            return (f"; the header looks {delimiter_name(other)}-separated, where this extension means "
                    f"{delimiter_name(delimiter)}-separated: {fix}")
    return ""


def require_columns(table: Dataset, columns: dict[str, list[str]], path: str) -> None:
    """``columns``: option -> the columns it names; each must be in ``table``."""
    for option, names in columns.items():
        missing = [c for c in names if c not in table.column_names]
        if missing:
            only = table.column_names[0] if len(table.column_names) == 1 else ""
            found = next((d for d in DELIMITERS if d in only), None)
            hint = f" (one column: the file looks {delimiter_name(found)}-separated)" if found else ""
            raise DataError(f"{option} {' '.join(missing)} is not allowed: no such column in {path}; "
                            f"its columns are {', '.join(repr(c) if found else c for c in table.column_names)}"
                            f"{hint}")


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
    refuse_output_columns(table, task, test_file, "--test-file")
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
    try:
        ds = datasets.load_dataset("nyu-mll/glue", name, split=hub_split)
    except Exception as error:  # offline, or the hub refused: whatever the datasets library raised
        reason = str(error).strip().splitlines()[0][:160] if str(error).strip() else type(error).__name__
        raise DataError(f"--task {name}: no --data-dir or $GLUE_DIR, and the hub did not give nyu-mll/glue "
                        f"({reason}); give --data-dir, a folder in the glue_data layout") from None
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
    if label_column in text:
        raise DataError(f"--text-columns {' '.join(text)} is not allowed: {label_column!r} is the label column "
                        "(a model shown its label learns nothing); name the text columns")
    values = table[label_column][:]
    nested = next((row for row, v in enumerate(values, start=1) if isinstance(v, (list, tuple, dict))), None)
    if nested is not None:
        raise DataError(f"{path}, row {nested}: label {values[nested - 1]!r} in column {label_column!r} is a "
                        f"{'list' if isinstance(values[nested - 1], (list, tuple)) else 'mapping'}; a label is "
                        "one string or number")
    keys = [label_key(v) for v in values]
    missing = next((row for row, key in enumerate(keys, start=1) if key is None), None)
    if missing is not None:
        raise DataError(f"{path}, row {missing}: no label in column {label_column!r}")
    guessed = task_type is None
    if guessed:
        refuse_stray_non_numbers(keys, path, label_column)
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
    note = f"task type: {task_type} ({kind}){guess}; metric: {metric}"
    spaced = [v for v in values if isinstance(v, str) and v != v.strip()]
    if spaced:
        note += (f"; {len(spaced)} labels had spaces around them, read without (e.g. {spaced[0]!r} as "
                 f"{spaced[0].strip()!r})")
    return Task(name, text, label_column, labels, metric), note


def load_files(train_file: str, validation_file: str | None = None, test_file: str | None = None,
               text_columns: list[str] | None = None, label_column: str | None = None,
               task_type: str | None = None, metric: str | None = None, validation_split: float | None = None,
               seed: int = 1, with_validation: bool = True) -> Examples:
    """A user's own files. The classes (in :func:`class_order`) come from the training file; the
    task type is guessed from its labels (:func:`guess_task_type`) unless given. Without a
    validation file, a stratified ``validation_split`` (default 0.2) of the training file is held
    out by ``seed``; ``with_validation=False`` holds nothing out when there is no validation file (a run
    that scores on a part of its training sample, ``finetune.holdout``)."""
    notes = []
    train_table = read_table(train_file, "--train-file", notes=notes)
    task, note = describe_task(train_table, train_file, text_columns, label_column, task_type, metric)
    notes.insert(0, note)
    train = to_examples(train_table, task, train_file)
    if validation_file is not None:
        validation_table = read_table(validation_file, "--validation-file", notes=notes)
        require_columns(validation_table, {"--text-columns": list(task.text_columns),
                                           "--label-column": [task.label_column]}, validation_file)
        refuse_output_columns(validation_table, task, validation_file, "--validation-file")
        validation = to_examples(validation_table, task, validation_file)
        validation_rows = validation_table.to_pandas()
    elif not with_validation:
        validation = validation_rows = None
    else:
        fraction = 0.2 if validation_split is None else validation_split
        refuse_output_columns(train_table, task, train_file, "--train-file")  # its held-out rows are written back
        kept, held = stratified_holdout(train["label"][:], fraction, seed, task.is_regression)
        if not held or len(kept) < 2:
            largest = max(Counter(train["label"][:]).values())
            why = (f"no class has enough rows to hold out {fraction:g} of it and keep one ({len(task.labels)} "
                   f"classes, at most {largest} rows each)" if not task.is_regression and largest * fraction < 0.5
                   else f"{len(train)} rows are too few to hold out a validation part")
            raise DataError(f"--validation-split {fraction}: in {train_file}, {why}; give --validation-file")
        validation, train = train.select(held), train.select(kept)
        validation_rows = train_table.select(held).to_pandas()
        notes.append(f"validation: {len(held)} rows ({fraction:g}, stratified, seed {seed}) held out of "
                     f"{train_file}; {len(kept)} left for training")
    test, test_rows = load_test(test_file, task)
    return Examples(task, train, validation, validation_rows, test, test_rows, notes)


def data_files(cfg) -> dict[str, str]:
    """The files a run (its :class:`~agwm.settings.RunConfig`) reads its examples from, by role: a
    user's files, or a GLUE task's train and dev files in its folder (none when they come from the hub)."""
    if cfg.train_file is not None:
        roles = {"train": cfg.train_file, "validation": cfg.validation_file, "test": cfg.test_file}
    else:
        data_dir = resolve_data_dir(cfg.data_dir)
        preset = get_preset(cfg.task)
        roles = {} if data_dir is None else {split: preset.file(data_dir, split) for split in ("train", "dev")}
        roles["test"] = cfg.test_file
    return {role: path for role, path in roles.items() if path is not None}


@functools.cache
def _digest(path: str, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:16]


def data_fingerprint(cfg) -> dict[str, dict]:
    """Role -> the file and the SHA-256 (first 16 hex digits) of its content: what a record was made from."""
    prints = {}
    for role, path in data_files(cfg).items():
        status = os.stat(path)
        prints[role] = {"file": path, "sha256": _digest(os.path.abspath(path), status.st_size, status.st_mtime_ns)}
    return prints
