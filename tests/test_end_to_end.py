"""Both phases on 32 real RTE examples with the real default model, a few steps each."""

import json
import math

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForSequenceClassification

from agwm.data import get_task
from agwm.finetune import run_finetune
from agwm.metrics import evaluate
from agwm.mixup import alpha_state_dict
from agwm.search import run_search
from agwm.settings import build_run_config, engine_config_path
from agwm.training.build import build_model, load_dev, load_run_data
from agwm_problems.engine_settings import load_engine_settings

CPU = torch.device("cpu")
pytestmark = pytest.mark.slow  # the real default model, several searches


def config(glue_dir, out, **flags):
    return build_run_config({"task": "rte", "train_size": 32, "seed": 3, "data_dir": glue_dir,
                             "output_dir": str(out), "search.folds": 1, "search.max_steps": 2, **flags})


@pytest.fixture(scope="module")
def initial_alphas(glue_dir, tmp_path_factory):
    cfg = config(glue_dir, tmp_path_factory.mktemp("init"))
    return alpha_state_dict(build_model(cfg, get_task("rte"), with_mixup=True, device=CPU))


def search(glue_dir, out, hypergrad, problem):
    cfg = config(glue_dir, out, **{"hypergrad": hypergrad, "search.problem": problem})
    return run_search(cfg, load_engine_settings(engine_config_path(cfg)))


@pytest.fixture(scope="module")
def darts_search(glue_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("darts")
    return out, search(glue_dir, out, "darts", "bilevel")


def check_alphas_moved_inside_the_box(out, metrics, initial_alphas):
    alphas = load_file(out / "alphas.safetensors")
    assert set(alphas) == set(initial_alphas)
    moved = max((alphas[k] - initial_alphas[k]).abs().max().item() for k in alphas)
    assert moved > 1e-5
    assert all(t.min() >= 0.0 and t.max() <= 1.0 for t in alphas.values())
    assert metrics["folds"][0]["iterations"] == 2
    assert {"config.yaml", "log.csv", "metrics.json", "alphas.json"} <= {p.name for p in out.iterdir()}


def test_darts_search_moves_alpha_inside_the_box(darts_search, initial_alphas):
    check_alphas_moved_inside_the_box(*darts_search, initial_alphas)


@pytest.mark.parametrize("hypergrad, problem", [("opt_darts", "bilevel"), ("sama", "bilevel"), ("reverse", "bilevel"),
                                               ("neumann", "bilevel"), ("cg", "bilevel"), ("darts", "joint")])
def test_other_searches_move_alpha_inside_the_box(hypergrad, problem, glue_dir, tmp_path, initial_alphas):
    metrics = search(glue_dir, tmp_path, hypergrad, problem)
    check_alphas_moved_inside_the_box(tmp_path, metrics, initial_alphas)


def test_finetune_with_the_searched_alphas_scores_on_dev(darts_search, glue_dir, tmp_path):
    out, _ = darts_search
    cfg = build_run_config({"task": "rte", "train_size": 32, "seed": 3, "data_dir": glue_dir,
                            "output_dir": str(tmp_path)}, ["finetune.epochs=1"])
    result = run_finetune(cfg, str(out / "alphas.safetensors"), save_model=True)
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved["score"] == result["score"] and math.isfinite(saved["score"])
    assert 0.0 <= saved["dev"]["accuracy"] <= 100.0 and saved["evaluated_on"] == "dev"
    assert saved["steps"] == 2

    # The saved model is a stock Hugging Face folder with the mixup merged in: it loads without agwm,
    # names its classes, and scores what the mixed model scored (up to float rounding of a near tie).
    model = AutoModelForSequenceClassification.from_pretrained(tmp_path / "model")
    assert model.config.id2label == {0: "entailment", 1: "not_entailment"}
    data = load_run_data(cfg, CPU)
    dev = load_dev(cfg, data)
    rescored = evaluate(model, data.task, dev, data.tokenizer, batch_size=64)["score"]
    assert rescored == pytest.approx(saved["score"], abs=100 / len(dev) + 1e-9)
