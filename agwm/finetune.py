"""The finetune phase: with A, B fixed, train W on the whole training sample and score on dev.

    W_hat = argmin_W L(W, A_bar, B_bar; D) + wd ||W||^2     (AdamW, linear warm-up and decay)

Without alphas this is plain (vanilla) finetuning of the same model on the same examples. Two
ablations share it (``finetune.alpha_mode``): ``random`` fixes A, B at a fresh draw from
N(mixup.init_mean, mixup.init_std) clamped to [0, 1]; ``joint`` trains them with W,
(W_hat, A_hat, B_hat) = argmin L(W, A, B; D), with the search's alpha optimizer settings and a
projection onto [0, 1] after each step."""

from __future__ import annotations

import dataclasses
import itertools
import math
import os
import tempfile
import time

import torch
from safetensors.torch import load_file
from torch import nn
from tqdm.auto import tqdm

from agwm.baselines.recipe import Fitted, MethodRun, Recipe
from agwm.config import RunConfig
from agwm.data import random_splits, stream_seed, tokenize
from agwm.errors import ConfigError
from agwm.inputs import check_alphas, check_model, check_start_weights
from agwm.metrics import Predictions, compute_metrics, evaluate, predict
from agwm.mixup import (
    alpha_parameters,
    inject_from_saved,
    merge_mixup,
    project_alphas,
    save_alphas,
    save_mixup_model,
    task_parameters,
)
from agwm.registry import METHODS, method
from agwm.resolved import write_resolved
from agwm.run_folder import (
    MIXUP_MODEL_DIR,
    TASK_WEIGHTS_NAME,
    TEST_PREDICTIONS_NAME,
    VALIDATION_PREDICTIONS_NAME,
    check_output_dir,
    prepare_output_dir,
    write_metrics,
    write_predictions,
)
from agwm.settings import refuse_body
from agwm.training.averaging import UniformSoup
from agwm.training.build import (
    build_model,
    load_run_data,
    loader,
    member_stream,
    run_data_fingerprint,
    set_aside_holdout,
)
from agwm.training.device import autocast, resolve_device
from agwm.training.guards import check_loss, check_parameters, check_predictions
from agwm.training.log import RunLog
from agwm.training.optim import steps_for, weights_and_alphas_optimizer


def load_start_weights(model, path: str) -> None:
    """Overwrite the task weights with those saved by a search (``task_weights.safetensors``):
    every task weight of the model, each of its shape, and nothing else."""
    state = load_file(path)
    task = {id(p) for p in task_parameters(model)}
    own = {name: p for name, p in model.named_parameters() if id(p) in task}
    missing, unknown = sorted(set(own) - set(state)), sorted(set(state) - set(own))
    wrong = [f"{n} {tuple(state[n].shape)} (model {tuple(own[n].shape)})" for n in sorted(set(own) & set(state))
             if state[n].shape != own[n].shape]
    mixup_keys = [n for n in unknown if ".base_layer." in n]
    if mixup_keys and not any(".base_layer." in n for n in own):
        raise ConfigError(f"--start-weights {path} is not allowed without --alphas: a search's task weights are a "
                          f"mixup model's ({mixup_keys[0]}); give the search's alphas.safetensors beside it as "
                          "--alphas")
    if missing or unknown or wrong:
        raise ConfigError(f"--start-weights {path} is not allowed: it does not fit this model (missing {missing[:3]}, "
                          f"unexpected {unknown[:3]}, other shapes {wrong[:3]})")
    with torch.no_grad():
        for name, value in state.items():
            own[name].copy_(value)


def make_recipe(cfg: RunConfig) -> Recipe:
    """The recipe of ``finetune.method``, built with its own settings section; plain finetuning for
    a method that fits otherwise (a soup's members)."""
    chosen = method(cfg.finetune.method)
    run = MethodRun(chosen.name, cfg.seed, cfg.batch_size, cfg.mixup.target_modules)
    if not chosen.recipe:
        return Recipe(None, run)
    return chosen.runner()(getattr(cfg, chosen.settings[0]) if chosen.settings else None, run)


