"""The one place where settings are read, overridden and validated.

A run's settings are a :class:`RunConfig`; a hypergradient method's are an :class:`EngineSettings`
(Betty's ``Config`` for the inner and outer problems and its ``EngineConfig``), read from a YAML
file in ``engine_configs/``. Command-line flags and ``key=value`` arguments override single
fields; every bad value stops with a :class:`ConfigError` that names the option as it was
written, the value, and what is allowed.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import os
import re
from dataclasses import dataclass, field, fields
from typing import Any

import torch
import yaml
from betty.configs import Config, EngineConfig

from .atomic import atomic_path
from .mixup import FORMULATIONS
from .tasks import METRICS, TASK_ALIASES, TASK_TYPES, TASKS, metric_error

HYPERGRADS = ("darts", "neumann", "cg")
PROBLEMS = ("bilevel", "joint", "inner_only")
FINETUNE_STARTS = ("pretrained", "fold_average")
ALPHA_MODES = ("fixed", "random", "joint")
R3F_NOISES = ("uniform", "normal")
DEVICE_PATTERN = re.compile(r"auto|cpu|cuda(:\d+)?")


class ConfigError(ValueError):
    """A setting that cannot be used; ``str()`` is the message for the user."""


def refuse_unknown(flag: str, wanted: list | None, known: list, known_are: str) -> None:
    """Refuse the values of ``flag`` that are not in ``known``, naming them and, after ``known_are``, the known ones."""
    unknown = [str(v) for v in wanted or [] if v not in known]
    if unknown:
        raise ConfigError(f"{flag} {' '.join(unknown)} is not allowed: {known_are} {', '.join(map(str, known))}")


@dataclass
class MixupConfig:
    rank: int = 1
    formulation: str = "factored"
    init_mean: float = 1.0
    init_std: float = 0.005
    target_modules: Any = None  # None: every Linear of the encoder; a regex; or a list of names


@dataclass
class SearchConfig:
    problem: str = "bilevel"
    folds: int = 2
    split_ratio: float = 0.8
    epochs: float = 3.0
    max_steps: int | None = None  # stop each fold after this many outer iterations
    w_lr: float = 1e-4
    w_weight_decay: float = 0.01
    w_warmup_ratio: float = 0.1
    alpha_lr: float = 2e-3
    alpha_beta1: float = 0.9
    alpha_beta2: float = 0.999
    alpha_weight_decay: float = 0.01
    alpha_warmup_ratio: float = 0.1
    finetune_start: str = "fold_average"  # experiments/finetune-start.yaml


@dataclass
class FinetuneConfig:
    epochs: float = 10.0
    lr: float = 1e-4
    weight_decay: float = 0.01
    warmup_ratio: float = 0.1
    eval_batch_size: int = 64
    holdout: bool = False  # train on split 0's training part, score on its held-out part, not dev
    alpha_mode: str = "fixed"  # fixed: --alphas (or none: vanilla); random: fresh draw, fixed; joint: trained with W
    method: str = "vanilla"  # how W is trained: vanilla or a baseline (agwm.recipes.RECIPES)


# The baselines' own settings: each paper's default; the search space of each is in experiments/baselines-space.yaml.
@dataclass
class MixoutConfig:
    p: float = 0.7  # probability of replacing a weight by its pretrained value (Lee et al. 2019 use 0.7-0.9)


@dataclass
class ChildTuningConfig:
    reserve_p: float = 0.3  # fraction of weights in the child network (D) or kept per step (F)
    target: str = r".*\.layer\.\d+\..*"  # parameters masked: a regex on their names (the reference code's layers)


@dataclass
class DpsConfig:
    reserve_p: float = 0.3  # fraction of the target weights updated in stage II
    update_ratio: float = 0.5  # length of each stage as a fraction of an epoch's steps
    target: str = r".*\.layer\.\d+\..*"


@dataclass
class R3fConfig:
    noise: str = "uniform"  # uniform U(-eps, eps) or normal N(0, eps^2) on the input embeddings
    eps: float = 1e-5
    kl_lambda: float = 1.0  # lambda, the weight of the symmetric KL term


@dataclass
class RDropConfig:
    kl_alpha: float = 1.0  # alpha, the weight of the symmetric KL between the two dropout passes


@dataclass
class ReinitConfig:
    layers: int = 1  # top L transformer layers re-initialised (with the pooler)


@dataclass
class PeftConfig:
    lora_r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.1
    virtual_tokens: int = 20  # prefix and prompt tuning


@dataclass
class SoupConfig:
    members: int = 5  # vanilla runs with different training seeds, averaged uniformly


GLUE_TRAIN_SIZE = 300  # a GLUE preset's default sample; a user's file is used whole


@dataclass
class RunConfig:
    task: str | None = None  # a GLUE preset; or the user's files below
    train_size: int | None = None  # None: 300 for a GLUE preset, every training row of a user's file
    seed: int = 1
    data_dir: str | None = None
    train_file: str | None = None
    validation_file: str | None = None  # None: validation_split of the training file is held out
    test_file: str | None = None  # labels optional; its predictions are written
    text_columns: list | None = None  # one or two; None: text, sentence, or sentence1 and sentence2
    label_column: str | None = None  # None: label
    task_type: str = "auto"  # auto: guessed from the training labels
    metric: str | None = None  # None: the preset's; accuracy (classification) or spearman (regression)
    validation_split: float | None = None  # None: 0.2 when there is no validation file
    model: str | None = None  # None: the bundled all-MiniLM-L6-v2, else the hub copy
    output_dir: str = "runs/default"
    max_length: int = 128
    batch_size: int = 16
    device: str = "auto"  # auto: the first CUDA device if there is one, else the CPU
    report_to: list | None = None  # csv, tensorboard, none; None: csv and tensorboard where it is installed
    hypergrad: str = "darts"
    engine_config: str | None = None  # a YAML path; None: engine_configs/<hypergrad>.yaml
    mixup: MixupConfig = field(default_factory=MixupConfig)
    search: SearchConfig = field(default_factory=SearchConfig)
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)
    mixout: MixoutConfig = field(default_factory=MixoutConfig)
    child_tuning: ChildTuningConfig = field(default_factory=ChildTuningConfig)
    dps: DpsConfig = field(default_factory=DpsConfig)
    r3f: R3fConfig = field(default_factory=R3fConfig)
    rdrop: RDropConfig = field(default_factory=RDropConfig)
    reinit: ReinitConfig = field(default_factory=ReinitConfig)
    peft: PeftConfig = field(default_factory=PeftConfig)
    soup: SoupConfig = field(default_factory=SoupConfig)


@dataclass
class EngineSettings:
    inner: Config
    outer: Config
    engine: EngineConfig
    path: str = ""


# How each field is spelt on the command line, for messages.
FLAGS = {
    "task": "--task", "train_size": "--train-size", "train_file": "--train-file",
    "validation_file": "--validation-file", "test_file": "--test-file", "text_columns": "--text-columns",
    "label_column": "--label-column", "task_type": "--task-type", "metric": "--metric",
    "validation_split": "--validation-split", "seed": "--seed", "data_dir": "--data-dir",
    "model": "--model", "output_dir": "--output-dir", "hypergrad": "--hypergrad",
    "engine_config": "--engine-config", "search.folds": "--folds", "search.split_ratio": "--split-ratio",
    "search.max_steps": "--max-steps", "search.problem": "--problem", "mixup.rank": "--rank",
    "mixup.formulation": "--formulation", "max_length": "--max-length", "batch_size": "--batch-size",
    "device": "--device", "finetune.method": "--method", "report_to": "--report-to",
}


def _coerce(value: Any, default: Any, option: str) -> Any:
    """``value`` (YAML-parsed) as the type of the field's ``default``."""
    if value is None or default is None or isinstance(default, (list, tuple, dict)):
        return value
    if isinstance(value, str) and type(default) in (int, float):
        try:  # YAML 1.1 reads 1e-3 (no dot) as a string
            value = type(default)(value)
        except ValueError:
            pass
    if isinstance(default, bool):
        if isinstance(value, bool):
            return value
    elif isinstance(default, int) and isinstance(value, int) and not isinstance(value, bool):
        return value
    elif isinstance(default, float) and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    elif isinstance(default, str) and isinstance(value, (str, int, float)):
        return str(value)
    raise ConfigError(f"{option}: {value!r} is not allowed: expected a {type(default).__name__}")


