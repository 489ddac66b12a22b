"""Report maths and generation from a small results file."""

import math
import runpy
import statistics
import sys

import pytest

from agwm.experiments import plots
from agwm.experiments.grid import append_record
from agwm.experiments.paired import mean_std, merge_records, paired_p_value, paired_spread, seeds_needed
from agwm.experiments.tables import (
    ablation_table,
    learned_nothing_table,
    markdown_report,
    method_changes,
    paired_table,
    per_seed_table,
    reference_mixup,
    score_table,
    size_time_table,
    time_table,
)
from agwm.training.device import WORKLOAD
from tests.conftest import REPO, run_script


def record(method, task, size, seed, score, seconds=10.0):
    return {"key": f"{method}/{task}/{size}/{seed}", "method": method, "kind": method, "task": task,
            "train_size": size, "seed": seed, "score": score, "wall_time_s": {"total": seconds},
            "settings": ["search.alpha_lr=0.01"] if method == "mixup" else []}


RECORDS = [
    record("vanilla", "rte", 300, 1, 50.0), record("vanilla", "rte", 300, 2, 54.0),
    record("vanilla", "rte", 300, 3, 58.0), record("mixup", "rte", 300, 1, 53.0, 40.0),
    record("mixup", "rte", 300, 2, 55.0, 50.0), record("vanilla", "stsb", 300, 1, 70.0),
    record("mixup", "stsb", 300, 1, 72.0, 30.0), record("vanilla", "rte", 1000, 1, 60.0),
]


def test_the_report_counts_the_runs_that_learned_nothing_per_method_and_task():
    flat = {"spearman": 46.5, "score": 46.5, "warning": "every prediction is about 2.88 (...)"}
    records = [{**r, "dev": flat} if (r["method"], r["seed"]) in (("vanilla", 1), ("vanilla", 3)) else r
               for r in RECORDS]
    assert learned_nothing_table(records).splitlines()[2:] == ["| vanilla | rte | 300 | 2 of 3 | seeds 1, 3 |",
                                                               "| vanilla | rte | 1000 | 1 of 1 | seed 1 |",
                                                               "| vanilla | stsb | 300 | 1 of 1 | seed 1 |"]
    assert "## Runs that learned nothing" in markdown_report(records)
    assert learned_nothing_table(RECORDS) is None and "learned nothing" not in markdown_report(RECORDS)


def test_mean_and_sample_std():
    assert mean_std([50.0, 54.0, 58.0]) == (54.0, pytest.approx(4.0))
    assert mean_std([7.0]) == (7.0, 0.0)


def test_score_table_rows_columns_and_average():
    table = score_table(RECORDS, 300).splitlines()
    assert table[0] == "| method | stsb | rte | average (seed 1: those every cell has) |"  # GLUE task order
    assert table[2] == "| vanilla | 70.0 (1) | 54.0 +- 4.0 (3) | 60.0 |"  # (70 + 50) / 2, seed 1 alone
    assert table[3] == f"| mixup | 72.0 (1) | 54.0 +- {statistics.stdev([53, 55]):.1f} (2) | 62.5 |"
    full = RECORDS + [record("vanilla", "stsb", 300, s, 70.0 + s) for s in (2, 3)]
    full += [record("mixup", "rte", 300, 3, 57.0), record("mixup", "stsb", 300, 2, 74.0),
             record("mixup", "stsb", 300, 3, 74.0), record("joint", "rte", 300, 1, 51.0)]
    table = score_table(full, 300).splitlines()
    assert table[0] == "| method | stsb | rte | average |"  # every cell of the complete rows has seeds 1-3
    assert table[2] == "| vanilla | 71.7 +- 1.5 (3) | 54.0 +- 4.0 (3) | 62.8 |"  # (71.67 + 54) / 2
    assert table[3] == "| joint | - | 51.0 (1) | - |"  # a row without every task has no average
    assert table[4].endswith("| 73.3 +- 1.2 (3) | 55.0 +- 2.0 (3) | 64.2 |")  # (73.33 + 55) / 2
    one_task = [r for r in RECORDS if r["task"] == "rte"]
    assert score_table(one_task, 300).splitlines() == [  # one task: nothing to average
        "| method | rte |", "|---|---|", "| vanilla | 54.0 +- 4.0 (3) |",
        f"| mixup | 54.0 +- {statistics.stdev([53, 55]):.1f} (2) |"]


