"""The Markdown tables of a report, in the paper's layout, from grid records (the statistics are
:mod:`agwm.experiments.paired`'s; the plots are in :mod:`agwm.experiments.plots`)."""

from __future__ import annotations

import math
import statistics
from collections import defaultdict

from agwm.data import TASKS
from agwm.errors import ConfigError
from agwm.experiments.paired import (
    BASELINE,
    best_by_mean,
    in_order,
    learned_nothing,
    mean_interval,
    mean_std,
    median_times,
    paired_by_seed,
    paired_differences,
    paired_p_value,
    paired_spread,
    scores_by_cell,
    seeds_needed,
    seeds_text,
    size_order,
    time_ratios,
    wilcoxon_p_value,
)


def format_cell(values: list[float], signed: bool = False) -> str:
    """``mean +- std (n)``; one value has no sample std: ``mean (1)``."""
    mean, std = mean_std(values)
    text = f"{mean:+.1f}" if signed else f"{mean:.1f}"
    return f"{text} +- {std:.1f} ({len(values)})" if len(values) > 1 else f"{text} (1)"


def score_table(records: list[dict], size: int) -> str:
    """Methods x tasks at one training-set size: mean +- std (n seeds), and the average over tasks of
    the task means. The average uses only the seeds that every cell of the table holds (rows missing
    a task have none), so that every row's average is over the same runs; the header names those
    seeds when some cell holds more. A table of one task has no average column."""
    cells = scores_by_cell(records)
    methods = in_order([m for m, _, s in cells if s == size], [BASELINE])
    tasks = in_order([t for _, t, s in cells if s == size], list(TASKS))
    averaged = len(tasks) > 1
    complete = [m for m in methods if all(cells.get((m, t, size)) for t in tasks)]
    seed_sets = [set(cells[m, t, size]) for m in complete for t in tasks]
    common = sorted(set.intersection(*seed_sets)) if seed_sets else []
    header = " average |"
    if common and any(len(seeds) > len(common) for seeds in seed_sets):
        header = f" average ({seeds_text(common)}: those every cell has) |"
    lines = [f"| method | {' | '.join(tasks)} |" + header * averaged, "|---" * (len(tasks) + 1 + averaged) + "|"]
    for method in methods:
        row = [format_cell(list(cells[method, task, size].values())) if cells.get((method, task, size)) else "-"
               for task in tasks]
        average = "-"
        if method in complete and common:
            task_means = [statistics.mean(cells[method, t, size][s] for s in common) for t in tasks]
            average = f"{statistics.mean(task_means):.1f}"
        lines.append(f"| {method} | {' | '.join(row)} |" + f" {average} |" * averaged)
    return "\n".join(lines)


def interval_text(interval: tuple[float, float] | None) -> str:
    return "-" if interval is None else f"{interval[0]:+.1f} to {interval[1]:+.1f}"


def p_text(p_value: float | None) -> str:
    """A p-value to two significant digits; - where the test is not defined."""
    return "-" if p_value is None else f"{p_value:.2g}"


def comparison_table(records: list[dict], method: str, base: str) -> str:
    """``method`` minus ``base`` for each task and size both ran: d_i per seed, mean +- std (n), the
    95% interval of the mean (:func:`mean_interval`), and the p-values of the t-test
    (:func:`paired_p_value`) and the Wilcoxon signed-rank test."""
    cells = scores_by_cell(records)
    lines = [f"| task | size | {method} - {base} per seed | mean +- std (n) | 95% interval | t-test p | Wilcoxon p |",
             "|---|---|---|---|---|---|---|"]
    for task in in_order({t for m, t, _ in cells if m == method}, list(TASKS)):
        for size in sorted((s for m, t, s in cells if m == method and t == task), key=size_order):
            by_seed = paired_by_seed(cells, method, task, size, base)
            if by_seed:
                diffs = list(by_seed.values())
                per_seed = ", ".join(f"{seed}: {d:+.1f}" for seed, d in by_seed.items())
                lines.append(f"| {task} | {size} | {per_seed} | {format_cell(diffs, signed=True)} | "
                             f"{interval_text(mean_interval(diffs))} | "
                             f"{p_text(paired_p_value(diffs))} | {p_text(wilcoxon_p_value(diffs))} |")
    return "\n".join(lines)


