"""A user's files are never lost and never misread: an output folder is agwm's alone, a run that
diverges on its last update fails, every file is read as its columns say, one label normalisation
for every format, and every mistake is one line (exit 2) that names its cause."""

import json
import os
import random
import runpy
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest

from agwm.data import DataError, load_files
from agwm.errors import ConfigError
from agwm.experiments.grid import load_grid, read_records, run_grid
from agwm.experiments.selection import select
from tests.conftest import REPO, run_script
from tests.test_faults import assert_one_line

ROWS = pd.DataFrame({"text": ["good film", "bad film", "great plot", "awful acting", "fine", "dull"],
                     "label": ["pos", "neg", "pos", "neg", "pos", "neg"]})


def files(tmp_path, train=ROWS, dev=ROWS):
    train.to_csv(tmp_path / "train.csv", index=False)
    dev.to_csv(tmp_path / "dev.csv", index=False)
    return ["--train-file", str(tmp_path / "train.csv"), "--validation-file", str(tmp_path / "dev.csv")]


def tiny(model, out, *extra):
    return ["--model", model, "--output-dir", str(out), "--report-to", "none", "--batch-size", "2", *extra]


# An output folder is agwm's alone.

def test_a_folder_of_the_users_files_is_refused_and_left_as_it_was(tiny_model_dir, tmp_path, monkeypatch, capsys):
    data = files(tmp_path)
    (tmp_path / "notes").mkdir()
    before = sorted(os.listdir(tmp_path))
    monkeypatch.chdir(tmp_path)
    for extra in ([], ["--overwrite"]):
        code, err = run_script("finetune.py", data + tiny(tiny_model_dir, ".", *extra), monkeypatch, capsys)
        assert_one_line(code, without_notes(err), 2, "--output-dir . is not allowed: it holds files that no agwm "
                        "run wrote (dev.csv, notes, train.csv); give a new or empty folder", tmp_path)
    assert sorted(os.listdir(tmp_path)) == before and (tmp_path / "train.csv").read_text() == ROWS.to_csv(index=False)


def test_overwrite_replaces_a_runs_outputs_and_nothing_else(tiny_model_dir, tmp_path, monkeypatch, capsys):
    data, out = files(tmp_path), tmp_path / "run"
    args = data + tiny(tiny_model_dir, out, "finetune.epochs=1")
    run_script_ok(args, monkeypatch, capsys)
    assert (out / ".agwm-run").exists()
    (out / "my-notes.txt").write_text("mine")  # put there by the user after the run
    code, err = run_script("finetune.py", args, monkeypatch, capsys)
    assert code == 2 and "it holds a finished run (metrics.json); give --overwrite" in err
    first = (out / "metrics.json").read_text()
    run_script_ok(args + ["--overwrite"], monkeypatch, capsys)
    assert (out / "my-notes.txt").read_text() == "mine" and (out / "metrics.json").read_text() != first
    code, err = run_script("search.py", data + tiny(tiny_model_dir, out, "--overwrite"), monkeypatch, capsys)
    assert code == 2 and "it holds a finetune run; give the search another folder" in err


def test_overwrite_removes_exactly_the_files_the_run_wrote_even_inside_its_folders(tiny_model_dir, tmp_path,
                                                                                   monkeypatch, capsys):
    data, out = files(tmp_path), tmp_path / "run"
    args = data + tiny(tiny_model_dir, out, "finetune.epochs=1", "--report-to", "csv", "tensorboard", "--save-model")
    run_script_ok(args, monkeypatch, capsys)
    written = json.loads((out / ".agwm-run").read_text())["files"]
    assert "metrics.json" in written and any(f.startswith("tensorboard/") for f in written)
    made_from = json.loads((out / "metrics.json").read_text())["data"]  # what the run read, by content
    assert made_from["train"]["file"] == str(tmp_path / "train.csv") and len(made_from["validation"]["sha256"]) == 16
    (out / "tensorboard" / "my_events.txt").write_text("mine")  # the user's files in the run's own folders
    (out / "model" / "NOTES.md").write_text("mine")
    (out / "fold7").mkdir()
    (out / "fold7" / "analysis.txt").write_text("mine")
    run_script_ok(args + ["--overwrite"], monkeypatch, capsys)
    for mine in ("tensorboard/my_events.txt", "model/NOTES.md", "fold7/analysis.txt"):
        assert (out / mine).read_text() == "mine"
    assert len(list((out / "tensorboard").iterdir())) == 2  # the new run's event file beside the user's
    listed = json.loads((out / ".agwm-run").read_text())
    assert not {"tensorboard/my_events.txt", "model/NOTES.md"} & set(listed["files"])


