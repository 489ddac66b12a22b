"""Choose the finetuning method for your data, on your training file alone.

Every method runs on the same seeds, each seed training on 80% of the training file and scoring on
the other 20% (your validation and test files are never read); the recommendation is the cheapest
method shown to lose at most --margin points to the best mean (the whole 95% interval of its paired
difference above -margin), else the best.

    python scripts/select_method.py --train-file reviews.csv --text-columns review --label-column sentiment \
        --methods vanilla fold-average mixup --seeds 5 --output-dir runs/select-reviews

Resumable: rerun the same command and only the missing runs run. Writes selection.md and
selection.json beside the runs' records (results.jsonl).
"""

import argparse
import os

from agwm.cli import GRID_STOPPED, main_guard


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--train-file", required=True, help="labelled examples: .csv, .tsv, .json, .jsonl or .parquet")
    p.add_argument("--text-columns", nargs="+", default=None, metavar="COLUMN")
    p.add_argument("--label-column", default=None)
    p.add_argument("--task-type", default=None, help="classification or regression (default: guessed)")
    p.add_argument("--metric", default=None)
    p.add_argument("--methods", nargs="+", default=["vanilla", "fold-average", "mixup"],
                   help="two or more of: vanilla, vanilla-tuned, fold-average, mixup, probe, setfit, joint, "
                        "random-alpha and the baselines (mixout, child-tuning-d, child-tuning-f, dps, r3f, r-dropout, "
                        "re-init, lora, prefix, prompt, soup); default: vanilla fold-average mixup")
    p.add_argument("--seeds", type=int, default=5, help="paired repetitions, seeds 1..N (default 5)")
    p.add_argument("--margin", type=float, default=3.0, help="points a cheaper method may be shown to lose at most "
                   "(default 3)")
    p.add_argument("--model", default=None)
    p.add_argument("--workers", type=int, default=1, help="parallel runs (default 1)")
    p.add_argument("--output-dir", required=True)
    p.add_argument("overrides", nargs="*", metavar="key=value", help="settings for every method, e.g. "
                   "finetune.epochs=5")
    args = p.parse_args()

    def body() -> None:
        from agwm.outputs import check_output_dir, prepare_output_dir
        from agwm.runtime import load_examples
        from agwm.selection import rule_text, run_selection, selection_grid
        from agwm.settings import ConfigError

        fields = {"train_file": args.train_file, "text_columns": args.text_columns,
                  "label_column": args.label_column, "task_type": args.task_type, "metric": args.metric}
        name = os.path.splitext(os.path.basename(args.train_file))[0]
        task = {"name": name, **{k: v for k, v in fields.items() if v is not None}}
        if not args.margin > 0:
            raise ConfigError(f"--margin {args.margin} is not allowed: greater than 0")
        check_output_dir(args.output_dir, overwrite=True, phase="selection")  # a selection's folder, or a new one
        grid = selection_grid(task, args.methods, args.seeds, args.output_dir, args.overrides, args.model)
        runs = grid.runs()  # every setting checked before any run
        examples = load_examples(runs[0].config)  # every file checked, the metric known
        print(f"{len(runs)} runs ({len(args.methods)} methods x {args.seeds} seeds) on {args.train_file}, "
              f"{len(examples.train)} rows, each scored on its held-out 20%; the rule: {rule_text(args.margin)}")
        prepare_output_dir(args.output_dir, "selection")  # marks it; the records there are kept (resumable)
        result = run_selection(grid, args.methods, examples.task.metric, args.output_dir, args.workers, args.margin)
        print(result["text"])

    main_guard(body, GRID_STOPPED)


if __name__ == "__main__":
    main()
