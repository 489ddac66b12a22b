"""The decision rules that grid files write before their first run, applied to the records.

Every rule reads paired differences d_i = score(method, seed i) - score(base, seed i) through their
95% t interval [lo, hi] (:func:`agwm.experiments.paired.mean_interval`) against 0 and a margin m
(1.5 points in every grid so far), and times as the median over seeds of the probe-corrected ratio
to vanilla's wall time (:func:`agwm.experiments.paired.median_times`). One function per grid file;
each returns the markdown its results README quotes (``scripts/grid_rules.py`` prints it)."""

from __future__ import annotations

import statistics
from dataclasses import dataclass

from agwm.experiments.paired import (
    best_by_mean,
    mean_interval,
    median_times,
    paired_differences,
    scores_by_cell,
    task_mean,
    time_ratios,
)

MARGIN = 1.5


@dataclass(frozen=True)
class Paired:
    """The mean of n paired differences and its 95% t interval [lo, hi]."""
    mean: float
    lo: float
    hi: float
    n: int

    def __str__(self) -> str:
        return f"{self.mean:+.1f} [{self.lo:+.1f}, {self.hi:+.1f}]"


def paired(cells: dict, method: str, base: str, task: str, size: int) -> Paired | None:
    """method minus base on the seeds both have; None below two seeds."""
    diffs = paired_differences(cells, method, task, size, base=base)
    interval = mean_interval(diffs)
    if interval is None:
        return None
    return Paired(statistics.mean(diffs), float(interval[0]), float(interval[1]), len(diffs))


def loses_or_within(p: Paired, margin: float = MARGIN) -> str:
    """A non-inferiority reading: shown to lose if hi < 0; within the margin if lo > -m."""
    said = (["shown to lose"] if p.hi < 0 else []) + ([f"within {margin:g}"] if p.lo > -margin else [])
    return ", ".join(said) or "unresolved"


def differs_or_within(p: Paired, margin: float = MARGIN) -> str:
    """An equivalence reading: shown to differ if 0 is outside [lo, hi]; within the margin if -m < lo
    and hi < m."""
    said = (["shown to differ"] if p.lo > 0 or p.hi < 0 else []) + \
        ([f"within {margin:g}"] if -margin < p.lo and p.hi < margin else [])
    return ", ".join(said) or "unresolved"


def gain_or_none(p: Paired, margin: float = MARGIN) -> str:
    """A superiority reading: shown to carry gain if lo > 0; none beyond the margin if -m < lo and hi < m."""
    said = (["shown to carry gain"] if p.lo > 0 else []) + \
        ([f"none beyond {margin:g}"] if -margin < p.lo and p.hi < margin else [])
    return ", ".join(said) or "unresolved"


def to_best(cells: dict, method: str, best: dict[str, str], tasks: list[str], size: int) -> dict[str, Paired | None]:
    """task -> method minus the task's best (None where it is the best)."""
    return {t: None if method == best[t] else paired(cells, method, best[t], t, size) for t in tasks}


def within_everywhere(intervals: dict[str, Paired | None], margin: float = MARGIN) -> bool:
    return all(p is None or p.lo > -margin for p in intervals.values())


def _methods(cells: dict, size: int) -> list[str]:
    return sorted({m for m, _, s in cells if s == size})


def _cell(p: Paired | None) -> str:
    return "best" if p is None else str(p)


