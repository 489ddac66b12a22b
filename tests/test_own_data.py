"""A user's own files: every format, single texts and pairs, string, integer and real labels; the
validation hold-out; bad input; predictions; user tasks in a grid; choosing the method."""

import csv
import json
import runpy
import sys

import numpy as np
import pandas as pd
import pytest

from agwm.data import get_task, load_files, load_split, stratified_holdout
from agwm.errors import ConfigError
from agwm.experiments.grid import load_grid, read_records, run_grid
from agwm.experiments.selection import select, selection_text
from tests.conftest import REPO, run_script

ROWS = pd.DataFrame({"review": ["good film", "bad film", "great plot", "awful acting", "fine", "dull", "superb",
                                "boring"],
                     "other": ["a", "b", "c", "d", "e", "f", "g", "h"],
                     "sentiment": ["pos", "neg", "pos", "neg", "pos", "neg", "pos", "neg"],
                     "stars": [5, 1, 4, 2, 4, 1, 5, 2],
                     "score": [4.5, 0.5, 4.0, 1.5, 3.5, 1.0, 5.0, 2.0]})


def write(table: pd.DataFrame, path):
    """``table`` in the format of ``path``'s extension."""
    ext = path.suffix
    if ext in (".csv", ".tsv"):
        table.to_csv(path, index=False, sep="\t" if ext == ".tsv" else ",")
    elif ext == ".json":
        path.write_text(json.dumps(table.to_dict("records")))
    elif ext == ".jsonl":
        table.to_json(path, orient="records", lines=True)
    else:
        table.to_parquet(path)
    return str(path)


@pytest.mark.parametrize("ext", [".csv", ".tsv", ".json", ".jsonl", ".parquet"])
def test_every_format_reads_the_same_examples(ext, tmp_path):
    train = write(ROWS, tmp_path / f"train{ext}")
    dev = write(ROWS.iloc[:4], tmp_path / f"dev{ext}")
    strings = load_files(train, dev, text_columns=["review"], label_column="sentiment")
    assert strings.task.labels == ("neg", "pos") and strings.task.metric == "accuracy"
    assert strings.train["text_a"] == list(ROWS["review"]) and "text_b" not in strings.train.column_names
    assert strings.train["label"] == [1, 0, 1, 0, 1, 0, 1, 0]
    assert list(strings.validation_rows["review"]) == list(ROWS["review"][:4])

    integers = load_files(train, dev, text_columns=["review", "other"], label_column="stars")
    assert integers.task.labels == ("1", "2", "4", "5")  # by value, not alphabetically
    assert integers.train["text_b"] == list(ROWS["other"]) and integers.train["label"][:2] == [3, 0]

    real = load_files(train, dev, text_columns=["review"], label_column="score")
    assert real.task.is_regression and real.task.metric == "spearman"
    assert real.train["label"] == pytest.approx(list(ROWS["score"]))

    forced = load_files(train, dev, text_columns=["review"], label_column="stars", task_type="regression")
    assert forced.task.is_regression and forced.train["label"] == pytest.approx([5, 1, 4, 2, 4, 1, 5, 2])


def test_default_columns_and_the_printed_guess(tmp_path):
    table = ROWS.rename(columns={"review": "text", "sentiment": "label"})
    examples = load_files(write(table, tmp_path / "t.csv"), write(table, tmp_path / "d.csv"))
    assert examples.task.text_columns == ("text",) and examples.task.label_column == "label"
    assert examples.notes == ["task type: classification (2 classes: neg, pos; f1 scores class 'pos'), guessed "
                              "from the labels (--task-type overrides); metric: accuracy"]


