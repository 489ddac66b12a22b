"""Where a run's tensors live: the ``device`` setting, on every machine; the CUDA checks run where
there is a GPU (the project's device machine) and are skipped elsewhere."""

import json

import pytest
import torch
from betty.configs import EngineConfig

from agwm.experiments.methods import METHODS
from agwm.finetune import run_finetune
from agwm.settings import build_run_config
from agwm.training.device import resolve_device, speed_probe
from agwm_problems import HYPERGRADS, engine_config_on
from tests.conftest import run_script
from tests.test_cli import base

CUDA_DEVICES = torch.cuda.device_count() if torch.cuda.is_available() else 0


def needs_cuda(test):
    """A CUDA check: marked ``gpu`` (``pytest -m gpu`` runs them alone) and skipped without a CUDA device."""
    return pytest.mark.gpu(pytest.mark.skipif(not CUDA_DEVICES, reason="no CUDA device on this machine")(test))


@pytest.mark.parametrize("device", ["gpu", "cuda:x", f"cuda:{CUDA_DEVICES}"])
def test_a_device_that_is_not_there_is_named_before_any_work(device, glue_dir, tmp_path, monkeypatch, capsys):
    out = tmp_path / "run"
    code, err = run_script("finetune.py", base(glue_dir, out) + ["--device", device], monkeypatch, capsys)
    assert code == 2 and f"--device {device} is not allowed: auto" in err
    assert not (out / "metrics.json").exists()


def test_auto_is_the_gpu_when_there_is_one():
    assert resolve_device("auto").type == ("cuda" if CUDA_DEVICES else "cpu")
    assert resolve_device("cpu") == torch.device("cpu")


def test_betty_places_the_problems_on_the_run_device():
    assert engine_config_on(EngineConfig(), torch.device("cpu")).strategy == "cpu"
    assert engine_config_on(EngineConfig(strategy="cpu"), torch.device("cpu")).train_iters == EngineConfig().train_iters
    from agwm_problems import ConfigError as ProblemsConfigError  # the problems' own error class

    with pytest.raises(ProblemsConfigError, match="engine.strategy=gpu is not allowed with device cpu: default or cpu"):
        engine_config_on(EngineConfig(strategy="gpu"), torch.device("cpu"))


def test_an_engine_strategy_against_the_device_stops_the_search_before_any_work(glue_dir, tmp_path, monkeypatch,
                                                                               capsys):
    out = tmp_path / "run"
    code, err = run_script("search.py", base(glue_dir, out) + ["--device", "cpu", "engine.strategy=gpu"],
                           monkeypatch, capsys)
    assert code == 2 and "engine.strategy=gpu is not allowed with device cpu: default or cpu" in err
    assert not out.exists()


def tiny_run(glue_dir, tiny_model_dir, out, device, *overrides):
    return build_run_config({"task": "mrpc", "train_size": 16, "seed": 2, "data_dir": glue_dir,
                             "model": tiny_model_dir, "output_dir": str(out), "batch_size": 4, "device": device},
                            ["finetune.epochs=1", "search.epochs=1", "soup.members=2", *overrides])


def test_a_cpu_run_records_the_cpu(glue_dir, tiny_model_dir, tmp_path):
    metrics = run_finetune(tiny_run(glue_dir, tiny_model_dir, tmp_path, "cpu"))
    assert metrics["machine"].split(",")[0].endswith(" CPU")


CUDA_CASES = ([(method, []) for method in sorted(set(METHODS) - {"mixup"})]
              + [("mixup", ["search.problem=bilevel", f"hypergrad={h}", "search.finetune_start=fold_average"])
                 for h in HYPERGRADS]
              + [("mixup", ["search.problem=joint"])])


@needs_cuda
@pytest.mark.parametrize("method, overrides", CUDA_CASES, ids=[f"{m}-{'-'.join(o)}" for m, o in CUDA_CASES])
def test_every_method_runs_on_cuda(method, overrides, glue_dir, tiny_model_dir, tmp_path):
    outcome = METHODS[method](tiny_run(glue_dir, tiny_model_dir, tmp_path, "cuda", *overrides), [])
    assert 0.0 <= outcome["score"] <= 100.0
    for phase in ("search", "finetune") if method == "mixup" else ("finetune",):
        machine = json.loads((tmp_path / phase / "metrics.json").read_text())["machine"]
        assert torch.cuda.get_device_name() in machine


@needs_cuda
def test_the_speed_probe_on_cuda_leaves_the_random_streams_alone():
    torch.manual_seed(3)
    cpu_state, cuda_state = torch.get_rng_state(), torch.cuda.get_rng_state()
    assert 0 < speed_probe(torch.device("cuda"), repeats=2) < float("inf")
    assert torch.equal(torch.get_rng_state(), cpu_state) and torch.equal(torch.cuda.get_rng_state(), cuda_state)
