"""GLUE dev metrics, computed offline (scikit-learn, scipy), in points as the paper reports them."""

from __future__ import annotations

import numpy as np
from scipy.stats import pearsonr, spearmanr
from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef

from .tasks import GlueTask


def compute_metrics(task: GlueTask, predictions, labels) -> dict[str, float]:
    """All dev metrics of ``task`` (x100) plus ``score``, the headline one: MCC for CoLA, F1 for
    MRPC and QQP, Spearman for STS-B, accuracy otherwise. ``predictions`` are class indices, or
    real-valued scores for regression."""
    predictions, labels = np.asarray(predictions), np.asarray(labels)
    if task.is_regression:
        if np.ptp(predictions) == 0.0:  # a constant prediction has no defined correlation
            metrics = {"pearson": 0.0, "spearman": 0.0}
        else:
            metrics = {"pearson": float(pearsonr(predictions, labels)[0]),
                       "spearman": float(spearmanr(predictions, labels)[0])}
    else:
        metrics = {"accuracy": float(accuracy_score(labels, predictions))}
        if task.metric == "mcc":
            metrics["mcc"] = float(matthews_corrcoef(labels, predictions))
        if task.metric == "f1":
            metrics["f1"] = float(f1_score(labels, predictions, zero_division=0.0))
    metrics = {k: 100.0 * v for k, v in metrics.items()}
    metrics["score"] = metrics[task.metric]
    return metrics


def constant_prediction_score(task: GlueTask, labels) -> tuple[float, str | None]:
    """The best headline score a prediction of one class for every example reaches, and that class:
    max_c score(c, ..., c; labels). A model at or below it has not learned the task (for F1 on
    MRPC, predicting "paraphrase" everywhere scores well above zero). Regression: 0, no class."""
    if task.is_regression:
        return 0.0, None
    scores = [compute_metrics(task, [c] * len(labels), labels)["score"] for c in range(len(task.labels))]
    best = int(np.argmax(scores))
    return scores[best], task.class_names[best]
