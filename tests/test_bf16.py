"""``--bf16``: bfloat16 autocast for the forward passes of both phases; the hypergradient stays float32."""

import csv
import json

import pytest
import torch

from agwm.finetune import run_finetune
from agwm.metrics import predict
from agwm.search import run_search
from agwm.settings import build_run_config, run_engine_settings
from agwm.training.build import build_model, load_run_data

# A smoke run of the real default model: STS-B, 300 examples (240 trained on for 5 epochs, scored on the
# other 60: finetune.holdout); bf16's Spearman must be within this many points of float32's.
BF16_TOLERANCE = 2.0


def train_losses(folder) -> list[float]:
    with open(folder / "log.csv") as f:
        return [float(r["value"]) for r in csv.DictReader(f) if r["name"] in ("train_loss", "inner_loss")]


def run_both(make_config, run, tmp_path):
    out = {}
    for bf16 in (False, True):
        cfg = make_config(tmp_path / f"bf16-{bf16}", bf16)
        out[bf16] = (run(cfg), tmp_path / f"bf16-{bf16}")
    return out


def test_bf16_changes_the_computation_a_little_in_both_phases(glue_dir, tiny_model_dir, tmp_path):
    def make_config(out, bf16):
        return build_run_config({"task": "stsb", "train_size": 32, "data_dir": glue_dir, "model": tiny_model_dir,
                                 "output_dir": str(out), "bf16": bf16, "device": "cpu", "report_to": ["csv"]},
                                ["finetune.epochs=2", "search.problem=bilevel", "search.folds=1", "search.max_steps=3"])

    for run in (run_finetune, lambda cfg: run_search(cfg, run_engine_settings(cfg))):
        runs = run_both(make_config, run, tmp_path / ("ft" if run is run_finetune else "search"))
        plain, low = train_losses(runs[False][1]), train_losses(runs[True][1])
        assert len(plain) == len(low) > 0
        assert plain != low  # autocast is on: the forward passes ran in bfloat16
        assert low == pytest.approx(plain, rel=0.05)
        assert json.loads((runs[True][1] / "config.yaml").read_text().split("bf16: ")[1].split("\n")[0]) is True


@pytest.mark.slow
def test_bf16_scores_within_tolerance_of_float32_on_the_default_model(glue_dir, tmp_path):
    def make_config(out, bf16):
        return build_run_config({"task": "stsb", "train_size": 300, "seed": 1, "data_dir": glue_dir,
                                 "output_dir": str(out), "bf16": bf16, "device": "cpu"},
                                ["finetune.epochs=5", "finetune.holdout=true"])

    runs = run_both(make_config, run_finetune, tmp_path)
    scores = {bf16: metrics["score"] for bf16, (metrics, _) in runs.items()}
    print(f"held-out Spearman: float32 {scores[False]:.2f}, bf16 {scores[True]:.2f}")
    assert abs(scores[True] - scores[False]) <= BF16_TOLERANCE


def test_the_hypergradient_is_computed_without_autocast(glue_dir, tiny_model_dir, tmp_path, monkeypatch):
    from betty.hypergradient import jvp_fn_mapping

    darts, autocast_on = jvp_fn_mapping["agwm_darts"], []

    def watched(vector, curr, prev, sync):
        autocast_on.append(torch.is_autocast_enabled("cpu"))
        return darts(vector, curr, prev, sync)

    monkeypatch.setitem(jvp_fn_mapping, "agwm_darts", watched)
    cfg = build_run_config({"task": "stsb", "train_size": 32, "data_dir": glue_dir, "model": tiny_model_dir,
                            "output_dir": str(tmp_path), "bf16": True, "device": "cpu", "report_to": ["none"]},
                           ["search.problem=bilevel", "search.folds=1", "search.max_steps=2"])
    run_search(cfg, run_engine_settings(cfg))
    assert autocast_on == [False, False]  # two outer steps, each hypergradient in float32


def test_predictions_run_under_autocast_only_with_bf16(glue_dir, tiny_model_dir, tmp_path):
    cfg = build_run_config({"task": "stsb", "train_size": 16, "data_dir": glue_dir, "model": tiny_model_dir,
                            "output_dir": str(tmp_path), "device": "cpu"})
    data = load_run_data(cfg, torch.device("cpu"))
    model = build_model(cfg, data.task, with_mixup=False, device=torch.device("cpu"))
    seen = []
    model.register_forward_pre_hook(lambda module, args: seen.append(torch.is_autocast_enabled("cpu")))
    for bf16 in (False, True):
        predict(model, data.task, data.train, data.tokenizer, 8, bf16)
    assert seen == [False, False, True, True]  # two batches of 8 each time
