"""How flags and ``key=value`` overrides build a run's :class:`RunConfig` (the schema is
:mod:`agwm.config`; the files settings name are checked in :mod:`agwm.inputs`), and one validation
pass that checks every value before any work. Every bad value stops with a :class:`ConfigError`
that names the option as it was written, the value, and what is allowed. Also here: the
hypergradient method's engine settings for a run (the shipped YAML files, the overrides)."""

from __future__ import annotations

import dataclasses
import os
import re
from typing import Any

import torch

from agwm.config import (  # noqa: F401  (the schema, part of this module's interface)
    ALPHA_MODES,
    BODIES,
    FINETUNE_STARTS,
    FLAGS,
    FOLD_DATA,
    GLUE_TRAIN_SIZE,
    METHOD_SECTIONS,
    PROBLEMS,
    FinetuneConfig,
    MixupConfig,
    RunConfig,
    SearchConfig,
    flag_settings,
    setting_fields,
)
from agwm.data import METRICS, TASK_ALIASES, TASK_TYPES, TASKS, metric_error
from agwm.errors import ConfigError, from_problems
from agwm.mixup import FORMULATIONS
from agwm.registry import METHODS, install_hint
from agwm.training.log import REPORTERS, tensorboard_installed
from agwm_problems.engine import HYPERGRADS, engine_config_dir
from agwm_problems.engine_settings import EngineSettings, load_engine_settings
from agwm_problems.overrides import parse_overrides, set_path


def build_run_config(flags: dict[str, Any], overrides: list[str] = (), base: RunConfig | None = None) -> RunConfig:
    """``base`` (defaults) updated by ``flags`` (dotted field -> value, None meaning not given)
    and then by ``overrides`` that are not engine keys; validated."""
    cfg = base or RunConfig()
    written: dict[str, str] = {}
    with from_problems():  # the key=value machinery is agwm_problems'
        for path, value in flags.items():
            if value is not None:
                set_path(cfg, path, value, FLAGS.get(path, path))
        for key, value, text in parse_overrides(list(overrides)):
            if key.split(".")[0] not in ("inner", "outer", "engine"):
                set_path(cfg, key, value, text)
                written[key] = text
    given = {path for path, value in flags.items() if value is not None} | set(written)
    normalise(cfg)
    if "search.problem" not in given and given.intersection(outer_level_settings()):
        cfg.search.problem = "bilevel"  # a hypergradient, engine file or alpha setting asks for the outer level
    refuse_unread_outer_level(cfg, given)
    validate_run_config(cfg, written)
    return cfg


def normalise(cfg: RunConfig) -> None:
    """What a value means, spelt one way before the checks: one name for a list setting given as a
    string, and a GLUE preset's default sample size."""
    for name in ("text_columns", "report_to"):
        if isinstance(getattr(cfg, name), str):
            setattr(cfg, name, [getattr(cfg, name)])
    if cfg.task is not None and cfg.train_file is None and cfg.train_size is None:
        cfg.train_size = GLUE_TRAIN_SIZE

DEVICE_PATTERN = re.compile(r"auto|cpu|cuda(:\d+)?")


def refuse_unknown(flag: str, wanted: list | None, known: list, known_are: str) -> None:
    """Refuse the values of ``flag`` that are not in ``known``, naming them and, after ``known_are``, the known ones."""
    unknown = [str(v) for v in wanted or [] if v not in known]
    if unknown:
        raise ConfigError(f"{flag} {' '.join(unknown)} is not allowed: {known_are} {', '.join(map(str, known))}")


def spelt(path: str, value: Any) -> str:
    """A setting as a user gives it: its flag and value where it has a flag, else ``path=value``."""
    return f"{FLAGS[path]} {value}" if path in FLAGS else f"{path}={value}"


