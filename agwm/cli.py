"""The ``agwm`` command: ``agwm search|finetune|experiment|report|select``, each also a script in
``scripts/``. A run's flags, their help and defaults come from the settings schema
(:func:`agwm.settings.flag_settings`), as ``HfArgumentParser`` builds them from dataclass fields;
every other setting is a ``key=value`` override.

    agwm search --task rte --train-size 300 --seed 1 --data-dir ../shared/glue --output-dir runs/rte-300-s1
    agwm search --task rte --train-size 300 --seed 1 --folds 2 --hypergrad darts \\
        --data-dir ../shared/glue --output-dir runs/rte-300-s1-bilevel
    agwm finetune --task rte --train-size 300 --seed 1 --alphas runs/rte-300-s1/alphas.safetensors \\
        --data-dir ../shared/glue --output-dir runs/rte-300-s1/finetune
    agwm finetune --train-file reviews.csv --text-columns review --label-column sentiment \\
        --validation-file reviews_dev.csv --test-file reviews_unlabelled.csv --output-dir runs/reviews --save-model
    agwm experiment --grid experiments/reference.yaml [--workers 2] [--tasks rte] [--seeds 1 2]
    agwm report --results results/reference/results.jsonl --output-dir results/reference
    agwm select --train-file reviews.csv --output-dir runs/select-reviews
"""

from __future__ import annotations

from agwm.starting import stop_while_starting

# first of all, so that Ctrl-C while the modules below load is one line too
_DEFAULT_HANDLERS = stop_while_starting()

import argparse  # noqa: E402
import functools  # noqa: E402
import multiprocessing  # noqa: E402
import os  # noqa: E402
import re  # noqa: E402
import signal  # noqa: E402
import sys  # noqa: E402
import typing  # noqa: E402
from collections.abc import Callable  # noqa: E402


class Interrupted(BaseException):
    """SIGINT or SIGTERM; ``code`` is the exit status (128 + the signal's number)."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.code = 128 + signum


def raise_on_signals() -> None:
    """Turn SIGINT and SIGTERM into :class:`Interrupted`, so that ``finally`` blocks run and the
    command ends with one line."""
    def handler(signum, frame):
        raise Interrupted(signum)

    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, handler)


if multiprocessing.parent_process() is not None:  # a grid's worker, which imports this too, leaves signals to the pool
    for _signum, _handler in _DEFAULT_HANDLERS.items():
        signal.signal(_signum, _handler)


def quiet_when_the_reader_leaves(command: Callable) -> Callable:
    """``agwm ... | head``: output whose reader has gone ends the command quietly (exit 1), no traceback."""
    @functools.wraps(command)
    def run(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except BrokenPipeError:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # nothing left to flush at exit
            sys.exit(1)
    return run

RUN_STOPPED = "the run is incomplete and wrote no metrics.json"
_PROBE_SAVED = ("a sentence-transformers encoder with agwm's linear head, not a transformers classifier (pipeline() "
                "would add a random head): load it with agwm.baselines.sentence_encoder.encoder.load_encoder_model")
SAVED_AS = {  # what --save-model writes, by method: how to load it
    "vanilla": "a stock Hugging Face folder: transformers' pipeline('text-classification', model=...) loads it",
    "probe": _PROBE_SAVED, "probe-tuned": _PROBE_SAVED, "cosine": _PROBE_SAVED, "cosine-finetune": _PROBE_SAVED,
    "setfit": "a SetFit model: setfit.SetFitModel.from_pretrained loads it",
    "prefix": "a PEFT adapter folder: peft.AutoPeftModelForSequenceClassification loads it",
    "prompt": "a PEFT adapter folder: peft.AutoPeftModelForSequenceClassification loads it",
}
GRID_STOPPED = "the runs in progress were stopped and not recorded; the same command resumes"


def _argument_type(annotation: str) -> tuple[type | None, bool]:
    """(the element type, whether the setting is a list) of a schema field's annotation."""
    names = {"int": int, "float": float, "str": str, "bool": bool, "list": list}
    kinds = [names[part.strip()] for part in annotation.split("|") if part.strip() in names]
    if list in kinds:
        return str, True
    return (kinds[0] if kinds else str), False


