"""The grid files' decision rules (agwm/experiments/rules.py, scripts/grid_rules.py): the readings of an
interval, each rule on records made to land on either side of it, and the committed grids' answers as
their READMEs quote them."""

import pytest

from agwm.experiments import rules
from agwm.experiments.rules import Paired
from scripts import grid_rules


def record(method, seed, score, total=100.0, task="t", size=300, w0=None):
    r = {"key": f"{method}/{task}/{size}/{seed}", "method": method, "task": task, "train_size": size,
         "seed": seed, "score": score, "wall_time_s": {"total": total}}
    if w0 is not None:
        r["alpha"] = {"a_mean": 1.0, "b_mean": 1.0, "alpha_mean": 1.0, "w0_weight_mean": w0}
    return r


def runs(method, base_score, delta, total=100.0, task="t", w0=None, seeds=range(1, 11)):
    """Ten seeds of method at base_score + delta(seed)."""
    return [record(method, s, base_score + delta(s), total, task, w0=w0(s) if w0 else None) for s in seeds]


@pytest.mark.parametrize("paired, loses, differs, gain", [
    (Paired(-2.0, -3.0, -1.0, 10), "shown to lose", "shown to differ", "unresolved"),
    (Paired(-0.5, -1.0, -0.1, 10), "shown to lose, within 1.5", "shown to differ, within 1.5", "none beyond 1.5"),
    (Paired(0.0, -1.4, 1.4, 10), "within 1.5", "within 1.5", "none beyond 1.5"),
    (Paired(0.5, 0.1, 1.4, 10), "within 1.5", "shown to differ, within 1.5", "shown to carry gain, none beyond 1.5"),
    (Paired(3.0, 1.0, 5.0, 10), "within 1.5", "shown to differ", "shown to carry gain"),
    (Paired(0.0, -2.0, 2.0, 10), "unresolved", "unresolved", "unresolved"),
])
def test_readings(paired, loses, differs, gain):
    assert rules.loses_or_within(paired) == loses
    assert rules.differs_or_within(paired) == differs
    assert rules.gain_or_none(paired) == gain


def test_paired_is_the_t_interval_over_common_seeds():
    records = runs("a", 80, lambda s: s % 3) + runs("b", 80, lambda s: 0, seeds=range(1, 8))
    p = rules.paired(rules.scores_by_cell(records), "a", "b", "t", 300)
    diffs = [s % 3 for s in range(1, 8)]
    assert p.n == 7 and p.mean == pytest.approx(sum(diffs) / 7)
    assert p.lo < p.mean < p.hi and p.hi - p.mean == pytest.approx(p.mean - p.lo)


def test_recommendation_takes_the_cheapest_within_the_margin_else_the_highest_mean():
    def noise(s):
        return 0.3 * (-1) ** s
    records = (runs("vanilla", 80, lambda s: 0) + runs("slow-best", 82, noise, total=300)
               + runs("cheap-close", 81.8, lambda s: -noise(s), total=150))
    assert "**cheap-close**, the cheapest (1.50x)" in rules.recommendation(records, ["t"], 300)
    assert "none is within" not in rules.recommendation(records, ["t"], 300, time_bound="slow-best")
    # each is far behind the other's best on one task: none is within the margin everywhere
    split = (runs("vanilla", 80, lambda s: 0) + runs("vanilla", 70, lambda s: 0, task="u")
             + runs("other", 85, noise, total=300) + runs("other", 66, noise, total=300, task="u"))
    assert "the highest mean, **other** (75.50), not shown" in rules.recommendation(split, ["t", "u"], 300)


def test_moves_alpha_counts_seeds_at_ten_times_darts():
    records = (runs("mixup", 70, lambda s: 0, w0=lambda s: 1e-4)
               + runs("reverse-T5", 70, lambda s: 0, w0=lambda s: 1e-3 if s <= 8 else 9e-4))
    assert rules.moves_alpha(records, "reverse-T5", "t", 300) == (8, 10)
    assert "| reverse-T5 | t | 8 of 10 | yes |" in rules.reverse_horizon(
        records + runs("fold-average", 70, lambda s: 0) + runs("vanilla", 65, lambda s: 0), ["t"],
        methods=("reverse-T5",))


def test_averaging_controls_reads_each_contrast():
    def wobble(s):
        return 0.2 * (-1) ** s
    records = (runs("vanilla", 65, lambda s: 0) + runs("fold-average", 70, wobble) + runs("one-fold", 66, wobble)
               + runs("whole-average", 70, lambda s: 0) + runs("vanilla-swa", 65, wobble)
               + runs("vanilla-extra", 66, lambda s: 0))
    table = rules.averaging_controls(records, ["t"])
    assert "| averaging across runs | fold-average - one-fold | +4.0 [+4.0, +4.0]: shown to carry gain |" in table
    assert "| averaging within a run | vanilla-swa - vanilla | +0.0 [-0.2, +0.2]: none beyond 1.5 |" in table