def test_paired_differences_use_only_shared_seeds():
    table = paired_table(RECORDS, 300).splitlines()
    # rte: 3 and 1 -> mean 2, std 1.41, t = 2 / (1.41 / sqrt 2) = 2 on 1 degree of freedom: p = 0.295
    assert table[2] == "| mixup | +2.0 (1) | +2.0 +- 1.4 (2), p 0.3 |"
    assert paired_p_value([3.0, 1.0]) == pytest.approx(1 - 2 * math.atan(2) / math.pi)  # Student t, 1 dof
    assert paired_p_value([2.0]) is None and paired_p_value([1.0, 1.0]) is None


def test_per_seed_scores_in_seed_order_with_their_paired_differences():
    table = per_seed_table(RECORDS, 300).splitlines()
    assert table[0] == "| method | stsb | rte |"
    assert table[2] == "| vanilla | 70.0, -, - | 50.0, 54.0, 58.0 |"
    assert table[3] == "| mixup | 72.0 [+2.0], -, - | 53.0 [+3.0], 55.0 [+1.0], - |"


def test_time_ratios_against_vanilla_on_the_same_runs():
    table = time_table(RECORDS).splitlines()
    assert "| vanilla | 1.00x | 5 | 0 |" in table
    assert "| mixup | 4.00x | 3 | 0 |" in table


def test_time_ratios_cancel_the_machine_speed_where_both_runs_carry_a_probe():
    slow = 3.0  # mixup's seed-1 runs on a machine three times slower, as the probes say
    records = [dict(r) for r in RECORDS]
    for r in records:
        if r["seed"] == 1:
            r["speed_probe_s"] = 0.1
            if r["method"] == "mixup":
                r["wall_time_s"] = {"total": r["wall_time_s"]["total"] * slow}
                r["speed_probe_s"] = 0.1 * slow
    table = time_table(records).splitlines()
    assert "| mixup | 4.00x | 3 | 2 |" in table
    assert "| vanilla | 1.00x | 5 | 3 |" in table


def test_time_ratios_compare_only_probes_of_the_same_workload():
    records = [dict(r) for r in RECORDS]
    for r in records:
        r["speed_probe_s"] = 0.1 if r["method"] == "vanilla" else 0.3  # vanilla's probe has no workload name:
        if r["method"] == "mixup":                                     # the first probe's
            r["speed_probe_workload"] = WORKLOAD
    table = time_table(records).splitlines()
    assert "| mixup | 4.00x | 3 | 0 |" in table
    assert "| vanilla | 1.00x | 5 | 5 |" in table


def test_whole_run_time_against_size_fits_the_exponent_per_method_and_task():
    # vanilla linear in n, mixup 3x vanilla at 100 and 4x at 400: t = 30 * (n / 100)^b, b = log 5.33 / log 4
    records = [record("vanilla", "rte", n, seed, 50.0, n / 10) for n in (100, 400) for seed in (1, 2)]
    records += [record("mixup", "rte", 100, seed, 50.0, 30.0) for seed in (1, 2)]
    records += [record("mixup", "rte", 400, 1, 50.0, 160.0), record("mixup", "stsb", 100, 1, 50.0, 5.0)]
    table = size_time_table(records).splitlines()
    assert table[0] == "| method | task | s at 100 | s at 400 | b (t ~ n^b) | / vanilla at 100 | / vanilla at 400 |"
    assert table[2] == "| vanilla | rte | 10 | 40 | 1.00 | 1.00x | 1.00x |"
    assert table[3] == f"| mixup | rte | 30 | 160 | {math.log(160 / 30) / math.log(4):.2f} | 3.00x | 4.00x |"
    assert len(table) == 4  # stsb has one size: no fit


