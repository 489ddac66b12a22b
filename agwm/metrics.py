"""A model's predictions on a dataset and the task's metrics, computed offline (scikit-learn,
scipy), in points (x100) as the paper reports them."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from datasets import Dataset
from scipy.stats import pearsonr, spearmanr
from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef
from torch import nn
from tqdm.auto import tqdm

from agwm.data import Task, make_loader
from agwm.training.device import autocast, device_of

FLAT = 0.05  # regression predictions whose spread is under this share of the labels' are "about one value"


def compute_metrics(task: Task, predictions, labels) -> dict:
    """The metrics of ``task``'s kind (x100) and ``score``, its headline ``task.metric``.

    Classification (``predictions`` are class indices): accuracy, macro-f1 (the unweighted mean
    of the per-class F1), mcc (0 when one class is predicted everywhere, scikit-learn's convention),
    and with two classes f1 of class 1 (the second in label order); ``warning`` says when every
    prediction is one class. Regression (real-valued ``predictions``): pearson and spearman, which
    are undefined when the predictions (or the labels) are constant: then both are None and
    ``undefined`` says why, never NaN; ``warning`` says when the predictions are nearly constant,
    std(predictions) < FLAT x std(labels): a finetune that collapsed to about the labels' mean,
    whose correlations rank differences of a thousandth.
    """
    predictions, labels = np.asarray(predictions), np.asarray(labels)
    notes = {}
    if task.is_regression:
        constant = "predictions" if np.ptp(predictions) == 0.0 else "labels" if np.ptp(labels) == 0.0 else None
        if constant:
            metrics = {"pearson": None, "spearman": None}
            notes["undefined"] = f"every one of the {len(predictions)} {constant} is the same: no correlation"
        else:
            metrics = {"pearson": float(pearsonr(predictions, labels)[0]),
                       "spearman": float(spearmanr(predictions, labels)[0])}
            spread, labels_spread = float(np.std(predictions)), float(np.std(labels))
            if spread < FLAT * labels_spread:
                notes["warning"] = (f"every prediction is about {float(np.mean(predictions)):.3g} (their standard "
                                    f"deviation {spread:.2g}, the labels' {labels_spread:.2g})")
    else:
        classes = list(range(task.num_labels))
        metrics = {"accuracy": float(accuracy_score(labels, predictions)),
                   "macro-f1": float(f1_score(labels, predictions, labels=classes, average="macro", zero_division=0.0)),
                   "mcc": float(matthews_corrcoef(labels, predictions))}
        if task.num_labels == 2:
            metrics["f1"] = float(f1_score(labels, predictions, zero_division=0.0))
        if len(set(predictions.tolist())) == 1 and len(predictions) > 1:
            notes["warning"] = f"every prediction is class {task.class_names[int(predictions[0])]!r}"
    metrics = {k: None if v is None else 100.0 * v for k, v in metrics.items()}
    metrics["score"] = metrics[task.metric]
    return {**metrics, **notes}


def constant_prediction_score(task: Task, labels) -> tuple[float, str | None]:
    """The best headline score a prediction of one class for every example reaches, and that class:
    max_c score(c, ..., c; labels). A model at or below it has not learned the task (for F1 on
    MRPC, predicting "paraphrase" everywhere scores well above zero). Regression: 0, no class."""
    if task.is_regression:
        return 0.0, None
    scores = [compute_metrics(task, [c] * len(labels), labels)["score"] for c in range(len(task.labels))]
    best = int(np.argmax(scores))
    return scores[best], task.class_names[best]


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