def test_cheaper_default_passes_only_inside_both_bounds():
    def wobble(s):
        return 0.5 * (-1) ** s
    records = (runs("vanilla", 65, lambda s: 0, total=100) + runs("mixup", 70, lambda s: 0, total=280)
               + runs("fold-average", 70, wobble, total=145) + runs("one-fold", 69.9, wobble, total=120)
               + runs("alpha-every-10", 68, wobble, total=110) + runs("slow", 71, lambda s: 0, total=160))
    table = rules.cheaper_default(records, "t")
    assert "| one-fold | -0.1 [-0.5, +0.3] | 1.20x | yes |" in table
    assert "| alpha-every-10 |" in table and "1.10x | no |" in table
    assert "1.60x | no |" in table
    assert "By the rule, **one-fold** becomes the default." in table
    assert "none passes: mixup stays" in rules.cheaper_default([r for r in records if r["method"] != "one-fold"
                                                                and r["method"] != "fold-average"], "t")


def test_default_classification_keeps_changes_or_drops_the_default_search():
    def wobble(s):
        return 0.5 * (-1) ** s

    def grid(one_fold_b, fold_average_b, seeds=range(1, 11)):
        return [r for task, one, two in (("a", 0.0, 0.0), ("b", one_fold_b, fold_average_b))
                for r in runs("vanilla", 80, lambda s: 0, task=task, seeds=seeds)
                + runs("one-fold", 80 + one, wobble, total=130, task=task, seeds=seeds)
                + runs("fold-average", 80 + two, wobble, total=150, task=task, seeds=seeds)]

    kept = rules.default_classification(grid(-0.2, 0.0), ["a", "b"])
    assert "| one-fold - vanilla | +0.0 [-0.4, +0.4]: not shown to lose beyond 1.5 |" in kept
    assert "one-fold 1.30x, fold-average 1.50x" in kept
    assert "By the rule, one-fold is shown to lose on no task: it stays the default" in kept
    changed = rules.default_classification(grid(-2.0, 0.0), ["a", "b"])
    assert "-2.0 [-2.4, -1.6]: shown to lose by more than 1.5" in changed
    assert "shown to lose on b: the default for classification changes to **fold-average**" in changed
    dropped = rules.default_classification(grid(-2.0, -1.0), ["a", "b"])
    assert "changes to **no search**" in dropped
    early = rules.default_classification(grid(-2.0, 0.0, range(1, 10)), ["a", "b"])
    assert "decides nothing yet" in early and "shown to lose" not in early and ": not decided |" in early


def test_the_mpnet_rule_answers_each_question_per_task():
    def wobble(s):  # seeds 11-15: mean -0.1
        return 0.5 * (-1) ** s
    seeds = range(11, 16)
    records = []
    for task, advice, level in (("stsb", "cosine-finetune", 70), ("mr", "setfit-vanilla", 74)):
        records += (runs("vanilla", 70, wobble, 100, task, seeds=seeds)
                    + runs("one-fold", 75, lambda s: 0, 130, task, seeds=seeds)
                    + runs("mixup", 75.3, wobble, 290, task, w0=lambda s: 0.25, seeds=seeds)
                    + runs(advice, level, wobble, 60, task, seeds=seeds)
                    + runs("minilm-vanilla", 60, lambda s: 0, 25, task, seeds=seeds)
                    + runs(f"minilm-{advice}", 72, wobble, 15, task, seeds=seeds))
    text = rules.mpnet(records, ["mr", "stsb"])
    assert text.startswith("Seeds in: mr 11, 12, 13, 14, 15 (5 of 5); stsb 11, 12, 13, 14, 15 (5 of 5).\n")
    assert "| Q1: mixup - one-fold | +0.2 [-0.5, +0.9]: none beyond 1.5 | +0.2 [-0.5, +0.9]: none beyond 1.5 |" in text
    assert "| mixup's W0 weight after the search (mean) | 2.5e-01 | 2.5e-01 |" in text
    assert "| Q2: one-fold - vanilla | +5.1 [+4.4, +5.8]: shown to carry gain |" in text
    assert "setfit-vanilla - mixup: -1.3 [-1.3, -1.3]: holds |" in text
    assert "cosine-finetune - mixup: -5.3 [-5.3, -5.3]: shown not to hold |" in text
    assert "mixup - minilm-setfit-vanilla: +3.3 [+3.3, +3.3], 19.3x its time" in text
    partial = rules.mpnet([r for r in records if r["seed"] < 14 or r["task"] == "stsb"
                           or (r["seed"] == 14 and r["method"] == "vanilla")], ["mr", "stsb"])
    assert partial.startswith("Seeds in: mr 11, 12, 13 (3 of 5; partly 14); stsb 11, 12, 13, 14, 15 (5 of 5). "
                              "Nothing is decided on mr before its five seeds are in.")
    assert "| Q1: mixup - one-fold | +0.1 [-1.3, +1.6]: not decided | +0.2 [-0.5, +0.9]: none beyond 1.5 |" in partial
    assert "setfit-vanilla - mixup: -1.3 [-1.3, -1.3]: not decided |" in partial
    assert "mixup - minilm-setfit-vanilla: +3.3 [+3.3, +3.3], 19.3x its time, not decided |" in partial
    unstarted = rules.mpnet(records, ["mr", "stsb", "mrpc"])  # a task without a record yet
    assert "mrpc none (0 of 5)" in unstarted and unstarted.count("| - |") >= 4
    others = [runs(m, 70, wobble, 100, "mrpc", seeds=seeds) for m in rules.mpnet_methods("mrpc") - {"vanilla", "mixup"}]
    mrpc = [{**r, "dev": {"accuracy": r["score"] - 10.0}, "score": 81.2 + (2.0 if r["method"] == "mixup" else 0.0)
             + wobble(r["seed"]) / 5} for r in runs("vanilla", 70, wobble, 100, "mrpc", seeds=seeds)
            + runs("mixup", 72, wobble, 290, "mrpc", seeds=seeds) + sum(others, [])]
    text = rules.mpnet(mrpc, ["mrpc"])
    assert "| Q2: mixup - vanilla | +2.0 [+2.0, +2.0]: shown to carry gain |" in text  # on accuracy
    assert "mixup +2.0 [+1.8, +2.1]: learns it;" in text and "vanilla -0.0 [-0.2, +0.1]" in text  # on F1
    unfinished = rules.mpnet([r for r in mrpc if r["method"] != "one-fold" or r["seed"] != 15], ["mrpc"])
    assert "mrpc 11, 12, 13, 14 (4 of 5; partly 15)" in unfinished and "+2.0 [+2.0, +2.0]: not decided" in unfinished
    assert "mixup +2.0 [+1.8, +2.1]: not decided;" in unfinished


