"""A grid on a Ray cluster started apart (``ray start --head``) and joined with ``--address``: the
path a user with several machines takes, here with the head on this one."""

import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from agwm.experiments.grid import read_records

pytest.importorskip("ray")
from tests.test_ray_grid import TINY_GRID  # after the skip: it imports ray

RAY = Path(sys.executable).with_name("ray")
NO_AUTH = {k: v for k, v in os.environ.items() if not k.startswith("RAY_AUTH")}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def ray_head():
    """A head node of 2 CPUs that asks for a token (as Ray's own clusters do once a token exists), in a
    short temp folder of its own (Ray's socket paths are limited in length); yields (its address, the
    driver's environment with the token, that folder); stopped after."""
    if not RAY.is_file():
        pytest.skip(f"no ray command beside {sys.executable}")
    temp = tempfile.mkdtemp(prefix="ray", dir="/tmp")
    port = free_port()
    env = {**NO_AUTH, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32), "RAY_worker_niceness": "0"}
    subprocess.run([str(RAY), "start", "--head", "--num-cpus=2", "--num-gpus=0", f"--port={port}",
                    "--include-dashboard=false", "--disable-usage-stats", f"--temp-dir={temp}"],
                   check=True, env=env, capture_output=True, timeout=180)
    try:
        yield f"127.0.0.1:{port}", env, temp
    finally:
        subprocess.run([str(RAY), "stop", "--force"], check=False, capture_output=True, timeout=120)
        shutil.rmtree(temp, ignore_errors=True)


def experiment(grid: Path, address: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "agwm", "experiment", "--grid", str(grid), "--executor", "ray",
                           "--address", address], env={**env, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"},
                          check=False, capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_a_grid_joins_a_ray_cluster_given_its_address_and_its_workers_run_every_run(ray_head, tiny_model_dir,
                                                                                    glue_dir, tmp_path):
    address, env, temp = ray_head
    grid = tmp_path / "grid.yaml"
    grid.write_text(TINY_GRID.format(glue=glue_dir, model=tiny_model_dir, out=tmp_path))
    done = experiment(grid, address, env)
    assert done.returncode == 0, done.stderr[-2000:]
    assert sorted(r["key"] for r in read_records(str(tmp_path / "results.jsonl"))) == sorted(
        f"{m}/rte/8/{s}" for m in ("vanilla", "mixup") for s in (1, 2))
    # the runs ran in the cluster's workers (their logs are in its session folder), not in a Ray of the driver's
    assert list(Path(temp).glob("session_latest/logs/worker-*")), f"no worker logs under {temp}/session_latest/logs"
    rerun = experiment(grid, address, env)
    assert rerun.returncode == 0 and len(read_records(str(tmp_path / "results.jsonl"))) == 4  # resumes, nothing new


def refusal(address: str, env: dict, glue_dir: str, model: str, tmp_path: Path) -> str:
    """The one line a tiny grid given ``--address`` stops with (exit code 2, no run recorded)."""
    grid = tmp_path / "grid.yaml"
    grid.write_text(TINY_GRID.format(glue=glue_dir, model=model, out=tmp_path))
    done = experiment(grid, address, env)
    assert done.returncode == 2, done.stderr[-2000:]
    assert not (tmp_path / "results.jsonl").exists() or not read_records(str(tmp_path / "results.jsonl"))
    return done.stderr.strip().splitlines()[-1]


@pytest.mark.slow
def test_a_driver_without_the_clusters_token_is_told_how_to_send_it_in_one_line(ray_head, tiny_model_dir, glue_dir,
                                                                                 tmp_path):
    address, _, _ = ray_head
    assert refusal(address, NO_AUTH, glue_dir, tiny_model_dir, tmp_path) == (
        f"error: --address {address} is not allowed: the cluster asks for a token: export RAY_AUTH_MODE=token, "
        "with the cluster's token in ~/.ray/auth_token or RAY_AUTH_TOKEN")


@pytest.mark.slow
def test_an_address_where_no_cluster_listens_is_refused_in_one_line_not_retried_without_end(tiny_model_dir,
                                                                                           glue_dir, tmp_path):
    address = f"127.0.0.1:{free_port()}"  # nothing listens there: ray.init alone would retry for ever
    assert refusal(address, NO_AUTH, glue_dir, tiny_model_dir, tmp_path) == (
        f"error: --address {address} is not allowed: no Ray cluster answered there (start one with "
        "`ray start --head`, or give its host:port)")