def add_setting_flags(p: argparse.ArgumentParser, command: str, titles: dict[str, str] | None = None) -> None:
    """A flag for every setting of the schema that ``command`` takes, in its group (``titles`` renames
    a group for this command), with its help and (when not None) its default."""
    from agwm.config import flag_settings, setting_fields

    annotations = {path: f.type for path, f in setting_fields()}
    groups: dict[str, argparse._ArgumentGroup] = {}
    for path, meta in flag_settings().items():
        if command not in meta["commands"]:
            continue
        target = p
        if meta.get("group"):
            if meta["group"] not in groups:
                groups[meta["group"]] = p.add_argument_group((titles or {}).get(meta["group"], meta["group"]))
            target = groups[meta["group"]]
        kind, is_list = _argument_type(str(annotations[path]))
        default = meta["default"]
        text = meta["help"]() if callable(meta["help"]) else meta["help"]  # a callable: read when the parser is built
        if default not in (None, "", False) and "default" not in text and not meta.get("required"):
            text += f" (default {default})"
        kwargs: dict[str, typing.Any] = {"dest": path, "default": None, "help": text}
        if kind is bool:
            kwargs["action"] = "store_true"
        else:
            kwargs["type"] = kind
            if is_list:
                kwargs["nargs"] = "+"
            kwargs["metavar"] = meta.get("metavar") or meta["flag"].lstrip("-").replace("-", "_").upper()
        if meta.get("required"):
            kwargs["required"] = True
        target.add_argument(meta["flag"], **kwargs)


def _summary(command: Callable) -> str:
    """A command's docstring's first paragraph, on one line."""
    return " ".join(command.__doc__.split("\n\n")[0].split())


def parser(description: str, command: str) -> argparse.ArgumentParser:
    """The parser of a run command: the settings' flags for ``command``, then ``key=value`` overrides."""
    p = argparse.ArgumentParser(description=description)
    add_setting_flags(p, command)
    p.add_argument("overrides", nargs="*", metavar="key=value",
                   help="any other setting, e.g. search.alpha_lr=1e-3 finetune.epochs=3 inner.darts_alpha=0.02")
    return p


OVERRIDE = re.compile(r"[A-Za-z_][\w.]*=.*")  # key=value


def parse(p: argparse.ArgumentParser, argv: list[str] | None) -> argparse.Namespace:
    """``p.parse_args(argv)``, with the ``key=value`` overrides that a list flag took in (``--report-to
    none finetune.epochs=1``: argparse gives both to --report-to) moved back to the overrides."""
    args = p.parse_args(argv)
    if not hasattr(args, "overrides"):
        return args
    for name, value in vars(args).items():
        if name != "overrides" and isinstance(value, list) and any(isinstance(v, str) and OVERRIDE.fullmatch(v)
                                                                   for v in value):
            kept = [v for v in value if not (isinstance(v, str) and OVERRIDE.fullmatch(v))]
            args.overrides = [v for v in value if v not in kept] + args.overrides
            setattr(args, name, kept or None)
    return args


def run_config(args: argparse.Namespace, command: str):
    """The run's validated :class:`~agwm.settings.RunConfig` from the parsed flags and overrides."""
    from agwm.settings import build_run_config, flag_settings

    flags = {path: getattr(args, path) for path, meta in flag_settings().items() if command in meta["commands"]}
    return build_run_config(flags, args.overrides)


def require_at_least(p: argparse.ArgumentParser, args: argparse.Namespace, minimums: dict[str, int]) -> None:
    """Stop with one line and exit code 2 at the first option below its minimum (``minimums``: an
    option's ``dest`` and the least value allowed)."""
    for dest, least in minimums.items():
        value = getattr(args, dest)
        if value < least:
            p.error(f"--{dest.replace('_', '-')} {value} is not allowed: at least {least}")


