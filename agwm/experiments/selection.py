"""Choose a finetuning method on the user's own training file, never their validation or test file.

Each method runs once per seed s = 1..N on the same examples: it trains on split 0 of seed s
(the training part, ``search.split_ratio``) and is scored on its held-out part
(``finetune.holdout``), so seed s pairs the methods on the same split, head and data order.

The rule, fixed before any run and printed with the result:

1. best = the method with the highest mean held-out score over the seeds;
2. a method is *within the margin* of the best when the whole 95% t-interval of its paired
   difference to the best, mean_s(score_m(s) - score_best(s)) +- t_{0.975, N-1} sd / sqrt(N), lies
   above -margin (default 3 points): it is shown to lose at most that much;
3. recommend the cheapest (lowest mean wall time) of the methods within the margin; the best
   itself always is, so with few seeds (wide intervals) the recommendation is the best mean.

A first version took "the interval contains 0" for step 2. On its first real use (results/
select-method-similarity/) it recommended plain finetuning at 10.6 points below the best, because
5 seeds gave an interval of -22.7 to +1.6: the absence of a resolved difference is no evidence of
equivalence, so the margin rule replaced it."""

from __future__ import annotations

import json
import os
import statistics

from agwm.data import DataError, Task
from agwm.errors import ConfigError
from agwm.experiments.grid import Entry, Grid, read_records, run_grid, task_flags
from agwm.experiments.methods import MARGIN, PIPELINES, selectable_methods  # noqa: F401
from agwm.experiments.paired import learned_nothing, mean_interval, seeds_text, split_unscored
from agwm.registry import METHODS as FINETUNE_METHODS
from agwm.registry import method, task_error  # noqa: F401


def rule_text(margin: float) -> str:
    return (f"the cheapest method (mean wall time) whose 95% interval of the paired difference to the best mean "
            f"lies above -{margin:g} points; the best mean when no cheaper one does")
# The pipelines a user chooses between, as grid entries, each pinned to the settings its name meant in
# the committed studies; any other name is a method of agwm.experiments.methods.
def entry(name: str) -> Entry:
    """A method or pipeline (:data:`~agwm.experiments.methods.PIPELINES`) by name, as a grid entry."""
    kind, preset = PIPELINES.get(name, (name, []))
    return Entry(name, kind, preset=list(preset))


def default_methods(task: Task) -> tuple[list[str], str | None]:
    """The methods ``agwm select`` compares when ``--methods`` is not given, by the task's kind, and a
    note on what was left out. From the committed grids (docs/findings.md): plain finetuning and the
    fold-averaged start everywhere (the start carries the pipeline's gain on STS-B; mixup, its
    attention on top, was not shown to add to it and costs about twice as much, so it is left out),
    the probe as the cheap floor; on pairs the cosine of the two embeddings and its finetune (the
    best on STS-B and MRPC); on single-text classification, when it is installed, SetFit and plain
    finetuning from SetFit's body (the highest mean on TREC, SUBJ and MR, and the only method within
    1.5 points of each task's best)."""
    kind = "pairs" if len(task.text_columns) == 2 else "single texts"
    everywhere = [m for m in FINETUNE_METHODS.values() if m.candidate == "everywhere" and m.name != "vanilla"]
    fitting = sorted((m for m in FINETUNE_METHODS.values() if m.candidate == kind and task_error(m.name, task) is None),
                     key=lambda m: m.name)
    missing = [m for m in fitting if not m.installed()]
    note = f"{' and '.join(m.name for m in missing)} left out: {missing[0].missing()}" if missing else None
    return ["vanilla", "fold-average"] + [m.name for m in everywhere + fitting if m.installed()], note


def selection_grid(task: dict, methods: list[str], seeds: int, output_dir: str, overrides: list[str],
                   model: str | None = None) -> Grid:
    """The grid of ``methods`` x seeds 1..``seeds`` on the user's ``task`` (a grid task mapping),
    each run scored on a held-out part of its training sample."""
    known = selectable_methods()
    unknown = [m for m in methods if m not in known]
    if unknown:
        raise ConfigError(f"--methods {' '.join(unknown)} is not allowed: each one of {', '.join(known)}")
    if len(set(methods)) != len(methods) or len(methods) < 2:
        raise ConfigError(f"--methods {' '.join(methods)} is not allowed: at least two different methods")
    if seeds < 2:
        raise ConfigError(f"--seeds {seeds} is not allowed: at least 2 (an interval needs two paired differences)")
    entries = [entry(m) for m in methods]
    return Grid(entries, [task], ["all"], list(range(1, seeds + 1)), output_dir=os.path.join(output_dir, "runs"),
                results=os.path.join(output_dir, "results.jsonl"), model=model,
                overrides=["finetune.holdout=true", *overrides])


