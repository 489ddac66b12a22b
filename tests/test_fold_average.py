"""The search's fold-averaged outputs and the finetune start they feed, on a tiny model folder."""

import dataclasses
import re

import pytest
import torch
from safetensors.torch import load_file, save_file
from transformers import AutoModelForSequenceClassification

from agwm.data import get_task
from agwm.errors import ConfigError
from agwm.finetune import load_start_weights, run_finetune
from agwm.mixup import inject_from_saved, mixup_layers
from agwm.run_folder import TASK_WEIGHTS_NAME
from agwm.search import run_search
from agwm.settings import build_run_config, engine_config_path
from agwm_problems.engine_settings import load_engine_settings

CPU = torch.device("cpu")


def test_alphas_are_the_fold_mean_and_fold_average_weights_start_the_finetune(tiny_model_dir, glue_dir, tmp_path):
    cfg = build_run_config({"task": "mrpc", "train_size": 20, "seed": 4, "data_dir": glue_dir,
                            "model": tiny_model_dir, "output_dir": str(tmp_path / "s"), "search.folds": 3,
                            "search.max_steps": 2}, ["search.problem=bilevel", "search.finetune_start=fold_average",
                                                        "search.alpha_lr=0.05"])
    run_search(cfg, load_engine_settings(engine_config_path(cfg)))
    folds = [load_file(tmp_path / "s" / f"fold{k}" / "alphas.safetensors") for k in range(3)]
    averaged = load_file(tmp_path / "s" / "alphas.safetensors")
    for key, value in averaged.items():
        torch.testing.assert_close(value, torch.stack([f[key] for f in folds]).mean(0))
    assert any(not torch.equal(folds[0][k], folds[1][k]) for k in averaged)  # the splits differ

    weights = load_file(tmp_path / "s" / TASK_WEIGHTS_NAME)
    assert weights and not any(k.endswith((".A", ".B", "base_layer.weight")) for k in weights)
    model = AutoModelForSequenceClassification.from_pretrained(tiny_model_dir)
    inject_from_saved(model, str(tmp_path / "s" / "alphas.safetensors"))
    load_start_weights(model, str(tmp_path / "s" / TASK_WEIGHTS_NAME))
    own = dict(model.named_parameters())
    assert all(torch.equal(own[k], v) for k, v in weights.items())
    assert len(list(mixup_layers(model))) == 7  # query, key, value, attention output, intermediate, output, pooler

    ft = build_run_config({"task": "mrpc", "train_size": 20, "seed": 4, "data_dir": glue_dir, "model": tiny_model_dir,
                           "output_dir": str(tmp_path / "f")}, ["finetune.epochs=1"])
    metrics = run_finetune(ft, str(tmp_path / "s" / "alphas.safetensors"), str(tmp_path / "s" / TASK_WEIGHTS_NAME))
    assert {"accuracy", "macro-f1", "mcc", "f1", "score"} <= set(metrics["dev"]) <= {"accuracy", "macro-f1", "mcc",
                                                                                   "f1", "score", "warning"}

    incomplete = {k: v for k, v in weights.items() if "classifier" not in k}  # start weights without the head
    save_file(incomplete, tmp_path / "incomplete.safetensors")
    with pytest.raises(ConfigError, match=r"does not fit this model \(missing \['classifier.bias', "
                                          r"'classifier.weight'\], unexpected \[\], other shapes \[\]\)"):
        load_start_weights(model, str(tmp_path / "incomplete.safetensors"))
    wide = {**weights, "classifier.bias": torch.zeros(5)}
    save_file(wide, tmp_path / "wide.safetensors")
    with pytest.raises(ConfigError, match=r"other shapes \['classifier.bias \(5,\) \(model \(2,\)\)'\]"):
        load_start_weights(model, str(tmp_path / "wide.safetensors"))