def test_overwrite_after_a_run_that_stopped_removes_its_files_and_keeps_what_was_there(tiny_model_dir, tmp_path,
                                                                                       monkeypatch, capsys):
    from agwm.run_folder import list_run_files, prepare_output_dir

    out = tmp_path / "run"
    prepare_output_dir(str(out), "finetune")
    (out / "config.yaml").write_text("a stopped run's")  # written, never listed: the run stopped
    prepare_output_dir(str(out), "finetune")
    assert not (out / "config.yaml").exists()
    os.makedirs(out / "tensorboard")
    (out / "tensorboard" / "events").write_text("run")
    list_run_files(str(out))
    (out / "tensorboard" / "mine.txt").write_text("mine")
    prepare_output_dir(str(out), "finetune")
    assert sorted(os.listdir(out / "tensorboard")) == ["mine.txt"]


def test_a_folder_an_older_agwm_wrote_is_refused_rather_than_guessed(tiny_model_dir, tmp_path, monkeypatch, capsys):
    out = tmp_path / "run"
    out.mkdir()
    (out / ".agwm-run").write_text('{"phase": "finetune", "written_by": "agwm"}')
    (out / "metrics.json").write_text("{}")
    code, err = run_script("finetune.py", files(tmp_path) + tiny(tiny_model_dir, out, "--overwrite"), monkeypatch,
                           capsys)
    assert_one_line(code, without_notes(err), 2, f"--output-dir {out} is not allowed: an older agwm wrote it without "
                    "listing its files", tmp_path / "none")
    assert (out / "metrics.json").read_text() == "{}"


def test_a_second_run_into_a_folder_that_a_run_is_writing_is_refused(tmp_path):
    import fcntl

    from agwm.run_folder import RUN_LOCK, prepare_output_dir

    out = tmp_path / "run"
    out.mkdir()
    with open(out / RUN_LOCK, "w") as other:  # another run holds the folder
        fcntl.flock(other, fcntl.LOCK_EX)
        with pytest.raises(ConfigError, match=f"--output-dir {out} is not allowed: another agwm run is writing "
                                              "there now"):
            prepare_output_dir(str(out), "finetune")
    prepare_output_dir(str(out), "finetune")  # free again
    prepare_output_dir(str(out), "finetune")  # this process's next run there takes it again


def test_the_command_says_when_a_model_learned_nothing_and_what_to_try(tiny_model_dir, tmp_path, monkeypatch,
                                                                        capsys):
    import agwm.finetune

    warning = "every prediction is about 2.88 (their standard deviation 0.00051, the labels' 1.5)"
    monkeypatch.setattr(agwm.finetune, "run_finetune", lambda *args: {
        "evaluated_on": "dev", "metric": "spearman", "score": 46.47, "wall_time_s": 1.0,
        "dev": {"pearson": 44.87, "spearman": 46.47, "score": 46.47, "warning": warning}})
    monkeypatch.setattr(sys, "argv", ["finetune.py", *files(tmp_path), *tiny(tiny_model_dir, tmp_path / "run")])
    runpy.run_path(str(REPO / "scripts" / "finetune.py"), run_name="__main__")
    assert capsys.readouterr().out.splitlines()[-1] == (
        f"warning: {warning}: the model did not learn to tell the examples apart (the defaults were chosen on "
        f"all-MiniLM-L6-v2: with {tiny_model_dir} try --method vanilla-tuned, which chooses lr and epochs on held-out "
        "rows, or agwm select)")
    default = [a for a in tiny(tiny_model_dir, tmp_path / "run2") if a not in ("--model", tiny_model_dir)]
    monkeypatch.setattr(sys, "argv", ["finetune.py", *files(tmp_path), *default])
    runpy.run_path(str(REPO / "scripts" / "finetune.py"), run_name="__main__")
    assert capsys.readouterr().out.splitlines()[-1] == (
        f"warning: {warning}: the model did not learn to tell the examples apart (agwm select compares the methods "
        "on your file)")