def test_report_script_writes_markdown_and_plot(tmp_path, monkeypatch, capsys):
    results = tmp_path / "results.jsonl"
    for r in RECORDS:
        append_record(str(results), r)
    monkeypatch.setattr(sys, "argv", ["report.py", "--results", str(results), "--output-dir", str(tmp_path / "out")])
    runpy.run_path(str(REPO / "scripts" / "report.py"), run_name="__main__")
    report = (tmp_path / "out" / "report.md").read_text()
    assert "## 300 training examples" in report and "## 1000 training examples" in report
    assert "| mixup | mixup | search.alpha_lr=0.01 |" in report and "| vanilla | vanilla | defaults |" in report
    png = (tmp_path / "out" / "score_vs_size.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000


def test_a_report_of_user_file_tasks_titles_each_panel_with_the_records_metric(tmp_path, monkeypatch):
    titles = []
    monkeypatch.setattr(plots.plt.Axes, "set_title", lambda ax, text, *a, **k: titles.append(text))
    user = [{**record(m, t, 300, s, 70.0 + s), "config": {"train_file": f"{t}.csv", "metric": metric},
             "dev": {"accuracy": 70.0 + s} if t == "reviews" else {"spearman": 70.0 + s}}
            for m in ("vanilla", "mixup") for s in (1, 2)
            for t, metric in (("reviews", None), ("ratings", None), ("rte", "f1"))]
    plots.plot_score_vs_size(user, str(tmp_path / "plot.png"))
    assert sorted(titles) == ["ratings (spearman)", "reviews (accuracy)", "rte (f1)"]  # records from before
    titles.clear()  # records carry their metric now, and it is the one used
    plots.plot_score_vs_size([{**r, "metric": "macro-f1"} for r in user], str(tmp_path / "plot.png"))
    assert sorted(titles) == ["ratings (macro-f1)", "reviews (macro-f1)", "rte (macro-f1)"]


def test_report_of_some_tasks_and_sizes_only(tmp_path, monkeypatch, capsys):
    results = tmp_path / "results.jsonl"
    for r in RECORDS:
        append_record(str(results), r)
    flags = ["--results", str(results), "--output-dir", str(tmp_path / "out")]
    monkeypatch.setattr(sys, "argv", ["report.py", *flags, "--tasks", "rte", "--sizes", "300"])
    runpy.run_path(str(REPO / "scripts" / "report.py"), run_name="__main__")
    report = (tmp_path / "out" / "report.md").read_text()
    assert report.startswith("# Results\n\n5 runs;")  # rte at 300: 3 vanilla, 2 mixup
    assert "## 1000 training examples" not in report and "| method | rte |\n" in report
    code, err = run_script("report.py", [*flags, "--tasks", "rte", "qnli"], monkeypatch, capsys)
    assert code == 2 and "--tasks qnli is not allowed: the results hold rte, stsb" in err
    code, err = run_script("report.py", [*flags, "--sizes", "500"], monkeypatch, capsys)
    assert code == 2 and "--sizes 500 is not allowed: the results hold 300, 1000" in err
    monkeypatch.setattr(sys, "argv", ["report.py", *flags, "--methods", "vanilla"])
    runpy.run_path(str(REPO / "scripts" / "report.py"), run_name="__main__")
    report = (tmp_path / "out" / "report.md").read_text()
    assert report.startswith("# Results\n\n5 runs;") and "mixup" not in report  # vanilla's 5 runs
    code, err = run_script("report.py", [*flags, "--methods", "vanilla", "setfit"], monkeypatch, capsys)
    assert code == 2 and "--methods setfit is not allowed: the results hold mixup, vanilla" in err


def test_report_with_the_one_class_scores_of_the_dev_sets(tmp_path, glue_dir, monkeypatch, capsys):
    results = tmp_path / "results.jsonl"
    for r in RECORDS:
        append_record(str(results), r)
    flags = ["--results", str(results), "--output-dir", str(tmp_path / "out")]
    monkeypatch.setattr(sys, "argv", ["report.py", *flags, "--data-dir", glue_dir])
    runpy.run_path(str(REPO / "scripts" / "report.py"), run_name="__main__")
    report = (tmp_path / "out" / "report.md").read_text()
    assert "| rte | entailment | 52.7 |" in report  # 146 of the 277 RTE dev pairs
    assert "| stsb | - (regression: no correlation) | 0.0 |" in report
    code, err = run_script("report.py", [*flags, "--data-dir", str(tmp_path / "nowhere")], monkeypatch, capsys)
    assert code == 2 and f"--data-dir {tmp_path / 'nowhere'} is not allowed: no such folder" in err
    assert "What one class predicted everywhere" not in markdown_report(RECORDS)
    held_out = tmp_path / "held_out.jsonl"
    append_record(str(held_out), {**RECORDS[0], "evaluated_on": "holdout"})
    code, err = run_script("report.py", ["--results", str(held_out), "--output-dir", str(tmp_path / "out"),
                                         "--data-dir", glue_dir], monkeypatch, capsys)
    assert code == 2 and "error: --data-dir is not allowed with held-out scores" in err


def test_every_method_is_drawn_inside_its_panel(tmp_path, monkeypatch):
    """16 methods side by side (the baselines report): the outermost stayed off the axis once."""
    figures = []
    monkeypatch.setattr(plots.plt, "close", figures.append)
    records = [record(f"m{i}", "rte", size, 1, 50.0 + i) for i in range(16) for size in (300, 1000)]
    plots.plot_score_vs_size(records, str(tmp_path / "plot.png"))
    ax = figures[0].axes[0]
    low, high = ax.get_xlim()
    drawn = [x for bars in ax.containers for x in bars.lines[0].get_xdata()]  # each method's data line
    assert len(drawn) == 32 and all(low < x < high for x in drawn)
    assert len({round(x, 6) for x in drawn}) == 32  # no two methods on top of each other


def test_the_one_class_level_is_drawn_inside_the_scores_range(tmp_path, monkeypatch):
    figures = []
    monkeypatch.setattr(plots.plt, "close", figures.append)
    records = [record(method, task, 300, 1, score) for task in ("mrpc", "rte")
               for method, score in (("vanilla", 75.0), ("mixup", 85.0))]
    plots.plot_score_vs_size(records, str(tmp_path / "plot.png"),
                             {"mrpc": (81.2, "equivalent"), "rte": (52.7, "entailment")})
    mrpc, rte = figures[0].axes[:2]
    assert [list(line.get_ydata()) for line in mrpc.lines if line.get_linestyle() == "--"] == [[81.2, 81.2]]
    assert rte.get_ylim()[0] > 60 and not [line for line in rte.lines if line.get_linestyle() == "--"]
    assert "one class everywhere" in [t.get_text() for t in figures[0].legends[0].texts]

    plots.plot_score_vs_size(records, str(tmp_path / "plot.png"), {"rte": (52.7, "entailment")})
    assert "one class everywhere" not in [t.get_text() for t in figures[1].legends[0].texts]  # drawn nowhere


def test_a_report_without_vanilla_has_no_comparisons_to_it():
    report = markdown_report([r for r in RECORDS if r["method"] != "vanilla"])
    assert "| mixup | 72.0 (1) | 54.0 +- 1.4 (2) | 62.5 |" in report  # seed 1 alone: (72 + 53) / 2
    assert not any(part in report for part in ("Paired differences", "Ablations", "Relative time"))


def test_a_report_replaces_its_own_files_and_refuses_the_users(tmp_path, monkeypatch, capsys):
    results, out = tmp_path / "results.jsonl", tmp_path / "out"
    for r in RECORDS:
        append_record(str(results), r)
    args = ["--results", str(results), "--output-dir", str(out)]
    out.mkdir()
    (out / "README.md").write_text("the user's")  # beside the report, as in every results folder
    monkeypatch.setattr(sys, "argv", ["report.py", *args])
    runpy.run_path(str(REPO / "scripts" / "report.py"), run_name="__main__")
    runpy.run_path(str(REPO / "scripts" / "report.py"), run_name="__main__")  # its own report: replaced
    (out / "report.md").write_text("# My report\n\nmine")
    code, err = run_script("report.py", args, monkeypatch, capsys)
    assert code == 2 and f"--output-dir {out} is not allowed: it holds a report.md that agwm report did not " \
        "write" in err and len(err.strip().splitlines()) == 1
    assert (out / "report.md").read_text() == "# My report\n\nmine" and (out / "README.md").read_text() == "the user's"


def test_report_of_an_empty_file_is_refused(tmp_path, monkeypatch, capsys):
    (tmp_path / "empty.jsonl").write_text("")
    code, err = run_script("report.py", ["--results", str(tmp_path / "empty.jsonl"), "--output-dir", str(tmp_path)],
                           monkeypatch, capsys)
    assert code == 2 and "no records in it" in err


def test_search_plots_from_a_search_folder(tmp_path, monkeypatch):
    from torch import nn

    from agwm.mixup import inject_mixup, save_alphas
    from agwm.training.log import RunLog

    model = nn.Sequential(nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 2)), nn.Linear(2, 2))
    inject_mixup(model, target_modules=r"0\.\d", seed=0)
    save_alphas(model, str(tmp_path))
    log = RunLog(str(tmp_path), ["csv"])
    for step in range(1, 4):
        log("search", 0, step, inner_loss=1.0 / step, outer_loss=1.1 / step, alpha_mean=1 - 0.01 * step,
            w0_weight_mean=1e-4 * step)
    log.close()
    monkeypatch.setattr(sys, "argv", ["report.py", "--search", str(tmp_path), "--compare-searches",
                                      f"a={tmp_path}", f"b={tmp_path}", "--output-dir", str(tmp_path / "cmp")])
    runpy.run_path(str(REPO / "scripts" / "report.py"), run_name="__main__")
    for name in ("search.png", "alpha_layers.png", "cmp/alpha_movement.png"):
        assert (tmp_path / name).read_bytes()[:4] == b"\x89PNG"


