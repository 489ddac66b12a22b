"""The guards that stop a run: a non-finite loss, a non-finite weight after an update, a
non-finite prediction or an attention factor outside its box ends the run with
:class:`RunFailed` (one line, exit code 3, no ``metrics.json``), as does a full disk. The module
imports no torch, so the command line can catch :class:`RunFailed` before the libraries load."""

from __future__ import annotations

import math

EXIT_FAILED = 3


class RunFailed(RuntimeError):
    """A run that cannot give a result (diverged, or the disk filled); ``str()`` is the message for the user."""


def disk_full(error: BaseException) -> RunFailed | None:
    """The run's failure if ``error`` is the disk (or the quota) filling while it wrote, else None;
    safetensors reports it as its own error, with the system's words."""
    import errno

    if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT):
        return RunFailed(f"the disk is full ({error.filename or 'writing the outputs'}): the run wrote no "
                         "metrics.json; free some space and run it again")
    if type(error).__name__ == "SafetensorError" and "No space left" in str(error):
        return RunFailed("the disk is full (writing a .safetensors file): the run wrote no metrics.json; free some "
                         "space and run it again")
    return None


def check_loss(value: float, phase: str, step: int, hint: str) -> None:
    """Stop if the loss of ``phase`` at ``step`` is NaN or infinite."""
    if not math.isfinite(value):
        raise RunFailed(f"{phase}: the training loss became {value} at step {step}; the run diverged "
                        f"({hint}); no metrics written")


def check_parameters(params: list, phase: str, step: int, hint: str) -> None:
    """Stop unless every entry of ``params`` is finite after the update of ``step``: a NaN or an
    infinity makes the sum of its tensor's entries NaN or infinite (one reduction per tensor, in
    float32, no copy; the loss, checked before the update, cannot see the last update)."""
    import torch  # here, so that the scripts can import this module before the libraries load

    sums = torch.stack([p.detach().sum(dtype=torch.float32) for p in params])
    if not bool(torch.isfinite(sums).all()):
        raise RunFailed(f"{phase}: a weight became NaN or infinite at step {step}; the run diverged ({hint}); "
                        "no metrics written")


def check_predictions(values, probabilities, phase: str) -> None:
    """Stop if a prediction (a regression value or a class probability; numpy arrays) is NaN or infinite."""
    import numpy as np

    for array in (values, probabilities):
        if array is not None and array.dtype.kind == "f" and not np.isfinite(array).all():
            raise RunFailed(f"{phase}: the model's predictions are NaN or infinite; the run diverged; "
                            "no metrics written")


def check_box(in_box: bool, phase: str, step: int) -> None:
    """Stop unless every attention factor is finite and in [0, 1] (``in_box``; the projection keeps
    them there unless the update was NaN)."""
    if not in_box:
        raise RunFailed(f"{phase}: an attention factor left [0, 1] or became NaN at step {step}; the run "
                        "diverged (try a smaller search.alpha_lr); no metrics written")