def paired_cell(diffs: list[float]) -> str:
    """``mean +- std (n), p`` of paired differences (p of :func:`paired_p_value`, where defined); - for none."""
    if not diffs:
        return "-"
    p_value = paired_p_value(diffs)
    return format_cell(diffs, signed=True) + (f", p {p_text(p_value)}" if p_value is not None else "")


def paired_table(records: list[dict], size: int) -> str:
    """Each method minus vanilla on the same task and seed: mean +- std of the differences (n),
    and the p-value of :func:`paired_p_value`."""
    cells = scores_by_cell(records)
    methods = [m for m in in_order([m for m, _, s in cells if s == size]) if m != BASELINE]
    tasks = in_order([t for _, t, s in cells if s == size], list(TASKS))
    lines = [f"| method - vanilla | {' | '.join(tasks)} |", "|---" * (len(tasks) + 1) + "|"]
    for method in methods:
        row = [paired_cell(paired_differences(cells, method, task, size)) for task in tasks]
        lines.append(f"| {method} | {' | '.join(row)} |")
    return "\n".join(lines)


def versus_best_table(records: list[dict], size: int) -> str:
    """Each method minus the method with the task's highest mean, on the same seeds: the mean
    difference and the 95% t interval of it (the best is picked on these seeds, so its lead is
    flattered); and each method's median time over vanilla's on the same task and seed
    (:func:`time_ratios`, probe-corrected where both runs have a probe)."""
    cells = scores_by_cell(records)
    methods = in_order([m for m, _, s in cells if s == size], [BASELINE])
    tasks = in_order([t for _, t, s in cells if s == size], list(TASKS))
    times = median_times(records, size)
    lines = [f"| method | {' | '.join(tasks)} | time / vanilla (median) |", "|---" * (len(tasks) + 2) + "|"]
    best = {t: best_by_mean(cells, methods, t, size) for t in tasks}
    for method in methods:
        row = []
        for task in tasks:
            diffs = paired_differences(cells, method, task, size, base=best[task])
            if method == best[task]:
                row.append("best")
            elif not diffs:
                row.append("-")
            else:
                row.append(f"{statistics.mean(diffs):+.1f} [{interval_text(mean_interval(diffs))}]")
        row.append(f"{times[method]:.2f}x" if method in times else "-")
        lines.append(f"| {method} | {' | '.join(row)} |")
    return "\n".join(lines)


def per_seed_table(records: list[dict], size: int) -> str:
    """Methods x tasks, each cell the score of every seed in order and, for a method other than
    vanilla, d_i = score(method, seed i) - score(vanilla, seed i) in brackets; - for a seed not run."""
    cells = scores_by_cell(records)
    methods = in_order([m for m, _, s in cells if s == size], [BASELINE])
    tasks = in_order([t for _, t, s in cells if s == size], list(TASKS))
    seeds = sorted({seed for (_, _, s), by_seed in cells.items() if s == size for seed in by_seed})
    lines = [f"| method | {' | '.join(tasks)} |", "|---" * (len(tasks) + 1) + "|"]
    for method in methods:
        row = []
        for task in tasks:
            mine, base = cells.get((method, task, size), {}), cells.get((BASELINE, task, size), {})
            entries = []
            for seed in seeds:
                if seed not in mine:
                    entries.append("-")
                elif method != BASELINE and seed in base:
                    entries.append(f"{mine[seed]:.1f} [{mine[seed] - base[seed]:+.1f}]")
                else:
                    entries.append(f"{mine[seed]:.1f}")
            row.append(", ".join(entries) if mine else "-")
        lines.append(f"| {method} | {' | '.join(row)} |")
    return "\n".join(lines)


def time_table(records: list[dict]) -> str:
    """Each method's mean time ratio to vanilla (:func:`time_ratios`) over all its paired runs; the
    last column counts the speed-corrected ones."""
    by_cell, corrected = time_ratios(records)
    ratios: dict = defaultdict(list)
    for (method, _, _), values in by_cell.items():
        ratios[method] += values
    lines = ["| method | time / vanilla | runs | of them speed-corrected |", "|---|---|---|---|"]
    for method in in_order(ratios, [BASELINE]):
        lines.append(f"| {method} | {statistics.mean(ratios[method]):.2f}x | {len(ratios[method])} | "
                     f"{corrected[method]} |")
    return "\n".join(lines)