def main_guard(body: Callable[[], None], stopped: str = RUN_STOPPED) -> None:
    """Run ``body``; a bad setting or bad data ends the program with one line and exit code 2, a
    run that diverged with one line and exit code 3, SIGINT / SIGTERM with one line (``stopped``
    says what is left) and 130 / 143."""
    from agwm.errors import ConfigError, DataError  # while a signal still ends the start in one line
    from agwm.training.guards import EXIT_FAILED, RunFailed, disk_full
    from agwm_problems import ConfigError as ProblemsConfigError

    raise_on_signals()
    try:
        body()
    except (ConfigError, DataError, ProblemsConfigError) as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    except RunFailed as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(EXIT_FAILED)
    except Exception as error:
        full = disk_full(error)
        if full is None:
            raise
        print(f"error: {full}", file=sys.stderr)
        sys.exit(EXIT_FAILED)
    except (Interrupted, KeyboardInterrupt) as stop:
        name = stop.args[0] if isinstance(stop, Interrupted) else "SIGINT"
        print(f"stopped by {name}: {stopped}", file=sys.stderr)
        sys.exit(getattr(stop, "code", 130))


@quiet_when_the_reader_leaves
def search(argv: list[str] | None = None) -> None:
    """The search phase: W trained on a split of the sample, the finetune's start (the default,
    --problem inner_only); with --hypergrad NAME (or --problem bilevel) also the mixup attention
    alpha, learned on the split's held-out part by bi-level optimisation on Betty."""
    p = parser(_summary(search), "search")
    args = parse(p, argv)

    def body() -> None:
        from agwm.settings import run_engine_settings

        cfg = run_config(args, "search")
        settings = run_engine_settings(cfg, args.overrides)
        from agwm.search import run_search

        metrics = run_search(cfg, settings)
        k = cfg.search.folds
        print(f"search ({cfg.search.problem}, {k} fold{'s' * (k > 1)}) written to {cfg.output_dir} "
              f"(mean alpha {metrics['alpha']['alpha_mean']:.4f}, {metrics['wall_time_s']:.0f} s)")

    main_guard(body)


@quiet_when_the_reader_leaves
def finetune(argv: list[str] | None = None) -> None:
    """Finetune on the whole training sample with the searched alpha fixed (--alphas), plainly, or by
    another --method; score on the validation set, predict a test file."""
    p = parser(_summary(finetune), "finetune")
    p.add_argument("--alphas", default=None, help="alphas.safetensors written by a search (omit: vanilla)")
    p.add_argument("--start-weights", default=None,
                   help="task weights to start from (default with --alphas: the task_weights.safetensors beside "
                        "the alphas file, or the pretrained weights with search.finetune_start=pretrained)")
    p.add_argument("--save-model", action="store_true", help="also write the merged model to <output-dir>/model "
                   "(loads with transformers alone)")
    args = parse(p, argv)

    def body() -> None:
        from agwm.errors import ConfigError

        cfg = run_config(args, "finetune")
        for flag, path in (("--alphas", args.alphas), ("--start-weights", args.start_weights)):
            if path is not None and os.path.isdir(path):
                inside = "alphas.safetensors" if flag == "--alphas" else "task_weights.safetensors"
                raise ConfigError(f"{flag} {path} is not allowed: it is a folder; give the file, e.g. "
                                  f"{os.path.join(path, inside)}")
            if path is not None and not os.path.isfile(path):
                raise ConfigError(f"{flag} {path} is not allowed: no such file")
        from agwm.finetune import run_finetune
        from agwm.models import DEFAULT_MODEL_NAME

        metrics = run_finetune(cfg, args.alphas, args.start_weights, args.save_model)
        scores = metrics[metrics["evaluated_on"]]
        if metrics["score"] is None:
            print(f"{metrics['evaluated_on']} {metrics['metric']} undefined: {scores['undefined']} "
                  f"({metrics['wall_time_s']:.0f} s)")
        else:
            print(f"{metrics['evaluated_on']} {metrics['metric']} {metrics['score']:.2f} (all: "
                  + ", ".join(f"{k} {v:.2f}" for k, v in scores.items() if isinstance(v, float) and k != "score")
                  + f"; {metrics['wall_time_s']:.0f} s)")
        if "warning" in scores:
            print(f"warning: {scores['warning']}: the model did not learn to tell the examples apart ("
                  + ("agwm select compares the methods on your file)" if cfg.model in (None, DEFAULT_MODEL_NAME) else
                     f"the defaults were chosen on {DEFAULT_MODEL_NAME}: with {cfg.model} try "
                     "--method vanilla-tuned, which chooses lr and epochs on held-out rows, or agwm select)"))
        if cfg.test_file:
            print(f"predictions written to {os.path.join(cfg.output_dir, 'predictions.csv')}")
        if args.save_model:
            saved_as = SAVED_AS.get(cfg.finetune.method, SAVED_AS["vanilla"])
            print(f"model saved to {os.path.join(cfg.output_dir, 'model')}: {saved_as}")

    main_guard(body)