def test_records_of_several_grids_merge_once_per_run_and_disagreements_stop():
    shared = record("vanilla", "rte", 300, 1, 50.0)
    merged = merge_records([shared, record("mixout", "rte", 300, 1, 51.0), dict(shared)])
    assert sorted(r["key"] for r in merged) == ["mixout/rte/300/1", "vanilla/rte/300/1"]
    with pytest.raises(ValueError, match="vanilla/rte/300/1 is recorded twice"):
        merge_records([shared, record("vanilla", "rte", 300, 1, 49.0)])


def test_pooled_spread_of_paired_differences_and_the_seeds_it_needs():
    # mixup - vanilla on rte 300: +3, +1 (seeds 1, 2): variance 2, one degree of freedom; stsb has one seed only
    spread, dof = paired_spread(RECORDS, 300)
    assert dof == 1 and spread == pytest.approx(2 ** 0.5)
    # t_{0.975, 1} 1.41 / sqrt(2) = 12.7 > 3; t_{0.975, 2} 1.41 / sqrt(3) = 3.5 > 3; t_{0.975, 3} 1.41 / 2 = 2.25
    assert seeds_needed(2 ** 0.5) == 4
    # s = 6: n = 17 gives 2.120 x 6 / 4.123 = 3.08, n = 18 gives 2.110 x 6 / 4.243 = 2.98
    assert seeds_needed(6.0) == 18
    assert seeds_needed(0.0) == 2
    for bad in (float("nan"), float("inf")):  # without the check: 2 for nan, an endless loop for inf
        with pytest.raises(ValueError, match="spread must be a finite number"):
            seeds_needed(bad)
    assert paired_spread(RECORDS, 1000) == (pytest.approx(float("nan"), nan_ok=True), 0)


