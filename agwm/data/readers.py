"""Files to examples. A file is read by its extension (``.csv``, ``.tsv``, ``.json``, ``.jsonl``,
``.parquet``), checked, and turned into the columns of :mod:`agwm.data.labels`; the file's own
columns are kept beside, so predictions can be written next to them. A user's own files give a
:class:`~agwm.data.tasks.Task` whose classes are read from the training file; a GLUE preset fixes
them, so both go through the same reader. Every bad file or row stops with a :class:`DataError`
naming the option, the file and the row. Also: the files a run reads, and their fingerprints."""

from __future__ import annotations

import csv
import functools
import hashlib
import io
import json
import os
from collections import Counter
from dataclasses import dataclass, field

import datasets
import pandas as pd
from datasets import Dataset, Features, Value

from agwm.data.labels import (
    class_order,
    guess_task_type,
    label_key,
    refuse_output_columns,
    refuse_stray_non_numbers,
    stratified_holdout,
    to_examples,
)
from agwm.data.tasks import (
    HUB_VALIDATION_SPLIT,
    GluePreset,
    Task,
    _with_metric,
    get_preset,
    metric_error,
    resolve_data_dir,
)
from agwm.errors import DataError, first_line

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
        reason = first_line(error)[:160]
        raise DataError(f"--task {name}: no --data-dir or $GLUE_DIR, and the hub did not give nyu-mll/glue "
                        f"({reason}); give --data-dir, a folder in the glue_data layout") from None
    text = [c for c in ds.column_names if c not in ("label", "idx")]
    ds = ds.rename_columns({c: f"text_{'ab'[i]}" for i, c in enumerate(text)})
    return ds.remove_columns([c for c in ds.column_names if c == "idx"])


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


def data_files(task: str, data_dir: str | None, train_file: str | None, validation_file: str | None,
               test_file: str | None) -> dict[str, str]:
    """The files a run reads its examples from, by role: a user's files (``train_file`` given), or
    the GLUE ``task``'s train and dev files in its folder (none when they come from the hub)."""
    if train_file is not None:
        roles = {"train": train_file, "validation": validation_file, "test": test_file}
    else:
        data_dir = resolve_data_dir(data_dir)
        preset = get_preset(task)
        roles = {} if data_dir is None else {split: preset.file(data_dir, split) for split in ("train", "dev")}
        roles["test"] = test_file
    return {role: path for role, path in roles.items() if path is not None}


@functools.cache
def _digest(path: str, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:16]


def data_fingerprint(files: dict[str, str]) -> dict[str, dict]:
    """Role -> the file and the SHA-256 (first 16 hex digits) of its content (``files``: role -> path,
    :func:`data_files`): what a record was made from."""
    prints = {}
    for role, path in files.items():
        status = os.stat(path)
        prints[role] = {"file": path, "sha256": _digest(os.path.abspath(path), status.st_size, status.st_mtime_ns)}
    return prints
