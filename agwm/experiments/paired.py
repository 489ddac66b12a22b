"""Grid records as scores by (method, task, size) and seed, and the statistics of paired seeds.

Every spread is the sample standard deviation over seeds, s = sqrt(sum_i (x_i - mean)^2 / (n - 1))
(0 for a single seed). A paired difference is d_i = score(method, seed i) - score(vanilla, seed i)
over the seeds both have; its 95% interval is mean(d) +- t_{0.975, n-1} s(d) / sqrt(n)."""

from __future__ import annotations

import math
import statistics
from collections import defaultdict

from agwm.data import TASKS
from agwm.training.device import probe_workload

BASELINE = "vanilla"


def merge_records(records: list[dict]) -> list[dict]:
    """One record per run key; a key recorded twice (a method shared by two grids) must have
    the same score both times."""
    merged: dict[str, dict] = {}
    for r in records:
        seen = merged.setdefault(r["key"], r)
        if seen["score"] != r["score"]:
            raise ValueError(f"{r['key']} is recorded twice with different scores ({seen['score']}, {r['score']})")
    return list(merged.values())


def task_metric(record: dict) -> str:
    """The headline metric a record's score is. Records carry it; for records written before they did,
    the one set, else the GLUE preset's, else what the user-file default must have been (accuracy where
    the dev scores hold it, spearman otherwise)."""
    if record.get("metric"):
        return record["metric"]
    config = record.get("config", {})
    if config.get("metric"):
        return config["metric"]
    if record["task"] in TASKS and not config.get("train_file"):
        return TASKS[record["task"]].task.metric
    return "accuracy" if "accuracy" in (record.get("dev") or {}) else "spearman"


def split_unscored(records: list[dict]) -> tuple[list[dict], str | None]:
    """(the records with a score, a line counting those without: failed runs, which stopped with a
    message, and runs whose metric was undefined, such as a correlation of constant predictions);
    neither kind enters a mean."""
    scored = [r for r in records if r.get("score") is not None]
    failed = [r["key"] for r in records if r.get("score") is None and r.get("failed")]
    undefined = [r["key"] for r in records if r.get("score") is None and not r.get("failed")]
    if not failed and not undefined:
        return scored, None
    parts = [f"{len(keys)} {kind} ({', '.join(keys[:5])}{', ...' if len(keys) > 5 else ''})"
             for kind, keys in (("failed", failed), ("with an undefined score", undefined)) if keys]
    return scored, f"Left out of every table: {'; '.join(parts)}."


def seeds_text(seeds) -> str:
    """``seed 1`` or ``seeds 1, 2``, in order."""
    seeds = sorted(seeds)
    return f"seed{'s' * (len(seeds) > 1)} {', '.join(map(str, seeds))}"


def learned_nothing(records: list[dict]) -> dict[tuple[str, str, int | str], list[int]]:
    """(method, task, size) -> the seeds whose score carries a ``warning``: every prediction one
    class, or a regression's predictions nearly constant (:func:`agwm.metrics.compute_metrics`)."""
    warned: dict = defaultdict(list)
    for r in records:
        if (r.get("dev") or {}).get("warning"):
            warned[r["method"], r["task"], r["train_size"]].append(r["seed"])
    return dict(warned)


def mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.mean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def scores_by_cell(records: list[dict]) -> dict[tuple[str, str, int], dict[int, float]]:
    """(method, task, size) -> {seed: score}."""
    cells: dict = defaultdict(dict)
    for r in records:
        cells[r["method"], r["task"], r["train_size"]][r["seed"]] = r["score"]
    return cells


def in_order(values, order=None) -> list:
    """The distinct values, those named in ``order`` first and in its order, the rest sorted."""
    order = order or []
    return sorted(set(values), key=lambda v: (order.index(v) if v in order else len(order), v))


def size_order(value) -> tuple:
    """A sort key for training-set sizes (numbers, then names such as ``all``), or any values of
    one record field."""
    return (isinstance(value, str), str(value)) if isinstance(value, str) else (False, value)


def paired_by_seed(cells: dict, method: str, task: str, size: int, base: str = BASELINE) -> dict[int, float]:
    """seed i -> d_i = score(method, seed i) - score(base, seed i), over the seeds both have."""
    mine, theirs = cells.get((method, task, size), {}), cells.get((base, task, size), {})
    return {s: mine[s] - theirs[s] for s in sorted(set(mine) & set(theirs))}


def paired_differences(cells: dict, method: str, task: str, size: int, base: str = BASELINE) -> list[float]:
    """d_i = score(method, seed i) - score(base, seed i) over the seeds both have, in seed order."""
    return list(paired_by_seed(cells, method, task, size, base).values())


def task_mean(cells: dict, method: str, task: str, size: int) -> float:
    return statistics.mean(cells[method, task, size].values())


