"""Peak memory of a stretch of work: on CUDA the allocator's peak, on the CPU the process's resident
set high-water mark (VmHWM, Linux), reset at the start of the stretch."""

from __future__ import annotations

import ctypes
import gc
import sys

import torch


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