def train(cfg: RunConfig, data, recipe, log: RunLog, alphas: str | None = None, start_weights: str | None = None,
          member: int = 0, phase: str = "finetune") -> tuple[nn.Module, int, float]:
    """Build the model, let the recipe prepare it, train it; return the finished model, steps and
    last loss. Member ``member`` of a soup starts from the same model (head included: averaging
    needs one starting point) and takes its own data order and dropout streams."""
    f = cfg.finetune
    model = build_model(cfg, data.task, with_mixup=f.alpha_mode in ("random", "joint"), device=data.device)
    if alphas is not None:
        inject_from_saved(model, alphas)
    trained_alphas = alpha_parameters(model) if f.alpha_mode == "joint" else []
    for p in alpha_parameters(model):
        p.requires_grad_(f.alpha_mode == "joint")
    if start_weights is not None:
        load_start_weights(model, start_weights)
    batches = loader(data, data.train, cfg, member_stream("order/finetune", member))
    model = recipe.prepare(model, batches)
    updated = [p for p in model.parameters() if p.requires_grad]
    torch.manual_seed(stream_seed(cfg.seed, member_stream("dropout/finetune", member)))

    steps = steps_for(f.epochs, len(data.train), cfg.batch_size)
    optimizer, scheduler = weights_and_alphas_optimizer(task_parameters(model), trained_alphas, steps, f.lr,
                                                        f.weight_decay, f.warmup_ratio, cfg.search)
    model.train()
    step, loss_value = 0, float("nan")
    epoch_steps = steps_for(1, len(data.train), cfg.batch_size)
    averaged = UniformSoup() if f.swa_epochs else None  # SWA: the ends of the last swa_epochs epochs
    desc = phase if f.method != "soup" else f"{phase} member {member + 1}/{cfg.soup.members}"
    with tqdm(total=steps, desc=desc) as progress:
        while step < steps:
            for batch in batches:
                with autocast(cfg.bf16, data.device):
                    loss = recipe.loss(model, batch)
                loss.backward()
                recipe.before_step()
                optimizer.step()
                recipe.after_step()
                project_alphas(trained_alphas)
                scheduler.step()
                optimizer.zero_grad(set_to_none=True)
                step, loss_value = step + 1, loss.item()
                check_loss(loss_value, phase, step, f"finetune.lr={f.lr}: try a smaller one")
                check_parameters(updated, phase, step, f"finetune.lr={f.lr}: try a smaller one")
                log(phase, member, step, train_loss=loss_value, lr=scheduler.get_last_lr()[0])
                progress.update(1)
                progress.set_postfix(loss=f"{loss_value:.3f}")
                if averaged is not None and (step % epoch_steps == 0 or step == steps) \
                        and step > steps - f.swa_epochs * epoch_steps:
                    averaged.add({n: p for n, p in model.named_parameters() if p.requires_grad})
                if step == steps:
                    break
    if averaged is not None:
        model.load_state_dict(averaged.average(), strict=False)  # the trained weights; the rest is unchanged
    return recipe.finished(model), steps, loss_value


def choose_lr_and_epochs(cfg: RunConfig, data, log: RunLog) -> tuple[RunConfig, dict]:
    """vanilla-tuned: train vanilla at every (lr, epochs) of ``tuned.lrs`` x ``tuned.epochs`` on the
    training part of split 0 of the sample and score it on the held-out part (as agwm's defaults were
    chosen); return ``cfg`` at the best (the first of equals, in that order) and every trial's score."""
    train_idx, held_idx = random_splits(len(data.train), 1, cfg.search.split_ratio, cfg.seed)[0]
    part, held = dataclasses.replace(data, train=data.train.select(train_idx)), data.train.select(held_idx)
    trials = []
    for k, (lr, epochs) in enumerate(itertools.product(cfg.tuned.lrs, cfg.tuned.epochs)):
        trial = dataclasses.replace(cfg, finetune=dataclasses.replace(cfg.finetune, lr=lr, epochs=epochs))
        model, _, _ = train(trial, part, make_recipe(trial), log, phase=f"tune{k}")
        score = evaluate(model, data.task, held, data.tokenizer, cfg.finetune.eval_batch_size, cfg.bf16)["score"]
        trials.append({"lr": lr, "epochs": epochs, "score": score})
    best = max(trials, key=lambda t: -math.inf if t["score"] is None else t["score"])
    chosen = dataclasses.replace(cfg, finetune=dataclasses.replace(cfg.finetune, lr=best["lr"], epochs=best["epochs"]))
    return chosen, {"lr": best["lr"], "epochs": best["epochs"], "trials": trials,
                    "train_rows": len(train_idx), "held_out_rows": len(held_idx)}