def run_script_ok(args, monkeypatch, capsys):
    import runpy

    monkeypatch.setattr(sys, "argv", ["finetune.py", *args])
    runpy.run_path(str(REPO / "scripts" / "finetune.py"), run_name="__main__")
    return capsys.readouterr().err


@pytest.mark.parametrize("folder", ["/proc/agwm-test/out", "/sys/agwm-test"])
def test_an_output_folder_that_cannot_be_made_is_one_line(folder, tiny_model_dir, tmp_path, monkeypatch, capsys):
    code, err = run_script("finetune.py", files(tmp_path) + tiny(tiny_model_dir, folder), monkeypatch, capsys)
    assert_one_line(code, without_notes(err), 2, f"--output-dir {folder} is not allowed: it cannot be", folder)


# A run that diverges on its last update fails.

def test_a_weight_that_becomes_nan_on_the_last_update_fails_the_run(tiny_model_dir, tmp_path, monkeypatch, capsys):
    """The loss is computed before an update: only the weights can show what the last one did."""
    import agwm.finetune

    make = agwm.finetune.weights_and_alphas_optimizer

    def spoiling(params, *args, **kwargs):  # the third (last) update leaves a NaN in one weight
        optimizer, scheduler = make(params, *args, **kwargs)
        updates = []

        def spoil(optimizer, args, kwargs):
            updates.append(1)
            if len(updates) == 3:
                params[0].data[0, 0] = float("nan")

        optimizer.register_step_post_hook(spoil)
        return optimizer, scheduler

    monkeypatch.setattr(agwm.finetune, "weights_and_alphas_optimizer", spoiling)
    args = files(tmp_path) + tiny(tiny_model_dir, tmp_path / "out", "finetune.epochs=1")  # 6 rows, batch 2: 3 steps
    code, err = run_script("finetune.py", args, monkeypatch, capsys)
    assert_one_line(code, without_notes(err), 3, "finetune: a weight became NaN or infinite at step 3; the run "
                    "diverged", tmp_path / "out")


def without_notes(err: str) -> str:
    """Standard error without the lines that say what was read (the task type guessed, columns ignored)."""
    return "\n".join(line for line in err.splitlines() if not line.startswith(("task type:", "validation:")))


# Every file is read as its columns say.

def read(tmp_path, name, content, **kwargs):
    path = tmp_path / name
    if isinstance(content, pd.DataFrame):
        content.to_parquet(path) if name.endswith(".parquet") else content.to_csv(path, index=False)
    else:
        path.write_text(content)
    return load_files(str(path), str(path) if kwargs.pop("dev", True) else None, **kwargs)


