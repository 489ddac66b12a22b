"""Plots from grid records and search logs: score against training-set size, and how the
attention alpha = A B / r moved in a search and where it ended, by layer and module."""

from __future__ import annotations

import csv
import re
from collections import defaultdict

import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from agwm.data import TASKS
from agwm.experiments.paired import BASELINE, in_order, mean_std, scores_by_cell, size_order, task_metric


def _dodge(i: int, n: int, spread: float = 1.25) -> float:
    """The x factor of method i of n, so that the methods at one size sit side by side, in
    [1 / spread, spread] (inside the panel's [size / 1.4, size * 1.4] for any n)."""
    centre = (n - 1) / 2
    return spread ** ((i - centre) / centre) if n > 1 else 1.0


def size_positions(sizes: set) -> dict:
    """Where each training-set size sits on the log x axis: at itself when all are numbers, else
    (``all``: a user file's every row) the numbers in order, then the names, a factor of 2 apart."""
    if all(isinstance(s, (int, float)) for s in sizes):
        return {s: s for s in sizes}
    ordered = sorted(sizes, key=size_order)
    return {s: 2 ** k for k, s in enumerate(ordered)}


def plot_score_vs_size(records: list[dict], path: str,
                       constant: dict[str, tuple[float, str | None]] | None = None) -> None:
    """One panel per task: mean score against training-set size per method, std error bars; with
    ``constant`` (task -> score of one class predicted everywhere, as ``constant_table``), that
    level as a dashed line where it falls inside the scores' range (MCC's or Spearman's 0 would
    squeeze them)."""
    cells = scores_by_cell(records)
    tasks = in_order([t for _, t, _ in cells], list(TASKS))
    metrics = {r["task"]: task_metric(r) for r in records}
    methods = in_order([m for m, _, _ in cells], [BASELINE])
    fig, axes = plt.subplots(1, len(tasks), figsize=(4 * len(tasks), 3.4), squeeze=False)
    palette = plt.get_cmap("tab20" if len(methods) > 10 else "tab10")
    colors = {method: palette(i % palette.N) for i, method in enumerate(methods)}  # one colour per method
    level_drawn = False
    for ax, task in zip(axes[0], tasks):
        at = size_positions({s for _, t, s in cells if t == task})
        for i, method in enumerate(methods):
            sizes = sorted((s for m, t, s in cells if m == method and t == task), key=at.get)
            if not sizes:
                continue
            stats = [mean_std(list(cells[method, task, s].values())) for s in sizes]
            dodge = _dodge(i, len(methods))
            ax.errorbar([at[s] * dodge for s in sizes], [m for m, _ in stats], yerr=[s for _, s in stats],
                        marker="o", capsize=3, label=method, color=colors[method])
        low, high = ax.get_ylim()
        if constant and task in constant and low < constant[task][0] < high:
            ax.axhline(constant[task][0], color="grey", linestyle="--", linewidth=1)
            level_drawn = True
        ax.set_title(f"{task} ({metrics[task]})")
        ax.set_xlabel("training examples")
        ax.set_xscale("log")
        ticks = sorted(at, key=at.get)
        ax.set_xticks([at[s] for s in ticks], [str(s) for s in ticks])
        ax.set_xlim(at[ticks[0]] / 1.4, at[ticks[-1]] * 1.4)
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    axes[0][0].set_ylabel("score (mean +- std over seeds)")
    handles = [plt.Line2D([], [], color=colors[m], marker="o", linestyle="") for m in methods]
    labels = list(methods)
    if level_drawn:
        handles.append(plt.Line2D([], [], color="grey", linestyle="--", linewidth=1))
        labels.append("one class everywhere")
    fig.legend(handles, labels, loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)