class FinetunedModel:
    """A model of the finetune loop, predicting examples as read (it tokenises them)."""

    def __init__(self, model: nn.Module, cfg: RunConfig, data):
        self.model, self.cfg, self.data = model, cfg, data

    def predict(self, examples) -> Predictions:
        d, cfg = self.data, self.cfg
        return predict(self.model, d.task, tokenize(examples, d.task, d.tokenizer, cfg.max_length), d.tokenizer,
                       cfg.finetune.eval_batch_size, cfg.bf16)

    def save_pretrained(self, out: str) -> None:
        """``model/``: the merged model and tokenizer (the peft adapter for prefix and prompt tuning);
        with mixup layers also ``mixup_model/``, unmerged, to restore exactly."""
        if alpha_parameters(self.model):
            save_mixup_model(self.model, os.path.join(out, MIXUP_MODEL_DIR), self.data.tokenizer)
        merged = merge_mixup(self.model)
        merged.save_pretrained(os.path.join(out, "model"))
        self.data.tokenizer.save_pretrained(os.path.join(out, "model"))


def fit_with_recipe(cfg: RunConfig, data, log: RunLog, dev, alphas: str | None = None,
                    start_weights: str | None = None) -> Fitted:
    """A method that trains through the loop, with its recipe's hooks (a ``recipe`` method)."""
    model, steps, loss_value = train(cfg, data, make_recipe(cfg), log, alphas, start_weights)
    return Fitted(FinetunedModel(model, cfg, data), {}, steps, loss_value)


def fit_tuned(cfg: RunConfig, data, log: RunLog, dev, alphas: str | None = None,
              start_weights: str | None = None) -> Fitted:
    """vanilla-tuned: vanilla at the lr and epochs :func:`choose_lr_and_epochs` chose."""
    cfg, tuned = choose_lr_and_epochs(cfg, data, log)
    return fit_with_recipe(cfg, data, log, dev, alphas, start_weights)._replace(reported={"tuned": tuned})


def fit_soup(cfg: RunConfig, data, log: RunLog, dev, alphas: str | None = None,
             start_weights: str | None = None) -> Fitted:
    """soup: ``soup.members`` vanilla runs (their own data order and dropout), averaged uniformly."""
    dev = tokenize(dev, data.task, data.tokenizer, cfg.max_length)
    soup, scores = UniformSoup(), []
    for member in range(cfg.soup.members):
        model, steps, loss_value = train(cfg, data, make_recipe(cfg), log, alphas, start_weights, member)
        soup.add(model.state_dict())
        scores.append(evaluate(model, data.task, dev, data.tokenizer, cfg.finetune.eval_batch_size, cfg.bf16)["score"])
    model.load_state_dict(soup.average())
    return Fitted(FinetunedModel(model, cfg, data), {"member_scores": scores}, steps, loss_value)


def fit_setfit_vanilla(cfg: RunConfig, data, log: RunLog, dev, alphas: str | None = None,
                       start_weights: str | None = None) -> Fitted:
    """setfit-vanilla: vanilla from the encoder SetFit's contrastive stage makes of the sample."""
    from agwm.baselines.sentence_encoder.encoder import make_setfit_body

    with tempfile.TemporaryDirectory() as body:  # only the finetuned model is kept
        make_setfit_body(cfg, data, body)
        return fit_with_recipe(dataclasses.replace(cfg, model=body), data, log, dev, alphas, start_weights)


def check_finetune_inputs(cfg: RunConfig, alphas: str | None,
                          start_weights: str | None) -> tuple[dict | None, str | None]:
    """What a finetune reads before any work: the combination of method, alphas and start weights,
    its output folder, the model, the alphas and the start weights. Returns the alphas' ``alphas.json``
    (for :func:`with_saved_alphas`) and the start weights: those given, else with ``alphas`` and
    ``search.finetune_start=fold_average`` the search's fold-averaged task weights beside them."""
    f = cfg.finetune
    if alphas is not None and f.alpha_mode != "fixed":
        raise ConfigError(f"finetune.alpha_mode={f.alpha_mode} is not allowed with --alphas: "
                          "saved alphas are used fixed (alpha_mode=fixed)")
    if alphas is not None and f.method != "vanilla":
        raise ConfigError(f"--method {f.method} is not allowed with --alphas: the mixup finetune "
                          "trains W plainly (finetune.method=vanilla)")
    if start_weights is not None and not METHODS[f.method].from_weights:
        raise ConfigError(f"--start-weights is not allowed with --method {f.method}: it starts from the encoder")
    if alphas is not None and start_weights is None and cfg.search.finetune_start == "fold_average":
        start_weights = os.path.join(os.path.dirname(alphas), TASK_WEIGHTS_NAME)
        if not os.path.isfile(start_weights):
            raise ConfigError(f"--alphas {alphas} is not allowed with search.finetune_start=fold_average (the "
                              f"default): no {TASK_WEIGHTS_NAME} beside it to start from; give --start-weights, "
                              "or search.finetune_start=pretrained to start from the pretrained weights")
    refuse_body(cfg)
    check_output_dir(cfg.output_dir, cfg.overwrite, "finetune")
    check_model(cfg.model, cfg.max_length)
    saved = check_alphas(alphas, cfg.model, cfg.mixup) if alphas is not None else None
    if start_weights is not None:
        check_start_weights(start_weights)
    return saved, start_weights


