"""scripts/ridge_penalties.py: the project's problems and hypergradient methods on a bi-level
problem with no model, task or data set of this project (per-feature ridge penalties)."""

import runpy

import pytest

from agwm_problems.overrides import ConfigError
from tests.conftest import REPO, run_script

ridge = runpy.run_path(str(REPO / "scripts" / "ridge_penalties.py"), run_name="ridge_penalties")


@pytest.mark.parametrize("hypergrad", ["darts", "opt_darts", "sama", "reverse", "neumann", "cg"])
def test_learned_penalties_beat_the_best_uniform_one_and_find_the_noise_features(hypergrad):
    result = ridge["run"](hypergrad, steps=1000, seed=0)
    assert result["learned"] < result["uniform"] < result["initial"]
    assert result["noise_mean"] > 10 * result["informative_mean"]
    assert ((result["penalties"] >= 0) & (result["penalties"] <= ridge["MAX_PENALTY"])).all()


def test_engine_overrides_reach_the_method():
    with pytest.raises(ConfigError, match="inner.neumann_iterations=0 is not allowed"):
        ridge["run"]("neumann", ["inner.neumann_iterations=0"])


@pytest.mark.parametrize("args, message", [
    (["--hypergrad", "adam"], "--hypergrad adam is not allowed: one of darts, opt_darts, sama, reverse, neumann, cg"),
    (["--informative", "20"], "--informative 20 is not allowed: 1 to 19"),
    (["--steps", "0"], "--steps 0 is not allowed: at least 1"),
])
def test_bad_input_stops_with_one_line(args, message, monkeypatch, capsys):
    code, err = run_script("ridge_penalties.py", args, monkeypatch, capsys)
    assert code == 2 and message in err and "Traceback" not in err