def select(records: list[dict], methods: list[str], margin: float = MARGIN) -> dict:
    """Apply the rule to the records of a selection grid: per method its held-out scores, mean,
    wall time, paired difference to the best with its interval; and the recommended method."""
    all_records = records
    records, unscored = split_unscored(records)  # a failed or undefined run leaves its seed out
    scores = {m: {r["seed"]: r["score"] for r in records if r["method"] == m} for m in methods}
    times = {m: [r["wall_time_s"]["total"] for r in records if r["method"] == m] for m in methods}
    seeds = sorted(set.intersection(*(set(s) for s in scores.values())))
    if len(seeds) < 2:
        reasons = {r["method"]: r.get("failed") or (r.get("dev") or {}).get("undefined") or "undefined score"
                   for r in all_records if r.get("score") is None}
        why = (f"; {len(all_records) - len(records)} of {len(all_records)} runs have no score ("
               + "; ".join(f"{m}: {reason}" for m, reason in list(reasons.items())[:3]) + ")" if reasons else "")
        raise ConfigError(f"{len(seeds)} seed(s) have a score for every method, at least 2 are needed to "
                          f"compare them{why}")
    best, recommended, rows = apply_rule(scores, times, methods, seeds, margin)
    return {"seeds": seeds, "best": best, "recommended": recommended, "margin": margin, "rule": rule_text(margin),
            "methods": rows, "estimate": held_out_estimate(scores, times, methods, seeds, margin,
                                                           records[0].get("metric") if records else None),
            "unscored": unscored,
            "learned_nothing": {m: seeds for (m, _, _), seeds in learned_nothing(records).items()}}


def apply_rule(scores: dict, times: dict, methods: list[str], seeds: list[int], margin: float):
    """(best, recommended, a row per method) by the rule above, on ``seeds``."""
    means = {m: statistics.mean(scores[m][s] for s in seeds) for m in methods}
    best = max(methods, key=means.get)
    rows = {}
    for m in methods:
        diffs = [scores[m][s] - scores[best][s] for s in seeds]
        interval = None if m == best else tuple(float(x) for x in mean_interval(diffs))
        rows[m] = {"mean": means[m], "std": statistics.stdev(scores[m][s] for s in seeds),
                   "difference_to_best": statistics.mean(diffs), "interval": interval,
                   "within_margin": bool(m == best or interval[0] > -margin),
                   "wall_time_s": statistics.mean(times[m])}
    candidates = [m for m in methods if rows[m]["within_margin"]]
    return best, min(candidates, key=lambda m: rows[m]["wall_time_s"]), rows


def held_out_estimate(scores: dict, times: dict, methods: list[str], seeds: list[int], margin: float,
                      metric: str | None = None) -> dict | None:
    """What following the rule scores, estimated on data the choice did not see: on each seed s,
    the score of the method the rule recommends from the other seeds, mean_s score_{choice(-s)}(s),
    with its 95% t interval. The recommended method's own mean is not that estimate: it is the best
    of several means on the same seeds, biased upward. None below 3 seeds (a choice needs 2). The
    interval is clipped to the ``metric``'s range (0 to 100 points, -100 to 100 for a correlation)."""
    if len(seeds) < 3:
        return None
    per_seed = {}
    for s in seeds:
        others = [t for t in seeds if t != s]
        chosen = apply_rule(scores, {m: times[m] for m in methods}, methods, others, margin)[1]
        per_seed[s] = (chosen, scores[chosen][s])
    values = [score for _, score in per_seed.values()]
    low, high = mean_interval(values)
    floor = -100.0 if metric in ("mcc", "spearman", "pearson") else 0.0
    return {"mean": statistics.mean(values), "interval": (max(float(low), floor), min(float(high), 100.0)),
            "per_seed": per_seed}


