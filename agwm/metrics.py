"""Task metrics, computed offline (scikit-learn, scipy), in points (x100) as the paper reports them."""

from __future__ import annotations

import numpy as np
from scipy.stats import pearsonr, spearmanr
from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef

from .tasks import Task


def compute_metrics(task: Task, predictions, labels) -> dict[str, float]:
    """The metrics of ``task``'s kind (x100) and ``score``, its headline ``task.metric``.

    Classification (``predictions`` are class indices): accuracy, macro-f1 (the unweighted mean
    of the per-class F1), mcc, and with two classes f1 of class 1 (the second in label order).
    Regression (real-valued ``predictions``): pearson and spearman; a constant prediction has no
    correlation and scores 0.
    """
    predictions, labels = np.asarray(predictions), np.asarray(labels)
    if task.is_regression:
        if np.ptp(predictions) == 0.0:
            metrics = {"pearson": 0.0, "spearman": 0.0}
        else:
            metrics = {"pearson": float(pearsonr(predictions, labels)[0]),
                       "spearman": float(spearmanr(predictions, labels)[0])}
    else:
        classes = list(range(task.num_labels))
        metrics = {"accuracy": float(accuracy_score(labels, predictions)),
                   "macro-f1": float(f1_score(labels, predictions, labels=classes, average="macro", zero_division=0.0)),
                   "mcc": float(matthews_corrcoef(labels, predictions))}
        if task.num_labels == 2:
            metrics["f1"] = float(f1_score(labels, predictions, zero_division=0.0))
    metrics = {k: 100.0 * v for k, v in metrics.items()}
    metrics["score"] = metrics[task.metric]
    return metrics


def constant_prediction_score(task: Task, labels) -> tuple[float, str | None]:
    """The best headline score a prediction of one class for every example reaches, and that class:
    max_c score(c, ..., c; labels). A model at or below it has not learned the task (for F1 on
    MRPC, predicting "paraphrase" everywhere scores well above zero). Regression: 0, no class."""
    if task.is_regression:
        return 0.0, None
    scores = [compute_metrics(task, [c] * len(labels), labels)["score"] for c in range(len(task.labels))]
    best = int(np.argmax(scores))
    return scores[best], task.class_names[best]