def test_ablation_table_names_what_each_variant_changes_and_its_paired_difference():
    import dataclasses

    from agwm.settings import RunConfig

    config = dataclasses.asdict(RunConfig())
    config["mixup"]["rank"] = 8
    config["finetune"]["holdout"] = True  # how a run was scored, not a change of the method
    config["seed"] = 7  # not a method setting
    assert method_changes(config) == ["mixup.rank=8"]
    config["search"]["finetune_start"] = "pretrained"  # only a mixup run reads it
    assert method_changes(config, "mixup") == ["mixup.rank=8", "search.finetune_start=pretrained"]
    assert method_changes(config, "random-alpha") == ["mixup.rank=8"]
    config["search"]["finetune_start"] = RunConfig().search.finetune_start
    records = RECORDS + [dict(record("rank-8", "rte", 300, 1, 49.0), kind="mixup", config=config)]
    table = ablation_table(records, 300)
    assert "| variant - vanilla | kind | changes from the defaults | stsb | rte | average |" in table
    assert "| rank-8 | mixup | mixup.rank=8 | - | -1.0 (1) | - |" in table
    # stsb +2 (seed 1), rte +3, +1 (seeds 1, 2): the average is over seed 1, which both tasks have
    assert "| mixup | mixup | none | +2.0 (1) | +2.0 +- 1.4 (2), p 0.3 | +2.5 (seed 1) |" in table
    assert ablation_table(records, 1000).splitlines()[2:] == []  # no variant ran at 1000
    assert reference_mixup(records) == "mixup"  # rank-8 changes a default
    against_mixup = ablation_table(records, 300, base="mixup").splitlines()
    assert against_mixup[2:] == ["| rank-8 | mixup | mixup.rank=8 | - | -4.0 (1) | - |"]  # 49 - 53 on seed 1
    one_task = ablation_table([r for r in records if r["task"] == "rte"], 300).splitlines()
    assert one_task[:2] == ["| variant - vanilla | kind | changes from the defaults | rte |", "|---" * 4 + "|"]
    assert "| mixup | mixup | none | +2.0 +- 1.4 (2), p 0.3 |" in one_task
    report = markdown_report(records)
    assert "Each variant minus mixup, the mixup entry closest to the defaults, on the same task and seed" in report
    assert "closest to the defaults" not in markdown_report(RECORDS)  # no variant besides the reference
    # a grid run before a default changed pins the old value: its mixup is still the reference, and a
    # variant's changes are counted from it
    fresh = dataclasses.asdict(RunConfig())
    pinned = dict(fresh, search=dict(fresh["search"], problem="joint", folds=3))
    old_grid = [dict(r, config=pinned) if r["method"] == "mixup" else r for r in RECORDS]
    old_grid.append(dict(record("every-10", "rte", 300, 1, 52.0), kind="mixup",
                         config=dict(pinned, search=dict(pinned["search"], alpha_every=10))))
    assert reference_mixup(old_grid) == "mixup"
    assert ablation_table(old_grid, 300, base="mixup").splitlines()[::2] == [
        "| variant - mixup | kind | changes from mixup | stsb | rte | average |",
        "| every-10 | mixup | search.alpha_every=10 | - | -1.0 (1) | - |"]
    assert "| every-10 | mixup | search.alpha_every=10 search.folds=3 search.problem=joint |" in \
        ablation_table(old_grid, 300)