@pytest.mark.parametrize("name, content, message", [
    ("t.json", json.dumps([{"text": {"a": 1}, "label": "x"}, {"text": "b", "label": "y"}]),
     "t.json, row 1: column 'text' holds an object ({'a': 1}), not text"),
    ("t.parquet", pd.DataFrame({"text": [["a", "b"], ["c"]], "label": ["x", "y"]}),
     "t.parquet, row 1: column 'text' holds a list (['a', 'b']), not text"),
    ("t.jsonl", '{"text": 7, "label": "x"}\n{"text": "b", "label": "y"}\n', "row 1: column 'text' holds a int"),
    ("t.csv", "text,label,label\na,x,y\nb,y,x\n", "column 'label' appears twice in its header (text, label, label)"),
    ("t.csv", "text,label\na,nan\nb,y\n", "row 1: label 'nan' in column 'label' is not allowed: NaN and infinite"),
    ("t.csv", "text,label\na,0.5\nb,1e400\n", "row 2: label '1e400' in column 'label' is not allowed: NaN"),
    ("t.jsonl", '{"text": "a", "label": "x"}\n{"text": "b", "label": "y"\n', "t.jsonl, line 2: not JSON"),
    ("t.json", '[{"text": "a", "label": "x"},\n {"text": "b" "label": "y"}]', "t.json, line 2: not JSON"),
    ("t.csv", 'text,label\na,x\n"b,y\nc,x\nd,y\n', "t.csv, line 3: 1 fields, expected 2 (text, label); a quote "
     "opens a field here that runs over 3 lines"),
    ("t.csv", "text;label\na;x\nb;y\n", "its columns are 'text;label' (one column: the file looks "
     "semicolon-separated)"),
    ("t.csv", "text\tlabel\na\tx\nb\ty\n", "(one column: the file looks tab-separated)"),
])
def test_a_misread_file_is_refused_in_one_line_naming_the_cause(name, content, message, tmp_path):
    with pytest.raises(DataError) as error:
        read(tmp_path, name, content)
    assert message in str(error.value) and "\n" not in str(error.value)


def test_pandas_index_and_trailing_commas_are_ignored_with_a_note(tmp_path):
    ROWS.to_csv(tmp_path / "indexed.csv")  # pandas' default: an unnamed index column first
    examples = load_files(str(tmp_path / "indexed.csv"), str(tmp_path / "indexed.csv"))
    assert examples.train["text_a"] == list(ROWS["text"]) and examples.task.labels == ("neg", "pos")
    assert any("its first column has no name (the index pandas' to_csv writes" in n for n in examples.notes)
    for content in ("text,label,\na,x,\nb,y,\n", "text,label\na,x,\nb,y,\n"):
        (tmp_path / "t.csv").write_text(content)
        examples = load_files(str(tmp_path / "t.csv"), str(tmp_path / "t.csv"))
        assert examples.train["text_a"] == ["a", "b"] and examples.task.labels == ("x", "y")
        assert any("comma at the end of each line" in n or "ends with a comma" in n for n in examples.notes)


def test_output_columns_in_a_test_or_validation_file_are_refused(tmp_path):
    ROWS.to_csv(tmp_path / "train.csv", index=False)
    ROWS.assign(prediction="pos").to_csv(tmp_path / "test.csv", index=False)
    ROWS.assign(prob_neg=0.5).to_csv(tmp_path / "dev.csv", index=False)
    with pytest.raises(DataError, match="--test-file .*test.csv is not allowed: its column 'prediction' would be "
                                        "replaced by the predictions"):
        load_files(str(tmp_path / "train.csv"), str(tmp_path / "train.csv"), str(tmp_path / "test.csv"))
    with pytest.raises(DataError, match="--validation-file .*dev.csv is not allowed: its column 'prob_neg'"):
        load_files(str(tmp_path / "train.csv"), str(tmp_path / "dev.csv"))


def test_one_label_normalisation_for_every_format(tmp_path):
    labels = ["1", "1.0", " 2", "2.0", "1", "2"]
    as_csv = read(tmp_path, "t.csv", "text,label\n" + "".join(f"t{i},{v}\n" for i, v in enumerate(labels)))
    records = [{"text": f"t{i}", "label": v} for i, v in enumerate([1, 1.0, 2, 2.0, 1, 2])]
    as_json = read(tmp_path, "t.json", json.dumps(records))
    assert as_csv.task.labels == as_json.task.labels == ("1", "2")  # equal as numbers: one class
    assert as_csv.train["label"] == as_json.train["label"] == [0, 0, 1, 1, 0, 1]
    assert "1 labels had spaces around them, read without (e.g. ' 2' as '2')" in as_csv.notes[0]
    real = read(tmp_path, "r.csv", "text,label\na,0.5\nb,1.25\nc,2\n")
    assert real.task.is_regression and real.train["label"] == [0.5, 1.25, 2.0]


