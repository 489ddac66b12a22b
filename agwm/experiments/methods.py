"""The finetuning methods an experiment grid can run, behind one small interface.

A method is a function ``run(cfg, settings) -> outcome``: ``cfg`` is the run's validated
:class:`RunConfig` (task, size, seed, output folder and the entry's overrides applied),
``settings`` the entry's engine overrides; it returns the finetune metrics (``score`` and the dev
metrics, or the held-out ones with ``finetune.holdout``, ``evaluated_on`` saying which), the
wall time of each phase and the ``machine`` the run used, and may add more (``alpha``: the
search's alpha summary).
:func:`register` adds one; every method sees the same examples for the same seed, and differs from
vanilla only by what it does."""

from __future__ import annotations

import dataclasses
import fcntl
import functools
import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable

from agwm.config import RunConfig
from agwm.registry import METHODS as FINETUNE_METHODS
from agwm.registry import load_methods

load_methods()  # the finetune methods register: the built-ins and every installed package's

Method = Callable[[RunConfig, list], dict]
METHODS: dict[str, Method] = {}  # the grid's own methods; the finetune methods come from the registry
RENAMED_KINDS = {"joint": "joint-finetune"}  # a record's kind, as named when it ran -> its name now
# The search-then-finetune pipelines by name: the method they run and the search settings the name
# stands for, applied before a grid's and an entry's own settings (which may change them).
PIPELINES: dict[str, tuple[str, list[str]]] = {
    "mixup": ("mixup", ["search.problem=bilevel", "search.folds=2"]),  # the paper's: alpha learned on two folds
    "one-fold": ("mixup", ["search.problem=inner_only", "search.folds=1"]),  # the default search
    "fold-average": ("mixup", ["search.problem=inner_only", "search.folds=2"]),  # two folds' W averaged
    "joint": ("mixup", ["search.problem=joint", "search.folds=2"]),  # the paper's ablation: W and alpha in one level
}


MARGIN = 3.0  # points a cheaper method may lose in agwm select: the resolution the project's experiments are sized for


def selectable_methods() -> list[str]:
    """Every name a grid and ``agwm select --methods`` take: the grid's methods and the pipelines."""
    return sorted({*method_names(), *PIPELINES})


def register(name: str) -> Callable[[Method], Method]:
    def add(fn: Method) -> Method:
        METHODS[name] = from_body(fn)
        return fn
    return add


def from_body(method: Method) -> Method:
    """``method``, started from the encoder ``body`` names: the pretrained one, or (``setfit``) the
    one SetFit's contrastive stage makes of it on the run's sample (:func:`setfit_body`), whose time
    (that of the run that made it) the outcome adds as ``wall_time_s.body``, and the time this run
    spent getting it (making it, waiting for it, or reading it) as ``body_spent_s``."""
    @functools.wraps(method)
    def run(cfg: RunConfig, engine_overrides: list) -> dict:
        if cfg.body == "pretrained":
            return method(cfg, engine_overrides)
        start = time.perf_counter()
        body, seconds = setfit_body(cfg)
        spent = time.perf_counter() - start
        outcome = method(dataclasses.replace(cfg, model=body, body="pretrained"), engine_overrides)
        outcome["wall_time_s"]["body"], outcome["body_spent_s"] = seconds, spent
        return outcome
    return run


# What SetFit's contrastive stage depends on: the sample (task, size, seed, files), the encoder and its settings.
BODY_FIELDS = ("task", "train_size", "seed", "data_dir", "train_file", "validation_file", "text_columns",
               "label_column", "task_type", "validation_split", "model", "max_length", "batch_size", "device",
               "setfit")
MADE = "made.json"  # written last: a body folder without it is unfinished


def setfit_body(cfg: RunConfig) -> tuple[str, float]:
    """SetFit's contrastive stage alone on the run's sample (its training part with
    ``finetune.holdout``); returns its folder and the seconds it took to make.

    A grid run's folder is ``<grid>/<entry>/<run>``; the body is kept in ``<grid>/bodies``, under a
    digest of what it depends on, and made once there: the grid's other entries that start from the
    same body wait for it and reuse it (the stage is deterministic on CPU, so a run that makes it and
    a run that reuses it start from the same weights)."""
    settings = dataclasses.asdict(cfg)
    key = {name: settings[name] for name in BODY_FIELDS} | {"holdout": cfg.finetune.holdout}
    digest = hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:16]
    run_name = os.path.basename(os.path.normpath(cfg.output_dir))
    path = os.path.join(os.path.dirname(os.path.dirname(os.path.normpath(cfg.output_dir))), "bodies",
                        f"{run_name}-{digest}")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path + ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another worker making this body: wait for it
        if not os.path.exists(os.path.join(path, MADE)):
            _make_setfit_body(cfg, path)
    with open(os.path.join(path, MADE)) as f:
        return path, json.load(f)["seconds"]


