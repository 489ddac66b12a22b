"""Run an experiment grid (methods x tasks x sizes x seeds) from a YAML file; resumable.

    python scripts/experiment.py --grid experiments/reference.yaml [--workers 1] [--tasks rte] [--sizes 300]
        [--methods vanilla] [--seeds 1 2]
    python scripts/experiment.py --grid G --executor ray --workers 4     # a local Ray, 4 runs at a time
    python scripts/experiment.py --grid G --executor ray --address auto --gpus-per-run 1   # a Ray cluster

Each finished run appends one record to the grid's results file; rerunning the same command
skips the runs already recorded and runs the rest.
"""

import argparse

from agwm.cli import GRID_STOPPED, main_guard
from agwm.settings import ConfigError


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--grid", required=True, help="grid YAML (see experiments/)")
    p.add_argument("--workers", type=int, default=1, help="runs at a time on this machine (default 1)")
    p.add_argument("--executor", default="process", choices=["process", "ray"],
                   help="process (default): this process or a pool of --workers; ray: each run a Ray task "
                        '(pip install ".[ray]")')
    p.add_argument("--address", default=None,
                   help="with --executor ray: the Ray cluster to join (auto, or host:port); default a local Ray")
    p.add_argument("--cpus-per-run", type=float, default=None,
                   help="with --executor ray: each run's CPU request (default 1)")
    p.add_argument("--gpus-per-run", type=float, default=None,
                   help="with --executor ray: each run's GPU request (default 0)")
    p.add_argument("--retries", type=int, default=None,
                   help="with --executor ray: reruns of a run whose worker died (default 2)")
    p.add_argument("--tasks", nargs="+", default=None, help="run only these of the grid's tasks (default: all)")
    p.add_argument("--sizes", type=int, nargs="+", default=None,
                   help="run only these of the grid's training-set sizes (default: all)")
    p.add_argument("--methods", nargs="+", default=None, help="run only these of the grid's method entries (names)")
    p.add_argument("--seeds", type=int, nargs="+", default=None,
                   help="run only these of the grid's seeds (default: all)")
    args = p.parse_args()

    def body() -> None:
        from agwm.grid import RayOptions, load_grid, part_of, run_grid

        given = {name: value for name in ("address", "cpus_per_run", "gpus_per_run", "retries")
                 if (value := getattr(args, name)) is not None}  # the rest keep RayOptions' defaults
        if args.executor != "ray" and given:
            flag = "--" + next(iter(given)).replace("_", "-")
            raise ConfigError(f"{flag} is not allowed with --executor process: it is for --executor ray")
        grid = load_grid(args.grid)
        grid = part_of(grid, args.tasks, args.sizes, args.methods, args.seeds)
        ray = RayOptions(**given) if args.executor == "ray" else None
        done, skipped = run_grid(grid, args.workers, ray)
        print(f"{done} runs done, {skipped} already in {grid.results}")

    main_guard(body, GRID_STOPPED)


if __name__ == "__main__":
    main()
