"""Where a run computes, and how its records name the machine."""

from __future__ import annotations

import os
import platform

import torch
from torch import nn


def resolve_device(name: str) -> torch.device:
    """The torch device of a run's ``device`` setting (``auto``: the first CUDA device if there is
    one, else the CPU). Betty places a search's problems on the current CUDA device, so a named
    one becomes the current device."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(name)
    if device.type == "cuda":
        if device.index is not None:
            torch.cuda.set_device(device)
        device = torch.device("cuda", torch.cuda.current_device())
    return device


def device_of(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


def machine_description(device: torch.device) -> str:
    """The processor a run ran on, e.g. ``x86_64 CPU, 2 cores, torch 2.13.0+cpu``."""
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    return f"{platform.machine()} {name}, {os.cpu_count()} cores, torch {torch.__version__}"


def autocast(enabled: bool, device: torch.device):
    """bfloat16 autocast on ``device`` when ``enabled`` (a run's ``bf16``), else a no-op."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=enabled)
