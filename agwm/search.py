"""The search phase: learn the attention factors A, B by bi-level optimisation on K random splits
of the training sample and average them.

On split k (train part D_tr^k, held-out part D_val^k):

    A_k, B_k = argmin_{A,B} L(W*(A, B); D_val^k) + wd ||A, B||^2
    W*(A, B) = argmin_W     L(W, A, B; D_tr^k)   + wd ||W||^2

solved by Betty (one inner step per outer step by default; the outer gradient goes through W* by
the method of the engine config), then A_bar = mean_k A_k, B_bar = mean_k B_k. The ``joint``
problem instead minimises L(W, A, B) over W, A, B together on the whole sample; ``inner_only``
keeps the inner level alone (W*(A0, B0) on each D_tr^k, alpha at its initial draw); with K = 1 it is
the default (experiments/cheaper-default.yaml): the outer level was not shown to add to the score."""

from __future__ import annotations

import dataclasses
import os
import time

import torch
from betty.configs import Config
from tqdm.auto import tqdm

from agwm.config import RunConfig
from agwm.data import random_splits, stream_seed
from agwm.errors import from_problems
from agwm.files import save_tensors
from agwm.inputs import check_model
from agwm.mixup import (
    alpha_parameters,
    alpha_state_dict,
    load_alpha_state,
    mixing_mean_tensors,
    mixup_layers,
    project_alphas,
    save_alphas,
    task_parameters,
)
from agwm.resolved import write_resolved
from agwm.run_folder import TASK_WEIGHTS_NAME, check_output_dir, prepare_output_dir, write_metrics
from agwm.settings import refuse_body, refuse_unread_outer_level
from agwm.training.averaging import UniformSoup
from agwm.training.build import (
    RunData,
    build_model,
    load_run_data,
    loader,
    model_loss,
    run_data_fingerprint,
    set_aside_holdout,
)
from agwm.training.device import autocast, resolve_device
from agwm.training.guards import check_box, check_loss, check_parameters
from agwm.training.log import RunLog
from agwm.training.optim import adamw, schedule, steps_for, weights_and_alphas_optimizer
from agwm_problems import AttentionProblem, JointProblem, TaskWeightProblem, build_engine, engine_config_on
from agwm_problems.engine_settings import EngineSettings


def alpha_summary(model) -> dict[str, float]:
    """Means over all layers of A, B, alpha = A B / r and of the W0 weight (see :func:`mixing_means`)."""
    return dict(zip(SUMMARY_KEYS, alpha_statistics(model)[:len(SUMMARY_KEYS)].tolist()))


SUMMARY_KEYS = ("a_mean", "b_mean", "alpha_mean", "w0_weight_mean")


@torch.no_grad()
def alpha_statistics(model) -> torch.Tensor:
    """:func:`alpha_summary`'s values in ``SUMMARY_KEYS`` order, then 1.0 if every A, B entry is
    finite and in [0, 1] (else 0.0), as one tensor on the model's device."""
    layers = [layer for _, layer in mixup_layers(model)]
    a = torch.cat([layer.A.flatten() for layer in layers])
    b = torch.cat([layer.B.flatten() for layer in layers])
    alpha, w0_weight = zip(*(mixing_mean_tensors(layer.A, layer.B, layer.rank, layer.formulation)
                             for layer in layers))
    both = torch.cat([a, b])
    in_box = torch.isfinite(both).all() & (both.min() >= 0) & (both.max() <= 1)
    return torch.stack([a.mean(), b.mean(), torch.stack(alpha).mean(), torch.stack(w0_weight).mean(),
                        in_box.to(a.dtype)])


def step_values(problems, model) -> dict[str, float]:
    """The step's losses (``<level>_loss``), :func:`alpha_summary` and ``alpha_in_box`` (1.0 when every
    A, B entry is finite and in [0, 1]), read from the device in one transfer."""
    losses = {f"{p.name}_loss": p.last_loss_tensor.float() for p in problems if p.last_loss_tensor is not None}
    statistics = alpha_statistics(model)
    values = torch.cat([torch.stack(list(losses.values())).to(statistics) if losses else statistics[:0],
                        statistics]).tolist()
    return dict(zip([*losses, *SUMMARY_KEYS, "alpha_in_box"], values))