def size_time_table(records: list[dict]) -> str:
    """Whole runs against the training-set size n, per method and task with two or more sizes: the
    mean total wall time t at each n, the exponent b of the least-squares fit log t = a + b log n,
    and the mean time ratio to vanilla at each n (:func:`time_ratios`). b = 1 is a cost linear in n."""
    sizes = sorted({r["train_size"] for r in records}, key=size_order)
    seconds: dict = defaultdict(list)
    for r in records:
        seconds[(r["method"], r["task"], r["train_size"])].append(r["wall_time_s"]["total"])
    ratios, _ = time_ratios(records)
    lines = ["| method | task | " + " | ".join(f"s at {n}" for n in sizes) + " | b (t ~ n^b) | "
             + " | ".join(f"/ vanilla at {n}" for n in sizes) + " |", "|---" * (2 + 2 * len(sizes) + 1) + "|"]
    methods = in_order({r["method"] for r in records}, [BASELINE])
    for method in methods:
        for task in in_order({r["task"] for r in records}, list(TASKS)):
            means = {n: statistics.mean(seconds[(method, task, n)]) for n in sizes if seconds.get((method, task, n))}
            here = [n for n in means if not isinstance(n, str)]  # a named size (all) has no n to fit
            if len(here) < 2:
                continue
            b = statistics.linear_regression([math.log(n) for n in here], [math.log(means[n]) for n in here]).slope
            times = [f"{means[n]:.0f}" if n in means else "-" for n in sizes]
            shares = [f"{statistics.mean(ratios[(method, task, n)]):.2f}x" if ratios.get((method, task, n)) else "-"
                      for n in sizes]
            lines.append(f"| {method} | {task} | " + " | ".join(times) + f" | {b:.2f} | " + " | ".join(shares) + " |")
    return "\n".join(lines)


def settings_table(records: list[dict]) -> str:
    """Each method entry, its kind and its overrides: what the rows of the other tables differ by."""
    entries = {r["method"]: (r.get("kind", r["method"]), r.get("settings") or []) for r in records}
    lines = ["| method | kind | settings |", "|---|---|---|"]
    for method in in_order(entries, [BASELINE]):
        kind, settings = entries[method]
        lines.append(f"| {method} | {kind} | {' '.join(settings) or 'defaults'} |")
    return "\n".join(lines)


ABLATION_KINDS = ("mixup", "joint-finetune", "random-alpha")


ABLATION_SECTIONS = ("hypergrad", "mixup.", "search.", "finetune.")


def method_changes(config: dict, kind: str = "mixup", reference: dict | None = None) -> list[str]:
    """The method settings (hypergrad, mixup.*, search.*, finetune.* but the held-out switch) of a
    recorded run of this kind of method that differ from ``reference`` (a recorded config; the
    project's current defaults when None or empty), as ``key=value``; a setting that only other kinds
    read (:data:`agwm.resolved.READ_ONLY_BY`) is not a change."""
    from agwm.config import RunConfig
    from agwm.resolved import as_recorded, changed_settings

    changed = changed_settings(config, reference or as_recorded(RunConfig()), kind)
    return [f"{key}={value}" for key, (value, _) in sorted(changed.items())
            if key.startswith(ABLATION_SECTIONS) and key != "finetune.holdout"]


def reference_mixup(records: list[dict]) -> str | None:
    """The mixup entry closest to the current defaults (fewest changed settings, then most runs),
    against which each ablation is measured; None when the records hold no mixup entry. A grid run
    before a default changed pins the old value, so its reference still changes it."""
    runs: dict = defaultdict(int)
    changes: dict = {}
    for r in records:
        if r.get("kind") == "mixup":
            runs[r["method"]] += 1
            changes[r["method"]] = len(method_changes(r.get("config", {})))
    return min(sorted(runs), key=lambda m: (changes[m], -runs[m])) if runs else None