def test_a_rerun_that_fails_leaves_no_finished_looking_outputs(tiny_model_dir, glue_dir, tmp_path, monkeypatch):
    cfg = build_run_config({"task": "mrpc", "train_size": 20, "seed": 4, "data_dir": glue_dir,
                            "model": tiny_model_dir, "output_dir": str(tmp_path), "search.folds": 1,
                            "search.max_steps": 1})
    run_search(cfg, load_engine_settings(engine_config_path(cfg)))
    assert (tmp_path / "metrics.json").exists() and (tmp_path / "alphas.safetensors").exists()
    import agwm.search

    def crash(*args, **kwargs):
        raise RuntimeError("killed during the search")

    monkeypatch.setattr(agwm.search, "search_fold", crash)
    with pytest.raises(RuntimeError):  # a rerun over the finished run (--overwrite) that dies
        run_search(dataclasses.replace(cfg, overwrite=True), load_engine_settings(engine_config_path(cfg)))
    assert not (tmp_path / "metrics.json").exists() and not (tmp_path / "alphas.safetensors").exists()


def test_holdout_runs_search_and_finetune_on_the_training_part_and_score_on_the_rest(
        tiny_model_dir, glue_dir, tmp_path, monkeypatch):
    import agwm.metrics
    import agwm.training.build
    from agwm.data import tokenize
    from agwm.training.build import load_run_data, set_aside_holdout

    flags = {"task": "mrpc", "train_size": 20, "seed": 4, "data_dir": glue_dir, "model": tiny_model_dir,
             "output_dir": str(tmp_path / "s"), "search.problem": "bilevel", "search.folds": 1, "search.max_steps": 1}
    overrides = ["finetune.holdout=true", "finetune.epochs=1"]
    cfg = build_run_config(dict(flags), overrides)
    data = load_run_data(cfg, CPU)
    sample = list(data.train["input_ids"])
    held_out = tokenize(set_aside_holdout(cfg, data), data.task, data.tokenizer, cfg.max_length)
    assert len(data.train) == 16 and len(data.sample) == 16 and len(held_out) == 4
    parts = list(data.train["input_ids"]) + list(held_out["input_ids"])
    assert sorted(map(tuple, parts)) == sorted(map(tuple, sample))

    seen = []
    original_loader = agwm.training.build.make_loader

    def recording_loader(dataset, *args, **kwargs):
        seen.append({tuple(ids) for ids in dataset["input_ids"]})
        return original_loader(dataset, *args, **kwargs)

    monkeypatch.setattr(agwm.training.build, "make_loader", recording_loader)  # training batches
    monkeypatch.setattr(agwm.metrics, "make_loader", recording_loader)  # evaluation batches
    run_search(cfg, load_engine_settings(engine_config_path(cfg)))
    finetune_cfg = build_run_config({**flags, "output_dir": str(tmp_path / "f")}, overrides)
    metrics = run_finetune(finetune_cfg, str(tmp_path / "s" / "alphas.safetensors"))
    held = {tuple(ids) for ids in held_out["input_ids"]}
    *training_loaders, scored = seen
    assert len(training_loaders) == 3 and all(not (s & held) for s in training_loaders)  # inner, outer, finetune
    assert scored == held and metrics["evaluated_on"] == "holdout" and "dev" not in metrics