def _inner_problem(cfg: RunConfig, settings: EngineSettings, data: RunData, model, fold, train_idx):
    """The inner level on a split's train part; returns it and its number of steps."""
    s, unroll = cfg.search, settings.inner.unroll_steps
    inner_steps = steps_for(s.epochs, len(train_idx), cfg.batch_size)
    if s.max_steps is not None:
        inner_steps = min(inner_steps, s.max_steps * unroll)
    weights = task_parameters(model)
    w_opt = adamw([{"params": weights, "weight_decay": s.w_weight_decay}], lr=s.w_lr)
    inner = TaskWeightProblem(
        "inner", settings.inner, model, model_loss, weights, w_opt,
        loader(data, data.train.select(train_idx), cfg, f"order/inner{fold}"),
        schedule(w_opt, "linear", inner_steps, s.w_warmup_ratio))
    return inner, inner_steps


def bilevel_problems(cfg: RunConfig, settings: EngineSettings, data: RunData, model, fold, train_idx, val_idx):
    s = cfg.search
    inner, inner_steps = _inner_problem(cfg, settings, data, model, fold, train_idx)
    outer_steps = max(1, inner_steps // settings.inner.unroll_steps)
    alphas = alpha_parameters(model)
    a_opt = torch.optim.AdamW(alphas, lr=s.alpha_lr, betas=(s.alpha_beta1, s.alpha_beta2),
                              weight_decay=s.alpha_weight_decay)
    outer = AttentionProblem(
        "outer", settings.outer, model, model_loss, alphas, a_opt,
        loader(data, data.train.select(val_idx), cfg, f"order/outer{fold}"),
        schedule(a_opt, "cosine", outer_steps, s.alpha_warmup_ratio), projection=project_alphas)
    return [inner, outer], inner_steps


def _inner_only_problems(cfg: RunConfig, settings: EngineSettings, data: RunData, model, fold, train_idx, val_idx):
    """The control without the outer level: W trained on the split's train part exactly as the
    bi-level search's inner level is (same split, data order, schedule and start), alpha kept at
    its initial draw, the held-out part unused."""
    inner, inner_steps = _inner_problem(cfg, settings, data, model, fold, train_idx)
    return [inner], inner_steps


def _joint_problems(cfg: RunConfig, data: RunData, model):
    s = cfg.search
    steps = steps_for(s.epochs, len(data.train), cfg.batch_size)
    if s.max_steps is not None:
        steps = min(steps, s.max_steps)
    weights, alphas = task_parameters(model), alpha_parameters(model)
    optimizer, scheduler = weights_and_alphas_optimizer(weights, alphas, steps, s.w_lr, s.w_weight_decay,
                                                        s.w_warmup_ratio, s)
    joint = JointProblem(
        "joint", Config(), model, model_loss, weights + alphas, optimizer,
        loader(data, data.train, cfg, "order/joint"), scheduler,
        projection=project_alphas, constrained_parameters=alphas)
    return [joint], steps


def search_fold(cfg: RunConfig, settings: EngineSettings, data: RunData, fold: int, split, log: RunLog):
    """One search; returns the model with its learned A, B and a summary of the run."""
    model = build_model(cfg, data.task, with_mixup=True, device=data.device)
    torch.manual_seed(stream_seed(cfg.seed, f"dropout/search{fold}"))
    if cfg.search.problem == "joint":
        problems, iterations = _joint_problems(cfg, data, model)
    else:
        build = bilevel_problems if cfg.search.problem == "bilevel" else _inner_only_problems
        problems, iterations = build(cfg, settings, data, model, fold, *split)
    progress = tqdm(total=iterations, desc=f"search fold {fold + 1}/{cfg.search.folds if split else 1}")
    trained = [p for p in model.parameters() if p.requires_grad]
    losses: dict[str, float] = {}

    def on_step(step: int) -> None:
        values = step_values(problems, model)  # one device-to-host transfer a step
        for p in problems:
            if f"{p.name}_loss" in values:
                check_loss(values[f"{p.name}_loss"], f"search ({p.name} level)", step,
                           "try smaller search.w_lr / search.alpha_lr")
        check_box(values.pop("alpha_in_box") == 1.0, "search", step)
        check_parameters(trained, "search", step, "try smaller search.w_lr / search.alpha_lr")
        losses.update({k: v for k, v in values.items() if k.endswith("_loss")})
        losses.update({"neumann_alpha": p.neumann_alpha_used for p in problems if hasattr(p, "neumann_alpha_used")})
        log("search", fold, step, **losses, **{k: values[k] for k in SUMMARY_KEYS})
        progress.update(1)
        progress.set_postfix({k: f"{v:.3f}" for k, v in losses.items()})

    start = time.perf_counter()
    with progress, autocast(cfg.bf16, data.device), from_problems():  # a failed run's error line after the bar
        inner, outer = (problems + [None])[:2]  # one level for joint and inner_only
        build_engine(inner, outer, settings.engine, iterations, data.device, on_step).run()
    summary = {"fold": fold, "iterations": iterations, **{f"final_{k}": v for k, v in losses.items()},
               **alpha_summary(model), "wall_time_s": time.perf_counter() - start}
    return model, summary


def check_search_inputs(cfg: RunConfig) -> None:
    """What a search reads before any work: settings it would not read, its output folder and the model."""
    refuse_unread_outer_level(cfg)
    refuse_body(cfg)
    check_output_dir(cfg.output_dir, cfg.overwrite, "search")
    check_model(cfg.model, cfg.max_length)


def run_search(cfg: RunConfig, settings: EngineSettings) -> dict:
    """Search on ``cfg.search.folds`` splits (one run on the whole sample for ``joint``); write
    the averaged ``alphas.safetensors`` / ``alphas.json``, each fold's under ``fold<k>/``, the
    fold-averaged task weights when ``finetune_start`` is ``fold_average``, ``config.yaml``,
    ``log.csv`` and, last, ``metrics.json``."""
    check_search_inputs(cfg)
    device = resolve_device(cfg.device)
    with from_problems():
        settings = dataclasses.replace(settings, engine=engine_config_on(settings.engine, device))
    start = time.perf_counter()
    data = load_run_data(cfg, device)
    if cfg.finetune.holdout:
        set_aside_holdout(cfg, data)  # the finetune phase scores on it: the search must not see it
    out = cfg.output_dir
    prepare_output_dir(out, "search")
    write_resolved(os.path.join(out, "config.yaml"), cfg, settings)
    joint = cfg.search.problem == "joint"
    splits = [None] if joint else random_splits(len(data.train), cfg.search.folds, cfg.search.split_ratio, cfg.seed)
    if cfg.search.fold_data == "whole":  # each fold's W on every example, in the fold's own order and dropout
        splits = [(list(range(len(data.train))), []) for _ in splits]
    log = RunLog(out, cfg.report_to)
    summaries, fold_alphas = [], UniformSoup()
    fold_weights = UniformSoup() if cfg.search.finetune_start == "fold_average" else None
    try:
        for fold, split in enumerate(splits):
            model, summary = search_fold(cfg, settings, data, fold, split, log)
            save_alphas(model, os.path.join(out, f"fold{fold}"))
            fold_alphas.add(alpha_state_dict(model))
            summaries.append(summary)
            if fold_weights is not None:
                fold_weights.add({n: p for n, p in model.named_parameters()
                                  if p.requires_grad and not n.endswith((".A", ".B"))})
    finally:
        log.close()
    load_alpha_state(model, fold_alphas.average())  # A_bar = (1/K) sum_k A_k, B_bar likewise
    save_alphas(model, out)
    if fold_weights is not None:
        save_tensors({n: t.cpu().contiguous() for n, t in fold_weights.average().items()},
                     os.path.join(out, TASK_WEIGHTS_NAME))
    bilevel = cfg.search.problem == "bilevel"
    metrics = {"phase": "search", "problem": cfg.search.problem, "hypergrad": cfg.hypergrad if bilevel else None,
               "folds": summaries, "alpha": alpha_summary(model), "data": run_data_fingerprint(cfg),
               "wall_time_s": time.perf_counter() - start}
    return write_metrics(out, metrics, device)