def recommendation(records: list[dict], tasks: list[str], size: int, time_bound: str | None = None,
                   margin: float = MARGIN) -> str:
    """The method to recommend: the cheapest (median time over vanilla) whose interval to each task's
    best mean lies above -m on every task, among those at most ``time_bound``'s time if one is named
    and any qualifies; if none is within m everywhere, the highest mean over the tasks, said to be not
    shown to match the best."""
    cells, times = scores_by_cell(records), median_times(records, size)
    methods = [m for m in _methods(cells, size) if all(cells.get((m, t, size)) for t in tasks)]
    best = {t: best_by_mean(cells, methods, t, size) for t in tasks}
    mean_over = {m: statistics.mean(task_mean(cells, m, t, size) for t in tasks) for m in methods}
    columns = " | ".join(f"to the best, {t}" for t in tasks)
    header = f"| method | {columns} | mean | time / vanilla | within {margin:g} everywhere |"
    lines = [header, "|---" * (len(tasks) + 4) + "|"]
    within = []
    for m in sorted(methods, key=lambda m: -mean_over[m]):
        intervals = to_best(cells, m, best, tasks, size)
        ok = within_everywhere(intervals, margin)
        if ok:
            within.append(m)
        lines.append(f"| {m} | {' | '.join(_cell(intervals[t]) for t in tasks)} | {mean_over[m]:.2f} | "
                     f"{times.get(m, float('nan')):.2f}x | {'yes' if ok else 'no'} |")
    if not within:
        top = max(methods, key=mean_over.get)
        verdict = (f"no method is within {margin:g} of the best on every task: the highest mean, **{top}** "
                   f"({mean_over[top]:.2f}), not shown to match the best.")
    else:
        cheap = [m for m in within if time_bound is None or times[m] <= times[time_bound]]
        pick = min(cheap or within, key=times.get)
        verdict = f"**{pick}**, the cheapest ({times[pick]:.2f}x) within {margin:g} of the best on every task"
        if time_bound is not None and not cheap:
            verdict += f"; none is within {time_bound}'s time ({times[time_bound]:.2f}x)"
        verdict += "."
    return "\n".join(lines) + "\n\nRecommended by the rule: " + verdict


def peers_questions(records: list[dict], tasks: list[str], size: int,
                    peers: tuple[str, ...] = ("setfit", "probe", "vanilla-tuned"),
                    questions: tuple[str, ...] = ("mixup", "fold-average")) -> str:
    """experiments/peers.yaml and peers-1000.yaml. Q1 / Q2: each question method minus the task's best
    peer (highest mean), read by :func:`loses_or_within`. Q3: :func:`recommendation`."""
    cells = scores_by_cell(records)
    best_peer = {t: best_by_mean(cells, peers, t, size) for t in tasks}
    lines = [f"| | {' | '.join(tasks)} |", "|---" * (len(tasks) + 1) + "|",
             f"| best peer ({', '.join(peers)}; highest mean) | "
             + " | ".join(f"{best_peer[t]} {task_mean(cells, best_peer[t], t, size):.2f}" for t in tasks) + " |"]
    for number, method in enumerate(questions, 1):
        row = []
        for t in tasks:
            p = paired(cells, method, best_peer[t], t, size)
            row.append("-" if p is None else f"{p}: {loses_or_within(p)}")
        lines.append(f"| Q{number}: {method} - best peer | {' | '.join(row)} |")
    return "\n".join(lines) + "\n\nQ3:\n\n" + recommendation(records, tasks, size)


def stacked(records: list[dict], tasks: list[str], size: int = 300,
            entries: tuple[str, ...] = ("setfit-vanilla", "setfit-fold-average", "setfit-mixup")) -> str:
    """experiments/stacked.yaml. "Stacks": the interval to setfit lies above 0 on at least two tasks and
    above -m on the rest. The recommendation: :func:`recommendation` bounded by setfit's time."""
    cells = scores_by_cell(records)
    lines = [f"| minus setfit | {' | '.join(tasks)} | stacks |", "|---" * (len(tasks) + 2) + "|"]
    for entry in entries:
        rows = [paired(cells, entry, "setfit", t, size) for t in tasks]
        stacks = sum(p.lo > 0 for p in rows) >= 2 and all(p.lo > -MARGIN for p in rows)
        lines.append(f"| {entry} | {' | '.join(map(str, rows))} | {'yes' if stacks else 'no'} |")
    return "\n".join(lines) + "\n\n" + recommendation(records, tasks, size, time_bound="setfit")


def moves_alpha(records: list[dict], method: str, task: str, size: int, base: str = "mixup",
                factor: float = 10.0) -> tuple[int, int]:
    """(seeds whose mean W0 weight after the search is at least ``factor`` times base's on the same
    seed, seeds both have)."""
    w0 = {}
    for r in records:
        if r["task"] == task and r["train_size"] == size and "alpha" in r:
            w0[r["method"], r["seed"]] = r["alpha"]["w0_weight_mean"]
    seeds = sorted({s for m, s in w0 if m == method} & {s for m, s in w0 if m == base})
    return sum(w0[method, s] >= factor * w0[base, s] for s in seeds), len(seeds)