def _set_path(obj: Any, path: str, value: Any, option: str) -> None:
    *parents, leaf = path.split(".")
    for part in parents:
        if not dataclasses.is_dataclass(obj) or part not in {f.name for f in fields(obj)}:
            raise ConfigError(f"{option}: unknown key {path!r}")
        obj = getattr(obj, part)
    names = {f.name for f in fields(obj)}
    if leaf not in names or dataclasses.is_dataclass(getattr(obj, leaf)):
        allowed = ", ".join(sorted(n for n in names if not dataclasses.is_dataclass(getattr(obj, n))))
        raise ConfigError(f"{option}: unknown key {path!r}; allowed here: {allowed}")
    setattr(obj, leaf, _coerce(value, _reference_value(obj, leaf), option))


def _reference_value(obj: Any, name: str) -> Any:
    """A value of the field's type: its default, or for an optional field its annotated type's."""
    spec = next(f for f in fields(obj) if f.name == name)
    default = spec.default if spec.default is not dataclasses.MISSING else getattr(obj, name)
    if default is None and isinstance(spec.type, str):
        default = {"int": 0, "float": 0.0, "str": ""}.get(spec.type.split("|")[0].strip())
    return default


def parse_overrides(items: list[str]) -> list[tuple[str, Any, str]]:
    """``["search.alpha_lr=1e-3", ...]`` as (key, YAML-parsed value, the text as written)."""
    parsed = []
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"{item!r} is not allowed: overrides are written key=value (e.g. search.alpha_lr=1e-3)")
        try:
            value = yaml.safe_load(raw) if raw else None
        except yaml.YAMLError:
            value = raw
        parsed.append((key.strip(), value, item))
    return parsed