def validate_run_config(cfg: RunConfig, written: dict[str, str] | None = None) -> None:
    """``written``: the override text of a field set by ``key=value``, to quote in a message."""
    written = written or {}

    def _require(ok: bool, path: str, value: Any, allowed: str) -> None:
        if not ok:
            raise ConfigError(f"{written.get(path) or spelt(path, value)} is not allowed: {allowed}")

    validate_data_settings(cfg, _require)
    _require(cfg.max_length >= 8, "max_length", cfg.max_length, "at least 8")
    _require(cfg.batch_size >= 1, "batch_size", cfg.batch_size, "at least 1")
    validate_reporters(cfg, _require)
    allowed_devices = device_allowed(cfg.device)
    _require(allowed_devices is None, "device", cfg.device, allowed_devices)
    if cfg.bf16 and cfg.device != "cpu" and torch.cuda.is_available() and not torch.cuda.is_bf16_supported():
        raise ConfigError("--bf16 is not allowed on this GPU: it has no bfloat16 (torch.cuda.is_bf16_supported())")
    _require(cfg.hypergrad in HYPERGRADS, "hypergrad", cfg.hypergrad, f"one of {', '.join(HYPERGRADS)}")
    _require(cfg.body in BODIES, "body", cfg.body, f"one of {', '.join(BODIES)}")
    m, s, f = cfg.mixup, cfg.search, cfg.finetune
    _require(m.rank >= 1, "mixup.rank", m.rank, "at least 1")
    _require(m.formulation in FORMULATIONS, "mixup.formulation", m.formulation, f"one of {', '.join(FORMULATIONS)}")
    _require(0.0 <= m.init_mean <= 1.0, "mixup.init_mean", m.init_mean, "between 0 and 1")
    _require(m.init_std >= 0.0, "mixup.init_std", m.init_std, "at least 0")
    _require(s.problem in PROBLEMS, "search.problem", s.problem, f"one of {', '.join(PROBLEMS)}")
    _require(s.folds >= 1, "search.folds", s.folds, "at least 1")
    _require(0.0 < s.split_ratio < 1.0, "search.split_ratio", s.split_ratio, "strictly between 0 and 1")
    _require(s.max_steps is None or s.max_steps >= 1, "search.max_steps", s.max_steps, "at least 1")
    _require(s.alpha_every is None or s.alpha_every >= 1, "search.alpha_every", s.alpha_every, "at least 1")
    _require(s.finetune_start in FINETUNE_STARTS, "search.finetune_start", s.finetune_start,
             f"one of {', '.join(FINETUNE_STARTS)}")
    _require(s.fold_data in FOLD_DATA, "search.fold_data", s.fold_data, f"one of {', '.join(FOLD_DATA)}")
    _require(s.fold_data == "split" or s.problem == "inner_only", "search.fold_data", s.fold_data,
             "split with search.problem=" + s.problem
             + " (whole needs inner_only: the outer level needs a held-out part)")
    _require(f.swa_epochs >= 0, "finetune.swa_epochs", f.swa_epochs, "at least 0")
    for path in ("search.epochs", "search.w_lr", "search.alpha_lr", "finetune.epochs", "finetune.lr"):
        value = get_path(cfg, path)
        _require(value > 0, path, value, "greater than 0")
    for path in ("search.w_weight_decay", "search.alpha_weight_decay", "finetune.weight_decay"):
        value = get_path(cfg, path)
        _require(value >= 0, path, value, "at least 0")
    for path in ("search.w_warmup_ratio", "search.alpha_warmup_ratio", "finetune.warmup_ratio",
                 "search.alpha_beta1", "search.alpha_beta2"):
        value = get_path(cfg, path)
        _require(0 <= value < 1, path, value, "in [0, 1)")
    _require(f.alpha_mode in ALPHA_MODES, "finetune.alpha_mode", f.alpha_mode, f"one of {', '.join(ALPHA_MODES)}")
    _require(f.eval_batch_size >= 1, "finetune.eval_batch_size", f.eval_batch_size, "at least 1")
    _require(f.method in METHODS, "finetune.method", f.method, f"one of {', '.join(METHODS)}")
    _require(not (f.method == "setfit-vanilla" and cfg.body == "setfit"), "body", cfg.body,
             "pretrained with finetune.method=setfit-vanilla (it makes SetFit's body itself)")
    for option, needed in ((f"--method {f.method}", METHODS[f.method]), ("body=setfit", METHODS["setfit"])):
        if (option != "body=setfit" or cfg.body == "setfit") and not needed.installed():
            raise ConfigError(f"{option} is not allowed: {needed.missing()}")
    _require(f.method == "vanilla" or f.alpha_mode == "fixed", "finetune.alpha_mode", f.alpha_mode,
             f"fixed with finetune.method={f.method} (alpha is mixup's)")
    for section, _ in METHOD_SECTIONS:  # every method's settings, each by its own check()
        for name, allowed in getattr(cfg, section).check():
            _require(False, f"{section}.{name}", getattr(getattr(cfg, section), name), allowed)