def test_the_finetune_starts_from_the_task_weights_beside_the_alphas_unless_told_pretrained(
        tiny_model_dir, glue_dir, tmp_path, monkeypatch):
    import agwm.finetune
    from agwm.errors import ConfigError

    flags = {"task": "mrpc", "train_size": 20, "seed": 4, "data_dir": glue_dir, "model": tiny_model_dir,
             "search.folds": 1, "search.max_steps": 1}
    search_cfg = build_run_config({**flags, "output_dir": str(tmp_path / "s")})
    run_search(search_cfg, load_engine_settings(engine_config_path(search_cfg)))
    alphas, weights = tmp_path / "s" / "alphas.safetensors", tmp_path / "s" / TASK_WEIGHTS_NAME
    assert weights.exists()  # the default search writes them
    started_from = []
    original = agwm.finetune.load_start_weights
    monkeypatch.setattr(agwm.finetune, "load_start_weights",
                        lambda model, path: (started_from.append(path), original(model, path)))

    def finetune(*overrides):
        cfg = build_run_config({**flags, "output_dir": str(tmp_path / "f"), "overwrite": True},
                               ["finetune.epochs=1", *overrides])
        return run_finetune(cfg, str(alphas))

    assert finetune()["start_weights"] == str(weights)  # metrics.json names the start
    assert started_from == [str(weights)]
    assert finetune("search.finetune_start=pretrained")["start_weights"] is None
    assert started_from == [str(weights)]  # no second load: the pretrained weights
    weights.unlink()
    with pytest.raises(ConfigError, match=re.escape(f"--alphas {alphas} is not allowed with search.finetune_start="
                                                    f"fold_average (the default): no {TASK_WEIGHTS_NAME} beside it")):
        finetune()


def test_inner_only_trains_w_as_the_search_inner_level_does_and_leaves_alpha_at_its_draw(
        tiny_model_dir, glue_dir, tmp_path, monkeypatch):
    import csv

    import agwm.training.build
    from agwm.mixup import alpha_state_dict
    from agwm.training.build import build_model

    flags = {"task": "mrpc", "train_size": 20, "seed": 4, "data_dir": glue_dir, "model": tiny_model_dir,
             "search.folds": 2, "search.max_steps": 2}
    seen = []
    original_loader = agwm.training.build.make_loader
    monkeypatch.setattr(agwm.training.build, "make_loader",
                        lambda dataset, *a, **k: (seen.append(len(dataset)), original_loader(dataset, *a, **k))[1])

    def search(problem):
        cfg = build_run_config({**flags, "output_dir": str(tmp_path / problem), "search.problem": problem},
                               ["search.alpha_lr=0.05"] if problem == "bilevel" else [])
        seen.clear()
        return cfg, run_search(cfg, load_engine_settings(engine_config_path(cfg)))

    def first_inner_losses(problem):
        with open(tmp_path / problem / "log.csv") as f:
            return [r["value"] for r in csv.DictReader(f) if r["name"] == "inner_loss" and r["step"] == "1"]

    cfg, metrics = search("inner_only")
    assert seen == [16, 16] and metrics["hypergrad"] is None  # each fold's train part; the held-out parts unread
    drawn = alpha_state_dict(build_model(cfg, get_task(cfg.task), with_mixup=True, device=CPU))
    for name in ("alphas.safetensors", "fold0/alphas.safetensors", "fold1/alphas.safetensors"):
        saved = load_file(tmp_path / "inner_only" / name)
        assert all(torch.equal(saved[k], drawn[k]) for k in drawn)
    weights = load_file(tmp_path / "inner_only" / TASK_WEIGHTS_NAME)
    pretrained = dict(AutoModelForSequenceClassification.from_pretrained(tiny_model_dir).named_parameters())
    assert any(not torch.equal(v, pretrained[k]) for k, v in weights.items() if k in pretrained)  # W trained

    search("bilevel")  # the first inner step precedes any outer step: same split, batch, dropout and start
    assert seen == [16, 4, 16, 4]
    assert first_inner_losses("inner_only") == first_inner_losses("bilevel") and len(first_inner_losses("bilevel")) == 2
    bilevel = load_file(tmp_path / "bilevel" / "alphas.safetensors")
    assert any(not torch.equal(bilevel[k], drawn[k]) for k in drawn)  # the outer level moved alpha there


@pytest.mark.parametrize("report_to, files", [(None, {"log.csv", "tensorboard"}), (["none"], set()),
                                              (["tensorboard"], {"tensorboard"})])
