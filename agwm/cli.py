"""Command-line options shared by the scripts, in the style of Hugging Face's ``run_glue.py``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from .guards import EXIT_FAILED, Interrupted, RunFailed, exit_on_signals, raise_on_signals

exit_on_signals()  # the scripts import this module first: Ctrl-C while torch and the rest load is one line


def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    data = p.add_argument_group("data: a GLUE task (--task), or your own files (--train-file and the rest)")
    data.add_argument("--task", default=None, help="GLUE task: cola, sst2, mrpc, stsb, qqp, mnli, qnli, rte")
    data.add_argument("--data-dir", default=None, help="with --task: folder in the GLUE layout (default $GLUE_DIR, "
                      "else the hub)")
    data.add_argument("--train-file", default=None, help="labelled examples: .csv, .tsv, .json, .jsonl or .parquet")
    data.add_argument("--validation-file", default=None, help="labelled examples to score on (default: "
                      "--validation-split of the training file)")
    data.add_argument("--validation-split", type=float, default=None,
                      help="without --validation-file: the fraction of the training file held out, stratified "
                           "by --seed (default 0.2)")
    data.add_argument("--text-columns", nargs="+", default=None, metavar="COLUMN",
                      help="one text column, or two for a pair (default: text, sentence, or sentence1 sentence2)")
    data.add_argument("--label-column", default=None, help="default: label")
    data.add_argument("--task-type", default=None, help="classification or regression (default: guessed from "
                      "the labels, and printed)")
    data.add_argument("--metric", default=None, help="headline metric: accuracy, f1 (two classes), macro-f1, mcc, "
                      "spearman, pearson (default: the preset's; accuracy or spearman)")
    p.add_argument("--train-size", type=int, default=None, help="training examples drawn by --seed (default: 300 "
                   "for a GLUE task, every row of --train-file)")
    p.add_argument("--seed", type=int, default=None, help="seed of the sample, splits and every draw (default 1)")
    p.add_argument("--model", default=None, help="model folder or hub name (default: bundled all-MiniLM-L6-v2)")
    p.add_argument("--output-dir", required=True)
    p.add_argument("--overwrite", action="store_true", default=None,
                   help="replace a finished run in --output-dir (default: refuse it)")
    p.add_argument("--max-length", type=int, default=None, help="tokens per example (default 128)")
    p.add_argument("--batch-size", type=int, default=None, help="default 16")
    p.add_argument("--device", default=None, help="auto (default: the GPU if there is one), cpu, cuda or cuda:N")
    p.add_argument("--bf16", action="store_true", default=None,
                   help="bfloat16 autocast for the forward passes (faster on GPUs that have it)")
    p.add_argument("--report-to", nargs="+", default=None, metavar="LOG",
                   help="csv, tensorboard or none (default: csv, and tensorboard where it is installed)")
    p.add_argument("overrides", nargs="*", metavar="key=value",
                   help="single settings, e.g. search.alpha_lr=1e-3 finetune.epochs=3 inner.darts_alpha=0.02")
    return p


def run_config(args: argparse.Namespace, extra_flags: dict | None = None):
    """The run's validated :class:`~agwm.settings.RunConfig` from the shared flags and ``extra_flags``."""
    from .config import build_run_config

    flags = {"task": args.task, "train_size": args.train_size, "seed": args.seed, "data_dir": args.data_dir,
             "train_file": args.train_file, "validation_file": args.validation_file,
             "validation_split": args.validation_split, "text_columns": args.text_columns,
             "label_column": args.label_column, "task_type": args.task_type, "metric": args.metric,
             "model": args.model, "output_dir": args.output_dir, "overwrite": args.overwrite,
             "max_length": args.max_length, "bf16": args.bf16,
             "batch_size": args.batch_size, "device": args.device, "report_to": args.report_to, **(extra_flags or {})}
    return build_run_config(flags, args.overrides)


def require_at_least(p: argparse.ArgumentParser, args: argparse.Namespace, minimums: dict[str, int]) -> None:
    """Stop with one line and exit code 2 at the first option below its minimum (``minimums``: an
    option's ``dest`` and the least value allowed)."""
    for dest, least in minimums.items():
        value = getattr(args, dest)
        if value < least:
            p.error(f"--{dest.replace('_', '-')} {value} is not allowed: at least {least}")


RUN_STOPPED = "the run is incomplete and wrote no metrics.json"
GRID_STOPPED = "the runs in progress were stopped and not recorded; the same command resumes"


def main_guard(body: Callable[[], None], stopped: str = RUN_STOPPED) -> None:
    """Run ``body``; a bad setting or bad data ends the program with one line and exit code 2, a
    run that diverged with one line and exit code 3, SIGINT / SIGTERM with one line (``stopped``
    says what is left) and 130 / 143."""
    from .settings import ConfigError  # while a signal still ends the start in one line (exit_on_signals)
    from .tasks import DataError

    raise_on_signals()
    try:
        body()
    except (ConfigError, DataError) as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    except RunFailed as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(EXIT_FAILED)
    except (Interrupted, KeyboardInterrupt) as stop:
        name = stop.args[0] if isinstance(stop, Interrupted) else "SIGINT"
        print(f"stopped by {name}: {stopped}", file=sys.stderr)
        sys.exit(getattr(stop, "code", 130))