COMMITTED_ANSWERS = {
    "peers": ["| Q1: mixup - best peer | +1.4 [-0.0, +2.8]: within 1.5 | -0.3 [-0.7, +0.2]: within 1.5 | "
              "-1.7 [-3.1, -0.3]: shown to lose |",
              "the highest mean, **setfit** (86.03), not shown to match the best"],
    "stacked": ["| setfit-vanilla | +1.5 [+0.1, +3.0] | +0.4 [-0.4, +1.2] | -0.2 [-1.0, +0.7] | no |",
                "**setfit-vanilla**, the cheapest (2.48x)"],
    "peers-1000": ["| Q2: fold-average - best peer | -0.1 [-1.6, +1.5]: unresolved | "
                   "-2.0 [-2.4, -1.5]: shown to lose |",
                   "the highest mean, **setfit-vanilla** (87.30), not shown to match the best"],
    "averaging-controls": ["| a restarted schedule | one-fold - vanilla-extra | "
                           "+9.6 [+3.8, +15.4]: shown to carry gain | +0.1 [-1.0, +1.3]: none beyond 1.5 |",
                           "| averaging across runs | fold-average - one-fold | -1.5 [-3.6, +0.7]: unresolved |"],
    "reverse-horizon": ["| reverse-T5 | stsb | 0 of 10 | no | +1.0 [-1.6, +3.7]: unresolved | "
                        "+0.6 [-1.8, +3.0]: unresolved |",
                        "| reverse-T10 | mr | 0 of 10 | no | +0.2 [-0.3, +0.7]: within 1.5 | "
                        "+0.3 [-0.5, +1.2]: within 1.5 |",
                        "reverse-T10 3.14x vanilla's time, peak 22.4 GiB"],
    "cheaper-default": ["| one-fold | +1.4 [-0.3, +3.1] | 1.28x | yes | +8.3 [+5.5, +11.1] |",
                        "| fold-average | +0.3 [-0.9, +1.6] | 1.52x | no | +7.3 [+4.8, +9.7] |",
                        "mixup itself: 2.85x vanilla's time. By the rule, **one-fold** becomes the default."],
}


@pytest.mark.parametrize("grid", COMMITTED_ANSWERS)
def test_the_committed_grids_answer_as_their_readmes_say(grid, capsys):
    grid_rules.main([f"experiments/{grid}.yaml"])
    out = capsys.readouterr().out
    for line in COMMITTED_ANSWERS[grid]:
        assert line in out


def test_a_grid_without_a_coded_rule_is_refused():
    with pytest.raises(SystemExit, match="experiments/default-mixup.yaml is not allowed: its rule is not coded"):
        grid_rules.main(["experiments/default-mixup.yaml"])
