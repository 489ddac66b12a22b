"""A run's output folder: checked before any work, cleared of an earlier run's outputs, and
``metrics.json`` written last (a folder without it holds no finished run)."""

from __future__ import annotations

import os
import re
import shutil

import torch

from .devices import machine_description
from .mixup import ALPHA_CONFIG_NAME, ALPHA_WEIGHTS_NAME, write_json
from .model_io import MIXUP_MODEL_DIR
from .predictions import TEST_PREDICTIONS_NAME, VALIDATION_PREDICTIONS_NAME
from .settings import ConfigError

METRICS_NAME = "metrics.json"
TASK_WEIGHTS_NAME = "task_weights.safetensors"  # a search's fold-averaged task weights, the finetune's start
# What a search or a finetune writes into its folder; nothing else there is touched.
RUN_OUTPUTS = (METRICS_NAME, "config.yaml", "log.csv", ALPHA_WEIGHTS_NAME, ALPHA_CONFIG_NAME, TASK_WEIGHTS_NAME,
               VALIDATION_PREDICTIONS_NAME, TEST_PREDICTIONS_NAME, "tensorboard", "model", MIXUP_MODEL_DIR)
FOLD_FOLDER = re.compile(r"fold\d+")


def check_output_dir(path: str, overwrite: bool) -> None:
    """``--output-dir`` can take a run: not a file, and not a finished run's folder unless ``overwrite``."""
    if os.path.exists(path) and not os.path.isdir(path):
        raise ConfigError(f"--output-dir {path} is not allowed: it is a file")
    if os.path.isfile(os.path.join(path, METRICS_NAME)) and not overwrite:
        raise ConfigError(f"--output-dir {path} is not allowed: it holds a finished run ({METRICS_NAME}); "
                          "give --overwrite to replace it, or another folder")


def prepare_output_dir(path: str) -> None:
    """Create the folder and remove everything an earlier run wrote there (:data:`RUN_OUTPUTS`,
    ``fold<k>/``), so that nothing of it is left beside the new run's outputs."""
    os.makedirs(path, exist_ok=True)
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
