"""Every grid shipped in experiments/ loads: a typo in a method name or an override fails here,
not hours into a grid."""
import re

import pytest

from agwm.experiments.grid import load_grid, read_records, recorded_with_other_settings
from tests.conftest import REPO

GRIDS = sorted((REPO / "experiments").glob("*.yaml"))


# A study of agwm select's rule (scripts/select_study.py): its folder's README gives the command.
STUDY = re.compile(r"scripts/select_study\.py --grid (\S+)[^`]*?--output-dir (\S+)")


def studies() -> dict[str, str]:
    """Each results file select_study.py wrote, with the grid whose test-file runs score it."""
    found = {}
    for readme in (REPO / "results").glob("*/README.md"):
        for grid, output_dir in STUDY.findall(readme.read_text()):
            if output_dir.rstrip("/") == str(readme.parent.relative_to(REPO)):
                found[f"{output_dir.rstrip('/')}/results.jsonl"] = grid
    return found


def test_every_committed_results_file_comes_from_a_grid_here():
    committed = {str(p.relative_to(REPO)) for p in (REPO / "results").glob("*/results.jsonl")}
    study_grids = studies()
    written = {load_grid(str(path)).results for path in GRIDS} | set(study_grids)
    assert committed and committed <= written, sorted(committed - written)
    for grid in study_grids.values():
        assert REPO / grid in GRIDS, grid  # a study names a grid of experiments/


@pytest.mark.parametrize("path", GRIDS, ids=[p.stem for p in GRIDS])
def test_grid_loads_and_builds_its_runs(path):
    grid = load_grid(str(path))
    runs = grid.runs()
    assert runs
    assert len({run.key for run in runs}) == len(runs)


@pytest.mark.parametrize("path", GRIDS, ids=[p.stem for p in GRIDS])
def test_committed_records_have_the_settings_their_grid_gives_today(path):
    """A changed default must be pinned in the grids whose records ran with the old one (their
    ``overrides``), so that a committed grid resumes, and reruns, as it ran."""
    grid = load_grid(str(path))
    recorded = {r["key"]: r for r in read_records(str(REPO / grid.results))}
    assert recorded_with_other_settings(grid.runs(), recorded) == {}