def ablation_table(records: list[dict], size: int, base: str = BASELINE) -> str:
    """The mixup variants (mixup, joint-finetune, random-alpha entries) run at this size: what each changes
    from the defaults (from ``base``'s settings when it is a variant), and its paired difference to
    ``base`` per task (:func:`paired_cell`). The average over tasks uses only the seeds every task of
    the row shares (as in :func:`score_table`), and names them when some task has more; a table of
    one task has none."""
    cells = scores_by_cell(records)
    tasks = in_order([t for _, t, s in cells if s == size], list(TASKS))
    configs = {r["method"]: r.get("config", {}) for r in records
               if r.get("kind") in ABLATION_KINDS and r["train_size"] == size and r["method"] != base}
    kinds = {r["method"]: r["kind"] for r in records}
    reference = next((r.get("config") for r in records if r["method"] == base and r["train_size"] == size
                      and r.get("kind") in ABLATION_KINDS), None)
    averaged = len(tasks) > 1
    origin = base if reference else "the defaults"
    lines = [f"| variant - {base} | kind | changes from {origin} | {' | '.join(tasks)} |"
             + " average |" * averaged, "|---" * (len(tasks) + 3 + averaged) + "|"]
    for method in in_order(configs):
        by_task = {task: paired_by_seed(cells, method, task, size, base) for task in tasks}
        row = [paired_cell(list(d.values())) for d in by_task.values()]
        common = set.intersection(*(set(d) for d in by_task.values()))
        average = "-"
        if common:
            task_means = [statistics.mean(d[s] for s in common) for d in by_task.values()]
            average = f"{statistics.mean(task_means):+.1f}"
            if any(len(d) > len(common) for d in by_task.values()):
                average += f" ({seeds_text(common)})"
        changes = " ".join(method_changes(configs[method], kinds[method], reference)) or "none"
        lines.append(f"| {method} | {kinds[method]} | {changes} | {' | '.join(row)} |" + f" {average} |" * averaged)
    return "\n".join(lines)


def alpha_table(records: list[dict]) -> str:
    """Per method, task and size: the means over seeds of the searched alpha = A B / r and of the
    W0 weight ((1 - A)(1 - B) / r, or 1 - alpha for the convex form)."""
    cells: dict = defaultdict(list)
    for r in records:
        if "alpha" in r:
            convex = r.get("config", {}).get("mixup", {}).get("formulation") == "convex"
            a = r["alpha"]
            cells[r["method"], r["task"], r["train_size"]].append(
                (a["a_mean"], a["b_mean"], a["alpha_mean"], 1 - a["alpha_mean"] if convex else a["w0_weight_mean"]))
    lines = ["| method | task | size | seeds | mean A | mean B | mean alpha | mean W0 weight |", "|---" * 8 + "|"]
    for (method, task, size), rows in sorted(cells.items(), key=lambda c: (c[0][0], c[0][1], size_order(c[0][2]))):
        means = [statistics.mean(column) for column in zip(*rows)]
        lines.append(f"| {method} | {task} | {size} | {len(rows)} | {means[0]:.4f} | {means[1]:.4f} | "
                     f"{means[2]:.4f} | {means[3]:.2e} |")
    return "\n".join(lines)


def constant_table(constant: dict[str, tuple[float, str | None]]) -> str:
    """Task -> the best score of one class predicted everywhere (see ``metrics.constant_prediction_score``)."""
    lines = ["| task | class predicted everywhere | score |", "|---|---|---|"]
    for task in in_order(constant, list(TASKS)):
        score, label = constant[task]
        lines.append(f"| {task} | {label if label is not None else '- (regression: no correlation)'} | {score:.1f} |")
    return "\n".join(lines)


def learned_nothing_table(records: list[dict]) -> str | None:
    """The runs that learned nothing (:func:`~agwm.experiments.paired.learned_nothing`) per method
    and task; None if there are none."""
    warned = learned_nothing(records)
    if not warned:
        return None
    lines = ["| method | task | size | runs | seeds |", "|---|---|---|---|---|"]
    for (method, task, size), seeds in sorted(warned.items(), key=lambda cell: (*cell[0][:2], size_order(cell[0][2]))):
        ran = sum(1 for r in records if (r["method"], r["task"], r["train_size"]) == (method, task, size))
        lines.append(f"| {method} | {task} | {size} | {len(seeds)} of {ran} | {seeds_text(seeds)} |")
    return "\n".join(lines)