def plot_search(log_csv: str, path: str) -> None:
    """A search's ``log.csv``: inner and outer loss, and the mean alpha = A B / r and W0 weight
    (1 - A)(1 - B) / r over all layers, against the step, one line per fold."""
    series = read_search_log(log_csv)
    panels = [("losses", [n for n in ("inner_loss", "outer_loss", "joint_loss") if any(k[0] == n for k in series)]),
              ("mean alpha = A B / r", ["alpha_mean"]), ("mean W0 weight", ["w0_weight_mean"])]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.4))
    for ax, (title, names) in zip(axes, panels):
        for (name, fold), points in sorted(series.items()):
            if name in names:
                ax.plot(*zip(*points), label=f"{name.replace('_loss', '')} fold {fold}")
        ax.set_title(title)
        ax.set_xlabel("outer iteration")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_alpha_layers(alphas_path: str, path: str) -> None:
    """The learned attention per layer and module: heatmaps of the mean alpha = A B / r and of
    the mean W0 weight (1 - A)(1 - B) / r, layers down, module types across."""
    from safetensors.torch import load_file  # torch: only the plots of alphas pay for it

    from agwm.mixup import mixing_means, read_alpha_settings

    tensors, settings = load_file(alphas_path), read_alpha_settings(alphas_path)
    rank = settings["rank"]
    cells: dict = {}
    for name in settings["layers"]:
        a, b = tensors[f"{name}.A"].double(), tensors[f"{name}.B"].double()
        match = re.search(r"\.(\d+)\.(.*)$", name)
        layer, module = (match.group(1), match.group(2)) if match else tuple(name.rsplit(".", 2)[-2:])  # pooler.dense
        cells[layer, module] = mixing_means(a, b, rank, settings["formulation"])
    layers = sorted({k[0] for k in cells}, key=lambda v: (not v.isdigit(), int(v) if v.isdigit() else 0, v))
    modules = list(dict.fromkeys(k[1] for k in cells))
    fig, axes = plt.subplots(1, 2, figsize=(3.0 + 0.8 * len(modules) * 2, 1.6 + 0.4 * len(layers)))
    w0_weight = "1 - alpha" if settings["formulation"] == "convex" else "(1-A)(1-B)/r"
    panels = (("mean alpha = A B / r", "%.4f"), (f"mean W0 weight {w0_weight}", "%.1e"))
    for ax, index, (title, number_format) in zip(axes, (0, 1), panels):
        grid = np.full((len(layers), len(modules)), np.nan)
        for (layer, module), values in cells.items():
            grid[layers.index(layer), modules.index(module)] = values[index]
        image = ax.imshow(grid, aspect="auto", cmap="viridis")
        ax.set_xticks(range(len(modules)), modules, rotation=35, ha="right", fontsize=7)
        ax.set_yticks(range(len(layers)), [f"layer {v}" if v.isdigit() else v for v in layers], fontsize=7)
        ax.set_title(title, fontsize=9)
        fig.colorbar(image, ax=ax, format=number_format)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def read_search_log(log_csv: str) -> dict[tuple[str, int], list[tuple[int, float]]]:
    """A search's ``log.csv`` as (name, fold) -> [(step, value), ...]."""
    series: dict = defaultdict(list)
    with open(log_csv) as f:
        for row in csv.DictReader(f):
            if row["phase"] == "search":
                series[row["name"], int(row["fold"])].append((int(row["step"]), float(row["value"])))
    return series


def plot_alpha_movement(searches: dict[str, str], path: str) -> None:
    """How alpha moves in several searches (label -> search folder): the mean alpha and the mean
    W0 weight against the outer iteration (fold 0), and the spread of the final fold-averaged
    entries of A and B (box plots: how far single entries left their initial value)."""
    from safetensors.torch import load_file

    fig, axes = plt.subplots(1, 3, figsize=(15, 3.8))
    for label, folder in searches.items():
        series = read_search_log(f"{folder}/log.csv")
        axes[0].plot(*zip(*series["alpha_mean", 0]), label=label)
        axes[1].plot(*zip(*series["w0_weight_mean", 0]), label=label)
    factors = [np.concatenate([t.flatten().float().numpy() for t in load_file(f"{folder}/alphas.safetensors").values()])
               for folder in searches.values()]
    axes[2].boxplot(factors, whis=(1, 99), showfliers=False)
    axes[2].set_xticks(range(1, len(searches) + 1), list(searches), rotation=30, ha="right", fontsize=7)
    axes[0].set_title("mean alpha = A B / r (fold 0)")
    axes[1].set_title("mean W0 weight (fold 0)")
    axes[1].set_yscale("log")
    axes[2].set_title("final entries of A and B (1st-99th percentile)")
    for ax in axes[:2]:
        ax.set_xlabel("outer iteration")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