def build_run_config(flags: dict[str, Any], overrides: list[str] = (), base: RunConfig | None = None) -> RunConfig:
    """``base`` (defaults) updated by ``flags`` (dotted field -> value, None meaning not given)
    and then by ``overrides`` that are not engine keys; validated."""
    cfg = base or RunConfig()
    written: dict[str, str] = {}
    for path, value in flags.items():
        if value is not None:
            _set_path(cfg, path, value, FLAGS.get(path, path))
    for key, value, text in parse_overrides(list(overrides)):
        if key.split(".")[0] not in ("inner", "outer", "engine"):
            _set_path(cfg, key, value, text)
            written[key] = text
    validate_run_config(cfg, written)
    return cfg


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
    _require(cfg.hypergrad in HYPERGRADS, "hypergrad", cfg.hypergrad, f"one of {', '.join(HYPERGRADS)}")
    m, s, f = cfg.mixup, cfg.search, cfg.finetune
    _require(m.rank >= 1, "mixup.rank", m.rank, "at least 1")
    _require(m.formulation in FORMULATIONS, "mixup.formulation", m.formulation, f"one of {', '.join(FORMULATIONS)}")
    _require(0.0 <= m.init_mean <= 1.0, "mixup.init_mean", m.init_mean, "between 0 and 1")
    _require(m.init_std >= 0.0, "mixup.init_std", m.init_std, "at least 0")
    _require(s.problem in PROBLEMS, "search.problem", s.problem, f"one of {', '.join(PROBLEMS)}")
    _require(s.folds >= 1, "search.folds", s.folds, "at least 1")
    _require(0.0 < s.split_ratio < 1.0, "search.split_ratio", s.split_ratio, "strictly between 0 and 1")
    _require(s.max_steps is None or s.max_steps >= 1, "search.max_steps", s.max_steps, "at least 1")
    _require(s.finetune_start in FINETUNE_STARTS, "search.finetune_start", s.finetune_start,
             f"one of {', '.join(FINETUNE_STARTS)}")
    for path in ("search.epochs", "search.w_lr", "search.alpha_lr", "finetune.epochs", "finetune.lr"):
        value = _get(cfg, path)
        _require(value > 0, path, value, "greater than 0")
    for path in ("search.w_weight_decay", "search.alpha_weight_decay", "finetune.weight_decay"):
        value = _get(cfg, path)
        _require(value >= 0, path, value, "at least 0")
    for path in ("search.w_warmup_ratio", "search.alpha_warmup_ratio", "finetune.warmup_ratio",
                 "search.alpha_beta1", "search.alpha_beta2"):
        value = _get(cfg, path)
        _require(0 <= value < 1, path, value, "in [0, 1)")
    _require(f.alpha_mode in ALPHA_MODES, "finetune.alpha_mode", f.alpha_mode, f"one of {', '.join(ALPHA_MODES)}")
    _require(f.eval_batch_size >= 1, "finetune.eval_batch_size", f.eval_batch_size, "at least 1")
    from .recipes import RECIPES  # the one registry of finetune methods (it imports this module)

    _require(f.method in RECIPES, "finetune.method", f.method, f"one of {', '.join(RECIPES)}")
    _require(f.method == "vanilla" or f.alpha_mode == "fixed", "finetune.alpha_mode", f.alpha_mode,
             f"fixed with finetune.method={f.method} (alpha is mixup's)")
    _require(0.0 <= cfg.mixout.p < 1.0, "mixout.p", cfg.mixout.p, "in [0, 1)")
    for path in ("child_tuning.reserve_p", "dps.reserve_p"):
        value = _get(cfg, path)
        _require(0.0 < value <= 1.0, path, value, "in (0, 1]")
    _require(cfg.dps.update_ratio > 0, "dps.update_ratio", cfg.dps.update_ratio, "greater than 0")
    for path in ("child_tuning.target", "dps.target"):
        _require(_is_regex(_get(cfg, path)), path, _get(cfg, path), "a regular expression")
    _require(cfg.r3f.noise in R3F_NOISES, "r3f.noise", cfg.r3f.noise, f"one of {', '.join(R3F_NOISES)}")
    for path in ("r3f.eps", "r3f.kl_lambda", "rdrop.kl_alpha", "peft.lora_dropout"):
        value = _get(cfg, path)
        _require(value >= 0, path, value, "at least 0")
    _require(cfg.peft.lora_dropout < 1, "peft.lora_dropout", cfg.peft.lora_dropout, "in [0, 1)")
    for path in ("reinit.layers", "peft.lora_r", "peft.lora_alpha", "peft.virtual_tokens", "soup.members"):
        value = _get(cfg, path)
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
        require(cfg.task_type == "auto", "task_type", cfg.task_type, f"with --task {cfg.task} (the preset has its type)")
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