def test_report_of_records_that_disagree_or_of_a_folder_without_alphas_stops_with_a_message(tmp_path, monkeypatch,
                                                                                            capsys):
    first, second = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    append_record(str(first), record("vanilla", "rte", 300, 1, 50.0))
    append_record(str(second), record("vanilla", "rte", 300, 1, 49.0))
    code, err = run_script("report.py", ["--results", str(first), str(second), "--output-dir", str(tmp_path)],
                           monkeypatch, capsys)
    assert code == 2 and "vanilla/rte/300/1 is recorded twice with different scores" in err
    (tmp_path / "log.csv").write_text("phase,fold,step,name,value\n")
    code, err = run_script("report.py", ["--compare-searches", f"x={tmp_path}", "--output-dir", str(tmp_path)],
                           monkeypatch, capsys)
    assert code == 2 and f"--compare-searches x={tmp_path} is not allowed: it has no alphas.safetensors" in err


def test_comparison_table_gives_each_seeds_difference_and_both_p_values():
    from agwm.experiments.paired import wilcoxon_p_value
    from agwm.experiments.tables import comparison_table

    lines = comparison_table(RECORDS, "mixup", "vanilla").splitlines()
    # rte 300: 53 - 50, 55 - 54; t = 2 / (sqrt(2) / sqrt(2)) = 2 on 1 dof: p = 0.295; Wilcoxon, n = 2,
    # both positive: p = 2 / 2^2 = 0.5; 95% interval 2 -+ t_{0.975, 1} * 1 = 2 -+ 12.706. stsb: one
    # seed, no p, no interval. rte 1000: mixup did not run there.
    assert lines[2:] == ["| stsb | 300 | 1: +2.0 | +2.0 (1) | - | - | - |",  # in GLUE's task order
                         "| rte | 300 | 1: +3.0, 2: +1.0 | +2.0 +- 1.4 (2) | -10.7 to +14.7 | 0.3 | 0.5 |"]
    assert wilcoxon_p_value([0.0, 0.0]) is None and wilcoxon_p_value([1.0]) is None


