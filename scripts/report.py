"""Turn grid results into Markdown tables and plots.

    python scripts/report.py --results results/reference/results.jsonl --output-dir results/reference
"""

import argparse
import os

from agwm.cli import main_guard
from agwm.config import ConfigError


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--results", required=True, help="a grid's results file (JSON lines)")
    p.add_argument("--output-dir", required=True, help="where report.md and the plots go")
    args = p.parse_args()

    def body() -> None:
        from agwm.grid import read_records
        from agwm.report import markdown_report, plot_score_vs_size

        records = read_records(args.results)
        if not records:
            raise ConfigError(f"--results {args.results} is not allowed: no records in it")
        os.makedirs(args.output_dir, exist_ok=True)
        plot_score_vs_size(records, os.path.join(args.output_dir, "score_vs_size.png"))
        with open(os.path.join(args.output_dir, "report.md"), "w") as f:
            f.write(markdown_report(records))
        print(f"{len(records)} records -> {args.output_dir}/report.md, score_vs_size.png")

    main_guard(body)


if __name__ == "__main__":
    main()
