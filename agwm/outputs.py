"""A run's output folder: agwm's alone (a marker written first; a folder holding anything else is
refused), checked before any work, cleared of an earlier run's outputs only, and ``metrics.json``
written last (a folder without it holds no finished run)."""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile

import torch

from .devices import machine_description
from .mixup import ALPHA_CONFIG_NAME, ALPHA_WEIGHTS_NAME, write_json
from .model_io import MIXUP_MODEL_DIR
from .predictions import TEST_PREDICTIONS_NAME, VALIDATION_PREDICTIONS_NAME
from .settings import ConfigError

METRICS_NAME = "metrics.json"
TASK_WEIGHTS_NAME = "task_weights.safetensors"  # a search's fold-averaged task weights, the finetune's start
RUN_MARKER = ".agwm-run"  # written first into a run's folder: the folder is agwm's, and which phase's
# What a search or a finetune writes into its folder; nothing else there is touched.
RUN_OUTPUTS = (METRICS_NAME, "config.yaml", "log.csv", ALPHA_WEIGHTS_NAME, ALPHA_CONFIG_NAME, TASK_WEIGHTS_NAME,
               VALIDATION_PREDICTIONS_NAME, TEST_PREDICTIONS_NAME, "tensorboard", "model", MIXUP_MODEL_DIR)
FOLD_FOLDER = re.compile(r"fold\d+")


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