def reverse_horizon(records: list[dict], tasks: list[str], size: int = 300,
                    methods: tuple[str, ...] = ("reverse-T5", "reverse-T10")) -> str:
    """experiments/reverse-horizon.yaml. "Moves alpha": W0 weight at least 10 times darts' (mixup's) on
    at least 8 of the 10 seeds. "Moves the score": minus darts and minus fold-average, read by
    :func:`differs_or_within`. Beside: median time over vanilla and the largest peak memory."""
    cells, times = scores_by_cell(records), median_times(records, size)
    peak = {}
    for r in records:
        if r["method"] in methods and r.get("peak_memory_mib"):
            peak[r["method"]] = max(peak.get(r["method"], 0.0), r["peak_memory_mib"])
    lines = ["| method | task | W0 >= 10x darts' (seeds) | moves alpha | minus darts | minus fold-average |",
             "|---" * 6 + "|"]
    for method in methods:
        for t in tasks:
            if not cells.get((method, t, size)):
                lines.append(f"| {method} | {t} | - | no runs | - | - |")
                continue
            hits, n = moves_alpha(records, method, t, size)
            cols = []
            for base in ("mixup", "fold-average"):
                p = paired(cells, method, base, t, size)
                cols.append("-" if p is None else f"{p}: {differs_or_within(p)}")
            lines.append(f"| {method} | {t} | {hits} of {n} | {'yes' if n and hits >= 8 else 'no'} | "
                         f"{' | '.join(cols)} |")
    beside = ", ".join(f"{m} {times[m]:.2f}x vanilla's time, peak {peak[m] / 1024:.1f} GiB"
                       for m in methods if m in times and m in peak)
    return "\n".join(lines) + (f"\n\nBeside the rule: {beside}." if beside else "")


AVERAGING_CONTRASTS = (
    ("averaging across runs", "fold-average", "one-fold"),
    ("averaging within a run", "vanilla-swa", "vanilla"),
    ("the unused held-out parts", "whole-average", "fold-average"),
    ("more epochs", "vanilla-extra", "vanilla"),
    ("a restarted schedule", "one-fold", "vanilla-extra"),
)


def averaging_controls(records: list[dict], tasks: list[str], size: int = 300) -> str:
    """experiments/averaging-controls.yaml: each ingredient's paired contrast per task, read by
    :func:`gain_or_none`."""
    cells = scores_by_cell(records)
    lines = [f"| ingredient | contrast | {' | '.join(tasks)} |", "|---" * (len(tasks) + 2) + "|"]
    for name, method, base in AVERAGING_CONTRASTS:
        row = []
        for t in tasks:
            p = paired(cells, method, base, t, size)
            row.append("-" if p is None else f"{p}: {gain_or_none(p)}")
        lines.append(f"| {name} | {method} - {base} | {' | '.join(row)} |")
    return "\n".join(lines)


def cheaper_default(records: list[dict], task: str, size: int = 300, default: str = "mixup",
                    max_time: float = 1.5, margin: float = MARGIN) -> str:
    """experiments/cheaper-default.yaml. A candidate passes if its interval to the default has lo > -m
    and its median time over vanilla is at most ``max_time``; the default becomes the cheapest that
    passes, else stays."""
    cells, times = scores_by_cell(records), median_times(records, size)
    candidates = [m for m in _methods(cells, size) if m not in (default, "vanilla")]
    lines = [f"| candidate | minus {default} | time / vanilla | passes | minus vanilla |", "|---" * 5 + "|"]
    passing = []
    for m in sorted(candidates, key=lambda m: times.get(m, float("inf"))):
        p, v = paired(cells, m, default, task, size), paired(cells, m, "vanilla", task, size)
        ok = p is not None and p.lo > -margin and times.get(m, float("inf")) <= max_time
        if ok:
            passing.append(m)
        lines.append(f"| {m} | {p if p else '-'} | {times.get(m, float('nan')):.2f}x | {'yes' if ok else 'no'} | "
                     f"{v if v else '-'} |")
    verdict = (f"**{min(passing, key=times.get)}** becomes the default" if passing
               else f"none passes: {default} stays the default")
    return "\n".join(lines) + f"\n\n{default} itself: {times.get(default, float('nan')):.2f}x vanilla's time. " \
        f"By the rule, {verdict}."


MINILM = "minilm-"  # experiments/mpnet.yaml: the entries on the default model carry this prefix
RECOMMENDED = {"mr": "setfit-vanilla", "stsb": "cosine-finetune", "mrpc": "cosine-finetune"}  # the README's, per kind
MRPC_ONE_CLASS_F1 = 81.2


