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
    python scripts/bench.py --scaling --output-dir results/bench/scaling-cpu   # cost against the shape
    python scripts/bench.py --model all-mpnet-base-v2 --against all-MiniLM-L6-v2 --configs vanilla mixup search-darts
    python scripts/bench.py --shape 24x1024 --device cuda --configs vanilla mixup search-darts  # BERT-large's shape

``--against`` times a second model in the same rounds (each round runs every configuration of both
models, interleaved) and adds each configuration's time and memory on ``--model`` over the same
configuration on the second: the cost of switching models, measured side by side.

``--shape LxH`` times random weights of ``--model``'s architecture at L layers and H wide (heads of 64,
feed-forward 4 x H): ``24x1024`` is BERT-large's shape, the paper's model.

``--scaling`` times every configuration on random-initialised models of the default model's
architecture, one shape setting changed at a time (``SCALING``: layers, hidden width with 64-wide
heads and a 4x feed-forward, sequence length); at each point the configurations run one after
another in one process (all of a wide model's at once would not fit), vanilla first and last.
It writes ``scaling.md`` (times, ratios to vanilla, and the fitted exponent b of time ~ x^b per
axis) and ``scaling-<axis>.png`` (log-log); ``--layers``, ``--hidden``, ``--lengths`` set the points.
"""

from __future__ import annotations

import argparse
import copy
import gc
import json
import os
import re
import statistics
import subprocess
import sys
import time

import numpy as np
import torch
from transformers import AutoConfig, AutoModelForSequenceClassification

from agwm.cli import require_at_least
from agwm.mixup import alpha_parameters, inject_mixup, project_alphas, task_parameters
from agwm.models import model_path
from agwm.run_folder import machine_description
from agwm.settings import device_allowed
from agwm.training.build import model_loss
from agwm.training.device import peak_mib_since, release_freed_memory, reset_peak, resolve_device, synchronize
from agwm.training.optim import adamw
from agwm_problems import AttentionProblem, TaskWeightProblem, build_engine, engine_config_dir
from agwm_problems.engine import attention_kernels
from agwm_problems.engine_settings import load_engine_settings

SEARCHES = {  # configuration: (engine YAML, overrides)
    "search-darts": ("darts", []), "search-opt_darts": ("opt_darts", []), "search-sama": ("sama", []),
    "search-reverse": ("reverse", []), "search-reverse-T2": ("reverse", ["inner.unroll_steps=2"]),
    "search-reverse-T5": ("reverse", ["inner.unroll_steps=5"]),
    "search-neumann": ("neumann", []), "search-cg": ("cg", [])}
CONFIGS = ("vanilla", "mixup", *SEARCHES)
SCALING = {"layers": [2, 4, 6, 12], "hidden": [384, 768, 1024], "length": [32, 64, 128, 256]}  # the defaults
SCALING_FLAGS = {"layers": "layers", "hidden": "hidden", "length": "lengths"}  # --length is the batch's
SCALING_CONFIGS = ("vanilla", "mixup", "search-darts", "search-opt_darts", "search-sama", "search-reverse",
                   "search-neumann", "search-cg")


def build(args, mixup: bool):
    torch.manual_seed(0)
    path = model_path(args.model)
    if getattr(args, "shape", None) is not None:
        model = AutoModelForSequenceClassification.from_config(args.shape)
    elif args.random_init:
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
    engine = build_engine(inner, outer, settings.engine, device=args.device)

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


def timed(step, device: torch.device) -> float:
    """Seconds of one call of ``step``, the device's queued work waited for on both sides."""
    synchronize(device)
    start = time.perf_counter()
    step()
    synchronize(device)
    return time.perf_counter() - start


def time_all(args, models: list) -> dict[tuple, float]:
    """(model, configuration) -> median seconds, every model's configurations interleaved in each round."""
    steps = {}
    for model in models:
        on_model = copy.copy(args)
        on_model.model = model
        steps.update({(model, name): make_step(name, on_model) for name in args.configs})
    for _ in range(args.warmup):
        for step in steps.values():
            step()
    times = {name: [] for name in steps}
    for _ in range(args.rounds):
        for name, step in steps.items():
            times[name].append(timed(step, args.device))
    return {name: statistics.median(t) for name, t in times.items()}


def memory_probe(name: str, args) -> float:
    """Peak memory (MiB) of two steps (outer iterations) of ``name``, above what the process held before."""
    before = reset_peak(args.device)
    step = make_step(name, args)
    step()
    step()
    synchronize(args.device)
    return peak_mib_since(args.device, before)


def shaped(base, axis: str, value: int):
    """``base`` (a model config) with one shape setting changed: ``layers``, or ``hidden`` (heads of
    64, feed-forward 4 x hidden); ``length`` leaves it as it is."""
    config = copy.deepcopy(base)
    if axis == "layers":
        config.num_hidden_layers = value
    elif axis == "hidden":
        config.hidden_size, config.num_attention_heads, config.intermediate_size = value, value // 64, 4 * value
    return config


def parse_shape(text: str) -> tuple[int, int] | None:
    """``"LxH"`` as (layers, hidden); None unless both are positive and H is a multiple of 64."""
    match = re.fullmatch(r"(\d+)x(\d+)", text)
    if match is None:
        return None
    layers, hidden = map(int, match.groups())
    return (layers, hidden) if layers > 0 and hidden > 0 and hidden % 64 == 0 else None


def time_one(name: str, args) -> float:
    step = make_step(name, args)
    for _ in range(args.warmup):
        step()
    times = [timed(step, args.device) for _ in range(args.rounds)]
    del step
    gc.collect()
    return statistics.median(times)


def scaling(args) -> list[dict]:
    """One row per axis point: the axis, its value, each configuration's median seconds, and
    ``vanilla_after`` (vanilla timed again last: how much the machine drifted within the point)."""
    base = AutoConfig.from_pretrained(model_path(args.model), num_labels=2)
    rows = []
    for axis in SCALING:
        for value in getattr(args, SCALING_FLAGS[axis]):
            point = copy.copy(args)
            point.shape, point.length = shaped(base, axis, value), value if axis == "length" else args.length
            times = {name: time_one(name, point) for name in args.configs}
            rows.append({"axis": axis, "value": value, **times, "vanilla_after": time_one("vanilla", point)})
            print(json.dumps(rows[-1]), flush=True)
    return rows


def exponent(xs: list[float], ys: list[float]) -> float:
    """b of the least-squares fit log y = a + b log x."""
    return float(np.polyfit(np.log(xs), np.log(ys), 1)[0])


def scaling_report(rows: list[dict], configs: list[str], header: str) -> str:
    lines = [header, ""]
    for axis in SCALING:
        points = [r for r in rows if r["axis"] == axis]
        lines += [f"### {axis}", "", "| " + " | ".join([axis, *configs, "vanilla again"]) + " |",
                  "|" + "---|" * (len(configs) + 2)]
        for r in points:
            cells = [f"{r[c]:.3g} s" if c == "vanilla" else f"{r[c]:.3g} s ({r[c] / r['vanilla']:.2f}x)"
                     for c in configs]
            lines.append(f"| {r['value']} | " + " | ".join(cells) + f" | {r['vanilla_after']:.3g} s |")
        xs = [r["value"] for r in points]
        fits = [f"{exponent(xs, [r[c] for r in points]):.2f}" for c in configs]
        ratio_fits = [f"{exponent(xs, [r[c] / r['vanilla'] for r in points]):+.2f}" for c in configs]
        lines += [f"| exponent b (time ~ {axis}^b) | " + " | ".join(fits) + " | |",
                  "| exponent of time / vanilla | " + " | ".join(ratio_fits) + " | |", ""]
    return "\n".join(lines)


def plot_scaling(rows: list[dict], configs: list[str], folder: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    for axis in SCALING:
        points = [r for r in rows if r["axis"] == axis]
        fig, ax = plt.subplots(figsize=(6, 4))
        for c in configs:
            ax.loglog([r["value"] for r in points], [r[c] for r in points], marker="o", label=c)
        ax.set_xlabel(axis)
        ax.set_ylabel("seconds per step or outer iteration")
        ax.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(os.path.join(folder, f"scaling-{axis}.png"), dpi=120)
        plt.close(fig)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default=None)
    p.add_argument("--against", default=None,
                   help="a second model timed in the same rounds: each configuration's ratio of --model to it")
    p.add_argument("--random-init", action="store_true", help="the model's shape with random weights")
    p.add_argument("--shape", default=None, metavar="LxH",
                   help="random weights at L layers, H wide (heads of 64, feed-forward 4 x H); 24x1024 is BERT-large's")
    p.add_argument("--device", default="auto", help="auto (the GPU if there is one), cpu, cuda or cuda:N")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--length", type=int, default=128)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--configs", nargs="+", default=None, choices=CONFIGS,
                   help="default: all; with --scaling all but reverse-T2, -T5")
    p.add_argument("--threads", type=int, default=None, help="CPU threads (default: every core)")
    p.add_argument("--scaling", action="store_true",
                   help="time the configurations against layers, width and length (random weights)")
    p.add_argument("--output-dir", default=None, help="with --scaling: where scaling.md and the plots go")
    for axis, values in SCALING.items():
        p.add_argument(f"--{SCALING_FLAGS[axis]}", type=int, nargs="+", default=values,
                       help=f"with --scaling: the {axis} points (default {' '.join(map(str, values))})")
    p.add_argument("--memory-probe", default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.scaling and args.output_dir is None:
        p.error("--scaling needs --output-dir")
    if args.against and (args.scaling or args.shape or args.against == args.model):
        p.error(f"--against {args.against} is not allowed: a second model, other than --model, without --scaling "
                "or --shape")
    shape_text = args.shape
    if shape_text is not None:
        layers_hidden = parse_shape(shape_text)
        if layers_hidden is None or args.scaling:
            p.error(f"--shape {shape_text} is not allowed: LxH, L layers and H wide, H a multiple of 64 "
                    "(24x1024 is BERT-large's), without --scaling")
        base = AutoConfig.from_pretrained(model_path(args.model), num_labels=2)
        args.shape = shaped(shaped(base, "layers", layers_hidden[0]), "hidden", layers_hidden[1])
    if args.configs is None:
        args.configs = list(SCALING_CONFIGS if args.scaling else CONFIGS)
    require_at_least(p, args, {"batch_size": 1, "length": 1, "rounds": 1, "warmup": 0})
    if "vanilla" not in args.configs:
        p.error(f"--configs {' '.join(args.configs)} is not allowed: must include vanilla (the ratios' denominator)")
    allowed_devices = device_allowed(args.device)
    if allowed_devices:
        p.error(f"--device {args.device} is not allowed: {allowed_devices}")
    args.device = resolve_device(args.device)
    if args.device.type == "cpu":
        torch.set_num_threads(args.threads or os.cpu_count())

    if args.scaling:
        os.makedirs(args.output_dir, exist_ok=True)
        rows = scaling(args)
        header = (f"machine: {machine_description(args.device)}; batch {args.batch_size}; length {args.length} "
                  f"(but on the length axis); median of {args.rounds} rounds after {args.warmup} warm-up; random "
                  "weights; a search-X cell is one outer iteration (one inner step and the outer step)")
        with open(os.path.join(args.output_dir, "scaling.md"), "w") as f:
            f.write(scaling_report(rows, args.configs, header) + "\n")
        with open(os.path.join(args.output_dir, "scaling.jsonl"), "w") as f:
            f.writelines(json.dumps(r) + "\n" for r in rows)
        plot_scaling(rows, args.configs, args.output_dir)
        print(f"{args.output_dir}/scaling.md, scaling.jsonl, scaling-<axis>.png")
        return
    if args.memory_probe:
        print(json.dumps({"peak_mib": memory_probe(args.memory_probe, args)}))
        return
    models = [args.model] + ([args.against] if args.against else [])
    medians = time_all(args, models)
    release_freed_memory()  # the timed models are gone: give their memory back before the probes' subprocesses
    peaks = {}
    for model in models:
        for name in args.configs:
            cmd = [sys.executable, __file__, "--memory-probe", name, "--device", str(args.device),
                   "--batch-size", str(args.batch_size), "--length", str(args.length)]
            cmd += (["--model", model] if model else []) + (["--random-init"] if args.random_init else [])
            cmd += ["--shape", shape_text] if shape_text else []
            peaks[model, name] = json.loads(subprocess.run(cmd, check=True, capture_output=True,
                                                           text=True).stdout)["peak_mib"]

    print(f"machine: {machine_description(args.device)}; batch {args.batch_size} x {args.length} tokens; "
          f"median of {args.rounds} rounds; " + (f"random weights, {shape_text} (layers x hidden)" if shape_text else
                                                 f"{'random' if args.random_init else 'pretrained'} weights"))
    against = f" | time / {args.against} | memory / {args.against}" if args.against else ""
    print(f"| model | configuration | step or outer iteration (s) | time / vanilla | peak memory (MiB) | "
          f"memory / vanilla{against} |")
    print("|---" * (6 + 2 * bool(args.against)) + "|")
    for model in models:
        for name in args.configs:
            t, m = medians[model, name], peaks[model, name]
            label = f"{shape_text}, random" if shape_text else model or "all-MiniLM-L6-v2"
            row = (f"| {label} | {name} | {t:.4g} | {t / medians[model, 'vanilla']:.2f}x | "
                   f"{m:.0f} | {m / peaks[model, 'vanilla']:.2f}x")
            if args.against:
                row += (f" | {t / medians[args.against, name]:.2f}x | {m / peaks[args.against, name]:.2f}x"
                        if model != args.against else " | | ")
            print(row + " |")


if __name__ == "__main__":
    main()
