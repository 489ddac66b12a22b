"""No silent wrong results: bad data, bad artefacts and bad settings stop before any work with one
line (exit 2); a run that diverges stops with one line (exit 3) and no metrics.json; an undefined
metric is null with its reason; SIGINT and SIGTERM end a run (or a grid, its workers at once) with
one line; two grid runners never share a results file; the same command twice gives the same
scores and alphas."""

import json
import math
import os
import runpy
import shutil
import signal
import subprocess
import sys
import time

import pytest
import torch
from safetensors.torch import load_file, save_file

from agwm.data import get_task
from agwm.experiments.paired import merge_records, split_unscored
from agwm.metrics import compute_metrics
from tests.conftest import REPO, run_script, write_grid

STSB_HEADER = "index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2\tscore\n"


@pytest.fixture
def stsb_dir(glue_dir, tmp_path):
    """A GLUE-layout folder with the first 40 STS-B training rows and 20 dev rows, to spoil."""
    folder = tmp_path / "glue" / "STS-B"
    folder.mkdir(parents=True)
    for name, rows in (("train.tsv", 40), ("dev.tsv", 20)):
        with open(os.path.join(glue_dir, "STS-B", name)) as f:
            lines = [next(f) for _ in range(rows + 1)]
        (folder / name).write_text("".join(lines))
    return folder


def set_score(path, row, value):
    """Replace the score of data row ``row`` (1-based) of a GLUE STS-B file."""
    lines = path.read_text().splitlines(keepends=True)
    fields = lines[row].rstrip("\n").split("\t")
    fields[-1] = value
    lines[row] = "\t".join(fields) + "\n"
    path.write_text("".join(lines))


def stsb_args(stsb_dir, tiny_model_dir, out, *extra):
    return ["--report-to", "none", "--task", "stsb", "--data-dir", str(stsb_dir.parent), "--train-size", "16",
            "--model", tiny_model_dir, "--output-dir", str(out), *extra]


def assert_one_line(code, err, want_code, message, out):
    """Exit ``want_code``, one line (besides progress bars) holding ``message``, no metrics.json."""
    lines = [line for line in err.replace("\r", "\n").splitlines() if line.strip() and "%|" not in line]
    assert code == want_code, err
    assert len(lines) == 1 and message in lines[0], err
    assert "Traceback" not in err
    assert not os.path.exists(os.path.join(out, "metrics.json"))


def run_to_the_end(name, args, monkeypatch, capsys):
    """Run a script that is expected to finish (no SystemExit); its stderr."""
    monkeypatch.setattr(sys, "argv", [name, *args])
    runpy.run_path(str(REPO / "scripts" / name), run_name="__main__")
    return capsys.readouterr().err


DATA_CASES = [  # (file, row, value written, message)
    ("train.tsv", 3, "7.5", "train.tsv, row 3: label '7.5' is outside the task's range 0 to 5"),
    ("train.tsv", 2, "-1.0", "train.tsv, row 2: label '-1.0' is outside the task's range 0 to 5"),
    ("train.tsv", 4, "100", "train.tsv, row 4: label '100' is outside the task's range 0 to 5"),
    ("train.tsv", 5, "NaN", "train.tsv, row 5: label 'NaN' in column 'score' is not allowed: NaN and infinite"),
    ("train.tsv", 5, "inf", "train.tsv, row 5: label 'inf' in column 'score' is not allowed: NaN and infinite"),
    ("train.tsv", 6, "", "train.tsv, row 6: no label in column 'score'"),
    ("dev.tsv", 7, "NaN", "dev.tsv, row 7: label 'NaN' in column 'score' is not allowed: NaN and infinite"),
    ("dev.tsv", 1, "5.5", "dev.tsv, row 1: label '5.5' is outside the task's range 0 to 5"),
]


@pytest.mark.parametrize("name, row, value, message", DATA_CASES, ids=[c[3][:45] for c in DATA_CASES])
def test_bad_labels_stop_before_any_work(name, row, value, message, stsb_dir, tiny_model_dir, tmp_path,
                                         monkeypatch, capsys):
    set_score(stsb_dir / name, row, value)
    out = tmp_path / "out"
    for script in ("search.py", "finetune.py"):
        code, err = run_script(script, stsb_args(stsb_dir, tiny_model_dir, out), monkeypatch, capsys)
        assert_one_line(code, err, 2, message, out)
        assert not out.exists()


