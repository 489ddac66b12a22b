"""A run's output folder: the names of its files (the mixup's alpha files are named in
:mod:`agwm.mixup`), and the folder's ownership.

A folder is agwm's alone: a marker (:data:`RUN_MARKER`) is written first, a folder holding anything
else is refused before any work, and ``metrics.json`` is written last, so a folder without it holds
no finished run. The marker lists what a run wrote: the files found in the folder when it started
(``foreign``, kept) and, once ``metrics.json`` is written, the run's own files (``files``). A later
run removes exactly those files (or, after a run that stopped early, every file but the foreign
ones), never a folder with anything else in it. Every file is written whole or not at all
(:mod:`agwm.files`)."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import platform
import tempfile
from typing import TYPE_CHECKING

import pandas as pd
import torch

from agwm.errors import ConfigError
from agwm.files import atomic_path, write_json

if TYPE_CHECKING:
    from agwm.data import Task
    from agwm.metrics import Predictions

METRICS_NAME = "metrics.json"
CONFIG_NAME = "config.yaml"  # the run's resolved settings
LOG_NAME = "log.csv"
TASK_WEIGHTS_NAME = "task_weights.safetensors"  # a search's fold-averaged task weights, the finetune's start
VALIDATION_PREDICTIONS_NAME = "validation_predictions.csv"
TEST_PREDICTIONS_NAME = "predictions.csv"
MODEL_DIR = "model"  # with --save-model: a stock Hugging Face folder (merged), or the method's own
MIXUP_MODEL_DIR = "mixup_model"  # with --save-model and mixup layers: the unmerged model, restored exactly
BODY_DIR = "body"  # body=setfit: the contrastive stage's encoder
RUN_MARKER = ".agwm-run"  # written first into a run's folder: the folder is agwm's, and which phase's
RUN_LOCK = ".agwm-run.lock"  # held while a run writes there: one run at a time per folder
_HELD: dict[str, int] = {}  # folder -> the descriptor holding its lock, in this process




def read_marker(path: str) -> dict | None:
    """The folder's marker (``phase``, ``foreign``, ``files``), None without one, ``{"phase": "?"}``
    if it cannot be read."""
    try:
        with open(os.path.join(path, RUN_MARKER)) as f:
            marker = json.load(f)
        return marker if isinstance(marker, dict) else {"phase": "?"}
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return {"phase": "?"}


def _owner(path: str) -> str | None:
    """The phase whose marker the folder holds (``search``, ``finetune``), or None."""
    marker = read_marker(path)
    return None if marker is None else marker.get("phase", "?")


def files_under(path: str) -> set[str]:
    """Every file below ``path`` (links too), relative to it, the marker left out."""
    found = set()
    for root, dirs, files in os.walk(path):
        for name in files + [d for d in dirs if os.path.islink(os.path.join(root, d))]:
            found.add(os.path.relpath(os.path.join(root, name), path))
    return found - {RUN_MARKER, RUN_LOCK}


def run_files(path: str, marker: dict | None) -> set[str] | None:
    """The files an earlier run wrote into ``path``, by its marker: those it listed, or, for a run
    that stopped before listing them, every file but those it found there; None if the marker says
    neither (a folder an older agwm wrote)."""
    if not marker:
        return set()
    if isinstance(marker.get("files"), list):
        return set(marker["files"]) & files_under(path)
    if isinstance(marker.get("foreign"), list):
        return files_under(path) - set(marker["foreign"])
    return None


def check_output_dir(path: str, overwrite: bool, phase: str) -> None:
    """``--output-dir`` can take a run of ``phase``: a new or empty folder, or one an earlier run of the
    same phase wrote (its :data:`RUN_MARKER`), unfinished or, with ``overwrite``, finished. A folder
    holding anything else (the user's files) is refused, so no file of theirs is ever replaced."""
    option = f"--output-dir {path} is not allowed"
    if os.path.exists(path) and not os.path.isdir(path):
        raise ConfigError(f"{option}: it is a file")
    if not os.path.exists(path):
        parent = os.path.dirname(os.path.abspath(path))
        while not os.path.exists(parent):
            parent = os.path.dirname(parent)
        try:  # a folder made and removed at once: can this one be made (not a file, not /proc, not read-only)?
            os.rmdir(tempfile.mkdtemp(dir=parent, prefix=".agwm-check-"))
        except OSError as error:
            raise ConfigError(f"{option}: it cannot be created in {parent} ({error.strerror})") from None
        return
    try:
        entries = sorted(set(os.listdir(path)) - {RUN_LOCK})
    except OSError as error:
        raise ConfigError(f"{option}: it cannot be read ({error.strerror})") from None
    owner = _owner(path)
    if owner is None and entries:
        shown = ", ".join(entries[:4]) + (", ..." if len(entries) > 4 else "")
        raise ConfigError(f"{option}: it holds files that no agwm run wrote ({shown}); give a new or empty folder")
    if owner is not None and owner != phase:
        raise ConfigError(f"{option}: it holds a {owner} run; give the {phase} another folder")
    if not os.access(path, os.W_OK | os.X_OK):
        raise ConfigError(f"{option}: it is not writable")
    finished = os.path.isfile(os.path.join(path, METRICS_NAME))
    if finished and not overwrite:
        raise ConfigError(f"{option}: it holds a finished run ({METRICS_NAME}); "
                          "give --overwrite to replace it, or another folder")
    if owner is not None and phase != "selection" and run_files(path, read_marker(path)) is None:
        raise ConfigError(f"{option}: an older agwm wrote it without listing its files, so they cannot be told "
                          "from yours; give another folder, or empty this one")


def prepare_output_dir(path: str, phase: str, clear: bool = True) -> None:
    """Create the folder, remove what an earlier run wrote there (:func:`run_files`; ``clear=False``
    keeps it, for a resumable selection) and the folders that leaves empty, and mark the folder as
    this phase's, listing the files found there (:data:`RUN_MARKER`, before any output).
    :func:`check_output_dir` has made sure the folder is agwm's."""
    try:
        os.makedirs(path, exist_ok=True)
        hold_lock(path)
        stale = run_files(path, read_marker(path)) if clear else set()
        for name in sorted(stale or ()):
            os.remove(os.path.join(path, name))
        for folder in sorted({os.path.dirname(name) for name in stale or ()}, key=len, reverse=True):
            while folder and not os.listdir(os.path.join(path, folder)):
                os.rmdir(os.path.join(path, folder))
                folder = os.path.dirname(folder)
        _write_marker(path, {"phase": phase, "written_by": "agwm", "foreign": sorted(files_under(path))})
    except OSError as error:
        raise ConfigError(f"--output-dir {path} is not allowed: it cannot be written ({error.strerror})") from None


def hold_lock(path: str) -> None:
    """Take the folder's lock for the rest of this run (released when the process ends, or when it
    takes the lock again for its next run there); refused with one line while another holds it."""
    key = os.path.realpath(path)
    if key in _HELD:
        os.close(_HELD.pop(key))
    fd = os.open(os.path.join(path, RUN_LOCK), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise ConfigError(f"--output-dir {path} is not allowed: another agwm run is writing there now; wait for it "
                          "or give another folder") from None
    _HELD[key] = fd


def unmake_output_dir(path: str) -> None:
    """Undo :func:`prepare_output_dir` for a command refused before it wrote anything: its marker and
    lock, then the folder and the empty folders in it, if nothing else is there."""
    for name in (RUN_MARKER, RUN_LOCK):
        with contextlib.suppress(OSError):
            os.remove(os.path.join(path, name))
    for root, _, _ in sorted(os.walk(path), key=lambda entry: -len(entry[0])):
        with contextlib.suppress(OSError):
            os.rmdir(root)  # only an empty one goes


def _write_marker(path: str, marker: dict) -> None:
    write_json(marker, os.path.join(path, RUN_MARKER))


def list_run_files(path: str) -> None:
    """Record in the marker the files this run wrote: every file but those it found (``foreign``)."""
    marker = read_marker(path) or {}
    written = files_under(path) - set(marker.get("foreign") or [])
    _write_marker(path, {**marker, "files": sorted(written)})


def write_metrics(path: str, metrics: dict, device: torch.device) -> dict:
    """Write ``metrics.json`` (with the machine the run used) atomically; return what was written."""
    metrics = {**metrics, "machine": machine_description(device)}
    write_json(metrics, os.path.join(path, METRICS_NAME))
    list_run_files(path)
    return metrics


def prediction_table(rows: pd.DataFrame, task: Task, predictions: Predictions) -> pd.DataFrame:
    """``rows`` (the examples as their file has them) with ``prediction`` (the class name, or the
    score for regression) and, for classification, ``prob_<class>``: the probability of each class."""
    table = rows.reset_index(drop=True).copy()
    if task.is_regression:
        table["prediction"] = predictions.values
        return table
    names = task.class_names
    table["prediction"] = [names[i] for i in predictions.values]
    probabilities = pd.DataFrame(predictions.probabilities, columns=[f"prob_{name}" for name in names])
    return pd.concat([table, probabilities], axis=1)  # one block: a column at a time warns per class


def write_predictions(path: str, rows: pd.DataFrame, task: Task, predictions: Predictions) -> None:
    """Write :func:`prediction_table` to ``path`` under a temporary name first, renamed when complete."""
    with atomic_path(path) as tmp:
        prediction_table(rows, task, predictions).to_csv(tmp, index=False)


def machine_description(device: torch.device) -> str:
    """The processor a run ran on, e.g. ``x86_64 CPU, 2 cores, torch 2.13.0+cpu``."""
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    return f"{platform.machine()} {name}, {os.cpu_count()} cores, torch {torch.__version__}"
