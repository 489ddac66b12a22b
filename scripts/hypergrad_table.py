"""Every hypergradient method at the same point of a real search, against reverse mode through T = 5
inner steps.

The default search (darts) runs on fold 0 of ``--task`` for each of ``--at`` outer steps (0 = at
the start); there the inner level takes T = 5 more AdamW steps, keeping each one's record, and one
outer batch gives v = dL_val/dw and the direct part dL_val/dlambda. Each method then computes its
indirect part from that same state (one-step methods read the last step, reverse-Tk the last k,
cg and neumann the current point), and the hypergradient for A, B (direct + indirect) is compared
with reverse-T5's: cosine similarity and norm ratio, with the seconds and the peak memory (resident
set above the point's, CPU; allocated, CUDA) of the method's call.

    python scripts/hypergrad_table.py --task stsb --train-size 300 --seed 1 --at 0 20 \\
        --output-dir results/hypergrad-real
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import time

import torch
from betty.hypergradient import jvp_fn_mapping
from torch.nn.functional import cosine_similarity as cosine

from agwm.cli import main_guard, parser, run_config
from agwm.data import random_splits, stream_seed
from agwm.run_folder import machine_description
from agwm.search import alpha_summary, bilevel_problems
from agwm.training.build import build_model, load_run_data
from agwm.training.device import peak_mib_since, reset_peak, resolve_device, synchronize
from agwm_problems import build_engine, engine_config_dir
from agwm_problems.engine import attention_kernels
from agwm_problems.engine_settings import load_engine_settings

REFERENCE = "reverse-T5"
METHODS = {  # row: (engine YAML, settings of the inner level for the call)
    "darts": ("darts", {}), "opt_darts": ("opt_darts", {}), "sama": ("sama", {}),
    "reverse-T1": ("reverse", {"unroll_steps": 1}), "reverse-T2": ("reverse", {"unroll_steps": 2}),
    REFERENCE: ("reverse", {"unroll_steps": 5}),
    "cg": ("cg", {}), "neumann": ("neumann", {}),
}


def take_inner_steps(inner, count: int) -> None:
    """``count`` inner steps as Betty's engine takes them, each kept as a record (reverse-T5's settings)."""
    inner._config = dataclasses.replace(inner.config, type="agwm_reverse", unroll_steps=count)
    for _ in range(count):
        inner.cur_batch = inner.get_batch()
        inner.one_step_descent(inner.cur_batch)
        if inner.scheduler is not None:
            inner.scheduler.step()


def point_rows(cfg, data, device, at: int) -> list[dict]:
    darts = load_engine_settings(os.path.join(engine_config_dir(), "darts.yaml"))
    model = build_model(cfg, data.task, with_mixup=True, device=device)
    torch.manual_seed(stream_seed(cfg.seed, "dropout/search0"))
    split = random_splits(len(data.train), cfg.search.folds, cfg.search.split_ratio, cfg.seed)[0]
    (inner, outer), _ = bilevel_problems(cfg, darts, data, model, 0, *split)
    build_engine(inner, outer, darts.engine, at, device).run()
    take_inner_steps(inner, 5)
    outer.cur_batch = outer.get_batch()
    alphas, weights = outer.trainable_parameters(), inner.trainable_parameters()
    grads = torch.autograd.grad(outer.training_step(outer.cur_batch), alphas + weights, allow_unused=True)
    direct = [torch.zeros_like(p) if g is None else g for g, p in zip(grads[:len(alphas)], alphas)]
    vector = [torch.zeros_like(p) if g is None else g for g, p in zip(grads[len(alphas):], weights)]
    results = {}
    for row, (yaml_name, extra) in METHODS.items():
        settings = load_engine_settings(os.path.join(engine_config_dir(), yaml_name + ".yaml"))
        inner._config = dataclasses.replace(settings.inner, **extra)
        before = reset_peak(device)
        synchronize(device)
        start = time.perf_counter()
        with attention_kernels(inner.config.type, device):
            indirect = jvp_fn_mapping[inner.config.type](vector, inner, outer, False)
        synchronize(device)
        seconds = time.perf_counter() - start
        total = torch.cat([(d + i).flatten() for d, i in zip(direct, indirect)]).detach().double()
        results[row] = {"total": total, "indirect": torch.cat([i.flatten() for i in indirect]).detach().double(),
                        "seconds": seconds, "peak_mib": peak_mib_since(device, before)}
    reference, one_step = results[REFERENCE], results["reverse-T1"]
    rows = []
    for row, r in results.items():
        rows.append({
            "outer_step": at, "method": row,
            "cosine": cosine(r["total"], reference["total"], dim=0).item(),
            "norm_ratio": (r["total"].norm() / reference["total"].norm()).item(),
            "indirect_cosine": cosine(r["indirect"], reference["indirect"], dim=0).item(),
            "indirect_norm_ratio": (r["indirect"].norm() / reference["indirect"].norm()).item(),
            "indirect_share": (r["indirect"].norm() / r["total"].norm()).item(),
            "indirect_cosine_to_T1": cosine(r["indirect"], one_step["indirect"], dim=0).item(),
            "seconds": r["seconds"], "peak_mib": r["peak_mib"],
            "alpha_mean": alpha_summary(model)["alpha_mean"]})
    return rows


def markdown(rows: list[dict], machine: str, command: str) -> str:
    lines = [f"Command: `{command}`", "", f"Machine: {machine}", "",
             "| outer step | method | cos to reverse-T5 | norm / reverse-T5 | indirect: cos | indirect: norm ratio "
             "| ‖indirect‖ / ‖total‖ | indirect: cos to reverse-T1 | seconds | peak memory (MiB) |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['outer_step']} | {r['method']} | {r['cosine']:.4f} | {r['norm_ratio']:.3f} | "
                     f"{r['indirect_cosine']:.3f} | {r['indirect_norm_ratio']:.3g} | {r['indirect_share']:.3g} | "
                     f"{r['indirect_cosine_to_T1']:.3f} | "
                     f"{r['seconds']:.2f} | {r['peak_mib']:.0f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    p = parser(__doc__.splitlines()[0], "search")
    p.add_argument("--at", type=int, nargs="+", default=[0, 20], help="outer steps of the darts search (default 0 20)")
    args = p.parse_args()
    for at in args.at:
        if at < 0:
            p.error(f"--at {at} is not allowed: at least 0")
    cfg = run_config(args, "search")
    device = resolve_device(cfg.device)
    data = load_run_data(cfg, device)
    rows = [row for at in args.at for row in point_rows(cfg, data, device, at)]
    table = markdown(rows, machine_description(device), "python " + " ".join(sys.argv))
    print(table)
    os.makedirs(cfg.output_dir, exist_ok=True)
    with open(os.path.join(cfg.output_dir, "table.md"), "w") as f:
        f.write(table)
    with open(os.path.join(cfg.output_dir, "rows.jsonl"), "w") as f:
        f.writelines(json.dumps(r) + "\n" for r in rows)


if __name__ == "__main__":
    main_guard(main)
