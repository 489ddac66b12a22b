"""Apply a grid file's written rule to its records and its partners' (agwm/experiments/rules.py).

    python scripts/grid_rules.py experiments/peers-1000.yaml

Prints the markdown table and verdict that the grid's results README quotes. Only the records of the
grid's tasks, sizes and seeds are read."""

import argparse
import sys

from agwm.errors import ConfigError
from agwm.experiments import rules
from agwm.experiments.grid import load_grid, read_records, task_name
from agwm.experiments.paired import merge_records, split_unscored

# grid file stem -> (rule, the results files of its partner runs, as its header names them)
RULES = {
    "peers": (rules.peers_questions, []),
    "peers-1000": (rules.peers_questions, []),
    "stacked": (rules.stacked, ["results/peers/results.jsonl"]),
    "reverse-horizon": (rules.reverse_horizon, ["results/peers/results.jsonl", "results/peers-stsb/results.jsonl"]),
    "averaging-controls": (rules.averaging_controls,
                           ["results/peers/results.jsonl", "results/peers-stsb/results.jsonl"]),
    "cheaper-default": (lambda records, tasks, size: rules.cheaper_default(records, tasks[0], size), []),
    "mpnet": (rules.mpnet, []),
    "default-classification": (rules.default_classification, []),
}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("grid", help=f"a grid file whose rule is coded: experiments/{{{','.join(RULES)}}}.yaml")
    args = p.parse_args(argv)
    stem = args.grid.rsplit("/", 1)[-1].removesuffix(".yaml")
    if stem not in RULES:
        sys.exit(f"grid {args.grid} is not allowed: its rule is not coded; one of {', '.join(RULES)}")
    try:
        grid = load_grid(args.grid)
    except ConfigError as error:
        sys.exit(str(error))
    rule, partners = RULES[stem]
    tasks = [task_name(t) for t in grid.tasks]
    records, unscored = split_unscored(merge_records([
        r for path in [grid.results, *partners] for r in read_records(path)
        if r["task"] in tasks and r["seed"] in grid.seeds and r["train_size"] in grid.sizes]))
    if unscored:
        print(unscored, file=sys.stderr)
    if not records:
        sys.exit(f"grid {args.grid}: no scored records in {grid.results}")
    print(rule(records, tasks, grid.sizes[0]))


if __name__ == "__main__":
    main()