def test_tsv_text_keeps_its_quotes_as_written(tmp_path):
    examples = read(tmp_path, "t.tsv", 'text\tlabel\n"quoted" start\tx\nplain "mid" quote\ty\n')
    assert examples.train["text_a"] == ['"quoted" start', 'plain "mid" quote']


def test_a_tsv_that_pandas_quoted_is_read_without_its_quotes(tmp_path):
    rows = pd.DataFrame({"text": ['he said "hi"', "plain", "tab\there"], "label": ["a", "b", "a"]})
    rows.to_csv(tmp_path / "q.tsv", sep="\t", index=False)
    assert load_files(str(tmp_path / "q.tsv"), with_validation=False).train["text_a"] == list(rows["text"])


def test_the_label_column_as_a_text_column_a_list_label_and_a_stray_non_number_are_refused(tmp_path):
    ROWS.to_csv(tmp_path / "t.csv", index=False)
    with pytest.raises(DataError, match="--text-columns label is not allowed: 'label' is the label column"):
        load_files(str(tmp_path / "t.csv"), text_columns=["label"], with_validation=False)
    (tmp_path / "l.jsonl").write_text('{"text": "a", "label": "positive"}\n{"text": "b", "label": ["positive"]}\n'
                                      '{"text": "c", "label": "negative"}\n')
    with pytest.raises(DataError, match=r"l.jsonl, row 2: label \['positive'\] in column 'label' is a list"):
        load_files(str(tmp_path / "l.jsonl"), with_validation=False)
    scores = pd.DataFrame({"first": [f"a{i}" for i in range(40)], "second": [f"b{i}" for i in range(40)],
                           "similarity": [f"{i / 10:.1f}" for i in range(40)]})
    scores.loc[17, "similarity"] = "n/a"
    scores.to_csv(tmp_path / "s.csv", index=False)
    with pytest.raises(DataError, match="s.csv, row 18: label 'n/a' in column 'similarity' is not a number, while 39 "
                                        "of 40 labels are real numbers"):
        load_files(str(tmp_path / "s.csv"), text_columns=["first", "second"], label_column="similarity",
                   with_validation=False)


def test_a_folder_as_a_file_and_too_many_classes_to_hold_out_are_named(tmp_path):
    with pytest.raises(DataError, match="--train-file .* is not allowed: it is a folder, not a file"):
        load_files(str(tmp_path))
    singles = pd.DataFrame({"text": [f"t{i}" for i in range(100)], "label": [f"c{i}" for i in range(100)]})
    singles.to_csv(tmp_path / "t.csv", index=False)
    with pytest.raises(DataError, match="no class has enough rows to hold out 0.2 of it and keep one "
                                        r"\(100 classes, at most 1 rows each\); give --validation-file"):
        load_files(str(tmp_path / "t.csv"))


# Every mistake is one line, with no traceback.

def test_models_that_cannot_be_loaded_are_one_line(tmp_path, monkeypatch, capsys):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)  # no network: no retries to wait out
    data = files(tmp_path)
    (tmp_path / "not-a-model").mkdir()
    for model, message in ((str(tmp_path / "missing"), "no such folder"),
                           (str(tmp_path / "not-a-model"), "the folder holds no model (no config.json)"),
                           ("someone/no-such-model", "no such folder here, and the hub did not give it")):
        code, err = run_script("finetune.py", data + ["--model", model, "--output-dir", str(tmp_path / "o")],
                               monkeypatch, capsys)
        assert_one_line(code, err, 2, f"--model {model} is not allowed: {message}", tmp_path / "o")


def test_an_unreadable_training_file_is_one_line(tmp_path, monkeypatch, capsys):
    data = files(tmp_path)
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: False if str(p).endswith("train.csv") else real_access(p, mode))
    code, err = run_script("finetune.py", data + ["--output-dir", str(tmp_path / "o")], monkeypatch, capsys)
    assert_one_line(code, err, 2, "train.csv is not allowed: it cannot be read (no read permission)", tmp_path / "o")