def selection_text(result: dict, metric: str) -> str:
    """The selection as a markdown table and the recommendation, with its rule."""
    cheapest = min(row["wall_time_s"] for row in result["methods"].values())
    lines = [f"Held-out {metric} over seeds {', '.join(map(str, result['seeds']))} (paired by seed)", "",
             "| method | mean +- std | difference to the best [95% interval] | wall time (x cheapest) |",
             "|---|---|---|---|"]
    for m, row in result["methods"].items():
        interval = row["interval"]
        diff = "best" if interval is None else (f"{row['difference_to_best']:+.1f} "
                                                f"[{interval[0]:+.1f}, {interval[1]:+.1f}]")
        lines.append(f"| {m} | {row['mean']:.1f} +- {row['std']:.1f} | {diff} | "
                     f"{row['wall_time_s']:.0f} s ({row['wall_time_s'] / cheapest:.1f}x) |")
    lines += ["", f"Recommended: {result['recommended']} (rule: {result['rule']})"]
    estimate = result.get("estimate")
    if estimate is not None:
        lines += ["", f"Expected held-out {metric} of following the rule: {estimate['mean']:.1f} (95% interval "
                  f"{estimate['interval'][0]:.1f} to {estimate['interval'][1]:.1f}): each seed scored by the method "
                  "the rule picks from the other seeds, not the recommended method's own mean, which is the best "
                  "of several and so biased upward"]
    else:
        lines += ["", "No estimate of what following the rule scores: it needs 3 seeds or more (--seeds)"]
    if result.get("learned_nothing"):
        lines += ["", "Learned nothing (every prediction one class, or nearly constant): " + "; ".join(
            f"{m} on {seeds_text(seeds)}"
            for m, seeds in result["learned_nothing"].items())]
    if result.get("unscored"):
        lines += ["", result["unscored"]]
    return "\n".join(lines)


def run_selection(grid: Grid, methods: list[str], metric: str, output_dir: str, workers: int = 1,
                  margin: float = MARGIN) -> dict:
    """Run what is missing of the grid, apply the rule, write ``selection.md`` and ``selection.json``."""
    run_grid(grid, workers)
    result = select(read_records(grid.results), methods, margin)
    text = selection_text(result, metric)
    with open(os.path.join(output_dir, "selection.md"), "w") as f:
        f.write(text + "\n")
    with open(os.path.join(output_dir, "selection.json"), "w") as f:
        json.dump(result, f, indent=2)
    result["text"] = text
    return result


def sample_file(task: dict, size: int, seed: int, path: str) -> str:
    """The ``size`` rows of the task's training file that ``seed`` samples (the sample a grid run of
    that seed trains on, :func:`agwm.data.sample_examples`), written as a user's CSV at ``path``."""
    from agwm.data import read_table, sample_examples

    if not os.path.isfile(path):
        rows = sample_examples(read_table(task["train_file"], "--train-file"), size, seed).to_pandas()
        os.makedirs(os.path.dirname(path), exist_ok=True)
        rows.to_csv(path + ".tmp", index=False)
        os.replace(path + ".tmp", path)
    return path


def selection_study(tasks: list[dict], user_seeds: list[int], size: int, methods: list[str], seeds: int,
                    output_dir: str, test_records: list[dict], workers: int = 1, margin: float = MARGIN,
                    runs_dir: str = "runs/select-study", model: str | None = None,
                    overrides: list[str] = ()) -> dict:
    """How the recommendation does on data it never saw. For each task (a grid task mapping with its
    training and test files) and user seed u, the user's file is the ``size`` rows u samples from
    the training file; the selection runs on that file alone (``seeds`` held-out repetitions of
    ``methods``); the method it recommends is then scored by ``test_records``: a grid's runs of every
    method trained on the same sample with seed u and scored on the test file. Returns per (task, u)
    the recommendation, the held-out estimate, the method best on the test file and every method's
    test score. ``model`` and ``overrides`` are the test grid's, so that both see the same settings."""
    pipelines = [entry(m) for m in methods]
    user_tasks = [{"name": f"{t['name']}-u{u}", "train_file": sample_file(t, size, u, os.path.join(
        runs_dir, "samples", f"{t['name']}-u{u}.csv")), **{k: v for k, v in t.items()
                                                           if k not in ("name", "train_file", "validation_file")}}
                  for t in tasks for u in user_seeds]
    grid = Grid(pipelines, user_tasks, ["all"], list(range(1, seeds + 1)), output_dir=runs_dir,
                results=os.path.join(output_dir, "results.jsonl"), model=model,
                overrides=[*overrides, "finetune.holdout=true"])
    run_grid(grid, workers)
    records = read_records(grid.results)
    test = {(r["method"], r["task"], r["seed"]): r["score"] for r in test_records if r["train_size"] == size}
    cells = []
    for t in tasks:
        for u in user_seeds:
            name = f"{t['name']}-u{u}"
            chosen = select([r for r in records if r["task"] == name], methods, margin)
            scores = {m: test.get((m, t["name"], u)) for m in methods}
            missing = [m for m, v in scores.items() if v is None]
            if missing:
                raise ConfigError(f"the test records have no {t['name']} run of {', '.join(missing)} with seed {u}")
            cells.append({"task": t["name"], "user_seed": u, "recommended": chosen["recommended"],
                          "estimate": chosen["estimate"], "test_scores": scores,
                          "best_on_test": max(methods, key=scores.get)})
    return {"methods": methods, "seeds": seeds, "margin": margin, "cells": cells}