FILE_CASES = [  # (file, its new bytes, message)
    ("train.tsv", b"", "train.tsv is not allowed: the file is empty"),
    ("dev.tsv", b"", "dev.tsv is not allowed: the file is empty"),
    ("dev.tsv", STSB_HEADER.encode(), "dev.tsv is not allowed: it has no rows"),
    ("dev.tsv", STSB_HEADER.encode() + "0\tx\tx\tx\tx\tx\tx\tcaf\xe9\tb\t1.0\n".encode("latin-1"),
     "dev.tsv is not allowed: it is not UTF-8 text"),
]


@pytest.mark.parametrize("name, content, message", FILE_CASES, ids=[c[2][:40] for c in FILE_CASES])
def test_bad_files_stop_before_any_work(name, content, message, stsb_dir, tiny_model_dir, tmp_path,
                                        monkeypatch, capsys):
    (stsb_dir / name).write_bytes(content)
    out = tmp_path / "out"
    code, err = run_script("finetune.py", stsb_args(stsb_dir, tiny_model_dir, out), monkeypatch, capsys)
    assert_one_line(code, err, 2, message, out)
    assert not out.exists()


@pytest.mark.parametrize("override, message", [
    ("finetune.epochs=.inf", "finetune.epochs=.inf is not allowed: expected a finite number"),
    ("finetune.weight_decay=.inf", "finetune.weight_decay=.inf is not allowed: expected a finite number"),
    ("finetune.lr=", "finetune.lr= is not allowed: empty; expected a number"),
    ("finetune.lr=nan", "finetune.lr=nan is not allowed: expected a finite number"),
    ("search.alpha_lr=-inf", "search.alpha_lr=-inf is not allowed: expected a finite number"),
])
def test_infinite_and_empty_settings_are_refused_like_nan(override, message, stsb_dir, tiny_model_dir, tmp_path,
                                                          monkeypatch, capsys):
    out = tmp_path / "out"
    code, err = run_script("finetune.py", stsb_args(stsb_dir, tiny_model_dir, out, override), monkeypatch, capsys)
    assert_one_line(code, err, 2, message, out)


