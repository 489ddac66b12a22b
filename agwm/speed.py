"""A fixed workload whose time measures how fast a machine trains, stored with each grid record.

Two machines with the same description (``machine_description`` gives "x86_64 CPU, 2 cores" for
CPUs 1.8 times apart) or one machine busy with something else give different wall times for the
same run. A run's wall time t over its probe time p, t / p, is in units of the machine's own speed,
so a ratio of two runs, (t_1 / p_1) / (t_2 / p_2), compares the methods more than the machines:
``scripts/bench_speed_probe.py`` measures how well p tracks a real training step (within about 50%
on this project's CPU machine, see the README's Benchmark section).
"""

from __future__ import annotations

import statistics
import time

import torch

# one feed-forward block of the default model (all-MiniLM-L6-v2) on a batch of 16 x 128 tokens
TOKENS, HIDDEN, INTERMEDIATE = 16 * 128, 384, 1536


def speed_probe(device: torch.device, repeats: int = 5) -> float:
    """Seconds of forward and backward through ``Linear(384, 1536) -> GELU -> Linear(1536, 384)``
    on 2048 tokens: the median of ``repeats`` after one warm-up. Its inputs come from a private
    generator, so the global random streams are untouched."""
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(TOKENS, HIDDEN, generator=generator).to(device)
    up = (torch.randn(HIDDEN, INTERMEDIATE, generator=generator) / HIDDEN ** 0.5).to(device).requires_grad_()
    down = (torch.randn(INTERMEDIATE, HIDDEN, generator=generator) / INTERMEDIATE ** 0.5).to(device).requires_grad_()

    def once() -> float:
        _synchronize(device)
        start = time.perf_counter()
        (torch.nn.functional.gelu(x @ up) @ down).square().mean().backward()
        _synchronize(device)
        up.grad = down.grad = None
        return time.perf_counter() - start

    once()
    return statistics.median(once() for _ in range(repeats))


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
