"""Grids on Ray (``--executor ray``): the same records as the process pool, one writer, a dead
worker's run retried a bounded number of times and never half-recorded."""

import os
import types

import pytest

from agwm.experiments.executors import run_on_ray
from agwm.experiments.grid import RayOptions, load_grid, read_records, run_grid
from agwm.training.guards import RunFailed

ray = pytest.importorskip("ray")

TINY_GRID = """
tasks: [rte]
sizes: [8]
seeds: [1, 2]
data_dir: {glue}
model: {model}
output_dir: {out}/runs
results: {out}/results.jsonl
overrides: [finetune.epochs=1, search.max_steps=2, search.folds=1]
methods:
  - {{name: vanilla, method: vanilla}}
  - {{name: mixup, method: mixup}}
"""
VOLATILE = ("wall_time_s", "speed_probe_s", "peak_memory_mib")  # what a run cost, not what it computed


@pytest.fixture(scope="module")
def local_ray():
    os.environ.setdefault("RAY_worker_niceness", "0")
    ray.init(num_cpus=2, num_gpus=0, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def comparable(record: dict) -> dict:
    record = {k: v for k, v in record.items() if k not in VOLATILE}
    record["config"] = {k: v for k, v in record["config"].items() if k != "output_dir"}
    return record


@pytest.mark.slow
def test_a_grid_on_two_ray_workers_records_what_the_process_pool_does(tiny_model_dir, glue_dir, tmp_path,
                                                                       monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # both executors' workers compute with one thread
    records = {}
    for executor in ("process", "ray"):
        out = tmp_path / executor
        out.mkdir()
        (out / "grid.yaml").write_text(TINY_GRID.format(glue=glue_dir, model=tiny_model_dir, out=out))
        grid = load_grid(str(out / "grid.yaml"))
        assert run_grid(grid, workers=2, ray=RayOptions() if executor == "ray" else None) == (4, 0)
        records[executor] = {r["key"]: comparable(r) for r in read_records(grid.results)}
        assert run_grid(grid, workers=2, ray=RayOptions() if executor == "ray" else None) == (0, 4)  # resumes
    assert sorted(records["ray"]) == sorted(records["process"]) == sorted(
        f"{m}/rte/8/{s}" for m in ("vanilla", "mixup") for s in (1, 2))
    for key, record in records["process"].items():
        assert records["ray"][key] == record, key


def test_a_run_whose_worker_dies_is_retried_then_recorded_once(local_ray, tmp_path):
    def dies_once(run):
        marker = os.path.join(run.folder, run.key)
        if not os.path.exists(marker):
            open(marker, "w").close()
            os._exit(1)  # the worker process dies in the middle of the run
        return {"key": run.key, "score": 1.0}

    runs = [types.SimpleNamespace(key=f"run{i}", folder=str(tmp_path)) for i in range(3)]
    recorded = []
    run_on_ray(runs, dies_once, recorded.append, retries=1)
    assert sorted(r["key"] for r in recorded) == ["run0", "run1", "run2"]


def test_a_run_whose_worker_keeps_dying_is_named_and_not_recorded(local_ray, tmp_path):
    def run1_always_dies(run):
        if run.key == "run1":
            os._exit(1)
        return {"key": run.key, "score": 1.0}

    runs = [types.SimpleNamespace(key=f"run{i}") for i in range(3)]
    recorded = []
    with pytest.raises(RunFailed, match=r"1 run\(s\) lost their worker 2 times and were not recorded: run1"):
        run_on_ray(runs, run1_always_dies, recorded.append, retries=1)
    assert sorted(r["key"] for r in recorded) == ["run0", "run2"]  # every other run is recorded


def test_an_error_inside_a_run_stops_the_grid_as_it_does_in_the_pool(local_ray):
    def fails(run):
        raise ValueError(f"bad data in {run.key}")

    with pytest.raises(ValueError, match="bad data in run0"):
        run_on_ray([types.SimpleNamespace(key="run0")], fails, lambda record: None)


def test_ray_options_are_checked_before_any_run(tmp_path, glue_dir, tiny_model_dir):
    (tmp_path / "grid.yaml").write_text(TINY_GRID.format(glue=glue_dir, model=tiny_model_dir, out=tmp_path))
    grid = load_grid(str(tmp_path / "grid.yaml"))
    from agwm.errors import ConfigError

    with pytest.raises(ConfigError, match="--retries -1 is not allowed: at least 0"):
        run_grid(grid, ray=RayOptions(retries=-1))
    assert not os.path.exists(grid.results)


def test_ray_flags_without_the_ray_executor_are_refused(monkeypatch, capsys):
    from tests.conftest import run_script

    code, err = run_script("experiment.py", ["--grid", "experiments/reference.yaml", "--address", "auto"],
                           monkeypatch, capsys)
    assert code == 2 and "--address is not allowed with --executor process: it is for --executor ray" in err