def test_a_text_that_looks_like_a_number_stays_as_written(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("text,label\n007,a\nNA,b\n1e3,a\n")
    examples = load_files(str(path), str(path))
    assert examples.train["text_a"] == ["007", "NA", "1e3"]


def test_validation_split_is_stratified_seeded_and_apart_from_training(tmp_path, capsys):
    labels = [0] * 30 + [1] * 10 + [2] * 5
    kept, held = stratified_holdout(labels, 0.2, seed=4, regression=False)
    assert sorted(kept + held) == list(range(45)) and not set(kept) & set(held)
    assert [sum(labels[i] == c for i in held) for c in range(3)] == [6, 2, 1]
    assert (kept, held) == stratified_holdout(labels, 0.2, seed=4, regression=False)
    assert held != stratified_holdout(labels, 0.2, seed=5, regression=False)[1]

    train = write(pd.concat([ROWS] * 5, ignore_index=True), tmp_path / "t.csv")
    examples = load_files(train, text_columns=["review"], label_column="sentiment", validation_split=0.25, seed=2)
    assert len(examples.validation) == 10 and len(examples.train) == 30
    assert sorted(examples.validation["label"]) == [0] * 5 + [1] * 5
    assert "validation: 10 rows (0.25, stratified, seed 2) held out" in examples.notes[-1]
    assert list(examples.validation_rows["review"]) == examples.validation["text_a"]


def test_a_glue_preset_reads_as_its_tsv_says(glue_dir):
    """The one reader against Python's csv module on the GLUE file (quotes are plain characters)."""
    with open(f"{glue_dir}/RTE/train.tsv", encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    examples = load_split(get_task("rte"), "train", glue_dir)
    assert examples["text_a"] == [r["sentence1"] for r in rows] and examples["text_b"] == [r["sentence2"] for r in rows]
    assert examples["label"] == [("entailment", "not_entailment").index(r["label"]) for r in rows]


def run_ok(name, args, monkeypatch, capsys) -> str:
    """Run a script that should finish; its standard error."""
    monkeypatch.setattr(sys, "argv", [name, *args])
    try:
        runpy.run_path(str(REPO / "scripts" / name), run_name="__main__")
    except SystemExit as stopped:
        pytest.fail(f"{name} stopped with {stopped.code}: {capsys.readouterr().err[-2000:]}")
    return capsys.readouterr().err


def user_files(tmp_path):
    ROWS.to_csv(tmp_path / "train.csv", index=False)
    ROWS.to_csv(tmp_path / "dev.csv", index=False)
    return tmp_path / "train.csv", tmp_path / "dev.csv"


BAD = [  # (what the test changes, extra arguments, the message)
    ("", ["--train-file", "{t}/nothere.csv"], "--train-file {t}/nothere.csv is not allowed: no such file"),
    ("txt", ["--train-file", "{t}/train.txt"], "--train-file {t}/train.txt is not allowed: unknown extension '.txt'"),
    ("", ["--text-columns", "body"], "--text-columns body is not allowed: no such column in {t}/train.csv; its "
     "columns are review, other, sentiment, stars, score"),
    ("", ["--label-column", "stance"], "--label-column stance is not allowed: no such column"),
    ("empty", [], "--train-file {t}/train.csv is not allowed: the file is empty"),
    ("header", [], "--train-file {t}/train.csv is not allowed: it has no rows"),
    ("blank text", [], "{t}/train.csv, row 3: empty text in column 'review'"),
    ("new label", [], "{t}/dev.csv, row 2: label 'neutral' is not one of ['neg', 'pos']"),
    ("one class", [], "--label-column sentiment: {t}/train.csv has one class ('pos'); classification needs at "
     "least two"),
    ("", ["--task-type", "regression"], "{t}/train.csv, row 1: label 'pos' is not a number (a regression task)"),
    ("", ["--train-size", "9"], "--train-size 9 is out of range: allowed 2 to 8"),
    ("", ["--text-columns", "review", "review"], "--text-columns review review is not allowed: each column once"),
    ("", ["--text-columns", "review", "sentiment"], "--label-column sentiment is not allowed: a column other than"),
    ("", ["--metric", "spearman"], "--metric spearman is not allowed for a classification task"),
    ("", ["--label-column", "stars", "--metric", "f1"], "--metric f1 is not allowed with 4 classes"),
    ("", ["--task", "rte"], "--train-file {t}/train.csv is not allowed: with --task rte: give one of the two"),
    ("", ["--validation-split", "0.3"], "--validation-split 0.3 is not allowed: without --validation-file"),
    ("test without text", ["--test-file", "{t}/test.csv"], "--text-columns review is not allowed: no such column "
     "in {t}/test.csv; its columns are other"),
    ("latin-1", [], "--train-file {t}/train.csv is not allowed: it is not UTF-8 text"),
]


def spoil(change, tmp_path):
    train, dev = user_files(tmp_path)
    if change == "txt":
        (tmp_path / "train.txt").write_text(train.read_text())
    elif change == "empty":
        train.write_text("")
    elif change == "header":
        train.write_text("review,sentiment\n")
    elif change == "blank text":
        ROWS.assign(review=["a", "b", " ", "d", "e", "f", "g", "h"]).to_csv(train, index=False)
    elif change == "new label":
        ROWS.assign(sentiment=["pos", "neutral"] * 4).to_csv(dev, index=False)
    elif change == "one class":
        ROWS.assign(sentiment="pos").to_csv(train, index=False)
    elif change == "test without text":
        ROWS[["other"]].to_csv(tmp_path / "test.csv", index=False)
    elif change == "latin-1":
        train.write_bytes("review,sentiment\ncaf\xe9,pos\nb,neg\n".encode("latin-1"))


@pytest.mark.parametrize("change, extra, message", BAD, ids=[m[:40] for _, _, m in BAD])
def test_bad_input_stops_in_one_line_before_any_work(change, extra, message, tmp_path, monkeypatch, capsys):
    spoil(change, tmp_path)
    args = ["--train-file", str(tmp_path / "train.csv"), "--validation-file", str(tmp_path / "dev.csv"),
            "--text-columns", "review", "--label-column", "sentiment", "--output-dir", str(tmp_path / "out")]
    extra = [e.format(t=tmp_path) for e in extra]
    for flag in ("--train-file", "--text-columns", "--label-column"):  # the case's own value replaces the default
        if flag in extra:
            i = args.index(flag)
            del args[i:i + 2]
    for script in ("finetune.py",) if "--test-file" in extra else ("search.py", "finetune.py"):
        code, err = run_script(script, args + extra, monkeypatch, capsys)
        assert code == 2, err
        assert message.format(t=tmp_path) in err
        assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
        assert not (tmp_path / "out").exists()


@pytest.fixture(scope="module")
def user_style_csvs(glue_dir, tmp_path_factory):
    """About 40 rows of CoLA as a user would have them: column ``text``, labels acceptable / unacceptable."""
    out = tmp_path_factory.mktemp("user")
    make = runpy.run_path(str(REPO / "scripts" / "make_example_data.py"))["user_style"]
    columns = {"text_a": "text", "label": "judgement"}
    make("cola", "train", glue_dir, 40, 0, columns).to_csv(out / "train.csv", index=False)
    make("cola", "dev", glue_dir, 24, 0, columns).to_csv(out / "dev.csv", index=False)
    make("cola", "dev", glue_dir, 6, 1, {"text_a": "text"}).to_csv(out / "unlabelled.csv", index=False)
    return out


@pytest.mark.slow
def test_search_finetune_predict_and_load_with_a_pipeline(user_style_csvs, tmp_path, monkeypatch, capsys):
    """The README's own-data pipeline commands (search, finetune) on a user-style CSV with the real default model."""
    from transformers import pipeline

    d = user_style_csvs
    data = ["--train-file", str(d / "train.csv"), "--text-columns", "text", "--label-column", "judgement",
            "--validation-file", str(d / "dev.csv")]
    err = run_ok("search.py", data + ["--output-dir", str(tmp_path / "s"), "--max-steps", "2"], monkeypatch, capsys)
    assert "task type: classification (2 classes: acceptable, unacceptable" in err
    run_ok("finetune.py", data + ["--test-file", str(d / "unlabelled.csv"), "--alphas",
                                  str(tmp_path / "s" / "alphas.safetensors"), "--output-dir", str(tmp_path / "f"),
                                  "--save-model", "finetune.epochs=1"], monkeypatch, capsys)
    predictions = pd.read_csv(tmp_path / "f" / "predictions.csv")
    unlabelled = pd.read_csv(d / "unlabelled.csv")
    assert list(predictions.columns) == ["text", "prediction", "prob_acceptable", "prob_unacceptable"]
    assert list(predictions["text"]) == list(unlabelled["text"])
    assert set(predictions["prediction"]) <= {"acceptable", "unacceptable"}
    assert np.allclose(predictions[["prob_acceptable", "prob_unacceptable"]].sum(axis=1), 1.0, atol=1e-5)
    validation = pd.read_csv(tmp_path / "f" / "validation_predictions.csv")
    metrics = json.loads((tmp_path / "f" / "metrics.json").read_text())
    accuracy = 100 * (validation["prediction"] == validation["judgement"]).mean()
    assert metrics["dev"]["accuracy"] == pytest.approx(accuracy)

    from agwm.mixup import MixupModel, mixup_layers

    # the unmerged model beside the merged one
    restored = MixupModel.from_pretrained(str(tmp_path / "f" / "mixup_model")).base_model
    assert len(list(mixup_layers(restored))) > 0 and restored.config.id2label == {0: "acceptable", 1: "unacceptable"}

    classify = pipeline("text-classification", model=str(tmp_path / "f" / "model"))
    answers = classify(list(unlabelled["text"]))
    assert [a["label"] for a in answers] == list(predictions["prediction"])
    assert [a["score"] for a in answers] == pytest.approx(
        list(predictions[["prob_acceptable", "prob_unacceptable"]].max(axis=1)), abs=1e-4)


@pytest.mark.slow
def test_the_recommended_classification_command_predicts_label_names(user_style_csvs, tmp_path, monkeypatch, capsys):
    """The README's first own-data command (setfit-vanilla) with the real default model, loaded back as
    the README loads it."""
    pytest.importorskip("setfit")
    from transformers import pipeline

    d = user_style_csvs
    run_ok("finetune.py", ["--method", "setfit-vanilla", "--train-file", str(d / "train.csv"), "--text-columns",
                           "text", "--label-column", "judgement", "--validation-file", str(d / "dev.csv"),
                           "--test-file", str(d / "unlabelled.csv"), "--output-dir", str(tmp_path / "f"),
                           "--save-model", "finetune.epochs=1"], monkeypatch, capsys)
    predictions = pd.read_csv(tmp_path / "f" / "predictions.csv")
    assert list(predictions.columns) == ["text", "prediction", "prob_acceptable", "prob_unacceptable"]
    classify = pipeline("text-classification", model=str(tmp_path / "f" / "model"))
    assert [a["label"] for a in classify(list(predictions["text"]))] == list(predictions["prediction"])


@pytest.mark.slow  # reads every task's files (several seconds): the quick loop stays under two minutes
def test_a_grid_takes_a_user_task_beside_a_glue_name(user_style_csvs, glue_dir, tiny_model_dir, tmp_path,
                                                      quick_probe):
    grid_file = tmp_path / "grid.yaml"
    grid_file.write_text(f"""
tasks:
  - rte
  - {{name: judgements, train_file: {user_style_csvs}/train.csv, text_columns: [text], label_column: judgement,
     validation_file: {user_style_csvs}/dev.csv}}
sizes: [16]
seeds: [1]
data_dir: {glue_dir}
model: {tiny_model_dir}
output_dir: {tmp_path}/runs
results: {tmp_path}/results.jsonl
overrides: [finetune.epochs=1]
methods: [{{name: vanilla}}]
""")
    assert run_grid(load_grid(str(grid_file))) == (2, 0)
    records = {r["task"]: r for r in read_records(str(tmp_path / "results.jsonl"))}
    assert set(records) == {"rte", "judgements"}
    assert records["judgements"]["config"]["train_file"] == f"{user_style_csvs}/train.csv"
    assert set(records["judgements"]["dev"]) - {"warning"} == {"accuracy", "macro-f1", "mcc", "f1", "score"}
    assert records["judgements"]["metric"] == "accuracy" and records["rte"]["metric"] == "accuracy"


def record(method, seed, score, seconds):
    return {"method": method, "seed": seed, "score": score, "wall_time_s": {"total": seconds}}


def test_the_selection_rule_takes_the_cheapest_method_shown_within_the_margin_of_the_best():
    best = [record("mixup", s, 71 + d, 300) for s, d in enumerate([-1, 2, -2, 2, 1], 1)]
    close = [record("vanilla", s, 70 + d, 100) for s, d in enumerate([-1, 2, -2, 2, 1], 1)]  # exactly 1 below
    result = select(best + close, ["vanilla", "mixup"])
    assert result["best"] == "mixup" and result["methods"]["vanilla"]["within_margin"]
    assert result["recommended"] == "vanilla"  # shown to lose at most 3 points, at a third of the time

    noisy = [record("vanilla", s, 70 + d, 100) for s, d in enumerate([4, -8, 6, -5, 0], 1)]
    result = select(best + noisy, ["vanilla", "mixup"])  # its interval contains 0 but reaches far below -3
    assert result["methods"]["vanilla"]["interval"][0] < -3.0 < 0.0 < result["methods"]["vanilla"]["interval"][1]
    assert not result["methods"]["vanilla"]["within_margin"] and result["recommended"] == "mixup"
    assert select(best + noisy, ["vanilla", "mixup"], margin=30.0)["recommended"] == "vanilla"


def test_the_selection_names_the_runs_that_learned_nothing():
    flat = {"dev": {"warning": "every prediction is about 2.88 (...)"}, "task": "pairs", "train_size": "all"}
    runs = [record("a", s, 70 + s, 100) for s in (1, 2, 3)]
    runs += [{**record("b", s, 40 + s, 100), **(flat if s != 2 else {})} for s in (1, 2, 3)]
    result = select(runs, ["a", "b"])
    assert result["learned_nothing"] == {"b": [1, 3]}
    assert "Learned nothing (every prediction one class, or nearly constant): b on seeds 1, 3" in selection_text(
        result, "spearman")
    assert "Learned nothing" not in selection_text(select(runs[:3] + [record("b", s, 40, 100) for s in (1, 2, 3)],
                                                          ["a", "b"]), "spearman")


def test_the_selection_estimate_scores_each_seed_by_the_choice_made_without_it():
    """Seed 3 alone makes b the best: left out, a is chosen and seed 3 is scored by a's 50, not b's 90."""
    a = [record("a", s, v, 100) for s, v in zip((1, 2, 3), (70, 70, 50))]
    b = [record("b", s, v, 100) for s, v in zip((1, 2, 3), (60, 61, 90))]
    result = select(a + b, ["a", "b"], margin=0.5)
    assert result["best"] == "b" and result["recommended"] == "b"  # b's mean 70.3 against a's 63.3
    estimate = result["estimate"]
    assert estimate["per_seed"] == {1: ("b", 60), 2: ("b", 61), 3: ("a", 50)}
    assert estimate["mean"] == pytest.approx(57.0) and estimate["mean"] < result["methods"]["b"]["mean"]
    assert select(a[:2] + b[:2], ["a", "b"])["estimate"] is None  # two seeds: no choice without one of them
    high = [record("a", s, v, 100) for s, v in zip((1, 2, 3), (99.5, 99.9, 80))]
    low = [record("b", s, v, 100) for s, v in zip((1, 2, 3), (10, 12, 98))]
    assert select(high + low, ["a", "b"])["estimate"]["interval"][1] == 100.0  # clipped to accuracy's range


@pytest.mark.parametrize("columns, labels, setfit, expected", [
    (("text",), ("neg", "pos"), True, ["vanilla", "fold-average", "probe", "setfit", "setfit-vanilla"]),
    (("text",), ("neg", "pos"), False, ["vanilla", "fold-average", "probe"]),
    (("text",), None, True, ["vanilla", "fold-average", "probe"]),
    (("a", "b"), None, True, ["vanilla", "fold-average", "probe", "cosine", "cosine-finetune"]),
    (("a", "b"), ("no", "yes"), True, ["vanilla", "fold-average", "probe", "cosine", "cosine-finetune"]),
    (("a", "b"), ("e", "n", "c"), True, ["vanilla", "fold-average", "probe", "cosine"]),
])
def test_select_compares_the_methods_for_the_tasks_kind_by_default(columns, labels, setfit, expected, monkeypatch):
    from agwm.data import Task
    from agwm.experiments import selection
    from agwm.registry import FinetuneMethod

    monkeypatch.setattr(FinetuneMethod, "installed", lambda self: setfit or self.needs is None)
    task = Task("mine", columns, "label", labels, "spearman" if labels is None else "accuracy")
    methods, note = selection.default_methods(task)
    assert methods == expected
    assert (note is not None) == (labels is not None and len(columns) == 1 and not setfit)
    assert all(selection.task_error(m, task) is None for m in methods)


def test_the_pipelines_select_names_run_the_settings_their_names_meant_in_the_studies(tmp_path):
    from agwm.experiments.selection import selection_grid

    train, _ = user_files(tmp_path)
    task = {"name": "mine", "train_file": str(train), "text_columns": ["review"], "label_column": "sentiment"}
    grid = selection_grid(task, ["mixup", "fold-average", "one-fold", "vanilla"], 2, str(tmp_path / "s"), [])
    searches = {run.entry.name: (run.config.search.problem, run.config.search.folds) for run in grid.runs()}
    assert searches == {"mixup": ("bilevel", 2), "fold-average": ("inner_only", 2), "one-fold": ("inner_only", 1),
                        "vanilla": ("inner_only", 1)}  # the defaults: vanilla reads neither


def test_select_without_methods_plans_the_defaults_for_the_files_task(tmp_path, monkeypatch, capsys):
    from agwm.experiments import selection

    train, _ = user_files(tmp_path)
    planned = []
    monkeypatch.setattr(selection, "run_selection", lambda grid, methods, *a, **k: planned.append(methods) or
                        {"text": "stopped before the runs"})
    args = ["--train-file", str(train), "--text-columns", "review", "--label-column", "sentiment",
            "--seeds", "2", "--output-dir", str(tmp_path / "out")]
    monkeypatch.setattr(sys, "argv", ["select_method.py", *args])
    runpy.run_path(str(REPO / "scripts" / "select_method.py"), run_name="__main__")
    setfit = selection.method("setfit").installed()
    expected = ["vanilla", "fold-average", "probe"] + (["setfit", "setfit-vanilla"] if setfit else [])
    assert planned == [expected]  # two classes of single texts
    assert f"({' '.join(expected)} x 2 seeds)" in capsys.readouterr().out


@pytest.mark.slow
def test_select_method_runs_each_method_on_held_out_parts_of_the_training_file(
        user_style_csvs, tiny_model_dir, tmp_path, monkeypatch, capsys):
    args = ["--train-file", str(user_style_csvs / "train.csv"), "--text-columns", "text", "--label-column",
            "judgement", "--methods", "vanilla", "fold-average", "--seeds", "2", "--model", tiny_model_dir,
            "--output-dir", str(tmp_path), "finetune.epochs=1", "search.max_steps=1"]
    run_ok("select_method.py", args, monkeypatch, capsys)
    records = read_records(str(tmp_path / "results.jsonl"))
    assert sorted((r["method"], r["seed"]) for r in records) == [("fold-average", 1), ("fold-average", 2),
                                                                 ("vanilla", 1), ("vanilla", 2)]
    assert all(r["evaluated_on"] == "holdout" for r in records)
    assert {r["config"]["train_size"] for r in records} == {None}  # the whole file, no validation part held out
    recommended = select(records, ["vanilla", "fold-average"])["recommended"]
    assert json.loads((tmp_path / "selection.json").read_text())["recommended"] == recommended
    assert f"Recommended: {recommended} (rule: " in (tmp_path / "selection.md").read_text()

    args[args.index("--seeds") + 1] = "1"
    code, err = run_script("select_method.py", args, monkeypatch, capsys)
    assert code == 2 and "--seeds 1 is not allowed: at least 2" in err


def test_select_method_refuses_a_bad_margin_before_any_run(tmp_path, monkeypatch, capsys):
    train, _ = user_files(tmp_path)
    args = ["--train-file", str(train), "--text-columns", "review", "--label-column", "sentiment",
            "--margin", "0", "--output-dir", str(tmp_path / "out")]
    code, err = run_script("select_method.py", args, monkeypatch, capsys)
    assert code == 2 and "--margin 0.0 is not allowed: greater than 0" in err and not (tmp_path / "out").exists()


def test_a_selection_refused_after_its_plan_leaves_no_folder(tmp_path, monkeypatch, capsys):
    from agwm.experiments import selection

    train, _ = user_files(tmp_path)

    def refused(grid, *args, **kwargs):
        raise ConfigError("refused before any run")

    monkeypatch.setattr(selection, "run_grid", refused)
    args = ["--train-file", str(train), "--text-columns", "review", "--label-column", "sentiment",
            "--methods", "vanilla", "probe", "--seeds", "2", "--output-dir", str(tmp_path / "out")]
    code, err = run_script("select_method.py", args, monkeypatch, capsys)
    assert code == 2 and "refused before any run" in err and not (tmp_path / "out").exists()


def test_unknown_task_mapping_keys_are_refused(tmp_path):
    grid_file = tmp_path / "grid.yaml"
    grid_file.write_text("tasks: [{name: x, train_file: a.csv, colums: [t]}]\nsizes: [8]\nseeds: [1]\n"
                         "methods: [{name: vanilla}]\n")
    with pytest.raises(ConfigError, match="task .* is not allowed: a GLUE name, or a mapping with name"):
        load_grid(str(grid_file))


def test_a_learnable_task_is_learned_past_its_one_class_score(tiny_model_dir, tmp_path):
    """The whole path from a user's file to a score measures learning: a sentiment word decides the
    label, and training lifts the tiny model's validation accuracy above predicting one class."""
    from agwm.finetune import run_finetune
    from agwm.settings import build_run_config

    words = {"pos": ["good", "great", "nice", "fine"], "neg": ["bad", "awful", "poor", "sad"]}
    rest = ["the film", "a plot", "this show", "my day", "the food", "our trip"]
    rows = [{"text": f"{rest[i % 6]} was {words[label][i % 4]}", "label": label}
            for i in range(36) for label in ("pos", "neg")]
    pd.DataFrame(rows[:48]).to_csv(tmp_path / "train.csv", index=False)
    pd.DataFrame(rows[48:]).to_csv(tmp_path / "dev.csv", index=False)
    cfg = build_run_config({"train_file": str(tmp_path / "train.csv"), "validation_file": str(tmp_path / "dev.csv"),
                            "model": tiny_model_dir, "output_dir": str(tmp_path / "out"), "report_to": ["none"]},
                           ["finetune.epochs=30", "finetune.lr=3e-3"])
    metrics = run_finetune(cfg)
    assert metrics["dev"]["accuracy"] > 50.0 + 20.0  # one class everywhere scores 50 on these 24 rows


@pytest.mark.slow
def test_the_selection_study_scores_each_recommendation_on_the_test_file(user_style_csvs, tiny_model_dir, tmp_path,
                                                                         monkeypatch, capsys):
    """select_method on each user's sample alone, its choice scored by the grid's test-file run."""
    grid = tmp_path / "grid.yaml"
    grid.write_text(f"""
tasks:
  - {{name: judgements, train_file: {user_style_csvs}/train.csv, text_columns: [text], label_column: judgement,
     validation_file: {user_style_csvs}/dev.csv}}
sizes: [30]
seeds: [1, 2]
model: {tiny_model_dir}
output_dir: {tmp_path}/runs
results: {tmp_path}/test-records.jsonl
overrides: [finetune.epochs=1, report_to=none]
methods: [{{name: vanilla}}, {{name: probe}}]
""")
    run_grid(load_grid(str(grid)))
    monkeypatch.chdir(tmp_path)  # the study's samples and runs go under runs/
    run_ok("select_study.py", ["--grid", str(grid), "--user-seeds", "1", "2", "--methods", "vanilla", "probe",
                               "--seeds", "3", "--fixed", "vanilla", "probe", "--output-dir", str(tmp_path / "study"),
                               "--workers", "1"], monkeypatch, capsys)
    study = json.loads((tmp_path / "study" / "study.json").read_text())
    test = {(r["method"], r["seed"]): r["score"] for r in read_records(str(tmp_path / "test-records.jsonl"))}
    assert [(c["task"], c["user_seed"]) for c in study["cells"]] == [("judgements", 1), ("judgements", 2)]
    for cell in study["cells"]:
        assert cell["test_scores"] == {m: test[m, cell["user_seed"]] for m in ("vanilla", "probe")}
        assert cell["estimate"] is not None and cell["recommended"] in ("vanilla", "probe")
    sample = pd.read_csv(tmp_path / "runs" / "select-study" / "samples" / "judgements-u1.csv")
    assert len(sample) == 30 and list(sample.columns) == ["text", "judgement"]  # the user's file: the grid's sample
    records = read_records(str(tmp_path / "study" / "results.jsonl"))
    assert {r["task"] for r in records} == {"judgements-u1", "judgements-u2"} and len(records) == 2 * 2 * 3
    assert "The recommendation was the test file's best method in" in (tmp_path / "study" / "study.md").read_text()
