"""A run's output folder: every file name in it, files written whole or not at all, and the
folder's ownership.

A folder is agwm's alone: a marker (:data:`RUN_MARKER`) is written first, a folder holding anything
else is refused before any work, an earlier run's outputs (:data:`RUN_OUTPUTS`) are the only files
ever removed, and ``metrics.json`` is written last, so a folder without it holds no finished run.
Every file goes to a temporary name first and is renamed when complete (:func:`atomic_path`)."""

from __future__ import annotations

import json
import os
import platform
import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import pandas as pd
import torch

from problems.overrides import ConfigError

if TYPE_CHECKING:
    from agwm.data import Task
    from agwm.metrics import Predictions

METRICS_NAME = "metrics.json"
CONFIG_NAME = "config.yaml"  # the run's resolved settings
LOG_NAME = "log.csv"
ALPHA_WEIGHTS_NAME = "alphas.safetensors"  # A and B of every mixup layer
ALPHA_CONFIG_NAME = "alphas.json"  # their layers' names, rank and formulation
TASK_WEIGHTS_NAME = "task_weights.safetensors"  # a search's fold-averaged task weights, the finetune's start
VALIDATION_PREDICTIONS_NAME = "validation_predictions.csv"
TEST_PREDICTIONS_NAME = "predictions.csv"
MODEL_DIR = "model"  # with --save-model: a stock Hugging Face folder (merged), or the method's own
MIXUP_MODEL_DIR = "mixup_model"  # with --save-model and mixup layers: the unmerged model, restored exactly
WEIGHTS_NAME = "model.safetensors"
BODY_DIR = "body"  # body=setfit: the contrastive stage's encoder
RUN_MARKER = ".agwm-run"  # written first into a run's folder: the folder is agwm's, and which phase's
# What a search or a finetune writes into its folder; nothing else there is touched.
RUN_OUTPUTS = (METRICS_NAME, CONFIG_NAME, LOG_NAME, ALPHA_WEIGHTS_NAME, ALPHA_CONFIG_NAME, TASK_WEIGHTS_NAME,
               VALIDATION_PREDICTIONS_NAME, TEST_PREDICTIONS_NAME, "tensorboard", MODEL_DIR, MIXUP_MODEL_DIR)
FOLD_FOLDER = re.compile(r"fold\d+")


@contextmanager
def atomic_path(path: str) -> Iterator[str]:
    """A temporary name beside ``path`` to write to; renamed to ``path`` when the block completes,
    removed if it fails."""
    tmp = f"{path}.tmp"
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _owner(path: str) -> str | None:
    """The phase whose marker the folder holds (``search``, ``finetune``), or None."""
    try:
        with open(os.path.join(path, RUN_MARKER)) as f:
            return json.load(f).get("phase", "?")
    except FileNotFoundError:
        return None
    except (OSError, ValueError, AttributeError):
        return "?"


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
        entries = sorted(os.listdir(path))
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
    if os.path.isfile(os.path.join(path, METRICS_NAME)) and not overwrite:
        raise ConfigError(f"{option}: it holds a finished run ({METRICS_NAME}); "
                          "give --overwrite to replace it, or another folder")


def prepare_output_dir(path: str, phase: str) -> None:
    """Create the folder, mark it as this phase's (:data:`RUN_MARKER`, before anything else), and
    remove what an earlier run wrote there (:data:`RUN_OUTPUTS`, ``fold<k>/``), so that nothing of it
    is left beside the new run's outputs. :func:`check_output_dir` has made sure the folder is agwm's."""
    try:
        os.makedirs(path, exist_ok=True)
        write_json({"phase": phase, "written_by": "agwm"}, os.path.join(path, RUN_MARKER))
    except OSError as error:
        raise ConfigError(f"--output-dir {path} is not allowed: it cannot be written ({error.strerror})") from None
    for name in os.listdir(path):
        if name in RUN_OUTPUTS or FOLD_FOLDER.fullmatch(name):
            stale = os.path.join(path, name)
            if os.path.isdir(stale) and not os.path.islink(stale):
                shutil.rmtree(stale)
            else:
                os.remove(stale)


def write_metrics(path: str, metrics: dict, device: torch.device) -> dict:
    """Write ``metrics.json`` (with the machine the run used) atomically; return what was written."""
    metrics = {**metrics, "machine": machine_description(device)}
    write_json(metrics, os.path.join(path, METRICS_NAME))
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
    for i, name in enumerate(names):
        table[f"prob_{name}"] = predictions.probabilities[:, i]
    return table


def write_predictions(path: str, rows: pd.DataFrame, task: Task, predictions: Predictions) -> None:
    """Write :func:`prediction_table` to ``path`` under a temporary name first, renamed when complete."""
    with atomic_path(path) as tmp:
        prediction_table(rows, task, predictions).to_csv(tmp, index=False)


def write_json(obj, path: str) -> None:
    with atomic_path(path) as tmp, open(tmp, "w") as f:
        json.dump(obj, f, indent=2, allow_nan=False)  # strict JSON: an undefined value is null


def read_json(path: str):
    with open(path) as f:
        return json.load(f)


def machine_description(device: torch.device) -> str:
    """The processor a run ran on, e.g. ``x86_64 CPU, 2 cores, torch 2.13.0+cpu``."""
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    return f"{platform.machine()} {name}, {os.cpu_count()} cores, torch {torch.__version__}"


def save_tensors(tensors: dict[str, torch.Tensor], path: str) -> None:
    from safetensors.torch import save_file

    with atomic_path(path) as tmp:
        save_file(tensors, tmp)
