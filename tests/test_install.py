"""A plain (non-editable) install works from any folder: the `agwm` command is installed, and the engine
YAML files travel as package data."""

import os
import subprocess
import sys

import pytest

from tests.conftest import REPO


@pytest.mark.slow
def test_a_plain_install_runs_a_search_from_another_folder(tmp_path, tiny_model_dir, glue_dir):
    site = tmp_path / "site"
    pip = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(site), str(REPO)]
    built = subprocess.run(pip, capture_output=True, text=True)
    assert built.returncode == 0, built.stderr[-2000:]
    env = {**os.environ, "PYTHONPATH": str(site), "HF_HUB_OFFLINE": "1"}
    code = ("import agwm, problems; print(agwm.__file__); print(problems.__file__); "
            "print(problems.engine_config_dir())")
    found = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert found.returncode == 0, found.stderr[-2000:]
    where = found.stdout.split()
    assert all(path.startswith(str(site)) for path in where), where
    command = site / "bin" / "agwm"  # [project.scripts]: the installed command, run from another folder
    assert command.is_file()
    run = subprocess.run([sys.executable, str(command), "search", "--task", "rte", "--train-size", "16",
                          "--data-dir", glue_dir, "--model", tiny_model_dir, "--hypergrad", "cg", "--max-steps", "1",
                          "--folds", "1", "--output-dir", str(tmp_path / "out")],
                         cwd=tmp_path, env=env, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-2000:]
    assert (tmp_path / "out" / "alphas.safetensors").is_file()
    assert "engine_configs/cg.yaml" in (tmp_path / "out" / "config.yaml").read_text()