def _make_setfit_body(cfg: RunConfig, path: str) -> None:
    from agwm.baselines.sentence_encoder.encoder import make_setfit_body
    from agwm.training.build import load_run_data, set_aside_holdout
    from agwm.training.device import resolve_device

    start = time.perf_counter()
    data = load_run_data(cfg, resolve_device(cfg.device))
    if cfg.finetune.holdout:
        set_aside_holdout(cfg, data)  # the body must not see the part the run is scored on
    shutil.rmtree(path, ignore_errors=True)  # what an interrupted run left
    make_setfit_body(cfg, data, path)
    with open(os.path.join(path, MADE), "w") as f:
        json.dump({"seconds": time.perf_counter() - start}, f)


def _finetune(cfg: RunConfig, alphas: str | None = None, alpha_mode: str = "fixed", method: str = "vanilla") -> dict:
    from agwm.finetune import run_finetune

    cfg = dataclasses.replace(cfg, finetune=dataclasses.replace(cfg.finetune, alpha_mode=alpha_mode, method=method),
                              output_dir=os.path.join(cfg.output_dir, "finetune"))
    metrics = run_finetune(cfg, alphas)
    outcome = {"score": metrics["score"], "metric": metrics["metric"], "dev": metrics[metrics["evaluated_on"]],
               "evaluated_on": metrics["evaluated_on"], "wall_time_s": {"finetune": metrics["wall_time_s"]},
               "machine": metrics["machine"]}
    for key in ("member_scores", "tuned", *FINETUNE_METHODS):  # a soup's members' scores, what a method chose
        if key in metrics:
            outcome[key] = metrics[key]
    return outcome


@register("vanilla")
def vanilla(cfg: RunConfig, engine_overrides: list) -> dict:
    """Plain finetuning of every weight."""
    return _finetune(cfg)


@register("mixup")
def mixup(cfg: RunConfig, engine_overrides: list) -> dict:
    """Search alpha by bi-level optimisation (``hypergrad`` and the engine overrides pick the
    method), then finetune W with alpha fixed."""
    from agwm.search import run_search
    from agwm.settings import run_engine_settings

    search_cfg = dataclasses.replace(cfg, output_dir=os.path.join(cfg.output_dir, "search"))
    searched = run_search(search_cfg, run_engine_settings(cfg, engine_overrides))
    # from the search's fold-averaged task weights beside the alphas, or the pretrained ones (search.finetune_start)
    outcome = _finetune(cfg, os.path.join(search_cfg.output_dir, "alphas.safetensors"))
    outcome["wall_time_s"]["search"] = searched["wall_time_s"]
    outcome["alpha"] = searched["alpha"]  # means of A, B, alpha and the W0 weight after the search
    return outcome


@register("joint-finetune")
def joint_finetune(cfg: RunConfig, engine_overrides: list) -> dict:
    """W and alpha trained together in the finetune loop on the whole sample (``finetune.alpha_mode=joint``;
    no search), evaluated. Its records before this name was given say ``kind: joint``
    (:data:`RENAMED_KINDS`); the grid's ``joint`` is now the search with the swapped Betty problem."""
    return _finetune(cfg, alpha_mode="joint")


@register("random-alpha")
def random_alpha(cfg: RunConfig, engine_overrides: list) -> dict:
    """Alpha drawn once from N(mixup.init_mean, mixup.init_std), clamped to [0, 1], kept fixed."""
    return _finetune(cfg, alpha_mode="random")


def _baseline(method: str) -> Method:
    def run(cfg: RunConfig, engine_overrides: list) -> dict:
        return _finetune(cfg, method=method)

    run.__doc__ = f"The {method} method of the finetune phase (finetune.method)."
    return run


def grid_method(name: str) -> Method | None:
    """The grid's method ``name``: one of :data:`METHODS`, or a finetune method of the registry
    (:mod:`agwm.registry`, read when asked, so that a method registered later is found); None if neither."""
    if name in METHODS:
        return METHODS[name]
    return from_body(_baseline(name)) if name in FINETUNE_METHODS else None


def method_names() -> list[str]:
    """Every method name a grid entry's ``method`` takes, pipelines but for."""
    return sorted({*METHODS, *FINETUNE_METHODS})
