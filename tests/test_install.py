"""A plain (non-editable) install works from any folder: the `agwm` command is installed, and the engine
YAML files travel as package data."""

import os
import subprocess
import sys

import pytest
from safetensors.torch import load_file

from tests.conftest import REPO, write_grid


@pytest.mark.slow
def test_a_plain_install_runs_a_search_from_another_folder(tmp_path, tiny_model_dir, glue_dir):
    site = tmp_path / "site"
    pip = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(site), str(REPO)]
    built = subprocess.run(pip, capture_output=True, text=True)
    assert built.returncode == 0, built.stderr[-2000:]
    env = {**os.environ, "PYTHONPATH": str(site), "HF_HUB_OFFLINE": "1"}
    for name in ("problems", "engine_configs"):  # a user's folders of those names, where the commands run
        (tmp_path / name).mkdir()
        (tmp_path / name / "__init__.py").write_text("raise ImportError('the user folder was imported')\n")
    code = ("import agwm, agwm_problems; print(agwm.__file__); print(agwm_problems.__file__); "
            "print(agwm_problems.engine_config_dir())")
    found = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert found.returncode == 0, found.stderr[-2000:]
    where = found.stdout.split()
    assert all(path.startswith(str(site)) for path in where), where
    command = site / "bin" / "agwm"  # [project.scripts]: the installed command, run from another folder
    assert command.is_file()
    # the brief's command, `scripts/search.py --hypergrad NAME`, for every method: the clone's script
    # runs the installed package (its folder, scripts/, is first on the path, not the clone's root)
    runs = [[str(command), "search"], *[[str(REPO / "scripts" / "search.py")]] * 5]
    for hypergrad, program in zip(("cg", "darts", "opt_darts", "sama", "reverse", "neumann"), runs):
        out = tmp_path / hypergrad
        run = subprocess.run([sys.executable, *program, "--task", "rte", "--train-size", "16", "--data-dir", glue_dir,
                              "--model", tiny_model_dir, "--hypergrad", hypergrad, "--max-steps", "1",
                              "--output-dir", str(out)], cwd=tmp_path, env=env, capture_output=True, text=True)
        assert run.returncode == 0, run.stderr[-2000:]
        assert "search (bilevel, 1 fold)" in run.stdout
        factors = load_file(out / "alphas.safetensors")
        assert all(bool(((t >= 0) & (t <= 1)).all()) for t in factors.values())
        assert f"engine_configs/{hypergrad}.yaml" in (out / "config.yaml").read_text()


WITHOUT_EXTRAS = """
import sys
for extra in ("setfit", "ray", "tensorboard"):
    sys.modules[extra] = None  # any import of them fails, as where the extras are not installed
from agwm.cli import main
sys.argv = ["agwm", *sys.argv[1:]]
main()
"""


@pytest.mark.slow
def test_search_and_finetune_run_without_the_optional_extras_and_each_extra_is_asked_for_in_one_line(
        tmp_path, tiny_model_dir, glue_dir):
    script = tmp_path / "without_extras.py"
    script.write_text(WITHOUT_EXTRAS)

    def agwm(*args):
        return subprocess.run([sys.executable, str(script), *args], cwd=REPO, capture_output=True, text=True,
                              check=False, env={**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"})

    data = ["--task", "rte", "--train-size", "16", "--data-dir", glue_dir, "--model", tiny_model_dir]
    search = agwm("search", *data, "--max-steps", "1", "--folds", "1", "--output-dir", str(tmp_path / "s"))
    assert search.returncode == 0, search.stderr[-2000:]
    finetune = agwm("finetune", *data, "--alphas", str(tmp_path / "s" / "alphas.safetensors"), "finetune.epochs=1",
                    "--output-dir", str(tmp_path / "f"))
    assert finetune.returncode == 0, finetune.stderr[-2000:]
    assert (tmp_path / "f" / "metrics.json").is_file()
    setfit = agwm("finetune", "--task", "sst2", "--data-dir", glue_dir, "--method", "setfit",
                  "--output-dir", str(tmp_path / "x"))
    assert setfit.returncode == 2 and setfit.stderr.strip().count("\n") == 0
    assert 'pip install ".[setfit]"' in setfit.stderr
    grid = write_grid(tmp_path, ["vanilla"], data_dir=glue_dir, model=tiny_model_dir)
    ray = agwm("experiment", "--grid", str(grid), "--executor", "ray")
    assert ray.returncode == 2 and ray.stderr.strip().count("\n") == 0 and 'pip install ".[ray]"' in ray.stderr
    assert not (tmp_path / "runs").exists() and not (tmp_path / "x").exists()