def markdown_report(records: list[dict], constant: dict[str, tuple[float, str | None]] | None = None) -> str:
    """The report; ``constant`` (task -> best one-class score on the scored split) adds the level a
    model must pass to have learned anything."""
    sizes = sorted({r["train_size"] for r in records}, key=size_order)
    seeds = sorted({r["seed"] for r in records})
    evaluated = {r.get("evaluated_on", "dev") for r in records}
    if evaluated == {"holdout"}:
        metric = ("the headline metric of each task in points, on the held-out 20% of each training sample "
                  "(finetune.holdout: never the dev set)")
    elif evaluated == {"dev"}:
        metric = "the headline dev metric of each task in points"
    else:
        raise ValueError("the records mix dev and held-out scores; report them separately")
    parts = [f"# Results\n\n{len(records)} runs; seeds {seeds}; cells are mean +- sample std over seeds "
             f"(number of seeds); {metric}.\n",
             f"## Methods and their settings\n\n{settings_table(records)}\n"]
    if constant:
        parts.append("## What one class predicted everywhere scores\n\nThe best of the task's classes on the "
                     f"same split; a method at or below it has not learned the task.\n\n{constant_table(constant)}\n")
    nothing = learned_nothing_table(records)
    if nothing:
        parts.append("## Runs that learned nothing\n\nEvery prediction one class, or regression predictions that "
                     "barely vary (a `warning` in the record); they stay in every table.\n\n" + nothing + "\n")
    has_baseline = any(r["method"] == BASELINE for r in records)
    for size in sizes:
        parts.append(f"## {size} training examples\n\n{score_table(records, size)}\n")
        if has_baseline:
            parts.append("Paired differences to vanilla (same task and seed; p: two-sided one-sample t-test "
                         "against 0, not corrected for the number of comparisons):\n\n"
                         f"{paired_table(records, size)}\n")
        if len({r["method"] for r in records if r["train_size"] == size}) > 2:
            parts.append("Each method minus the task's best mean on the same seeds, mean and 95% interval; "
                         "time over vanilla's on the same seed, median:\n\n"
                         f"{versus_best_table(records, size)}\n")
        seeds_here = sorted({r["seed"] for r in records if r["train_size"] == size})
        parts.append(f"Per seed ({', '.join(map(str, seeds_here))} in order; [difference to vanilla on the same "
                     f"seed]):\n\n{per_seed_table(records, size)}\n")
        if has_baseline and any(r.get("kind") in ABLATION_KINDS for r in records if r["train_size"] == size):
            parts.append("Ablations: each mixup variant minus vanilla (same task and seed), as in the paired "
                         "differences above:\n\n"
                         f"{ablation_table(records, size)}\n")
            reference = reference_mixup([r for r in records if r["train_size"] == size])
            against_reference = ablation_table(records, size, base=reference) if reference else ""
            if against_reference.count("\n") > 1:  # a row below the header
                parts.append(f"Each variant minus {reference}, the mixup entry closest to the defaults, on the "
                             f"same task and seed: what the variant's changes from it do:\n\n{against_reference}\n")
        spread, dof = paired_spread(records, size)
        if dof:
            parts.append(f"Pooled std of a paired difference: {spread:.1f} points ({dof} degrees of freedom); "
                         f"a 3-point mean difference is resolved (half-width of the 95% t interval <= 3) with "
                         f"{seeds_needed(spread)} seeds.\n")
    if any("alpha" in r for r in records):
        parts.append(f"## Alpha after the search\n\n{alpha_table(records)}\n")
    if has_baseline:
        parts.append(f"## Relative time\n\n{time_table(records)}\n")
        if len(sizes) > 1:
            parts.append("Whole runs against the training-set size (wall seconds are the machine's, "
                         f"not speed-corrected):\n\n{size_time_table(records)}\n")
    parts.append("![score against size](score_vs_size.png)\n")
    return "\n".join(parts)


def comparison(records: list[dict], method: str, base: str) -> str:
    """:func:`comparison_table` of ``method`` and ``base``; refused, naming the methods the
    records hold, when either is not among them or they share no task, size and seed."""
    methods = sorted({r["method"] for r in records})
    unknown = [m for m in (method, base) if m not in methods]
    if unknown:
        raise ConfigError(f"--compare {method} {base} is not allowed: the results hold no "
                          f"{' or '.join(unknown)}; they hold {', '.join(methods)}")
    table = comparison_table(records, method, base)
    if table.count("\n") < 2:  # no row below the header
        raise ConfigError(f"--compare {method} {base} is not allowed: no task, size and seed has both")
    return table
