"""Guards that stop a run instead of letting it report a wrong result: a non-finite loss, a
non-finite weight after an update, or an attention factor outside its box ends the run with
:class:`RunFailed` (one line, exit code 3, no ``metrics.json``); SIGINT and SIGTERM end it with one
line (exit 130 / 143)."""

from __future__ import annotations

import math
import signal
import sys

EXIT_FAILED = 3


class RunFailed(RuntimeError):
    """A run that cannot give a result (diverged); ``str()`` is the message for the user."""


class Interrupted(BaseException):
    """SIGINT or SIGTERM; ``code`` is the exit status (128 + the signal's number)."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.code = 128 + signum


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


def exit_on_signals() -> None:
    """While a script starts (its libraries load), end it at SIGINT or SIGTERM with one line and
    exit code 130 / 143: nothing has run yet. :func:`raise_on_signals` takes over for the run."""
    def handler(signum, frame):
        print(f"stopped by {signal.Signals(signum).name} while starting: nothing was run", file=sys.stderr)
        sys.exit(128 + signum)

    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, handler)


def raise_on_signals() -> None:
    """Turn SIGINT and SIGTERM into :class:`Interrupted`, so that ``finally`` blocks run and the
    command ends with one line."""
    def handler(signum, frame):
        raise Interrupted(signum)

    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, handler)