@quiet_when_the_reader_leaves
def experiment(argv: list[str] | None = None) -> None:
    """Run an experiment grid (methods x tasks x sizes x seeds) from a YAML file; resumable: each finished
    run appends one record to the grid's results file, and the same command skips those."""
    p = argparse.ArgumentParser(description=_summary(experiment))
    p.add_argument("--grid", required=True, help="grid YAML (see experiments/)")
    p.add_argument("--workers", type=int, default=1, help="runs at a time on this machine (default 1)")
    p.add_argument("--executor", default="process", choices=["process", "ray"],
                   help="process (default): this process or a pool of --workers; ray: each run a Ray task "
                        "(agwm's ray extra: see README)")
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
    args = parse(p, argv)

    def body() -> None:
        from agwm.errors import ConfigError
        from agwm.experiments.grid import RayOptions, load_grid, part_of, read_records, run_grid
        from agwm.training.guards import EXIT_FAILED

        given = {name: value for name in ("address", "cpus_per_run", "gpus_per_run", "retries")
                 if (value := getattr(args, name)) is not None}  # the rest keep RayOptions' defaults
        if args.executor != "ray" and given:
            flag = "--" + next(iter(given)).replace("_", "-")
            raise ConfigError(f"{flag} is not allowed with --executor process: it is for --executor ray")
        grid = part_of(load_grid(args.grid), args.tasks, args.sizes, args.methods, args.seeds)
        ray = RayOptions(**given) if args.executor == "ray" else None
        before = {r["key"] for r in read_records(grid.results)}
        done, skipped = run_grid(grid, args.workers, ray)
        failed = [r for r in read_records(grid.results) if r["key"] not in before and r.get("failed")]
        said = f" ({len(failed)} failed, recorded as such: {failed[0]['key']}: {failed[0]['failed']})" if failed else ""
        print(f"{done} runs done{said}, {skipped} already in {grid.results}")
        if failed:
            sys.exit(EXIT_FAILED)

    main_guard(body, GRID_STOPPED)


