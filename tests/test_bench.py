"""The benchmark scripts run end to end at a tiny size and print one row per configuration, each
ratio against the right denominator; bad input stops them with one line. Run in subprocesses, as
a user runs them (they set torch's thread count and measure the process's memory); bad input is
refused before either, so those checks run in process."""

import argparse
import json
import os
import runpy
import subprocess
import sys

import pytest
from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

from tests.conftest import REPO, run_script


def run_bench(script, *args):
    return subprocess.run([sys.executable, str(REPO / "scripts" / script), *args], capture_output=True, text=True,
                          env={**os.environ, "HF_HUB_OFFLINE": "1"}, timeout=600)


def table_rows(stdout: str) -> list[list[str]]:
    lines = [line for line in stdout.splitlines() if line.startswith("| ") and not line.startswith("| config")
             and not line.startswith("| condition") and not line.startswith("| model")]
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in lines]


@pytest.mark.slow
def test_bench_times_and_measures_every_configuration_against_vanilla(tiny_model_dir):
    done = run_bench("bench.py", "--model", tiny_model_dir, "--device", "cpu", "--batch-size", "2", "--length", "8",
                     "--rounds", "2", "--warmup", "0")
    assert done.returncode == 0, done.stderr
    rows = [row[1:] for row in table_rows(done.stdout)]  # after the model's column
    assert [row[0] for row in rows] == ["vanilla", "mixup", "search-darts", "search-opt_darts", "search-sama",
                                        "search-reverse", "search-reverse-T2", "search-reverse-T5", "search-neumann",
                                        "search-cg"]
    seconds = {row[0]: float(row[1]) for row in rows}
    assert all(s > 0 for s in seconds.values())
    for name, _, time_ratio, _, _ in rows:  # seconds printed to 4 digits (relative 1e-3 on their ratio),
        expected = seconds[name] / seconds["vanilla"]  # the ratio to 2 decimals
        assert abs(float(time_ratio.rstrip("x")) - expected) <= 0.005 + 1e-3 * expected
    assert rows[0][2] == "1.00x" and rows[0][4] == "1.00x"


@pytest.mark.slow
def test_bench_against_a_second_model_gives_each_configurations_ratio_to_it(tiny_model_dir, tmp_path):
    wide = tmp_path / "wide"
    config = AutoConfig.from_pretrained(tiny_model_dir)
    config.hidden_size, config.intermediate_size = 32, 64
    AutoModelForSequenceClassification.from_config(config).save_pretrained(wide)
    AutoTokenizer.from_pretrained(tiny_model_dir).save_pretrained(wide)
    done = run_bench("bench.py", "--model", str(wide), "--against", tiny_model_dir, "--device", "cpu",
                     "--configs", "vanilla", "mixup", "--batch-size", "2", "--length", "8", "--rounds", "2",
                     "--warmup", "0")
    assert done.returncode == 0, done.stderr
    rows = table_rows(done.stdout)
    assert [(row[0], row[1]) for row in rows] == [(str(wide), "vanilla"), (str(wide), "mixup"),
                                                  (tiny_model_dir, "vanilla"), (tiny_model_dir, "mixup")]
    seconds = {(row[0], row[1]): float(row[2]) for row in rows}
    for row in rows[:2]:  # the wide model's rows: its time over the tiny model's, same configuration
        expected = seconds[row[0], row[1]] / seconds[tiny_model_dir, row[1]]
        assert abs(float(row[6].rstrip("x")) - expected) <= 0.005 + 2e-3 * expected
        assert float(row[7].rstrip("x")) > 0
    assert rows[2][6] == "" and rows[3][7] == ""


def test_bench_shape_is_layers_by_width_with_heads_of_64(tiny_model_dir):
    bench = runpy.run_path(str(REPO / "scripts" / "bench.py"))
    assert bench["parse_shape"]("24x1024") == (24, 1024)
    assert [bench["parse_shape"](text) for text in ("24x1000", "0x64", "24", "x64", "24x64x2")] == [None] * 5
    base = AutoConfig.from_pretrained(tiny_model_dir, num_labels=2)
    args = argparse.Namespace(model=tiny_model_dir, random_init=False, device="cpu",
                              shape=bench["shaped"](bench["shaped"](base, "layers", 3), "hidden", 128))
    config = bench["build"](args, mixup=False).config
    assert (config.num_hidden_layers, config.hidden_size, config.num_attention_heads, config.intermediate_size) == (
        3, 128, 2, 512)


@pytest.mark.slow
def test_bench_at_a_shape_labels_its_rows_with_it(tiny_model_dir):
    done = run_bench("bench.py", "--model", tiny_model_dir, "--shape", "3x64", "--device", "cpu", "--configs",
                     "vanilla", "mixup", "search-darts", "--batch-size", "2", "--length", "8", "--rounds", "1",
                     "--warmup", "0")
    assert done.returncode == 0, done.stderr
    assert "random weights, 3x64 (layers x hidden)" in done.stdout
    assert [(row[0], row[1]) for row in table_rows(done.stdout)] == [
        ("3x64, random", "vanilla"), ("3x64, random", "mixup"), ("3x64, random", "search-darts")]


