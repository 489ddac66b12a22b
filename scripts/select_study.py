"""How well select_method.py's recommendation does on data it never saw (a study of the rule).

For each task of a grid whose runs were scored on test files (e.g. experiments/peers.yaml) and each
user seed u, the user's file is the sample that seed u draws from the training file; select_method's
selection runs on that file alone, and its recommendation is scored by the grid's run of that
method on the same sample and seed, on the test file:

    python scripts/select_study.py --grid experiments/peers.yaml --user-seeds 11 12 13 \
        --methods vanilla fold-average mixup setfit probe --seeds 3 --output-dir results/select-study

Resumable; writes study.md and study.json beside the selection runs' records (results.jsonl).
"""

import argparse
import json
import os

from agwm.cli import GRID_STOPPED, main_guard


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--grid", required=True, help="the grid whose test-file runs score the recommendations")
    p.add_argument("--user-seeds", type=int, nargs="+", required=True, help="the grid's seeds to play the user")
    p.add_argument("--methods", nargs="+", required=True, help="the methods select_method chooses from")
    p.add_argument("--seeds", type=int, default=3, help="select_method's held-out repetitions (default 3)")
    p.add_argument("--margin", type=float, default=3.0, help="select_method's margin (default 3)")
    p.add_argument("--fixed", nargs="+", default=["vanilla", "mixup", "setfit"],
                   help="the methods to compare with always choosing them (default: vanilla mixup setfit)")
    p.add_argument("--size", type=int, default=None, help="the grid's training-set size (default: its only one)")
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--output-dir", required=True)
    args = p.parse_args()

    def body() -> None:
        from agwm.errors import ConfigError
        from agwm.experiments.grid import load_grid, read_records
        from agwm.experiments.selection import selection_grid, selection_study, study_text
        from agwm.settings import refuse_unknown

        grid = load_grid(args.grid)
        tasks = [t for t in grid.tasks if isinstance(t, dict)]
        if not tasks:
            raise ConfigError(f"--grid {args.grid} is not allowed: it has no task of a user's files")
        refuse_unknown("--user-seeds", args.user_seeds, grid.seeds, "the grid's are")
        refuse_unknown("--fixed", args.fixed, args.methods, "one of --methods:")
        selection_grid(tasks[0], args.methods, args.seeds, args.output_dir, [])  # the methods and seeds checked
        size = args.size if args.size is not None else grid.sizes[0]
        if args.size is None and len(grid.sizes) > 1 or size not in grid.sizes:
            raise ConfigError(f"--size {args.size} is not allowed: one of the grid's sizes, "
                              f"{', '.join(map(str, grid.sizes))}")
        study = selection_study(tasks, args.user_seeds, size, args.methods, args.seeds, args.output_dir,
                                read_records(grid.results), args.workers, args.margin, model=grid.model,
                                overrides=grid.overrides)
        text = study_text(study, args.fixed)
        with open(os.path.join(args.output_dir, "study.md"), "w") as f:
            f.write(text + "\n")
        with open(os.path.join(args.output_dir, "study.json"), "w") as f:
            json.dump(study, f, indent=2)
        print(text)

    main_guard(body, GRID_STOPPED)


if __name__ == "__main__":
    main()
