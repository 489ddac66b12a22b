"""Benchmark: does the grid's speed probe (``agwm.training.device.speed_probe``) track a real training step?

A grid record stores its wall time t and its probe time p; the report compares runs by t / p. That
is sound if a training step's time s moves with p when the machine gets slower, i.e. if s / p stays
put. This script slows the machine in two ways and prints s and, for the grid's probe (one encoder
layer's training step) and the first one it replaced (one feed-forward block's forward and
backward), p and s / p for each condition, all measured in this one process with steps and probes
interleaved (medians over the rounds):
  N threads     torch on N of the cores (N from --threads; fewer threads: a slower machine)
  + competitor  all the cores, with a second process multiplying matrices on all of them
                (a machine shared with something else, e.g. tests run next to a grid)
The step is forward, backward and AdamW step of the default model's shape (random weights) on
``--batch-size`` x ``--length`` tokens.

    python scripts/bench_speed_probe.py
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

import torch
from transformers import AutoConfig, AutoModelForSequenceClassification

from agwm.cli import require_at_least
from agwm.models import default_model
from agwm.run_folder import machine_description
from agwm.training.build import model_loss
from agwm.training.device import HIDDEN, INTERMEDIATE, speed_probe
from agwm.training.optim import adamw

COMPETITOR = "import torch\na = torch.randn(1024, 1024)\nwhile True:\n    a @ a\n"


def make_step(args):
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_config(AutoConfig.from_pretrained(default_model(), num_labels=2))
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(1000, model.config.vocab_size, (args.batch_size, args.length), generator=g)
    data = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": torch.randint(0, 2, (args.batch_size,))}
    optimizer = adamw([{"params": list(model.parameters()), "weight_decay": 0.01}], lr=1e-5)

    def step() -> float:
        start = time.perf_counter()
        model_loss(model, data).backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return time.perf_counter() - start
    return step


def feed_forward_probe(tokens: int = 16 * 128) -> float:
    """The first probe: forward and backward through ``Linear(384, 1536) -> GELU -> Linear(1536, 384)``,
    timed after one warm-up as ``speed_probe(device, repeats=1)`` times its workload."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(tokens, HIDDEN, generator=g)
    up = (torch.randn(HIDDEN, INTERMEDIATE, generator=g) / HIDDEN ** 0.5).requires_grad_()
    down = (torch.randn(INTERMEDIATE, HIDDEN, generator=g) / INTERMEDIATE ** 0.5).requires_grad_()
    for _ in range(2):
        start = time.perf_counter()
        (torch.nn.functional.gelu(x @ up) @ down).square().mean().backward()
        up.grad = down.grad = None
    return time.perf_counter() - start


PROBES = {"encoder layer (the grid's)": lambda: speed_probe(torch.device("cpu"), repeats=1),
          "feed-forward block (the first)": feed_forward_probe}


def measure(step, rounds: int) -> list[float]:
    """Median step seconds, then each probe's, over ``rounds`` interleaved rounds (after one of each)."""
    times: list[list[float]] = [[] for _ in range(1 + len(PROBES))]
    for r in range(rounds + 1):
        for i, workload in enumerate([step, *PROBES.values()]):
            seconds = workload()
            if r:
                times[i].append(seconds)
    return [statistics.median(t) for t in times]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, nargs="+", default=sorted({os.cpu_count(), 1}, reverse=True))
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--length", type=int, default=128)
    p.add_argument("--rounds", type=int, default=7)
    args = p.parse_args()
    bad = [n for n in args.threads if not 1 <= n <= os.cpu_count()]
    if bad:
        p.error(f"--threads {bad} is not allowed: between 1 and {os.cpu_count()} (this machine's cores)")
    require_at_least(p, args, {"batch_size": 1, "length": 1, "rounds": 1})

    step = make_step(args)
    rows = []
    for n in args.threads:
        torch.set_num_threads(n)
        rows.append((f"{n} thread{'s' if n > 1 else ''}", measure(step, args.rounds)))
    torch.set_num_threads(os.cpu_count())
    competitor = subprocess.Popen([sys.executable, "-c", COMPETITOR])
    try:
        time.sleep(3)  # let it start multiplying
        rows.append((f"{os.cpu_count()} threads + competitor", measure(step, args.rounds)))
    finally:
        competitor.kill()

    print(f"machine: {machine_description(torch.device('cpu'))}; batch {args.batch_size} x {args.length} tokens; "
          f"median of {args.rounds} rounds")
    print("| condition | step s (s) | " + " | ".join(f"{name}: p (s) | s / p against the first row" for name in PROBES)
          + " |")
    print("|---|---|" + "---|---|" * len(PROBES))
    first = rows[0][1]
    for name, (s, *probes) in rows:
        cells = (f"{probe:.4f} | {s / probe / (first[0] / first[1 + i]):.2f}" for i, probe in enumerate(probes))
        print(f"| {name} | {s:.3f} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