@pytest.fixture(scope="module")
def searched(glue_dir, tiny_model_dir, tmp_path_factory):
    """A finished tiny search on RTE (alphas, alphas.json, task weights): the artefacts to spoil."""
    out = tmp_path_factory.mktemp("search")
    done = subprocess.run([sys.executable, str(REPO / "scripts" / "search.py"), "--task", "rte", "--data-dir",
                           glue_dir, "--train-size", "16", "--model", tiny_model_dir, "--output-dir", str(out),
                           "--max-steps", "1", "--folds", "2", "--report-to", "none"],
                          capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert done.returncode == 0, done.stderr
    return out


def spoiled_alphas(searched, tmp_path, change):
    folder = tmp_path / "alphas"
    shutil.copytree(searched, folder)
    weights, settings_path = folder / "alphas.safetensors", folder / "alphas.json"
    tensors, settings = load_file(weights), json.loads(settings_path.read_text())
    first = sorted(tensors)[0]
    if change == "nan":
        tensors[first][0] = float("nan")
    elif change == "above one":
        tensors[first][0] = 5.0
    elif change == "rank":
        settings["rank"] = 2
    elif change == "layer":
        old = settings["layers"][0]
        settings["layers"][0] = old.replace("query", "quarry")
        tensors = {k.replace(old, settings["layers"][0]): v for k, v in tensors.items()}
    elif change == "missing tensor":
        del tensors[first]
    if change == "truncated":
        weights.write_bytes(weights.read_bytes()[:100])
    else:
        save_file(tensors, weights)
        settings_path.write_text(json.dumps(settings))
    return weights


ALPHA_CASES = [
    ("nan", [], "holds NaN or infinite values"),
    ("above one", [], "has values outside [0, 1] ("),
    ("truncated", [], "not a readable safetensors file"),
    ("rank", [], "the model needs"),
    ("layer", [], "is not a Linear layer of the model"),
    ("missing tensor", [], "its tensors do not match alphas.json"),
    ("", ["mixup.rank=3"], "mixup.rank=3 is not allowed with --alphas"),
    ("", ["mixup.formulation=convex"], "mixup.formulation=convex is not allowed with --alphas"),
]


@pytest.mark.parametrize("change, extra, message", ALPHA_CASES, ids=[c[2][:30] for c in ALPHA_CASES])
def test_bad_alphas_stop_before_any_data_is_read(change, extra, message, searched, glue_dir, tiny_model_dir,
                                                 tmp_path, monkeypatch, capsys):
    weights = spoiled_alphas(searched, tmp_path, change)
    out = tmp_path / "out"
    monkeypatch.setattr("agwm.finetune.load_run_data", lambda *a, **k: pytest.fail("data was read"))
    args = ["--task", "rte", "--data-dir", glue_dir, "--train-size", "16", "--model", tiny_model_dir,
            "--output-dir", str(out), "--alphas", str(weights), *extra]
    code, err = run_script("finetune.py", args, monkeypatch, capsys)
    assert_one_line(code, err, 2, message, out)
    assert not out.exists()


def test_alphas_of_a_model_of_another_width_are_refused(searched, glue_dir, tmp_path, monkeypatch, capsys):
    from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

    wide = tmp_path / "wide"
    config = AutoConfig.from_pretrained(_model_of(searched))
    config.hidden_size, config.intermediate_size = 12, 24
    AutoModelForSequenceClassification.from_config(config).save_pretrained(wide)
    AutoTokenizer.from_pretrained(_model_of(searched)).save_pretrained(wide)
    out = tmp_path / "out"
    args = ["--task", "rte", "--data-dir", glue_dir, "--train-size", "16", "--model", str(wide),
            "--output-dir", str(out), "--alphas", str(searched / "alphas.safetensors")]
    code, err = run_script("finetune.py", args, monkeypatch, capsys)
    assert_one_line(code, err, 2, "the model needs", out)


def _model_of(searched) -> str:
    import yaml

    return yaml.safe_load((searched / "config.yaml").read_text())["run"]["model"]


def test_start_weights_for_another_head_are_refused(searched, stsb_dir, tiny_model_dir, tmp_path,
                                                    monkeypatch, capsys):
    """RTE's task weights (a 2-class head) as the start of an STS-B finetune (1 output)."""
    out = tmp_path / "out"
    args = stsb_args(stsb_dir, tiny_model_dir, out, "--alphas", str(searched / "alphas.safetensors"))
    code, err = run_script("finetune.py", args, monkeypatch, capsys)
    assert_one_line(code, err, 2, "does not fit this model", out)


def test_a_searchs_task_weights_without_its_alphas_say_to_give_them(searched, glue_dir, tiny_model_dir, tmp_path,
                                                                     monkeypatch, capsys):
    out = tmp_path / "out"
    args = ["--task", "rte", "--data-dir", glue_dir, "--train-size", "16", "--model", tiny_model_dir, "--output-dir",
            str(out), "--report-to", "none", "--start-weights", str(searched / "task_weights.safetensors")]
    code, err = run_script("finetune.py", args, monkeypatch, capsys)
    assert_one_line(code, err, 2, "is not allowed without --alphas: a search's task weights are a mixup model's", out)


def test_an_output_dir_that_is_a_file_or_a_finished_run_is_refused(searched, stsb_dir, tiny_model_dir, tmp_path,
                                                                   monkeypatch, capsys):
    target = tmp_path / "a-file"
    target.write_text("x")
    code, err = run_script("finetune.py", stsb_args(stsb_dir, tiny_model_dir, target), monkeypatch, capsys)
    assert_one_line(code, err, 2, f"--output-dir {target} is not allowed: it is a file", target)

    finished = tmp_path / "finished"
    shutil.copytree(searched, finished)
    before = (finished / "metrics.json").read_bytes()
    args = ["--task", "stsb", "--data-dir", str(stsb_dir.parent), "--train-size", "16", "--model", tiny_model_dir,
            "--output-dir", str(finished), "--folds", "1", "--max-steps", "1", "--report-to", "none"]
    code, err = run_script("search.py", args, monkeypatch, capsys)
    assert code == 2 and "it holds a finished run (metrics.json); give --overwrite" in err
    assert (finished / "metrics.json").read_bytes() == before
    run_to_the_end("search.py", args + ["--overwrite"], monkeypatch, capsys)
    assert not (finished / "fold1").exists()  # the earlier 2-fold run's second fold is gone
    assert json.loads((finished / "metrics.json").read_text())["folds"][0]["fold"] == 0


def test_a_diverging_finetune_stops_with_one_line_and_no_metrics(stsb_dir, tiny_model_dir, tmp_path,
                                                                  monkeypatch, capsys):
    out = tmp_path / "out"
    args = stsb_args(stsb_dir, tiny_model_dir, out, "finetune.lr=1e8", "finetune.warmup_ratio=0")
    code, err = run_script("finetune.py", args, monkeypatch, capsys)
    assert_one_line(code, err, 3, "the run diverged (finetune.lr=100000000.0: try a smaller one)", out)


def test_a_huge_alpha_learning_rate_keeps_alpha_finite_and_in_its_box(stsb_dir, tiny_model_dir, tmp_path,
                                                                      monkeypatch, capsys):
    out = tmp_path / "out"
    args = ["--report-to", "csv", "--task", "stsb", "--data-dir", str(stsb_dir.parent), "--train-size", "16",
            "--model", tiny_model_dir, "--output-dir", str(out), "--folds", "1", "--max-steps", "4",
            "--problem", "bilevel", "search.alpha_lr=1e6", "search.alpha_warmup_ratio=0"]
    run_to_the_end("search.py", args, monkeypatch, capsys)
    for name, tensor in load_file(out / "alphas.safetensors").items():
        assert torch.isfinite(tensor).all() and tensor.min() >= 0 and tensor.max() <= 1, name
    log = (out / "log.csv").read_text().splitlines()
    moved = [float(line.split(",")[-1]) for line in log if ",a_mean," in line]
    assert max(moved) < 1 - 1e-3  # the step was huge: alpha moved, and was projected back into [0, 1]


def test_an_attention_factor_outside_its_box_stops_the_search(stsb_dir, tiny_model_dir, tmp_path, monkeypatch,
                                                              capsys):
    import agwm.search

    monkeypatch.setattr(agwm.search, "project_alphas", lambda alphas: None)  # nothing puts A, B back
    out = tmp_path / "out"
    args = ["--task", "stsb", "--data-dir", str(stsb_dir.parent), "--train-size", "16", "--model", tiny_model_dir,
            "--output-dir", str(out), "--folds", "1", "--max-steps", "2", "--problem", "bilevel",
            "search.alpha_lr=1e6", "search.alpha_warmup_ratio=0"]
    code, err = run_script("search.py", args, monkeypatch, capsys)
    assert_one_line(code, err, 3, "search: an attention factor left [0, 1] or became NaN at step 1", out)


def test_an_undefined_metric_is_null_with_its_reason_never_nan():
    task = get_task("stsb")
    metrics = compute_metrics(task, [2.5] * 5, [0.0, 1.0, 2.0, 3.0, 4.0])
    assert metrics["score"] is None and metrics["spearman"] is None and metrics["pearson"] is None
    assert "the same: no correlation" in metrics["undefined"]
    json.dumps(metrics, allow_nan=False)  # strict JSON
    one_class = compute_metrics(get_task("rte"), [1, 1, 1, 1], [0, 1, 0, 1])
    assert one_class["warning"] == "every prediction is class 'not_entailment'"


def test_nearly_constant_regression_predictions_are_a_warning_with_their_value():
    """A finetune that collapsed to the labels' mean still ranks its thousandths (Spearman 100 here)."""
    task, gold = get_task("stsb"), [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]  # standard deviation 1.71: FLAT x it is 0.085
    flat = compute_metrics(task, [2.877 + 0.04 * i for i in range(6)], gold)  # spread 0.068
    assert flat["spearman"] == pytest.approx(100.0)
    assert flat["warning"] == "every prediction is about 2.98 (their standard deviation 0.068, the labels' 1.7)"
    assert "warning" not in compute_metrics(task, [2.877 + 0.06 * i for i in range(6)], gold)  # spread 0.10


def test_the_report_counts_failed_and_undefined_runs_apart_and_not_as_duplicates():
    def record(key, score, **extra):
        return {"key": key, "method": "m", "task": "stsb", "train_size": 300, "seed": int(key[-1]), "score": score,
                **extra}

    records = [record("m/stsb/300/1", 70.0), record("m/stsb/300/2", None, failed="search: diverged"),
               record("m/stsb/300/3", None), record("m/stsb/300/3", None), record("m/stsb/300/2", None,
                                                                                  failed="search: diverged")]
    scored, note = split_unscored(merge_records(records))
    assert [r["key"] for r in scored] == ["m/stsb/300/1"]
    assert note == ("Left out of every table: 1 failed (m/stsb/300/2); 1 with an undefined score "
                    "(m/stsb/300/3).")


def run_in_background(*args):
    return subprocess.Popen([sys.executable, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "HF_HUB_OFFLINE": "1"}, cwd=REPO)


@pytest.mark.slow
@pytest.mark.parametrize("signum, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_an_interrupted_finetune_ends_with_one_line_and_no_metrics(signum, code, stsb_dir, tiny_model_dir,
                                                                   tmp_path):
    out = tmp_path / "out"
    run = run_in_background(str(REPO / "scripts" / "finetune.py"),
                            "--report-to", "csv", *stsb_args(stsb_dir, tiny_model_dir, out, "finetune.epochs=1000")[2:])
    deadline = time.time() + 120
    while not (out / "log.csv").exists() or "finetune" not in (out / "log.csv").read_text():
        assert run.poll() is None and time.time() < deadline, run.stderr.read() if run.poll() is not None else ""
        time.sleep(0.5)
    run.send_signal(signum)
    _, err = run.communicate(timeout=60)
    last = [line for line in err.splitlines() if line.strip() and "it/s" not in line and "s/it" not in line]
    assert run.returncode == code, err
    assert last[-1] == (f"stopped by {signal.Signals(signum).name}: the run is incomplete and wrote no "
                        "metrics.json"), err
    assert "Traceback" not in err and not (out / "metrics.json").exists()


def children_of(pid: int) -> list[int]:
    """The pids of the processes that ``pid`` started (Linux)."""
    tasks = f"/proc/{pid}/task"
    return [int(child) for task in os.listdir(tasks) for child in open(f"{tasks}/{task}/children").read().split()]


def write_rte_grid(tmp_path, glue_dir, tiny_model_dir, seeds, overrides):
    """A vanilla grid on 16 RTE examples of the tiny model; the paths of the grid file and its results."""
    grid = write_grid(tmp_path, ["vanilla"], seeds=seeds, overrides=overrides, data_dir=glue_dir,
                      model=tiny_model_dir)
    return grid, tmp_path / "results.jsonl"


def running(pid: int) -> bool:
    """Whether ``pid`` is a process that has not ended (a zombie has ended)."""
    try:
        return open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.slow
def test_a_grid_stopped_by_sigterm_stops_its_workers_at_once(glue_dir, tiny_model_dir, tmp_path):
    grid, results = write_rte_grid(tmp_path, glue_dir, tiny_model_dir, [1, 2, 3],
                                   ["finetune.epochs=1000", "report_to=csv"])
    driver = run_in_background(str(REPO / "scripts" / "experiment.py"), "--grid", str(grid), "--workers", "2")
    logs = [tmp_path / "runs" / "vanilla" / f"rte-16-s{seed}" / "finetune" / "log.csv" for seed in (1, 2, 3)]
    try:
        deadline = time.time() + 180
        while sum(log.exists() and "finetune" in log.read_text() for log in logs) < 2:  # both workers training
            assert driver.poll() is None and time.time() < deadline, driver.stderr.read() if driver.poll() else ""
            time.sleep(0.5)
        workers = children_of(driver.pid)
        driver.send_signal(signal.SIGTERM)
        _, err = driver.communicate(timeout=60)  # the old pool waited for 1000 epochs
    finally:
        driver.kill()
    last = [line for line in err.replace("\r", "\n").splitlines() if line.strip() and "%|" not in line]
    assert driver.returncode == 143, err
    assert last[-1] == ("stopped by SIGTERM: the runs in progress were stopped and not recorded; the same command "
                        "resumes"), err
    assert "Traceback" not in err and (not results.exists() or results.read_text() == "")
    deadline = time.time() + 10
    while any(map(running, workers)) and time.time() < deadline:  # the resource tracker ends after the driver
        time.sleep(0.2)
    assert not any(map(running, workers))


@pytest.mark.slow
def test_two_grid_runners_on_one_results_file_never_both_run(glue_dir, tiny_model_dir, tmp_path):
    grid, results = write_rte_grid(tmp_path, glue_dir, tiny_model_dir, [1, 2], ["finetune.epochs=1", "report_to=none"])
    first = run_in_background(str(REPO / "scripts" / "experiment.py"), "--grid", str(grid))
    deadline = time.time() + 60
    while not (tmp_path / "results.jsonl.lock").exists():
        assert first.poll() is None and time.time() < deadline
        time.sleep(0.2)
    time.sleep(1.0)
    second = subprocess.run([sys.executable, str(REPO / "scripts" / "experiment.py"), "--grid", str(grid)],
                            capture_output=True, text=True, cwd=REPO, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    first.communicate(timeout=600)
    assert first.returncode == 0
    assert second.returncode == 2 and "is being written by another grid runner (pid" in second.stderr
    keys = [json.loads(line)["key"] for line in results.read_text().splitlines()]
    assert sorted(keys) == ["vanilla/rte/16/1", "vanilla/rte/16/2"]
    again = subprocess.run([sys.executable, str(REPO / "scripts" / "experiment.py"), "--grid", str(grid)],
                           capture_output=True, text=True, cwd=REPO, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert again.returncode == 0 and len(results.read_text().splitlines()) == 2  # the lock was let go


@pytest.mark.slow
def test_the_same_finetune_and_search_twice_give_the_same_scores_and_alphas(glue_dir, tiny_model_dir, tmp_path,
                                                                          monkeypatch, capsys):
    outputs = []
    for i in range(2):
        base = ["--task", "stsb", "--data-dir", glue_dir, "--train-size", "16", "--model", tiny_model_dir,
                "--report-to", "none"]
        search = tmp_path / f"search{i}"
        run_to_the_end("search.py", base + ["--output-dir", str(search), "--max-steps", "2"], monkeypatch, capsys)
        finetune = tmp_path / f"finetune{i}"
        run_to_the_end("finetune.py", base + ["--output-dir", str(finetune), "--alphas",
                                              str(search / "alphas.safetensors"), "finetune.epochs=1"],
                       monkeypatch, capsys)
        outputs.append(((search / "alphas.safetensors").read_bytes(),
                        json.loads((finetune / "metrics.json").read_text())["dev"]))
    assert outputs[0][0] == outputs[1][0]
    assert outputs[0][1] == outputs[1][1] and not any(isinstance(v, float) and math.isnan(v)
                                                      for v in outputs[0][1].values())


def diverging_grid(tmp_path, glue_dir, tiny_model_dir):
    """A grid of one STS-B run at lr 1e8, which diverges."""
    return write_grid(tmp_path, [{"name": "diverging", "method": "vanilla", "overrides": ["finetune.lr=1e8"]}],
                      tasks=["stsb"], overrides=["report_to=none", "finetune.warmup_ratio=0"], data_dir=glue_dir,
                      model=tiny_model_dir)


def test_a_grid_records_a_diverged_run_as_failed_not_as_a_score(glue_dir, tiny_model_dir, tmp_path, quick_probe):
    from agwm.experiments.grid import load_grid, read_records, run_grid

    grid = diverging_grid(tmp_path, glue_dir, tiny_model_dir)
    assert run_grid(load_grid(str(grid))) == (1, 0)
    (record,) = read_records(str(tmp_path / "results.jsonl"))
    assert record["score"] is None and "the run diverged" in record["failed"]
    assert not (tmp_path / "runs" / "diverging" / "stsb-16-s1" / "metrics.json").exists()
    assert run_grid(load_grid(str(grid))) == (0, 1)  # recorded: a resumed grid does not rerun it


def test_the_grid_command_says_a_run_failed_and_exits_3(glue_dir, tiny_model_dir, tmp_path, monkeypatch, capsys,
                                                          quick_probe):
    grid = diverging_grid(tmp_path, glue_dir, tiny_model_dir)
    monkeypatch.setattr(sys, "argv", ["experiment.py", "--grid", str(grid)])
    with pytest.raises(SystemExit) as stopped:
        runpy.run_path(str(REPO / "scripts" / "experiment.py"), run_name="__main__")
    assert stopped.value.code == 3
    assert "1 runs done (1 failed, recorded as such: diverging/stsb/16/1: " in capsys.readouterr().out


def test_alphas_with_a_model_that_is_not_there_stop_in_one_line(searched, glue_dir, tmp_path, monkeypatch, capsys):
    out = tmp_path / "out"
    args = ["--task", "rte", "--data-dir", glue_dir, "--model", str(tmp_path / "no-model"), "--output-dir", str(out),
            "--alphas", str(searched / "alphas.safetensors")]
    code, err = run_script("finetune.py", args, monkeypatch, capsys)
    assert_one_line(code, err, 2, f"--model {tmp_path / 'no-model'} is not allowed", out)


@pytest.mark.slow
def test_a_reader_that_leaves_and_an_early_ctrl_c_end_without_a_traceback():
    import signal
    import subprocess
    import time

    for command in (["--help"], ["search", "--help"]):
        closed = subprocess.run(f"{sys.executable} -m agwm {' '.join(command)} | true", shell=True,
                                capture_output=True, text=True, cwd=REPO)
        assert "Traceback" not in closed.stderr and "BrokenPipeError" not in closed.stderr, closed.stderr
    for delay in (0.1, 0.2, 0.4):
        started = subprocess.Popen([sys.executable, "-m", "agwm", "search", "--help"], cwd=REPO,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        time.sleep(delay)
        started.send_signal(signal.SIGINT)
        err = started.communicate()[1]
        # before the interpreter installs any handler, SIGINT's default ends the process silently (-2)
        silent = started.returncode == -signal.SIGINT and not err.strip()
        assert (started.returncode in (0, 130) or silent) and "Traceback" not in err, (started.returncode, err)


def test_a_full_disk_is_one_line_and_a_grid_records_it_and_goes_on(glue_dir, tiny_model_dir, tmp_path, monkeypatch,
                                                                   capsys, quick_probe):
    import errno

    import agwm.finetune
    from agwm.experiments.grid import load_grid, read_records, run_grid
    from agwm.experiments.methods import METHODS

    def full(path, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", path)

    monkeypatch.setattr(agwm.finetune, "write_predictions", full)
    out = tmp_path / "out"
    args = ["--task", "rte", "--data-dir", glue_dir, "--train-size", "16", "--model", tiny_model_dir,
            "--output-dir", str(out), "finetune.epochs=1", "--report-to", "none"]
    code, err = run_script("finetune.py", args, monkeypatch, capsys)
    assert_one_line(code, err, 3, "error: the disk is full (", out)

    calls = []

    def fake(cfg, engine_overrides):
        calls.append(cfg.seed)
        if cfg.seed == 1:
            full(cfg.output_dir)
        return {"score": 1.0, "metric": "accuracy", "dev": {"accuracy": 1.0}, "wall_time_s": {"finetune": 0.1},
                "machine": "m"}

    monkeypatch.setitem(METHODS, "fake", fake)
    grid = write_grid(tmp_path, ["fake"], seeds=[1, 2], data_dir=glue_dir)
    assert run_grid(load_grid(str(grid))) == (2, 0) and calls == [1, 2]
    first, second = read_records(str(tmp_path / "results.jsonl"))
    assert first["score"] is None and "the disk is full" in first["failed"] and second["score"] == 1.0
