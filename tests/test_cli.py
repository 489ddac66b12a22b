"""Bad input stops before any training: exit code 2, one line naming the option, the value and
what is allowed, no traceback, no metrics.json."""

import runpy
import sys

import pytest

from tests.conftest import REPO, run_script


def base(glue_dir, out):
    return ["--task", "rte", "--train-size", "32", "--data-dir", glue_dir, "--output-dir", str(out)]


CASES = [
    (["--task", "wnli"], "--task wnli is not allowed: one of cola, sst2, mrpc, stsb, qqp, mnli, qnli, rte"),
    (["--train-size", "1"], "--train-size 1 is not allowed: at least 2"),
    (["--train-size", "5000"], "--train-size 5000 is out of range: allowed 2 to 2490"),
    (["--rank", "0"], "--rank 0 is not allowed: at least 1"),
    (["--split-ratio", "1.5"], "--split-ratio 1.5 is not allowed: strictly between 0 and 1"),
    (["--split-ratio", "0"], "--split-ratio 0.0 is not allowed: strictly between 0 and 1"),
    (["--folds", "0"], "--folds 0 is not allowed: at least 1"),
    (["--max-length", "1024"], "--max-length 1024 is not allowed: at most 512, the positions of all-MiniLM-L6-v2"),
    (["--hypergrad", "adam"], "--hypergrad adam is not allowed: one of darts, opt_darts, sama, reverse, neumann, cg"),
    (["--problem", "triple"], "--problem triple is not allowed: one of bilevel, joint, inner_only"),
    (["--problem", "triple", "--hypergrad", "cg"],
     "--problem triple is not allowed: one of bilevel, joint, inner_only"),
    (["search.alpha_lrr=1e-3"], "search.alpha_lrr=1e-3: unknown key 'search.alpha_lrr'"),
    (["inner.cg_iters=3"], "inner.cg_iters=3: unknown key 'inner.cg_iters'"),
    (["mixup.rank=0"], "mixup.rank=0 is not allowed: at least 1"),
    (["--data-dir", "/nonexistent"], "data folder '/nonexistent' does not exist"),
    (["--engine-config", "/nonexistent.yaml"], "--engine-config /nonexistent.yaml is not allowed: no such file"),
    (["--problem", "inner_only", "--hypergrad", "sama"], "--hypergrad sama is not allowed with --problem inner_only: "
                                                         "it has no outer level to use it; leave --problem out or "
                                                         "give --problem bilevel (search.problem=bilevel)"),
    (["--problem", "inner_only", "--hypergrad", "darts"], "--hypergrad darts is not allowed with --problem inner_only"),
    (["--problem", "joint", "--alpha-every", "5"], "--alpha-every 5 is not allowed with --problem joint"),
    (["--problem", "inner_only", "search.alpha_lr=1e-3"],
     "search.alpha_lr=0.001 is not allowed with --problem inner_only"),
]


@pytest.mark.parametrize("extra, message", CASES, ids=[c[1][:30] for c in CASES])
def test_search_rejects_bad_input(extra, message, glue_dir, tmp_path, monkeypatch, capsys):
    out = tmp_path / "run"
    code, err = run_script("search.py", base(glue_dir, out) + extra, monkeypatch, capsys)
    assert code == 2
    assert message in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not (out / "metrics.json").exists()