@quiet_when_the_reader_leaves
def report(argv: list[str] | None = None) -> None:
    """Turn grid results into Markdown tables and plots, and a search folder into its plots."""
    p = argparse.ArgumentParser(description=_summary(report))
    p.add_argument("--results", nargs="+", default=None, help="grid results files (JSON lines), merged")
    p.add_argument("--output-dir", default=None, help="where report.md and the plots go")
    p.add_argument("--data-dir", default=None,
                   help="GLUE folder: add each task's best one-class score on the dev set to the report")
    p.add_argument("--tasks", nargs="+", default=None, help="report only these tasks' records (default: all)")
    p.add_argument("--sizes", type=int, nargs="+", default=None,
                   help="report only these training-set sizes' records (default: all)")
    p.add_argument("--methods", nargs="+", default=None,
                   help="report only these methods' records (their names in the grid; default: all)")
    p.add_argument("--search", nargs="*", default=[], help="search output folders to plot")
    p.add_argument("--compare", nargs=2, default=None, metavar=("METHOD", "BASE"),
                   help="print METHOD minus BASE per task, size and seed of the results, with the mean's "
                        "95%% interval and p-values")
    p.add_argument("--compare-searches", nargs="*", default=[], metavar="LABEL=FOLDER",
                   help="search folders to compare in <output-dir>/alpha_movement.png")
    args = parse(p, argv)

    def body() -> None:
        from agwm.experiments.report import write_report

        for line in write_report(args.results, args.output_dir, args.data_dir, args.tasks, args.sizes,
                                 args.methods, args.search, args.compare, args.compare_searches):
            print(line)

    main_guard(body)


@quiet_when_the_reader_leaves
def select(argv: list[str] | None = None) -> None:
    """Choose the finetuning method for your data, on your training file alone: every method runs on
    the same seeds, each seed training on 80% of the training file and scoring on the other 20% (your
    validation and test files are never read); the recommendation is the cheapest method shown to lose
    at most --margin points to the best mean, else the best. Resumable; writes selection.md and
    selection.json beside the runs' records (results.jsonl)."""
    from agwm.config import DATA
    from agwm.experiments.methods import MARGIN, selectable_methods

    p = argparse.ArgumentParser(description=_summary(select))

    add_setting_flags(p, "select", {DATA: "data: your training file (--train-file) and how to read it"})
    p.add_argument("--methods", nargs="+", default=None,
                   help=f"two or more of: {', '.join(selectable_methods())} (default, by the task's kind: vanilla "
                   "fold-average probe, with setfit and setfit-vanilla for classes of single texts, cosine and "
                   "cosine-finetune for pairs)")
    p.add_argument("--seeds", type=int, default=5, help="paired repetitions, seeds 1..N (default 5)")
    p.add_argument("--margin", type=float, default=MARGIN,
                   help=f"points a cheaper method may be shown to lose at most (default {MARGIN:g})")
    p.add_argument("--workers", type=int, default=1, help="parallel runs (default 1)")
    p.add_argument("--output-dir", required=True, help="the selection's folder: its runs, records and tables")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="settings for every method, e.g. "
                   "finetune.epochs=5")
    args = parse(p, argv)
    if args.train_file is None:
        p.error("the following arguments are required: --train-file")

    def body() -> None:
        from agwm.config import flag_settings
        from agwm.experiments.selection import select_on_file

        fields = {path: getattr(args, path) for path, meta in flag_settings().items()
                  if "select" in meta["commands"] and path != "model"}  # the training file's, as the schema says
        for line in select_on_file(fields, args.methods, args.seeds, args.margin, args.model, args.workers,
                                   args.output_dir, args.overrides):
            print(line)

    main_guard(body, GRID_STOPPED)


COMMANDS: dict[str, Callable[[list[str] | None], None]] = {
    "search": search, "finetune": finetune, "experiment": experiment, "report": report, "select": select}


@quiet_when_the_reader_leaves
def main(argv: list[str] | None = None) -> None:
    """``agwm <command> [options]``: the installed command."""
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in COMMANDS:
        names = "|".join(COMMANDS)
        lines = [f"usage: agwm {{{names}}} [options]   (agwm <command> --help for its options)", ""]
        lines += [f"  {name:<11} {_summary(fn).split(':')[0].split('.')[0]}" for name, fn in COMMANDS.items()]
        if argv and argv[0] not in ("-h", "--help"):
            print(f"agwm: error: {argv[0]} is not allowed: one of {', '.join(COMMANDS)}", file=sys.stderr)
            sys.exit(2)
        print("\n".join(lines))
        sys.exit(0 if argv else 2)
    sys.argv = [f"agwm {argv[0]}", *argv[1:]]
    COMMANDS[argv[0]](argv[1:])
