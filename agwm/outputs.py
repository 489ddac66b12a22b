"""A run's output folder: cleared of an earlier run's results, ``metrics.json`` written last."""

from __future__ import annotations

import os

import torch

from .devices import machine_description
from .mixup import write_json

METRICS_NAME = "metrics.json"
TASK_WEIGHTS_NAME = "task_weights.safetensors"  # a search's fold-averaged task weights, the finetune's start


def prepare_output_dir(path: str, outputs: tuple[str, ...] = ()) -> None:
    """Create the folder and remove a ``metrics.json`` and the ``outputs`` an earlier run left
    there, so that only a run that finishes leaves them."""
    os.makedirs(path, exist_ok=True)
    for name in (METRICS_NAME, *outputs):
        stale = os.path.join(path, name)
        if os.path.exists(stale):
            os.remove(stale)


def write_metrics(path: str, metrics: dict, device: torch.device) -> dict:
    """Write ``metrics.json`` (with the machine the run used) atomically; return what was written."""
    metrics = {**metrics, "machine": machine_description(device)}
    write_json(metrics, os.path.join(path, METRICS_NAME))
    return metrics
