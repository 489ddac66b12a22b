"""A model's predictions on a dataset, and its metrics."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from datasets import Dataset
from torch import nn
from tqdm.auto import tqdm

from .data import make_loader
from .devices import autocast, device_of
from .metrics import compute_metrics
from .tasks import Task


@dataclass
class Predictions:
    values: np.ndarray  # a score per example (regression) or the class of the largest logit
    probabilities: np.ndarray | None  # softmax(logits), examples x classes; None for regression
    labels: np.ndarray | None  # the gold labels, when the examples have them


@torch.no_grad()
def predict(model: nn.Module, task: Task, dataset: Dataset, tokenizer, batch_size: int,
            bf16: bool = False) -> Predictions:
    """The model's predictions on a tokenised ``dataset``, in its order; with ``bf16``, its forward
    passes under bfloat16 autocast."""
    model.eval()
    logits, labels = [], []
    device = device_of(model)
    batches = make_loader(dataset, tokenizer, batch_size, shuffle=False, device=device)
    for batch in tqdm(batches, desc="predict", leave=False):
        with autocast(bf16, device):
            logits.append(model(**{k: v for k, v in batch.items() if k != "labels"}).logits.float())
        if "labels" in batch:
            labels.append(batch["labels"])
    model.train()
    logits = torch.cat(logits)
    gold = torch.cat(labels).cpu().numpy() if labels else None
    if task.is_regression:
        return Predictions(logits.squeeze(-1).cpu().numpy(), None, gold)
    return Predictions(logits.argmax(-1).cpu().numpy(), logits.float().softmax(-1).cpu().numpy(), gold)


def evaluate(model: nn.Module, task: Task, dataset: Dataset, tokenizer, batch_size: int,
             bf16: bool = False) -> dict:
    """Validation metrics of ``model`` (see :func:`agwm.metrics.compute_metrics`)."""
    predictions = predict(model, task, dataset, tokenizer, batch_size, bf16)
    return compute_metrics(task, predictions.values, predictions.labels)