def test_ctrl_c_while_the_libraries_load_is_one_line(tmp_path):
    files(tmp_path)
    process = subprocess.Popen([sys.executable, str(REPO / "scripts" / "finetune.py"), "--train-file",
                                str(tmp_path / "train.csv"), "--output-dir", str(tmp_path / "o")],
                               stderr=subprocess.PIPE, text=True, cwd=REPO)
    time.sleep(0.8)  # torch, transformers and Betty take seconds to import
    process.send_signal(signal.SIGINT)
    err = process.communicate(timeout=60)[1]
    assert process.returncode == 130 and "Traceback" not in err, err
    assert err.strip().splitlines()[-1].startswith("stopped by SIGINT")


def test_a_grid_checks_every_task_before_its_first_run(glue_dir, tiny_model_dir, tmp_path, monkeypatch, capsys):
    files(tmp_path)
    template = ("tasks:\n  - rte\n  - {{name: mine, train_file: {tmp}/{file}, label_column: {label}}}\n"
                "sizes: [{size}]\nseeds: [1]\ndata_dir: {glue}\nmodel: {model}\n"
                "output_dir: {tmp}/runs\nresults: {tmp}/results.jsonl\n"
                "overrides: [finetune.epochs=1, report_to=none]\nmethods: [{{name: vanilla}}, {{name: {method}}}]\n")
    for changes, message in (({"file": "nothere.csv"}, "task mine: --train-file"),
                             ({"label": "stance"}, "task mine: --label-column stance is not allowed"),
                             ({"size": 5}, "task mine: size 5 is more than its 4 training rows"),
                             ({"file": "../../no.csv"}, "no such file"),
                             ({"method": "setfit"}, "task rte: method setfit: --method setfit is not allowed with two "
                                                    "text columns")):
        grid = tmp_path / "grid.yaml"
        grid.write_text(template.format(**{"file": "train.csv", "label": "label", "size": 4, "method": "probe",
                                           "tmp": tmp_path, "glue": glue_dir, "model": tiny_model_dir, **changes}))
        with pytest.raises(DataError, match=message):
            run_grid(load_grid(str(grid)))
        assert read_records(str(tmp_path / "results.jsonl")) == [] and not (tmp_path / "runs").exists()
    (tmp_path / "grid.yaml").write_text("tasks: [rte\nsizes: [4]\n")
    code, err = run_script("experiment.py", ["--grid", str(tmp_path / "grid.yaml")], monkeypatch, capsys)
    assert code == 2 and "is not allowed: not YAML, line 2" in err and len(err.strip().splitlines()) == 1


def test_select_says_why_no_method_could_be_compared():
    records = [{"method": m, "seed": s, "score": None, "key": f"{m}/{s}", "wall_time_s": {"total": 1.0},
                "dev": {"undefined": "every one of the 60 predictions is the same: no correlation"}}
               for m in ("vanilla", "probe") for s in (1, 2)]
    with pytest.raises(ConfigError, match="0 seed.s. have a score for every method, at least 2 are needed to compare "
                                          "them; 4 of 4 runs have no score .vanilla: every one of the 60"):
        select(records, ["vanilla", "probe"])


# A property: random small user files either stop in one line or come back row for row.

def random_table(rng: random.Random, regression: bool) -> pd.DataFrame:
    n = rng.randint(6, 14)
    words = ["good", "bad", "plot", "acting", "ça", "naïve", "a,b", 'say "hi"', "tab\there", "x" * 30]
    texts = [" ".join(rng.choice(words) for _ in range(rng.randint(1, 4))) for _ in range(n)]
    names = rng.choice([["pos", "neg"], ["a b", "c"], ["10", "2", "3"], ["Ja", "Nein", "Vielleicht"]])
    labels = ([round(rng.uniform(0, 5), 2) for _ in range(n)] if regression
              else [names[i % len(names)] for i in range(n)])
    return pd.DataFrame({"text": texts, "label": labels})


