"""Every setting of a run checked before any work, each bad one named as it was written."""

from __future__ import annotations

import re
from typing import Any

import torch

from .mixup import FORMULATIONS
from .settings import (
    ALPHA_MODES,
    BODIES,
    FINETUNE_STARTS,
    FLAGS,
    FOLD_DATA,
    GLUE_TRAIN_SIZE,
    HYPERGRADS,
    PROBLEMS,
    R3F_NOISES,
    ConfigError,
    RunConfig,
)
from .tasks import METRICS, TASK_ALIASES, TASK_TYPES, TASKS, metric_error

DEVICE_PATTERN = re.compile(r"auto|cpu|cuda(:\d+)?")


def refuse_unknown(flag: str, wanted: list | None, known: list, known_are: str) -> None:
    """Refuse the values of ``flag`` that are not in ``known``, naming them and, after ``known_are``, the known ones."""
    unknown = [str(v) for v in wanted or [] if v not in known]
    if unknown:
        raise ConfigError(f"{flag} {' '.join(unknown)} is not allowed: {known_are} {', '.join(map(str, known))}")


def validate_run_config(cfg: RunConfig, written: dict[str, str] | None = None) -> None:
    """``written``: the override text of a field set by ``key=value``, to quote in a message."""
    written = written or {}

    def _require(ok: bool, path: str, value: Any, allowed: str) -> None:
        if not ok:
            flag = FLAGS.get(path)
            option = written.get(path) or (f"{flag} {value}" if flag else f"{path}={value}")
            raise ConfigError(f"{option} is not allowed: {allowed}")

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
             "split with search.problem=" + s.problem + " (whole needs inner_only: the outer level needs a held-out part)")
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
    from .recipes import FINETUNE_METHODS  # the one list of finetune methods (it imports this module)

    _require(f.method in FINETUNE_METHODS, "finetune.method", f.method, f"one of {', '.join(FINETUNE_METHODS)}")
    for option, used in (("--method setfit", f.method == "setfit"), ("body=setfit", cfg.body == "setfit")):
        if used:
            from .baselines.sentence_encoder import SETFIT_NEEDED, setfit_installed

            if not setfit_installed():
                raise ConfigError(f"{option} is not allowed: {SETFIT_NEEDED}")
    _require(f.method == "vanilla" or f.alpha_mode == "fixed", "finetune.alpha_mode", f.alpha_mode,
             f"fixed with finetune.method={f.method} (alpha is mixup's)")
    _require(0.0 <= cfg.mixout.p < 1.0, "mixout.p", cfg.mixout.p, "in [0, 1)")
    for path in ("child_tuning.reserve_p", "dps.reserve_p"):
        value = get_path(cfg, path)
        _require(0.0 < value <= 1.0, path, value, "in (0, 1]")
    _require(cfg.dps.update_ratio > 0, "dps.update_ratio", cfg.dps.update_ratio, "greater than 0")
    for path in ("child_tuning.target", "dps.target"):
        _require(_is_regex(get_path(cfg, path)), path, get_path(cfg, path), "a regular expression")
    _require(cfg.r3f.noise in R3F_NOISES, "r3f.noise", cfg.r3f.noise, f"one of {', '.join(R3F_NOISES)}")
    for path in ("r3f.eps", "r3f.kl_lambda", "rdrop.kl_alpha", "peft.lora_dropout"):
        value = get_path(cfg, path)
        _require(value >= 0, path, value, "at least 0")
    _require(cfg.peft.lora_dropout < 1, "peft.lora_dropout", cfg.peft.lora_dropout, "in [0, 1)")
    for path in ("probe.c", "probe.ridge_alpha", "setfit.body_lr"):
        value = get_path(cfg, path)
        _require(value > 0, path, value, "greater than 0")
    for path in ("tuned.lrs", "tuned.epochs"):
        values = get_path(cfg, path)
        _require(isinstance(values, list) and values and all(v > 0 for v in values), path, values,
                 "a list of numbers greater than 0")
    for path in ("reinit.layers", "peft.lora_r", "peft.lora_alpha", "peft.virtual_tokens", "soup.members",
                 "setfit.num_iterations", "setfit.epochs"):
        value = get_path(cfg, path)
        _require(value >= 1, path, value, "at least 1")


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
        if cfg.train_size is None:
            cfg.train_size = GLUE_TRAIN_SIZE
    else:
        require(cfg.data_dir is None, "data_dir", cfg.data_dir, "with --train-file (it is for --task)")
    require(cfg.train_size is None or cfg.train_size >= 2, "train_size", cfg.train_size, "at least 2")
    columns = cfg.text_columns
    if isinstance(columns, str):
        columns = cfg.text_columns = [columns]
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
    from .logs import REPORTERS, tensorboard_installed

    if isinstance(cfg.report_to, str):
        cfg.report_to = [cfg.report_to]
    if cfg.report_to is None:
        return
    shown = " ".join(map(str, cfg.report_to))
    require(all(r in (*REPORTERS, "none") for r in cfg.report_to), "report_to", shown,
            f"{', '.join(REPORTERS)} or none")
    require("none" not in cfg.report_to or cfg.report_to == ["none"], "report_to", shown, "none alone")
    require("tensorboard" not in cfg.report_to or tensorboard_installed(), "report_to", shown,
            "tensorboard needs the tensorboard package (pip install tensorboard)")


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


def _is_regex(text: Any) -> bool:
    try:
        re.compile(text)
    except (re.error, TypeError):
        return False
    return True


def get_path(obj: Any, path: str) -> Any:
    for part in path.split("."):
        obj = getattr(obj, part)
    return obj
