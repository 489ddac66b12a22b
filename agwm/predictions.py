"""Predictions written beside the examples they are for, as CSV."""

from __future__ import annotations

import pandas as pd

from .atomic import atomic_path
from .evaluation import Predictions
from .tasks import Task

VALIDATION_PREDICTIONS_NAME = "validation_predictions.csv"
TEST_PREDICTIONS_NAME = "predictions.csv"


def prediction_table(rows: pd.DataFrame, task: Task, predictions: Predictions) -> pd.DataFrame:
    """``rows`` (the examples as their file has them) with ``prediction`` (the class name, or the
    score for regression) and, for classification, ``prob_<class>``: the probability of each class."""
    table = rows.reset_index(drop=True).copy()
    if task.is_regression:
        table["prediction"] = predictions.values
        return table
    names = task.class_names
    table["prediction"] = [names[i] for i in predictions.values]
    for i, name in enumerate(names):
        table[f"prob_{name}"] = predictions.probabilities[:, i]
    return table


def write_predictions(path: str, rows: pd.DataFrame, task: Task, predictions: Predictions) -> None:
    """Write :func:`prediction_table` to ``path`` under a temporary name first, renamed when complete."""
    with atomic_path(path) as tmp:
        prediction_table(rows, task, predictions).to_csv(tmp, index=False)