def validate_data_settings(cfg: RunConfig, require) -> None:
    """A GLUE preset (``task``) or the user's files (``train_file`` and what describes them), not
    both; a preset's default sample size is filled in."""
    if cfg.task is None and cfg.train_file is None:
        raise ConfigError("no data: give --task NAME (a GLUE task) or --train-file FILE (your own data)")
    if cfg.task is not None:
        require(cfg.train_file is None, "train_file", cfg.train_file, f"with --task {cfg.task}: give one of the two")
        known = [*TASKS, *TASK_ALIASES]
        require(cfg.task.lower() in known, "task", cfg.task, f"one of {', '.join(TASKS)}")
        for path in ("validation_file", "text_columns", "label_column", "validation_split"):
            value = getattr(cfg, path)
            require(value is None, path, value, f"with --task {cfg.task} (the preset has its files and columns)")
        require(cfg.task_type == "auto", "task_type", cfg.task_type,
                f"with --task {cfg.task} (the preset has its type)")
    else:
        require(cfg.data_dir is None, "data_dir", cfg.data_dir, "with --train-file (it is for --task)")
    require(cfg.train_size is None or cfg.train_size >= 2, "train_size", cfg.train_size, "at least 2")
    columns = cfg.text_columns
    shown = " ".join(map(str, columns or []))
    require(columns is None or isinstance(columns, list) and all(isinstance(c, str) and c for c in columns),
            "text_columns", shown, "column names")
    require(columns is None or 1 <= len(columns) <= 2, "text_columns", shown, "one column, or two for a pair")
    require(columns is None or len(set(columns)) == len(columns), "text_columns", shown, "each column once")
    require(not (columns and cfg.label_column in columns), "label_column", cfg.label_column,
            "a column other than the text columns")
    require(cfg.task_type in ("auto", *TASK_TYPES), "task_type", cfg.task_type, "auto, " + ", ".join(TASK_TYPES))
    require(cfg.metric is None or cfg.metric in METRICS, "metric", cfg.metric, f"one of {', '.join(METRICS)}")
    if cfg.metric is not None and (cfg.task is not None or cfg.task_type != "auto"):
        if cfg.task is not None:
            preset = TASKS[TASK_ALIASES.get(cfg.task.lower(), cfg.task.lower())].task
            regression, classes = preset.is_regression, preset.num_labels
        else:
            regression, classes = cfg.task_type == "regression", None
        error = metric_error(cfg.metric, regression, classes)
        if error:
            raise ConfigError(error)
    split = cfg.validation_split
    require(split is None or 0.0 < split < 1.0, "validation_split", split, "strictly between 0 and 1")
    require(split is None or cfg.validation_file is None, "validation_split", split,
            "without --validation-file (give one of the two)")


def validate_reporters(cfg: RunConfig, require) -> None:
    """``report_to``: a list of csv and tensorboard, or none; tensorboard only where it is installed."""
    if cfg.report_to is None:
        return
    shown = " ".join(map(str, cfg.report_to))
    require(all(r in (*REPORTERS, "none") for r in cfg.report_to), "report_to", shown,
            f"{', '.join(REPORTERS)} or none")
    require("none" not in cfg.report_to or cfg.report_to == ["none"], "report_to", shown, "none alone")
    require("tensorboard" not in cfg.report_to or tensorboard_installed(), "report_to", shown,
            f"tensorboard needs the tensorboard package ({install_hint('tensorboard')})")