@pytest.mark.slow
def test_bench_scaling_times_each_point_and_fits_an_exponent_per_axis(tiny_model_dir, tmp_path):
    done = run_bench("bench.py", "--scaling", "--model", tiny_model_dir, "--output-dir", str(tmp_path),
                     "--device", "cpu", "--batch-size", "2", "--length", "8", "--rounds", "1", "--warmup", "0",
                     "--layers", "1", "2", "--hidden", "64", "128", "--lengths", "8", "16",
                     "--configs", "vanilla", "mixup", "search-darts")
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in (tmp_path / "scaling.jsonl").read_text().splitlines()]
    assert [(r["axis"], r["value"]) for r in rows] == [("layers", 1), ("layers", 2), ("hidden", 64),
                                                        ("hidden", 128), ("length", 8), ("length", 16)]
    assert all(r[c] > 0 for r in rows for c in ("vanilla", "mixup", "search-darts", "vanilla_after"))
    report = (tmp_path / "scaling.md").read_text()
    import math

    for axis in ("layers", "hidden", "length"):
        points = [r for r in rows if r["axis"] == axis]
        (x1, x2), (y1, y2) = [p["value"] for p in points], [p["search-darts"] for p in points]
        slope = math.log(y2 / y1) / math.log(x2 / x1)  # two points: the fit is the line through them
        fitted = report.split(f"### {axis}")[1].split("exponent b")[1].split("\n")[0]
        assert f"{slope:.2f}" == fitted.split("|")[-3].strip(), fitted
        assert (tmp_path / f"scaling-{axis}.png").stat().st_size > 0


@pytest.mark.slow
def test_bench_speed_probe_prints_step_and_probe_ratios_against_its_first_row():
    done = run_bench("bench_speed_probe.py", "--threads", "1", "--batch-size", "2", "--length", "8", "--rounds", "1")
    assert done.returncode == 0, done.stderr
    rows = table_rows(done.stdout)
    assert [row[0] for row in rows] == ["1 thread", f"{os.cpu_count()} threads + competitor"]
    first = rows[0]
    assert first[3] == "1.00" and first[5] == "1.00"  # s / p of the first row against itself
    for row in rows:
        step, encoder_probe, feed_forward_probe = float(row[1]), float(row[2]), float(row[4])
        assert min(step, encoder_probe, feed_forward_probe) > 0
        expected = step / encoder_probe / (float(first[1]) / float(first[2]))
        assert float(row[3]) == pytest.approx(expected, rel=0.05, abs=0.01)


@pytest.mark.parametrize("script, args, message", [
    ("bench.py", ["--rounds", "0"], "--rounds 0 is not allowed: at least 1"),
    ("bench.py", ["--warmup", "-1"], "--warmup -1 is not allowed: at least 0"),
    ("bench.py", ["--configs", "mixup"], "--configs mixup is not allowed: must include vanilla"),
    ("bench.py", ["--model", "m", "--against", "m"], "--against m is not allowed: a second model, other than"),
    ("bench.py", ["--shape", "24x1000"], "--shape 24x1000 is not allowed: LxH, L layers and H wide, H a multiple"),
    ("bench.py", ["--shape", "2x64", "--scaling", "--output-dir", "o"], "--shape 2x64 is not allowed: LxH"),
    ("bench.py", ["--shape", "2x64", "--against", "m"], "--against m is not allowed: a second model, other than"),
    ("bench.py", ["--device", "tpu0"], "--device tpu0 is not allowed: auto, cpu, cuda or cuda:N"),
    ("bench.py", ["--device", "cuda:7"], "--device cuda:7 is not allowed: auto"),
    ("bench_speed_probe.py", ["--threads", "0"], "--threads [0] is not allowed: between 1 and"),
    ("bench_speed_probe.py", ["--length", "0"], "--length 0 is not allowed: at least 1"),
])
def test_bench_scripts_refuse_bad_input_in_one_line(script, args, message, monkeypatch, capsys):
    code, err = run_script(script, args, monkeypatch, capsys)  # in process: the checks come before any thread setting
    assert code == 2 and message in err and "Traceback" not in err


@pytest.mark.slow
def test_hypergrad_table_compares_every_method_with_reverse_mode_at_each_point(tiny_model_dir, glue_dir, tmp_path):
    out = tmp_path / "table"
    # 100 examples: 15 inner steps in the search's schedule, more than the 2 + 5 taken, so no step has rate 0
    done = run_bench("hypergrad_table.py", "--task", "stsb", "--data-dir", glue_dir, "--train-size", "100",
                     "--model", tiny_model_dir, "--at", "0", "2", "--output-dir", str(out), "--report-to", "none")
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in (out / "rows.jsonl").read_text().splitlines()]
    assert [(r["outer_step"], r["method"]) for r in rows] == [
        (at, m) for at in (0, 2) for m in ("darts", "opt_darts", "sama", "reverse-T1", "reverse-T2", "reverse-T5",
                                           "cg", "neumann")]
    reference = [r for r in rows if r["method"] == "reverse-T5"]
    assert all(r["cosine"] == pytest.approx(1.0) and r["norm_ratio"] == pytest.approx(1.0) for r in reference)
    one_step = {(r["outer_step"], r["method"]): r for r in rows}
    for at in (0, 2):  # opt_darts is reverse through one step by finite differences
        assert one_step[at, "opt_darts"]["indirect_cosine_to_T1"] > 0.99
    assert (out / "table.md").read_text().count("\n| ") == len(rows) + 1


def test_hypergrad_table_refuses_a_negative_point(monkeypatch, capsys):
    code, err = run_script("hypergrad_table.py", ["--task", "stsb", "--output-dir", "x", "--at", "-1"],
                           monkeypatch, capsys)
    assert code == 2 and "--at -1 is not allowed: at least 0" in err