def mpnet_methods(task: str) -> set[str]:
    """The methods experiments/mpnet.yaml runs on ``task``."""
    mine = {"vanilla", "one-fold", "mixup", RECOMMENDED[task]}
    return mine | {MINILM + m for m in ("vanilla", RECOMMENDED[task])}


def mpnet(records: list[dict], tasks: list[str], size: int = 300, margin: float = MARGIN) -> str:
    """experiments/mpnet.yaml. Per task, paired by seed (MRPC on dev accuracy, its learning on F1):
    Q1 mixup - one-fold, with the search's W0 weight and mean alpha; Q2 one-fold and mixup - vanilla;
    Q3 the README's recommendation - the best all-mpnet-base-v2 mean (holds if best or lo > -m,
    shown not to if hi < -m); Q4 the best all-mpnet-base-v2 mean - the best minilm- mean, and their
    median time ratio on the same seed. Says how many seeds each task holds (the grid runs task by
    task; a seed is in when every method of the task has run it); a task's intervals are read only
    once its five seeds are in, and marked "not decided" before."""
    f1 = scores_by_cell(records)
    read = [{**r, "score": r["dev"]["accuracy"]} if r["task"] == "mrpc" and r.get("dev") else r for r in records]
    cells = scores_by_cell(read)
    ran = {(r["task"], r["seed"], r["method"]) for r in records}
    begun = {t: sorted({seed for task, seed, _ in ran if task == t}) for t in tasks}
    seeds = {t: [s for s in begun[t] if all((t, s, m) in ran for m in mpnet_methods(t))] for t in tasks}
    ratios = time_ratios(records)[0]
    pending = [t for t in tasks if len(seeds[t]) < 5]

    def seeds_in(t: str) -> str:
        partly = [s for s in begun[t] if s not in seeds[t]]
        return (f"{t} {', '.join(map(str, seeds[t])) or 'none'} ({len(seeds[t])} of 5"
                + (f"; partly {', '.join(map(str, partly))}" if partly else "") + ")")

    said = "; ".join(seeds_in(t) for t in tasks)
    lines = [f"Seeds in: {said}." + (f" Nothing is decided on {', '.join(pending)} before its five seeds are in."
                                     if pending else ""),
             "", f"| | {' | '.join(tasks)} |", "|---" * (len(tasks) + 1) + "|"]

    def row(label: str, values: list[str]) -> None:
        lines.append(f"| {label} | {' | '.join(values)} |")

    def pair(method: str, base: str, task: str, reading=gain_or_none) -> str:
        p = paired(cells, method, base, task, size)
        return "-" if p is None else f"{p}: {reading(p, margin) if task not in pending else 'not decided'}"

    def alpha(task: str, key: str, form: str) -> str:
        values = [r["alpha"][key] for r in records if r["method"] == "mixup" and r["task"] == task and "alpha" in r]
        return format(statistics.mean(values), form) if values else "-"

    row("Q1: mixup - one-fold", [pair("mixup", "one-fold", t) for t in tasks])
    row("mixup's W0 weight after the search (mean)", [alpha(t, "w0_weight_mean", ".1e") for t in tasks])
    row("mixup's mean alpha after the search", [alpha(t, "alpha_mean", ".4f") for t in tasks])
    row("Q2: one-fold - vanilla", [pair("one-fold", "vanilla", t) for t in tasks])
    row("Q2: mixup - vanilla", [pair("mixup", "vanilla", t) for t in tasks])
    ours = [m for m in _methods(cells, size) if not m.startswith(MINILM)]
    theirs = [m for m in _methods(cells, size) if m.startswith(MINILM)]
    best = {t: best_by_mean(cells, ours, t, size) if any(cells.get((m, t, size)) for m in ours) else None
            for t in tasks}
    q3 = []
    for t in tasks:
        if best[t] is None:  # no record of the task yet
            q3.append("-")
            continue
        advice = RECOMMENDED.get(t)
        p = None if advice == best[t] else paired(cells, advice, best[t], t, size)
        if advice != best[t] and p is None:
            verdict = "-"
        elif t in pending:
            verdict = f"{p}: not decided" if p else "best so far, not decided"
        elif advice == best[t]:
            verdict = "holds (best)"
        else:
            reading = "holds" if p.lo > -margin else "shown not to hold" if p.hi < -margin else "unresolved"
            verdict = f"{p}: {reading}"
        q3.append(f"{advice} - {best[t]}: {verdict}")
    row("Q3: the recommendation - the best all-mpnet-base-v2 mean", q3)
    q4 = []
    for t in tasks:
        if best[t] is None:
            q4.append("-")
            continue
        mine, other = best[t], best_by_mean(cells, theirs, t, size) if any(cells.get((m, t, size)) for m in theirs) \
            else None
        p = paired(cells, mine, other, t, size) if other else None
        mine_t, other_t = ratios.get((mine, t, size)), ratios.get((other, t, size))
        time = f", {statistics.median(mine_t) / statistics.median(other_t):.1f}x its time" if mine_t and other_t else ""
        q4.append("-" if p is None else f"{mine} - {other}: {p}{time}" + (", not decided" if t in pending else ""))
    row("Q4: best all-mpnet-base-v2 - best minilm", q4)
    if "mrpc" in tasks:
        learns = []
        for m in _methods(f1, size):
            scores = list(f1.get((m, "mrpc", size), {}).values())
            interval = mean_interval([s - MRPC_ONE_CLASS_F1 for s in scores]) if len(scores) > 1 else None
            if interval is not None:
                said = "" if interval[0] <= 0 else ": not decided" if "mrpc" in pending else ": learns it"
                learns.append(f"{m} {statistics.mean(scores) - MRPC_ONE_CLASS_F1:+.1f} [{interval[0]:+.1f}, "
                              f"{interval[1]:+.1f}]{said}")
        lines += ["", f"MRPC F1 minus the one-class F1 ({MRPC_ONE_CLASS_F1}): "
                  + ("; ".join(learns) if learns else "no method with two seeds yet") + "."]
    return "\n".join(lines)


