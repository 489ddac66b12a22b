"""The device a run trains on, its peak memory, and the machine's speed.

* Peak memory: on CUDA the allocator's peak, on the CPU the resident set's high-water mark (VmHWM).
* Speed probe: a fixed workload whose time p is stored with each grid record. A run's wall time t
  over p is in units of the machine's own speed, so (t_1 / p_1) / (t_2 / p_2) compares methods more
  than machines (``scripts/bench_speed_probe.py`` measures how well p tracks a training step); only
  probes of the same workload (``WORKLOAD``) are compared, and records from before the name was
  stored timed ``FIRST_WORKLOAD``."""

from __future__ import annotations

import ctypes
import gc
import statistics
import sys
import time

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


def autocast(enabled: bool, device: torch.device):
    """bfloat16 autocast on ``device`` when ``enabled`` (a run's ``bf16``), else a no-op."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=enabled)


def reset_peak(device: torch.device) -> int:
    """Start a stretch: reset the peak and return the bytes held now."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
        return torch.cuda.memory_allocated()
    release_freed_memory()  # so the resident set is the stretch's
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # resets VmHWM to the current resident set
    return _status_kib("VmRSS") * 1024


def release_freed_memory() -> None:
    """Collect garbage and hand the allocator's free pages back to the system (glibc's malloc_trim)."""
    gc.collect()
    if sys.platform.startswith("linux"):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def peak_mib_since(device: torch.device, before: int) -> float:
    """MiB above ``before`` (from ``reset_peak``) at the stretch's peak."""
    peak = torch.cuda.max_memory_allocated() if device.type == "cuda" else _status_kib("VmHWM") * 1024
    return (peak - before) / 2**20


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field + ":"))


# one encoder layer of the default model (all-MiniLM-L6-v2) on a batch of 16 x 128 tokens
BATCH, LENGTH, HIDDEN, HEADS, INTERMEDIATE = 16, 128, 384, 12, 1536
WORKLOAD = "encoder-layer-384"
FIRST_WORKLOAD = "feed-forward-384"  # Linear(384, 1536) -> GELU -> Linear(1536, 384), forward and backward


def speed_probe(device: torch.device, repeats: int = 3) -> float:
    """Seconds of one training step of a transformer encoder layer of the default model's shape
    (hidden 384, 12 heads, feed-forward 1536, GELU, dropout 0.1) on 16 x 128 tokens: forward,
    backward of the mean squared output, AdamW step. The median of ``repeats`` after one warm-up.
    Its random draws (weights, inputs, dropout) come from forked random streams, so the global ones
    are untouched."""
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.default_generator.manual_seed(0)  # not torch.manual_seed, which reseeds every GPU
        layer = torch.nn.TransformerEncoderLayer(HIDDEN, HEADS, INTERMEDIATE, dropout=0.1, activation="gelu",
                                                 batch_first=True).to(device)
        optimizer = torch.optim.AdamW(layer.parameters(), lr=1e-5)
        x = torch.randn(BATCH, LENGTH, HIDDEN).to(device)

        def once() -> float:
            synchronize(device)
            start = time.perf_counter()
            layer(x).square().mean().backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            synchronize(device)
            return time.perf_counter() - start

        once()
        return statistics.median(once() for _ in range(repeats))


def probe_workload(record: dict) -> str | None:
    """The workload whose time a grid record's ``speed_probe_s`` is; None if it has no probe."""
    if not record.get("speed_probe_s"):
        return None
    return record.get("speed_probe_workload", FIRST_WORKLOAD)


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work, so that a wall-clock interval covers it (a no-op on the CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
