"""Run an experiment grid (methods x tasks x sizes x seeds) from a YAML file; resumable.

    python scripts/experiment.py --grid experiments/reference.yaml [--workers 1] [--tasks rte] [--sizes 300]
        [--methods vanilla] [--seeds 1 2]

Each finished run appends one record to the grid's results file; rerunning the same command
skips the runs already recorded and runs the rest.
"""

import argparse

from agwm.cli import main_guard


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--grid", required=True, help="grid YAML (see experiments/)")
    p.add_argument("--workers", type=int, default=1, help="parallel worker processes (default 1)")
    p.add_argument("--tasks", nargs="+", default=None, help="run only these of the grid's tasks (default: all)")
    p.add_argument("--sizes", type=int, nargs="+", default=None,
                   help="run only these of the grid's training-set sizes (default: all)")
    p.add_argument("--methods", nargs="+", default=None, help="run only these of the grid's method entries (names)")
    p.add_argument("--seeds", type=int, nargs="+", default=None,
                   help="run only these of the grid's seeds (default: all)")
    args = p.parse_args()

    def body() -> None:
        from agwm.grid import load_grid, part_of, run_grid

        grid = load_grid(args.grid)
        grid = part_of(grid, args.tasks, args.sizes, args.methods, args.seeds)
        done, skipped = run_grid(grid, args.workers)
        print(f"{done} runs done, {skipped} already in {grid.results}")

    main_guard(body)


if __name__ == "__main__":
    main()
