"""The per-step log: rows ``(phase, fold, step, name, value)`` in ``log.csv`` and the same scalars
as TensorBoard events under ``tensorboard/`` (tags ``search/fold<k>/<name>``, ``finetune/<name>``,
``finetune/member<m>/<name>`` for a soup's members). TensorBoard is imported only when it reports."""

from __future__ import annotations

import csv
import importlib.util
import os

REPORTERS = ("csv", "tensorboard")


def tensorboard_installed() -> bool:
    return importlib.util.find_spec("tensorboard") is not None


def default_reporters() -> list[str]:
    """csv, and tensorboard where the package is installed."""
    return ["csv", "tensorboard"] if tensorboard_installed() else ["csv"]


class RunLog:
    def __init__(self, directory: str, report_to: list[str] | None = None):
        report_to = default_reporters() if report_to is None else report_to
        self.file = self.writer = self.events = None
        if "csv" in report_to:
            self.file = open(os.path.join(directory, "log.csv"), "w", newline="")
            self.writer = csv.writer(self.file)
            self.writer.writerow(["phase", "fold", "step", "name", "value"])
        if "tensorboard" in report_to:
            from torch.utils.tensorboard import SummaryWriter

            self.events = SummaryWriter(os.path.join(directory, "tensorboard"))

    def __call__(self, phase: str, fold: int, step: int, **values: float) -> None:
        if self.writer is not None:
            for name, value in values.items():
                self.writer.writerow([phase, fold, step, name, f"{value:.6g}"])
            self.file.flush()
        if self.events is not None:
            group = f"{phase}/fold{fold}" if phase == "search" else phase if fold == 0 else f"{phase}/member{fold}"
            for name, value in values.items():
                self.events.add_scalar(f"{group}/{name}", value, step)

    def close(self) -> None:
        if self.file is not None:
            self.file.close()
        if self.events is not None:
            self.events.close()
