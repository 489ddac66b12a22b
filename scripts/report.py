"""Turn grid results into Markdown tables and plots, and a search folder into its plots.

    python scripts/report.py --results results/reference/results.jsonl --output-dir results/reference
    python scripts/report.py --results results/reference/results.jsonl results/baselines/results.jsonl \
        --output-dir results/baselines      # several grids' records in one report
    python scripts/report.py --results ... --output-dir ... --data-dir ../shared/glue   # adds each task's
        # one-class score on the dev set (what a model that learned nothing reaches)
    python scripts/report.py --results ... --output-dir ... --tasks stsb --sizes 300   # only those records
    python scripts/report.py --search runs/rte-300-s1     # writes search.png, alpha_layers.png there
    python scripts/report.py --results results/alpha-study/results.jsonl \
        --compare factored-lr2e-3-foldavg factored-lr2e-3   # paired differences, interval, t-test and Wilcoxon p
"""

import argparse
import os

from agwm.cli import main_guard
from agwm.settings import ConfigError
from agwm.validation import refuse_unknown


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--results", nargs="+", default=None, help="grid results files (JSON lines), merged")
    p.add_argument("--output-dir", default=None, help="where report.md and the plots go")
    p.add_argument("--data-dir", default=None,
                   help="GLUE folder: add each task's best one-class score on the dev set to the report")
    p.add_argument("--tasks", nargs="+", default=None, help="report only these tasks' records (default: all)")
    p.add_argument("--sizes", type=int, nargs="+", default=None,
                   help="report only these training-set sizes' records (default: all)")
    p.add_argument("--search", nargs="*", default=[], help="search output folders to plot")
    p.add_argument("--compare", nargs=2, default=None, metavar=("METHOD", "BASE"),
                   help="print METHOD minus BASE per task, size and seed of the results, with the mean's "
                        "95%% interval and p-values")
    p.add_argument("--compare-searches", nargs="*", default=[], metavar="LABEL=FOLDER",
                   help="search folders to compare in <output-dir>/alpha_movement.png")
    args = p.parse_args()

    def body() -> None:
        from agwm.grid import read_records
        from agwm.plots import plot_alpha_layers, plot_alpha_movement, plot_score_vs_size, plot_search
        from agwm.report import markdown_report, merge_records, split_unscored

        def require_search_folder(written: str, folder: str) -> None:
            for name in ("log.csv", "alphas.safetensors"):
                if not os.path.isfile(os.path.join(folder, name)):
                    raise ConfigError(f"{written} is not allowed: it has no {name} (not a search folder)")

        for folder in args.search:
            require_search_folder(f"--search {folder}", folder)
            plot_search(os.path.join(folder, "log.csv"), os.path.join(folder, "search.png"))
            plot_alpha_layers(os.path.join(folder, "alphas.safetensors"), os.path.join(folder, "alpha_layers.png"))
            print(f"{folder}/search.png, {folder}/alpha_layers.png")
        if args.compare_searches:
            searches = dict(item.partition("=")[::2] for item in args.compare_searches)
            for label, folder in searches.items():
                if not label or not folder:
                    raise ConfigError(f"--compare-searches {label}={folder} is not allowed: expected LABEL=FOLDER")
                require_search_folder(f"--compare-searches {label}={folder}", folder)
            if args.output_dir is None:
                raise ConfigError("--compare-searches needs --output-dir")
            os.makedirs(args.output_dir, exist_ok=True)
            plot_alpha_movement(searches, os.path.join(args.output_dir, "alpha_movement.png"))
            print(f"{args.output_dir}/alpha_movement.png")
        if args.results is None:
            if args.compare:
                raise ConfigError("--compare needs --results")
            return
        if args.output_dir is None and not args.compare:
            raise ConfigError("--results needs --output-dir (or --compare)")
        records = []
        for path in args.results:
            found = read_records(path) if os.path.isfile(path) else []
            if not found:
                raise ConfigError(f"--results {path} is not allowed: no such file or no records in it")
            records += found
        records = only_these(records, "--tasks", "task", args.tasks)
        records = only_these(records, "--sizes", "train_size", args.sizes)

        def not_one_report(error: ValueError) -> ConfigError:  # records that cannot go in one report
            return ConfigError(f"--results {' '.join(args.results)} is not allowed: {error}")

        try:
            records = merge_records(records)
        except ValueError as error:
            raise not_one_report(error) from None
        records, unscored = split_unscored(records)
        if unscored:
            print(unscored)
        if not records:
            raise ConfigError(f"--results {' '.join(args.results)} is not allowed: no run in them has a score")
        if args.compare:
            print(comparison(records, *args.compare))
            if args.output_dir is None:
                return
        try:
            constant = None if args.data_dir is None else one_class_scores(
                {r["task"] for r in records}, args.data_dir, {r.get("evaluated_on", "dev") for r in records})
            report = markdown_report(records, constant)
            if unscored:
                report = f"{unscored}\n\n{report}"
        except ConfigError:  # a bad --data-dir: its own message
            raise
        except ValueError as error:
            raise not_one_report(error) from None
        os.makedirs(args.output_dir, exist_ok=True)
        plot_score_vs_size(records, os.path.join(args.output_dir, "score_vs_size.png"), constant)
        with open(os.path.join(args.output_dir, "report.md"), "w") as f:
            f.write(report)
        print(f"{len(records)} records -> {args.output_dir}/report.md, score_vs_size.png")

    main_guard(body)


def comparison(records: list[dict], method: str, base: str) -> str:
    """:func:`agwm.report.comparison_table` of ``method`` and ``base``; refused, naming the methods the
    records hold, when either is not among them or they share no task, size and seed."""
    from agwm.report import comparison_table

    methods = sorted({r["method"] for r in records})
    unknown = [m for m in (method, base) if m not in methods]
    if unknown:
        raise ConfigError(f"--compare {method} {base} is not allowed: the results hold no "
                          f"{' or '.join(unknown)}; they hold {', '.join(methods)}")
    table = comparison_table(records, method, base)
    if table.count("\n") < 2:  # no row below the header
        raise ConfigError(f"--compare {method} {base} is not allowed: no task, size and seed has both")
    return table


def only_these(records: list[dict], flag: str, field: str, wanted: list | None) -> list[dict]:
    """The records whose ``field`` is one of ``wanted`` (all when None); a wanted value that no record
    has is refused, naming those the records have."""
    if wanted is None:
        return records
    refuse_unknown(flag, wanted, sorted({r[field] for r in records}), "the results hold")
    return [r for r in records if r[field] in wanted]


def one_class_scores(tasks: set[str], data_dir: str, evaluated_on: set[str]) -> dict:
    """Task -> (best one-class dev score, class), from the dev files under ``data_dir`` (GLUE tasks;
    a user's task has no file there and is left out)."""
    from agwm.examples import load_split
    from agwm.metrics import constant_prediction_score
    from agwm.tasks import TASKS, get_task

    if not os.path.isdir(data_dir):
        raise ConfigError(f"--data-dir {data_dir} is not allowed: no such folder")
    if evaluated_on != {"dev"}:
        raise ConfigError("--data-dir is not allowed with held-out scores (finetune.holdout): "
                          "the one-class scores are the dev set's")
    tasks_by_name = {name: get_task(name) for name in tasks if name in TASKS}
    return {name: constant_prediction_score(task, load_split(task, "dev", data_dir)["label"])
            for name, task in tasks_by_name.items()}


if __name__ == "__main__":
    main()