def device_allowed(name: str) -> str | None:
    """None if ``name`` is a device setting this machine has (auto, cpu, cuda or cuda:N with N below
    its CUDA device count), else what is allowed, for the error message."""
    if DEVICE_PATTERN.fullmatch(name) is None:
        return "auto, cpu, cuda or cuda:N"
    cuda = _cuda_devices()
    if name.startswith("cuda") and cuda <= int(name.partition(":")[2] or 0):
        return f"auto, cpu or cuda:0 to cuda:{cuda - 1}" if cuda else "auto or cpu (this machine has no CUDA device)"
    return None


def _cuda_devices() -> int:
    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def get_path(obj: Any, path: str) -> Any:
    for part in path.split("."):
        obj = getattr(obj, part)
    return obj


def engine_config_path(cfg: RunConfig) -> str:
    if cfg.engine_config:
        if not os.path.isfile(cfg.engine_config):
            raise ConfigError(f"--engine-config {cfg.engine_config} is not allowed: no such file")
        return cfg.engine_config
    return os.path.join(engine_config_dir(), f"{cfg.hypergrad}.yaml")


def run_engine_settings(cfg: RunConfig, overrides: list[str] = ()) -> EngineSettings:
    """The engine settings of a run: its engine YAML (:func:`engine_config_path`), the ``inner.*`` /
    ``outer.*`` / ``engine.*`` overrides, then ``search.alpha_every`` N as ``inner.unroll_steps``: one
    outer step every N inner steps, its schedule counted in outer steps. An unroll_steps other than 1
    from the file or an override that disagrees with N stops."""
    with from_problems():
        settings = load_engine_settings(engine_config_path(cfg), overrides)
    every = cfg.search.alpha_every
    if every is None or every == settings.inner.unroll_steps:
        return settings
    if settings.inner.unroll_steps != 1:
        raise ConfigError(f"search.alpha_every={every} is not allowed with inner.unroll_steps="
                          f"{settings.inner.unroll_steps} ({settings.path} or an override): give one of the two")
    return dataclasses.replace(settings, inner=dataclasses.replace(settings.inner, unroll_steps=every))


def outer_level_settings(problem: str = "bilevel") -> list[str]:
    """The settings of the outer level that ``problem``'s search reads: bilevel reads them all (the
    hypergradient, its engine file, alpha_every and the alpha optimiser), joint, which trains alpha
    beside W, the alpha optimiser alone, inner_only none."""
    hypergradient = ["hypergrad", "engine_config", "search.alpha_every"]
    alpha_optimiser = [f"search.{f.name}" for f in dataclasses.fields(SearchConfig)
                       if f.name.startswith("alpha_") and f.name != "alpha_every"]
    return {"bilevel": hypergradient + alpha_optimiser, "joint": alpha_optimiser}.get(problem, [])


def refuse_unread_outer_level(cfg: RunConfig, given: set[str] = frozenset()) -> None:
    """A search with no outer level (``search.problem`` not bilevel) computes no hypergradient, so a
    hypergradient, engine file or alpha_every would be silently ignored; with inner_only the alpha
    optimiser is never stepped either. Refuse each such setting that differs from its default, or,
    with inner_only, that was ``given`` at all (a dotted path of a flag or ``key=value``: naming one
    asks for the outer level), with one line."""
    problem = cfg.search.problem
    if problem == "bilevel" or problem not in PROBLEMS:  # an unknown problem is refused by its own check
        return
    defaults = RunConfig()
    read = outer_level_settings(problem)
    for path in (path for path in outer_level_settings() if path not in read):
        value = get_path(cfg, path)
        if path in given and problem == "inner_only" or value != get_path(defaults, path):
            raise ConfigError(f"{spelt(path, value)} is not allowed with --problem {problem}: it has no outer level "
                              "to use it; leave --problem out or give --problem bilevel (search.problem=bilevel)")


def refuse_body(cfg: RunConfig) -> None:
    if cfg.body != "pretrained":
        raise ConfigError(f"body={cfg.body} is not allowed here: it is a grid method's start (agwm experiment, "
                          "agwm select); here give --model the folder of the body to start from")