def with_saved_alphas(cfg: RunConfig, saved: dict) -> RunConfig:
    """``cfg`` with the rank and formulation of the alphas it finetunes with (``saved``: their
    ``alphas.json``, checked by :func:`agwm.inputs.check_alphas`)."""
    mixup = dataclasses.replace(cfg.mixup, rank=saved["rank"], formulation=saved["formulation"])
    return dataclasses.replace(cfg, mixup=mixup)


def run_finetune(cfg: RunConfig, alphas: str | None = None, start_weights: str | None = None,
                 save_model: bool = False) -> dict:
    """Finetune with ``finetune.method`` (with the mixup of ``alphas`` if given, from ``start_weights``,
    by default the search's fold-averaged task weights beside ``alphas`` unless
    ``search.finetune_start`` is ``pretrained``), evaluate on dev
    (or, with ``finetune.holdout``, train on split 0's training part and evaluate on its held-out
    part), write ``config.yaml``, ``log.csv``, the validation predictions and those of the test
    file (``validation_predictions.csv``, ``predictions.csv``), optionally the model (``model/``: a
    stock Hugging Face folder, the peft adapter for prefix and prompt tuning, a sentence-transformers
    folder with its head for probe, cosine and setfit), and last ``metrics.json``.
    ``soup`` trains ``soup.members`` vanilla members and evaluates their uniform average;
    ``vanilla-tuned`` first chooses its lr and epochs (:func:`choose_lr_and_epochs`);
    ``setfit-vanilla`` starts from the encoder SetFit's contrastive stage makes of the sample."""
    f = cfg.finetune
    saved_alphas, start_weights = check_finetune_inputs(cfg, alphas, start_weights)
    if saved_alphas is not None:
        cfg = with_saved_alphas(cfg, saved_alphas)
    start = time.perf_counter()
    data = load_run_data(cfg, resolve_device(cfg.device))
    error = method(f.method).task_error(data.task)
    if error:
        raise ConfigError(error)
    dev_examples = set_aside_holdout(cfg, data) if f.holdout else data.examples.validation
    out = cfg.output_dir
    prepare_output_dir(out, "finetune")
    write_resolved(os.path.join(out, "config.yaml"), cfg)

    log = RunLog(out, cfg.report_to)
    chosen = method(f.method)
    fit = chosen.runner() if chosen.fit else fit_with_recipe
    fitted, reported, steps, loss_value = fit(cfg, data, log, dev_examples, alphas, start_weights)
    train_time = time.perf_counter() - start
    predictions = fitted.predict(dev_examples)
    check_predictions(predictions.values, predictions.probabilities, f.method)
    dev_metrics = compute_metrics(data.task, predictions.values, predictions.labels)
    log("finetune", 0, steps, **{f"validation_{k}": v for k, v in dev_metrics.items()
                                 if k != "score" and isinstance(v, float)})
    log.close()
    if not f.holdout:  # the held-out part of the sample is no file's rows
        write_predictions(os.path.join(out, VALIDATION_PREDICTIONS_NAME), data.examples.validation_rows, data.task,
                          predictions)
    if data.examples.test is not None:
        write_predictions(os.path.join(out, TEST_PREDICTIONS_NAME), data.examples.test_rows, data.task,
                          fitted.predict(data.examples.test))
    if isinstance(fitted, FinetunedModel) and alpha_parameters(fitted.model):
        save_alphas(fitted.model, out)  # the alpha the model was finetuned with (learned, for joint)
    if save_model:
        if isinstance(fitted, FinetunedModel):
            fitted.save_pretrained(out)
        else:
            fitted.save_pretrained(os.path.join(out, "model"))
    metrics = {"phase": "finetune", "task": data.task.name, "metric": data.task.metric, "method": f.method,
               "evaluated_on": "holdout" if f.holdout else "dev",
               "score": dev_metrics["score"], "holdout" if f.holdout else "dev": dev_metrics,
               "alphas": alphas, "start_weights": start_weights, "alpha_mode": f.alpha_mode, **reported,
               "steps": steps, "final_train_loss": loss_value, "train_time_s": train_time,
               "data": run_data_fingerprint(cfg),
               "wall_time_s": time.perf_counter() - start}
    return write_metrics(out, metrics, data.device)
