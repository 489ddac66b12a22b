"""A fixed workload whose time measures how fast a machine trains, stored with each grid record.

Two machines with the same description (``machine_description`` gives "x86_64 CPU, 2 cores" for
CPUs 1.8 times apart) or one machine busy with something else give different wall times for the
same run. A run's wall time t over its probe time p, t / p, is in units of the machine's own speed,
so a ratio of two runs, (t_1 / p_1) / (t_2 / p_2), compares the methods more than the machines:
``scripts/bench_speed_probe.py`` measures how well p tracks a real training step (see the README's
Benchmark section). Each record names its probe's workload (``WORKLOAD``), and only probes of the
same workload are compared; records from before the name was stored timed ``FIRST_WORKLOAD``.
"""

from __future__ import annotations

import statistics
import time

import torch

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
