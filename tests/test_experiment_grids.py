"""Every grid shipped in experiments/ loads: a typo in a method name or an override fails here,
not hours into a grid."""
import pytest

from agwm.experiments.grid import load_grid
from tests.conftest import REPO

GRIDS = sorted((REPO / "experiments").glob("*.yaml"))


def test_every_committed_results_file_comes_from_a_grid_here():
    committed = {str(p.relative_to(REPO)) for p in (REPO / "results").glob("*/results.jsonl")}
    written = {load_grid(str(path)).results for path in GRIDS}
    assert committed and committed <= written, sorted(committed - written)


@pytest.mark.parametrize("path", GRIDS, ids=[p.stem for p in GRIDS])
def test_grid_loads_and_builds_its_runs(path):
    grid = load_grid(str(path))
    runs = grid.runs()
    assert runs
    assert len({run.key for run in runs}) == len(runs)