def test_report_compare_prints_the_table_and_refuses_a_method_the_results_lack(tmp_path, monkeypatch, capsys):
    path = tmp_path / "r.jsonl"
    for r in RECORDS:
        append_record(str(path), r)
    monkeypatch.setattr(sys, "argv", ["report.py", "--results", str(path), "--compare", "mixup", "vanilla"])
    runpy.run_path(str(REPO / "scripts" / "report.py"), run_name="__main__")
    assert "| rte | 300 | 1: +3.0, 2: +1.0 | +2.0 +- 1.4 (2) | -10.7 to +14.7 | 0.3 | 0.5 |" in capsys.readouterr().out
    assert not list(tmp_path.glob("*.md"))  # no --output-dir: the table only
    code, err = run_script("report.py", ["--results", str(path), "--compare", "mixout", "vanilla"], monkeypatch, capsys)
    assert code == 2
    assert "--compare mixout vanilla is not allowed: the results hold no mixout; they hold mixup, vanilla" in err
    append_record(str(path), record("mixup", "cola", 300, 1, 5.0))
    append_record(str(path), record("vanilla", "cola", 300, 2, 4.0))
    code, err = run_script("report.py", ["--results", str(path), "--tasks", "cola", "--compare", "mixup", "vanilla"],
                           monkeypatch, capsys)
    assert code == 2 and "--compare mixup vanilla is not allowed: no task, size and seed has both" in err


def test_each_method_against_the_tasks_best_mean_with_its_interval_and_median_time():
    from agwm.experiments.tables import versus_best_table

    rows = [record("vanilla", "trec", 300, s, v, 10.0) for s, v in ((1, 80.0), (2, 82.0), (3, 84.0))]
    rows += [record("setfit", "trec", 300, s, v, s * 20.0) for s, v in ((1, 83.0), (2, 84.0), (3, 88.0))]
    rows += [record("probe", "trec", 300, s, v, 1.0) for s, v in ((1, 70.0), (2, 71.0), (3, 75.0))]
    table = versus_best_table(rows, 300).splitlines()
    assert table[0] == "| method | trec | time / vanilla (median) |"
    by_method = {line.split(" | ")[0][2:]: line for line in table[2:]}
    assert by_method["setfit"] == "| setfit | best | 4.00x |"  # ratios 2, 4, 6
    diffs = [-3.0, -2.0, -4.0]  # vanilla minus setfit, seed by seed
    half = 4.302652729911275 * statistics.stdev(diffs) / math.sqrt(3)  # t_{0.975, 2}
    assert by_method["vanilla"] == f"| vanilla | -3.0 [{-3 - half:+.1f} to {-3 + half:+.1f}] | 1.00x |"
    assert by_method["probe"].startswith("| probe | -13.0 [")


def test_a_report_of_whole_file_runs_and_of_bad_lines(tmp_path, monkeypatch, capsys):
    """sizes: [all] (a selection's records) plot at their own place; a line that is not a record is one line."""
    results = tmp_path / "results.jsonl"
    for r in RECORDS[:5]:
        append_record(str(results), {**r, "train_size": "all", "key": r["key"].replace("/300/", "/all/")})
    append_record(str(results), RECORDS[-1])
    monkeypatch.setattr(sys, "argv", ["report.py", "--results", str(results), "--output-dir", str(tmp_path / "out")])
    runpy.run_path(str(REPO / "scripts" / "report.py"), run_name="__main__")
    assert (tmp_path / "out" / "score_vs_size.png").stat().st_size > 5000
    for bad, said in (("not json\n", "line 7: not a record (not JSON"),
                      ('{"method": "x"}\n', "line 7: not a record of a grid run (no key, task, train_size, seed)")):
        broken = tmp_path / "broken.jsonl"
        broken.write_text(results.read_text() + bad)
        code, err = run_script("report.py", ["--results", str(broken), "--output-dir", str(tmp_path / "o2")],
                               monkeypatch, capsys)
        assert code == 2 and said in err and len(err.strip().splitlines()) == 1, err
        assert not (tmp_path / "o2").exists()


def test_a_report_that_breaks_while_writing_leaves_no_empty_folder(tmp_path, monkeypatch):
    from agwm.experiments.report import write_report

    results = tmp_path / "results.jsonl"
    for r in RECORDS:
        append_record(str(results), r)

    def broken(*args, **kwargs):
        raise RuntimeError("the plot broke")

    monkeypatch.setattr(plots, "plot_score_vs_size", broken)
    with pytest.raises(RuntimeError, match="the plot broke"):
        write_report([str(results)], str(tmp_path / "out"))
    assert not (tmp_path / "out").exists()