def test_unknown_yaml_key_in_an_engine_file(glue_dir, tmp_path, monkeypatch, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("inner:\n  type: agwm_darts\n  darts_radius: 0.1\n")
    code, err = run_script("search.py", base(glue_dir, tmp_path / "o") + ["--engine-config", str(bad)],
                           monkeypatch, capsys)
    assert code == 2 and f"{bad}: inner.darts_radius: unknown key 'inner.darts_radius'" in err


def test_malformed_row_and_bad_label_stop_finetune(tmp_path, monkeypatch, capsys):
    (tmp_path / "RTE").mkdir()
    header = "index\tsentence1\tsentence2\tlabel\n"
    (tmp_path / "RTE" / "train.tsv").write_text(header + "0\ta\tb\tentailment\n" * 4 + "9\tx\ty\tperhaps\n")
    (tmp_path / "RTE" / "dev.tsv").write_text(header + "0\ta\tb\n")
    args = ["--task", "rte", "--train-size", "5", "--data-dir", str(tmp_path), "--output-dir", str(tmp_path / "o")]
    code, err = run_script("finetune.py", args, monkeypatch, capsys)  # every file is read before any is used
    assert code == 2 and "dev.tsv, line 2: 3 fields, expected 4" in err
    (tmp_path / "RTE" / "dev.tsv").write_text(header + "0\ta\tb\tentailment\n")
    code, err = run_script("finetune.py", args, monkeypatch, capsys)
    assert code == 2 and "train.tsv, row 5: label 'perhaps' is not one of ['entailment', 'not_entailment']" in err
    assert not (tmp_path / "o").exists()


def test_finetune_rejects_a_missing_alphas_file(glue_dir, tmp_path, monkeypatch, capsys):
    code, err = run_script("finetune.py", base(glue_dir, tmp_path) + ["--alphas", "/no/alphas.safetensors"],
                           monkeypatch, capsys)
    assert code == 2 and "--alphas /no/alphas.safetensors is not allowed: no such file" in err
    code, err = run_script("finetune.py", base(glue_dir, tmp_path / "o") + ["--alphas", str(tmp_path)],
                           monkeypatch, capsys)
    assert code == 2 and f"--alphas {tmp_path} is not allowed: it is a folder; give the file, e.g. " \
        f"{tmp_path / 'alphas.safetensors'}" in err


def test_finetune_method_is_chosen_by_name_and_a_bad_name_is_refused(glue_dir, tmp_path, monkeypatch, capsys):
    code, err = run_script("finetune.py", base(glue_dir, tmp_path) + ["--method", "lasso"], monkeypatch, capsys)
    assert code == 2 and "--method lasso is not allowed: one of vanilla, " in err and ", child-tuning-d, " in err
    code, err = run_script("finetune.py", base(glue_dir, tmp_path) + ["--method", "mixout", "mixout.p=1.5"],
                           monkeypatch, capsys)
    assert code == 2 and "mixout.p=1.5 is not allowed: in [0, 1)" in err
    code, err = run_script("finetune.py", base(glue_dir, tmp_path) + ["--method", "r3f", "--alphas", __file__],
                           monkeypatch, capsys)
    assert code == 2 and "--method r3f is not allowed with --alphas" in err
    assert not (tmp_path / "metrics.json").exists()


@pytest.mark.parametrize("hypergrad", ["darts", "opt_darts", "sama", "reverse", "neumann", "cg"])
def test_search_runs_with_every_hypergradient_as_the_brief_writes_it(hypergrad, glue_dir, tiny_model_dir, tmp_path,
                                                                     monkeypatch, capsys):
    """``scripts/search.py --hypergrad NAME`` with no --problem: the hypergradient asks for the outer level."""
    import json

    from safetensors.torch import load_file

    out = tmp_path / "out"
    monkeypatch.setattr(sys, "argv", ["search.py", "--report-to", "none", "--task", "stsb", "--data-dir", glue_dir,
                                      "--train-size", "16", "--model", tiny_model_dir, "--output-dir", str(out),
                                      "--max-steps", "2", "--hypergrad", hypergrad, "search.alpha_lr=0.05"])
    runpy.run_path(str(REPO / "scripts" / "search.py"), run_name="__main__")
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["hypergrad"] == hypergrad and metrics["folds"][0]["iterations"] == 2
    assert "problem: bilevel" in (out / "config.yaml").read_text()
    assert f"search (bilevel, 1 fold) written to {out} " in capsys.readouterr().out
    factors = load_file(out / "alphas.safetensors")
    assert factors and all(bool(((t >= 0) & (t <= 1)).all()) for t in factors.values())


@pytest.mark.parametrize("flags, overrides", [({"hypergrad": "darts"}, []),
                                              ({"engine_config": None}, ["search.alpha_lr=1e-3"]),
                                              ({"search.alpha_every": 3}, []), ({}, ["hypergrad=cg"])])
def test_an_outer_level_setting_selects_bilevel_unless_problem_is_given(flags, overrides):
    from agwm.errors import ConfigError
    from agwm.settings import build_run_config

    assert build_run_config({"task": "stsb", **flags}, overrides).search.problem == "bilevel"
    assert build_run_config({"task": "stsb"}, []).search.problem == "inner_only"
    explicit = {"task": "stsb", "search.problem": "bilevel", **flags}
    assert build_run_config(explicit, overrides).search.problem == "bilevel"
    with pytest.raises(ConfigError, match="is not allowed with --problem inner_only"):
        build_run_config({"task": "stsb", "search.problem": "inner_only", **flags}, overrides)


def test_alpha_every_steps_alpha_once_every_n_inner_steps(glue_dir, tiny_model_dir, tmp_path, monkeypatch):
    """``--alpha-every 3 --max-steps 2``: 6 inner steps, A moves after steps 3 and 6 only (log.csv's a_mean)."""
    import csv
    import json

    out = tmp_path / "out"
    monkeypatch.setattr(sys, "argv", ["search.py", "--report-to", "csv", "--task", "stsb", "--data-dir", glue_dir,
                                      "--train-size", "64", "--model", tiny_model_dir, "--output-dir", str(out),
                                      "--folds", "1", "--max-steps", "2", "--problem", "bilevel", "--alpha-every", "3",
                                      "search.alpha_lr=0.05", "search.alpha_warmup_ratio=0"])
    runpy.run_path(str(REPO / "scripts" / "search.py"), run_name="__main__")
    assert json.loads((out / "metrics.json").read_text())["folds"][0]["iterations"] == 6
    with open(out / "log.csv") as f:
        a_mean = [float(row["value"]) for row in csv.DictReader(f) if row["name"] == "a_mean"]
    moved = [i + 1 for i in range(1, 6) if a_mean[i] != a_mean[i - 1]]  # a_mean[i] is logged after step i + 1
    assert len(a_mean) == 6 and moved == [3, 6]


def test_alpha_every_sets_unroll_steps_and_refuses_a_conflict(tmp_path):
    from agwm.errors import ConfigError
    from agwm.settings import build_run_config, run_engine_settings

    cfg = build_run_config({"task": "stsb"}, ["search.alpha_every=5"])
    assert run_engine_settings(cfg).inner.unroll_steps == 5
    assert run_engine_settings(cfg, ["inner.unroll_steps=5"]).inner.unroll_steps == 5
    assert run_engine_settings(build_run_config({"task": "stsb"}, [])).inner.unroll_steps == 1
    with pytest.raises(ConfigError, match="search.alpha_every=5 is not allowed with inner.unroll_steps=2"):
        run_engine_settings(cfg, ["inner.unroll_steps=2"])
    with pytest.raises(ConfigError, match="search.alpha_every=0 is not allowed: at least 1"):
        build_run_config({"task": "stsb"}, ["search.alpha_every=0"])


def test_the_agwm_command_lists_its_commands_and_refuses_an_unknown_one():
    import subprocess
    import sys

    listed = subprocess.run([sys.executable, "-m", "agwm"], capture_output=True, text=True, cwd=REPO)
    assert listed.returncode == 2 and all(c in listed.stdout for c in ("search", "finetune", "experiment", "select"))
    wrong = subprocess.run([sys.executable, "-m", "agwm", "serch"], capture_output=True, text=True, cwd=REPO)
    assert wrong.returncode == 2 and "agwm: error: serch is not allowed: one of search, finetune" in wrong.stderr
    assert "Traceback" not in wrong.stderr


def test_a_list_flag_leaves_the_key_value_settings_after_it_to_the_overrides(glue_dir, tmp_path, capsys):
    """``--report-to none finetune.epochs=1``: argparse gives both words to the list flag; agwm gives the
    setting back."""
    from agwm.cli import finetune, parse, parser

    args = parse(parser("finetune", "finetune"), ["--task", "rte", "--output-dir", "x", "--report-to", "none",
                                                  "finetune.epochs=1", "--text-columns", "a", "b", "mixout.p=0.5"])
    assert args.report_to == ["none"] and args.text_columns == ["a", "b"]
    assert sorted(args.overrides) == ["finetune.epochs=1", "mixout.p=0.5"]
    with pytest.raises(SystemExit) as stopped:  # the run reads it: an epoch count of 0 is refused as written
        finetune(["--task", "rte", "--data-dir", glue_dir, "--output-dir", str(tmp_path / "out"), "--report-to",
                  "none", "finetune.epochs=0"])
    assert stopped.value.code == 2 and not (tmp_path / "out").exists()
    assert capsys.readouterr().err.strip() == "error: finetune.epochs=0 is not allowed: greater than 0"