def test_the_log_goes_to_csv_and_tensorboard(report_to, files, tiny_model_dir, glue_dir, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    cfg = build_run_config({"task": "stsb", "train_size": 16, "seed": 1, "data_dir": glue_dir, "model": tiny_model_dir,
                            "output_dir": str(tmp_path), "report_to": report_to}, ["finetune.epochs=1"])
    run_finetune(cfg)
    assert {p.name for p in tmp_path.iterdir()} & {"log.csv", "tensorboard"} == files
    if "tensorboard" in files:
        events = EventAccumulator(str(tmp_path / "tensorboard"))
        events.Reload()
        tags = events.Tags()["scalars"]
        assert {"finetune/train_loss", "finetune/lr", "finetune/validation_spearman"} <= set(tags)
        assert [e.step for e in events.Scalars("finetune/train_loss")] == [1]


def test_report_to_accepts_known_loggers_only(glue_dir):
    with pytest.raises(ConfigError, match="--report-to wandb is not allowed: csv, tensorboard or none"):
        build_run_config({"task": "rte", "report_to": ["wandb"]})
    with pytest.raises(ConfigError, match="--report-to csv none is not allowed: none alone"):
        build_run_config({"task": "rte", "report_to": ["csv", "none"]})


def test_the_averaging_controls_one_fold_whole_sample_folds_and_swa(tiny_model_dir, glue_dir, tmp_path, monkeypatch):
    """The controls of what the fold-averaged start is made of: one fold's W alone (folds=1 is fold 0
    of any K), folds trained on the whole sample, and vanilla averaged over its last epochs."""
    import agwm.finetune
    import agwm.training.build

    flags = {"task": "mrpc", "train_size": 20, "seed": 4, "data_dir": glue_dir, "model": tiny_model_dir,
             "search.max_steps": 2, "report_to": ["none"]}
    inner_only = ["search.problem=inner_only"]
    for folds, out in ((2, "two"), (1, "one")):
        cfg = build_run_config({**flags, "search.folds": folds, "output_dir": str(tmp_path / out)}, inner_only)
        run_search(cfg, load_engine_settings(engine_config_path(cfg)))
    one, two = (load_file(tmp_path / out / "fold0" / "alphas.safetensors") for out in ("one", "two"))
    assert all(torch.equal(one[k], two[k]) for k in one)  # fold 0 is the same fold whatever K
    one, two = (load_file(tmp_path / run / TASK_WEIGHTS_NAME) for run in ("one", "two"))
    assert one.keys() == two.keys()

    seen, original = [], agwm.training.build.make_loader
    monkeypatch.setattr(agwm.training.build, "make_loader",
                        lambda d, *a, **k: seen.append(len(d)) or original(d, *a, **k))
    cfg = build_run_config({**flags, "search.folds": 2, "output_dir": str(tmp_path / "whole")},
                           inner_only + ["search.fold_data=whole"])
    run_search(cfg, load_engine_settings(engine_config_path(cfg)))
    assert seen == [20, 20]  # each fold's W on all 20 examples
    with pytest.raises(ConfigError, match="search.fold_data=whole is not allowed: split with search.problem=bilevel"):
        build_run_config(flags, ["search.problem=bilevel", "search.fold_data=whole"])

    added = []

    class Recording(agwm.finetune.UniformSoup):
        def add(self, state):
            added.append({k: v.detach().clone() for k, v in state.items()})
            super().add(state)

    monkeypatch.setattr(agwm.finetune, "UniformSoup", Recording)
    cfg = build_run_config({**flags, "output_dir": str(tmp_path / "swa"), "batch_size": 4},
                           ["finetune.epochs=3", "finetune.swa_epochs=2"])
    metrics = run_finetune(cfg, save_model=True)
    assert metrics["steps"] == 15 and len(added) == 2  # the ends of epochs 2 and 3 (5 steps each)
    final = AutoModelForSequenceClassification.from_pretrained(tmp_path / "swa" / "model").state_dict()
    for key in added[0]:
        torch.testing.assert_close(final[key], (added[0][key] + added[1][key]) / 2)
    assert any(not torch.equal(added[0][k], added[1][k]) for k in added[0])