def _get(obj: Any, path: str) -> Any:
    for part in path.split("."):
        obj = getattr(obj, part)
    return obj


def engine_config_dir() -> str:
    """The folder of the shipped engine YAML files (the ``engine_configs`` package data), wherever installed."""
    return list(importlib.util.find_spec("engine_configs").submodule_search_locations)[0]


def engine_config_path(cfg: RunConfig) -> str:
    if cfg.engine_config:
        if not os.path.isfile(cfg.engine_config):
            raise ConfigError(f"--engine-config {cfg.engine_config} is not allowed: no such file")
        return cfg.engine_config
    return os.path.join(engine_config_dir(), f"{cfg.hypergrad}.yaml")


def load_engine_settings(path: str, overrides: list[str] = ()) -> EngineSettings:
    """Betty's ``Config`` (sections ``inner``, ``outer``) and ``EngineConfig`` (``engine``) from
    a YAML file, then ``inner.*`` / ``outer.*`` / ``engine.*`` overrides; unknown keys stop."""
    with open(path) as f:
        raw = yaml.safe_load(f) or {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping with sections inner, outer, engine")
    unknown = set(raw) - {"inner", "outer", "engine"}
    if unknown:
        raise ConfigError(f"{path}: unknown section(s) {sorted(unknown)}; allowed: inner, outer, engine")
    settings = EngineSettings(Config(), Config(first_order=True, retain_graph=True), EngineConfig(), path)
    for section in ("inner", "outer", "engine"):
        for key, value in (raw.get(section) or {}).items():
            _set_path(settings, f"{section}.{key}", value, f"{path}: {section}.{key}")
    for key, value, written in parse_overrides(list(overrides)):
        if key.split(".")[0] in ("inner", "outer", "engine"):
            _set_path(settings, key, value, written)
    validate_engine_settings(settings)
    return settings


def validate_engine_settings(settings: EngineSettings) -> None:
    from betty.hypergradient import jvp_fn_mapping

    import problems  # noqa: F401  (registers the project's methods)

    inner, outer = settings.inner, settings.outer
    if inner.type not in jvp_fn_mapping:
        raise ConfigError(f"inner.type={inner.type} is not allowed: one of {', '.join(sorted(jvp_fn_mapping))}")
    if inner.type in ("reinforce",):
        raise ConfigError(f"inner.type={inner.type} is not allowed: Betty 0.2.1's reinforce is a stub")
    if not (outer.first_order and outer.retain_graph):
        raise ConfigError("outer.first_order and outer.retain_graph must both be true: Betty adds the "
                          "implicit hypergradient only with first_order and reuses the outer graph")
    for path, value, minimum in (("inner.unroll_steps", inner.unroll_steps, 1),
                                 ("inner.cg_iterations", inner.cg_iterations, 1),
                                 ("inner.neumann_iterations", inner.neumann_iterations, 1)):
        if value < minimum:
            raise ConfigError(f"{path}={value} is not allowed: at least {minimum}")
    if settings.engine.strategy not in ("default", "cpu", "gpu"):
        raise ConfigError(f"engine.strategy={settings.engine.strategy} is not allowed: one of default, cpu, gpu "
                          "(Betty 0.2.1's accelerate strategy fails)")
    if settings.engine.early_stopping:
        raise ConfigError("engine.early_stopping=true is not allowed: it fails in Betty 0.2.1")


def engine_config_on(engine: EngineConfig, device: torch.device) -> EngineConfig:
    """``engine`` with Betty's strategy set to place the problems on ``device`` (Betty's
    ``default`` takes a GPU whenever there is one); an engine config that names the other one stops."""
    strategy = "gpu" if device.type == "cuda" else "cpu"
    if engine.strategy not in ("default", strategy):
        raise ConfigError(f"engine.strategy={engine.strategy} is not allowed with device {device}: "
                          f"default or {strategy}")
    return dataclasses.replace(engine, strategy=strategy)


def to_dict(obj: Any) -> dict:
    return dataclasses.asdict(obj)


# A setting that only some kinds of method read -> those kinds; for every other kind its value is
# no change (a grid resumes over it, a report does not list it).
READ_ONLY_BY = {"search.finetune_start": ("mixup",)}


def read_by(key: str, kind: str) -> bool:
    """Whether a method of this kind reads the dotted setting ``key``."""
    return kind in READ_ONLY_BY.get(key, (kind,))


def flatten(config: dict, prefix: str = "") -> dict:
    """A nested config as ``{dotted key: value}``."""
    flat = {}
    for key, value in config.items():
        if isinstance(value, dict):
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[prefix + key] = value
    return flat


def changed_settings(recorded: dict, current: dict, kind: str) -> dict[str, tuple[Any, Any]]:
    """The dotted settings of a recorded run of this kind of method whose value differs in
    ``current``, as ``key: (recorded, current)``. A setting only one of the two holds is no change (one
    the record lacks was added to the project after the run, which had its default), nor is one this
    kind does not read (:func:`read_by`)."""
    now = flatten(current)
    return {key: (value, now[key]) for key, value in flatten(recorded).items()
            if key in now and value != now[key] and read_by(key, kind)}


def as_recorded(cfg: RunConfig) -> dict:
    """``cfg`` as a results record stores it: JSON values (a tuple becomes a list)."""
    return json.loads(json.dumps(to_dict(cfg)))


def write_resolved(path: str, cfg: RunConfig, engine: EngineSettings | None = None) -> None:
    data = {"run": to_dict(cfg)}
    if engine is not None:
        data.update(engine_config=engine.path, inner=to_dict(engine.inner),
                    outer=to_dict(engine.outer), engine=to_dict(engine.engine))
    with atomic_path(path) as tmp, open(tmp, "w") as f:
        yaml.safe_dump(data, f, sort_keys=False)