def default_classification(records: list[dict], tasks: list[str], size: int = 300, default: str = "one-fold",
                           fallback: str = "fold-average", margin: float = MARGIN) -> str:
    """experiments/default-classification.yaml. Per task, paired by seed on held-out accuracy:
    ``default`` - vanilla (shown to lose if hi < 0; by more than m if hi < -m; not beyond m if
    lo > -m), ``fallback`` - vanilla and ``default`` - ``fallback``. The default stays if it is shown
    to lose on no task; else it changes to ``fallback`` if that is shown to lose on none, else to no
    search. Decides nothing, and reads no interval, before every task has ten seeds."""
    cells, times = scores_by_cell(records), median_times(records, size)
    lines = [f"| | {' | '.join(tasks)} |", "|---" * (len(tasks) + 1) + "|"]
    intervals = {m: {t: paired(cells, m, "vanilla", t, size) for t in tasks} for m in (default, fallback)}

    complete = all(p is not None and p.n >= 10 for ps in intervals.values() for p in ps.values())

    def reading(p: Paired | None) -> str:
        if p is None:
            return "-"
        if not complete:
            return f"{p}: not decided"
        said = "shown to lose" + (f" by more than {margin:g}" if p.hi < -margin else "") if p.hi < 0 else \
            f"not shown to lose beyond {margin:g}" if p.lo > -margin else "unresolved"
        return f"{p}: {said}"

    for m in (default, fallback):
        lines.append(f"| {m} - vanilla | {' | '.join(reading(intervals[m][t]) for t in tasks)} |")
    between = [paired(cells, default, fallback, t, size) for t in tasks]
    lines.append(f"| {default} - {fallback} | {' | '.join(str(p) if p else '-' for p in between)} |")
    lines.append(f"| time / vanilla (median) | {default} {times.get(default, float('nan')):.2f}x, "
                 f"{fallback} {times.get(fallback, float('nan')):.2f}x |" + " |" * (len(tasks) - 1))
    if not complete:
        return "\n".join(lines) + "\n\nNot every task has ten seeds of each method: the rule decides nothing yet."
    loses = [t for t in tasks if intervals[default][t].hi < 0]
    if not loses:
        verdict = f"{default} is shown to lose on no task: it stays the default for classification"
    else:
        change = fallback if all(intervals[fallback][t].hi >= 0 for t in tasks) else "no search"
        verdict = (f"{default} is shown to lose on {', '.join(loses)}: the default for classification changes to "
                   f"**{change}**, and README and `agwm search --help` say so")
    return "\n".join(lines) + f"\n\nBy the rule, {verdict}."