def study_text(study: dict, fixed: list[str]) -> str:
    """The study as tables: per task and user seed, the recommendation and the test file's best; then
    the test score of following the recommendation against always choosing each of ``fixed``, paired
    by (task, user seed), with the 95% t interval of the mean difference."""
    lines = ["| task | user seed | recommended | best on the test file | its test score | held-out estimate |",
             "|---|---|---|---|---|---|"]
    for c in study["cells"]:
        estimate = f"{c['estimate']['mean']:.1f}" if c["estimate"] else "-"
        lines.append(f"| {c['task']} | {c['user_seed']} | {c['recommended']} | {c['best_on_test']} | "
                     f"{c['test_scores'][c['recommended']]:.1f} | {estimate} |")
    hits = sum(c["recommended"] == c["best_on_test"] for c in study["cells"])
    lines += ["", f"The recommendation was the test file's best method in {hits} of {len(study['cells'])} cases.",
              "", "| policy | mean test score | following the recommendation minus it [95% interval] |",
              "|---|---|---|"]
    followed = [c["test_scores"][c["recommended"]] for c in study["cells"]]
    lines.append(f"| follow the recommendation | {statistics.mean(followed):.1f} | |")
    for m in fixed:
        always = [c["test_scores"][m] for c in study["cells"]]
        diffs = [a - b for a, b in zip(followed, always)]
        interval = mean_interval(diffs)
        shown = f"[{interval[0]:+.1f}, {interval[1]:+.1f}]" if interval else ""
        lines.append(f"| always {m} | {statistics.mean(always):.1f} | {statistics.mean(diffs):+.1f} {shown} |")
    return "\n".join(lines)


def select_on_file(fields: dict, methods: list[str] | None, seeds: int, margin: float, model: str | None,
                   workers: int, output_dir: str, overrides: list[str]) -> list[str]:
    """``agwm select``: every method of ``methods`` (None: :func:`default_methods` for the file's task)
    on ``seeds`` held-out splits of the training file that ``fields`` describe (``train_file``,
    ``text_columns``, ...), in ``output_dir`` (resumable), and the rule's recommendation; returns what
    to print (the plan is printed before the runs)."""
    from agwm.run_folder import check_output_dir, prepare_output_dir, unmake_output_dir
    from agwm.settings import build_run_config
    from agwm.training.build import load_examples

    name = os.path.splitext(os.path.basename(fields["train_file"]))[0]
    task = {"name": name, **{k: v for k, v in fields.items() if v is not None}}
    if not margin > 0:
        raise ConfigError(f"--margin {margin} is not allowed: greater than 0")
    check_output_dir(output_dir, overwrite=True, phase="selection")  # a selection's folder, or a new one
    examples, note = None, None
    if methods is None:  # by the task's kind, known once the training file is read and checked
        examples = load_examples(build_run_config({**task_flags(task, None), "model": model, "output_dir": output_dir},
                                                  ["finetune.holdout=true", *overrides]))
        methods, note = default_methods(examples.task)
    grid = selection_grid(task, methods, seeds, output_dir, overrides, model)
    runs = grid.runs()  # every setting checked before any run
    examples = examples or load_examples(runs[0].config)  # every file checked, the metric known
    print(f"{len(runs)} runs ({' '.join(methods)} x {seeds} seeds) on {fields['train_file']}, "
          f"{len(examples.train)} rows, each scored on its held-out 20%; the rule: {rule_text(margin)}"
          + (f"; {note}" if note else ""))
    new = not os.path.exists(output_dir)
    prepare_output_dir(output_dir, "selection", clear=False)  # marks it; the records there are kept (resumable)
    try:
        result = run_selection(grid, methods, examples.task.metric, output_dir, workers, margin)
    except (ConfigError, DataError):
        if new and not os.path.exists(grid.results):  # refused before any run: leave no folder behind
            unmake_output_dir(output_dir)
        raise
    return [result["text"]]