def write_any(table: pd.DataFrame, path) -> None:
    if path.suffix == ".csv":
        table.to_csv(path, index=False)
    elif path.suffix == ".tsv":
        table.assign(text=table["text"].str.replace("\t", " ")).to_csv(path, sep="\t", index=False,
                                                                       quoting=3, escapechar="\\")
    elif path.suffix == ".json":
        path.write_text(json.dumps(table.to_dict("records")))
    elif path.suffix == ".jsonl":
        table.to_json(path, orient="records", lines=True, force_ascii=False)
    else:
        table.to_parquet(path)


@pytest.mark.parametrize("case", range(6))
def test_random_user_files_refuse_in_one_line_or_predict_row_for_row(case, tiny_model_dir, tmp_path, monkeypatch,
                                                                     capsys):
    rng = random.Random(case)
    ext = [".csv", ".tsv", ".json", ".jsonl", ".parquet"][case % 5]
    regression = case % 3 == 2
    train, test = random_table(rng, regression), random_table(rng, regression)
    write_any(train, tmp_path / f"train{ext}")
    write_any(test, tmp_path / f"test{ext}")
    test = pd.read_csv(tmp_path / f"test{ext}", sep="\t", quoting=3, keep_default_na=False, dtype=str) \
        if ext == ".tsv" else test
    args = ["--train-file", str(tmp_path / f"train{ext}"), "--test-file", str(tmp_path / f"test{ext}"),
            *tiny(tiny_model_dir, tmp_path / "out", "finetune.epochs=1")]
    try:
        run_script_ok(args, monkeypatch, capsys)
    except SystemExit as stopped:
        lines = [line for line in capsys.readouterr().err.splitlines() if line.strip() and "%|" not in line]
        assert stopped.code == 2 and len(lines) == 1 and lines[0].startswith("error: "), lines
        return
    predictions = pd.read_csv(tmp_path / "out" / "predictions.csv", keep_default_na=False, dtype=str)
    assert list(predictions["text"]) == [str(t) for t in test["text"]]  # row for row, as written
    if not regression:
        names = {str(v).strip() for v in train["label"]}
        assert set(predictions["prediction"]) <= names
        assert sorted(c[len("prob_"):] for c in predictions.columns if c.startswith("prob_")) == sorted(names)
    else:
        assert np.isfinite(predictions["prediction"].astype(float)).all()


def test_select_method_refuses_a_folder_of_the_users_files(tmp_path, monkeypatch, capsys):
    data = files(tmp_path)
    code, err = run_script("select_method.py", [*data[:2], "--output-dir", str(tmp_path)], monkeypatch, capsys)
    assert code == 2 and "it holds files that no agwm run wrote (dev.csv, train.csv)" in err
    assert sorted(os.listdir(tmp_path)) == ["dev.csv", "train.csv"]


def test_a_saved_probe_says_how_to_load_it(tiny_model_dir, tmp_path, monkeypatch, capsys):
    import runpy

    args = files(tmp_path) + tiny(tiny_model_dir, tmp_path / "p", "--method", "probe", "--save-model")
    monkeypatch.setattr(sys, "argv", ["finetune.py", *args])
    runpy.run_path(str(REPO / "scripts" / "finetune.py"), run_name="__main__")
    out = capsys.readouterr().out
    assert f"model saved to {tmp_path / 'p' / 'model'}: a sentence-transformers encoder with agwm's linear head" in out
    assert "load_encoder_model" in out


def test_predictions_of_a_thousand_classes_warn_nothing():
    import warnings

    from agwm.data import Task
    from agwm.metrics import Predictions
    from agwm.run_folder import prediction_table

    names = tuple(f"c{i}" for i in range(1000))
    probabilities = np.full((3, 1000), 0.001)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # pandas' PerformanceWarning, once per class column, fails here
        table = prediction_table(pd.DataFrame({"text": ["a", "b", "c"]}), Task("t", ("text",), "label", names,
                                                                                 "accuracy"),
                                 Predictions(np.array([0, 1, 999]), probabilities, None))
    assert list(table.columns[:3]) == ["text", "prediction", "prob_c0"] and table["prediction"].tolist()[2] == "c999"
