"""Benchmark: the cost of weight mixup and of one search iteration, as ratios to a vanilla step.

On one fixed batch (``--batch-size`` x ``--length`` tokens), in one process, rounds of:
  vanilla      forward, backward, AdamW step of the plain model
  mixup        the same with every encoder Linear mixed (alpha fixed, as in the finetune phase)
  search-X     one outer iteration of the search with hypergradient X: its T = unroll_steps inner
               steps and the outer step (T = 1 but for reverse-T2, reverse-T5)
Times are medians over the rounds, the configurations interleaved within each round so that
machine noise falls on all alike. Peak memory is measured per configuration in a fresh
subprocess: on CUDA ``max_memory_allocated``, on the CPU the peak resident set (VmHWM) minus the
resident set before the model was built.

    python scripts/bench.py                       # the bundled all-MiniLM-L6-v2, on this machine
    python scripts/bench.py --random-init --device cuda   # same shape, random weights (no files)
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import json
import os
import statistics
import subprocess
import sys
import time

import torch
from transformers import AutoConfig, AutoModelForSequenceClassification

from agwm.cli import require_at_least
from agwm.devices import machine_description, resolve_device
from agwm.engine_settings import engine_config_dir, engine_config_on, load_engine_settings
from agwm.mixup import alpha_parameters, inject_mixup, project_alphas, task_parameters
from agwm.optim import adamw
from agwm.runtime import default_model, model_loss
from agwm.search import ProgressEngine
from agwm.speed import synchronize
from agwm.validation import device_allowed
from problems import AttentionProblem, TaskWeightProblem, attention_kernels

SEARCHES = {  # configuration: (engine YAML, overrides)
    "search-darts": ("darts", []), "search-opt_darts": ("opt_darts", []), "search-sama": ("sama", []),
    "search-reverse": ("reverse", []), "search-reverse-T2": ("reverse", ["inner.unroll_steps=2"]),
    "search-reverse-T5": ("reverse", ["inner.unroll_steps=5"]),
    "search-neumann": ("neumann", []), "search-cg": ("cg", [])}
CONFIGS = ("vanilla", "mixup", *SEARCHES)


def build(args, mixup: bool):
    torch.manual_seed(0)
    path = args.model or default_model()
    if args.random_init:
        model = AutoModelForSequenceClassification.from_config(AutoConfig.from_pretrained(path, num_labels=2))
    else:
        model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=2)
    if mixup:
        inject_mixup(model, seed=0)
    return model.to(args.device).train()


def batch(args, vocab_size: int) -> dict:
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(1000, vocab_size, (args.batch_size, args.length), generator=g)
    return {"input_ids": ids.to(args.device), "attention_mask": torch.ones_like(ids).to(args.device),
            "labels": torch.randint(0, 2, (args.batch_size,), generator=g).to(args.device)}


def make_step(name: str, args):
    """A function that runs one step of configuration ``name``."""
    model = build(args, mixup=name != "vanilla")
    data = batch(args, model.config.vocab_size)
    if name in ("vanilla", "mixup"):
        for p in alpha_parameters(model):
            p.requires_grad_(False)
        optimizer = adamw([{"params": task_parameters(model), "weight_decay": 0.01}], lr=1e-5)

        def step():
            model_loss(model, data).backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        return step

    yaml_name, overrides = SEARCHES[name]
    settings = load_engine_settings(os.path.join(engine_config_dir(), yaml_name + ".yaml"), overrides)
    weights, alphas = task_parameters(model), alpha_parameters(model)
    w_opt = adamw([{"params": weights, "weight_decay": 0.01}], lr=1e-5)
    a_opt = torch.optim.AdamW(alphas, lr=2e-3, weight_decay=0.01)
    forever = RepeatBatch(data)
    inner = TaskWeightProblem("inner", settings.inner, model, model_loss, weights, w_opt, forever)
    outer = AttentionProblem("outer", settings.outer, model, model_loss, alphas, a_opt, forever,
                             projection=project_alphas)
    engine = ProgressEngine([inner, outer], engine_config_on(settings.engine, args.device),
                            {"u2l": {outer: [inner]}, "l2u": {inner: [outer]}},
                            on_step=lambda _: None)

    def step():
        with attention_kernels(settings.inner.type, args.device):
            for _ in range(settings.inner.unroll_steps):
                engine.train_step()
    return step


class RepeatBatch:
    """A data loader that yields the same batch forever."""

    def __init__(self, data):
        self.data = data

    def __iter__(self):
        while True:
            yield dict(self.data)


def time_all(args) -> dict[str, float]:
    steps = {name: make_step(name, args) for name in args.configs}
    for _ in range(args.warmup):
        for step in steps.values():
            step()
    times = {name: [] for name in steps}
    for _ in range(args.rounds):
        for name, step in steps.items():
            synchronize(args.device)
            start = time.perf_counter()
            step()
            synchronize(args.device)
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def rss_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field + ":"))


def memory_probe(name: str, args) -> float:
    """Peak memory (MiB) of two steps (outer iterations) of ``name``, above what the process held before."""
    on_cuda = args.device.type == "cuda"
    if on_cuda:
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
    else:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # resets VmHWM to the current resident set
        before = rss_kib("VmRSS") * 1024
    step = make_step(name, args)
    step()
    step()
    synchronize(args.device)
    peak = torch.cuda.max_memory_allocated() if on_cuda else rss_kib("VmHWM") * 1024
    return (peak - before) / 2**20


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default=None)
    p.add_argument("--random-init", action="store_true", help="the model's shape with random weights")
    p.add_argument("--device", default="auto", help="auto (the GPU if there is one), cpu, cuda or cuda:N")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--length", type=int, default=128)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=CONFIGS)
    p.add_argument("--memory-probe", default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    require_at_least(p, args, {"batch_size": 1, "length": 1, "rounds": 1, "warmup": 0})
    if "vanilla" not in args.configs:
        p.error(f"--configs {' '.join(args.configs)} is not allowed: must include vanilla (the ratios' denominator)")
    allowed_devices = device_allowed(args.device)
    if allowed_devices:
        p.error(f"--device {args.device} is not allowed: {allowed_devices}")
    args.device = resolve_device(args.device)
    if args.device.type == "cpu":
        torch.set_num_threads(os.cpu_count())

    if args.memory_probe:
        print(json.dumps({"peak_mib": memory_probe(args.memory_probe, args)}))
        return
    medians = time_all(args)
    gc.collect()  # the timed models are gone: give their memory back before the probes' subprocesses
    if sys.platform.startswith("linux"):
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    peaks = {}
    for name in args.configs:
        cmd = [sys.executable, __file__, "--memory-probe", name, "--device", str(args.device),
               "--batch-size", str(args.batch_size), "--length", str(args.length)]
        cmd += (["--model", args.model] if args.model else []) + (["--random-init"] if args.random_init else [])
        peaks[name] = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)["peak_mib"]

    print(f"machine: {machine_description(args.device)}; batch {args.batch_size} x {args.length} tokens; "
          f"median of {args.rounds} rounds; {'random' if args.random_init else 'pretrained'} weights")
    print("| configuration | step or outer iteration (s) | time / vanilla | peak memory (MiB) | memory / vanilla |")
    print("|---|---|---|---|---|")
    for name in args.configs:
        print(f"| {name} | {medians[name]:.4g} | {medians[name] / medians['vanilla']:.2f}x | "
              f"{peaks[name]:.0f} | {peaks[name] / peaks['vanilla']:.2f}x |")


if __name__ == "__main__":
    main()
