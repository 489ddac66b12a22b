"""Turn grid results into Markdown tables and plots, and a search folder into its plots.

    python scripts/report.py --results results/reference/results.jsonl --output-dir results/reference
    python scripts/report.py --results results/reference/results.jsonl results/baselines/results.jsonl \
        --output-dir results/baselines      # several grids' records in one report
    python scripts/report.py --search runs/rte-300-s1     # writes search.png, alpha_layers.png there
"""

import argparse
import os

from agwm.cli import main_guard
from agwm.config import ConfigError


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--results", nargs="+", default=None, help="grid results files (JSON lines), merged")
    p.add_argument("--output-dir", default=None, help="where report.md and the plots go")
    p.add_argument("--search", nargs="*", default=[], help="search output folders to plot")
    p.add_argument("--compare-searches", nargs="*", default=[], metavar="LABEL=FOLDER",
                   help="search folders to compare in <output-dir>/alpha_movement.png")
    args = p.parse_args()

    def body() -> None:
        from agwm.grid import read_records
        from agwm.report import (markdown_report, merge_records, plot_alpha_layers, plot_alpha_movement,
                                 plot_score_vs_size, plot_search)

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
            return
        if args.output_dir is None:
            raise ConfigError("--results needs --output-dir")
        records = []
        for path in args.results:
            found = read_records(path) if os.path.isfile(path) else []
            if not found:
                raise ConfigError(f"--results {path} is not allowed: no such file or no records in it")
            records += found
        try:
            records = merge_records(records)
            report = markdown_report(records)
        except ValueError as error:  # records that cannot go in one report
            raise ConfigError(f"--results {' '.join(args.results)} is not allowed: {error}") from None
        os.makedirs(args.output_dir, exist_ok=True)
        plot_score_vs_size(records, os.path.join(args.output_dir, "score_vs_size.png"))
        with open(os.path.join(args.output_dir, "report.md"), "w") as f:
            f.write(report)
        print(f"{len(records)} records -> {args.output_dir}/report.md, score_vs_size.png")

    main_guard(body)


if __name__ == "__main__":
    main()