def best_by_mean(cells: dict, methods, task: str, size: int) -> str:
    """The method with the task's highest mean (picked on the same seeds it is then compared on, so its
    lead is flattered)."""
    return max((m for m in methods if cells.get((m, task, size))), key=lambda m: task_mean(cells, m, task, size))


def paired_p_value(diffs: list[float]) -> float | None:
    """Two-sided one-sample t-test of the paired differences against 0: t = mean(d) / (s(d) / sqrt(n)),
    n - 1 degrees of freedom; None below two seeds or for identical differences."""
    if len(diffs) < 2 or statistics.stdev(diffs) == 0:
        return None
    from scipy.stats import ttest_1samp

    return float(ttest_1samp(diffs, 0.0).pvalue)


def wilcoxon_p_value(diffs: list[float]) -> float | None:
    """Two-sided Wilcoxon signed-rank test of the paired differences against 0 (scipy's exact
    distribution for small samples without ties); None below two seeds or when every d_i is 0."""
    if len(diffs) < 2 or not any(diffs):
        return None
    from scipy.stats import wilcoxon

    return float(wilcoxon(diffs).pvalue)


def t_half_width(std: float, n: int, level: float = 0.95) -> float:
    """The half-width of the t interval of a mean of n paired differences: t_{(1 + level) / 2, n - 1} s / sqrt(n)."""
    from scipy.stats import t

    return t.ppf((1 + level) / 2, n - 1) * std / math.sqrt(n)


def mean_interval(diffs: list[float], level: float = 0.95) -> tuple[float, float] | None:
    """The t interval of the mean paired difference, mean(d) -+ ``t_half_width``(s(d), n); None below
    two seeds."""
    if len(diffs) < 2:
        return None
    mean, std = mean_std(diffs)
    half = t_half_width(std, len(diffs), level)
    return mean - half, mean + half


def paired_spread(records: list[dict], size: int) -> tuple[float, int]:
    """The pooled sample std of the paired differences to vanilla over every (method, task) cell
    with at least two seeds, s_p = sqrt(sum_c (n_c - 1) s_c^2 / sum_c (n_c - 1)), and its degrees
    of freedom sum_c (n_c - 1); (nan, 0) when no cell has two seeds."""
    cells = scores_by_cell(records)
    sum_squares, dof = 0.0, 0
    for method, task, cell_size in cells:
        if cell_size != size or method == BASELINE:
            continue
        diffs = paired_differences(cells, method, task, size)
        if len(diffs) > 1:
            sum_squares += (len(diffs) - 1) * statistics.variance(diffs)
            dof += len(diffs) - 1
    return ((sum_squares / dof) ** 0.5, dof) if dof else (float("nan"), 0)


def seeds_needed(spread: float, resolution: float = 3.0, level: float = 0.95) -> int:
    """The fewest seeds n >= 2 whose t interval of a paired mean difference has a half-width
    (``t_half_width``) of at most ``resolution`` points, for s = ``spread``."""
    if not spread < math.inf:
        raise ValueError(f"spread must be a finite number of points, got {spread}")
    n = 2
    while t_half_width(spread, n, level) > resolution:
        n += 1
    return n


def time_ratios(records: list[dict]) -> tuple[dict, dict]:
    """Each run's total wall time t over vanilla's t_v on the same (task, size, seed), by (method,
    task, size). Where both records carry a speed probe p of the same workload (:mod:`agwm.training.device`)
    the ratio is (t / p) / (t_v / p_v), which roughly cancels a difference in the machine's speed
    between the two runs (``scripts/bench_speed_probe.py`` measures how roughly). Also returns the
    count of those corrected ratios by method."""
    runs = {(r["method"], r["task"], r["train_size"], r["seed"]): r for r in records}
    ratios: dict = defaultdict(list)
    corrected: dict = defaultdict(int)
    for (method, task, size, seed), r in runs.items():
        base = runs.get((BASELINE, task, size, seed))
        if base is None or not base["wall_time_s"]["total"]:
            continue
        ratio = r["wall_time_s"]["total"] / base["wall_time_s"]["total"]
        workload = probe_workload(r)
        if workload is not None and workload == probe_workload(base):
            ratio *= base["speed_probe_s"] / r["speed_probe_s"]
            corrected[method] += 1
        ratios[(method, task, size)].append(ratio)
    return ratios, corrected


def median_times(records: list[dict], size: int) -> dict[str, float]:
    """method -> the median of its :func:`time_ratios` over all its tasks and seeds at this size."""
    ratios, _ = time_ratios([r for r in records if r["train_size"] == size])
    pooled: dict[str, list[float]] = defaultdict(list)
    for (method, _, _), values in ratios.items():
        pooled[method].extend(values)
    return {method: statistics.median(values) for method, values in pooled.items()}
