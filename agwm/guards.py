"""Guards that stop a run instead of letting it report a wrong result: a non-finite loss or an
attention factor outside its box ends the run with :class:`RunFailed` (one line, exit code 3,
no ``metrics.json``); SIGINT and SIGTERM end it with one line (exit 130 / 143)."""

from __future__ import annotations

import math
import signal

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


def check_box(in_box: bool, phase: str, step: int) -> None:
    """Stop unless every attention factor is finite and in [0, 1] (``in_box``; the projection keeps
    them there unless the update was NaN)."""
    if not in_box:
        raise RunFailed(f"{phase}: an attention factor left [0, 1] or became NaN at step {step}; the run "
                        "diverged (try a smaller search.alpha_lr); no metrics written")


def raise_on_signals() -> None:
    """Turn SIGINT and SIGTERM into :class:`Interrupted`, so that ``finally`` blocks run and the
    command ends with one line."""
    def handler(signum, frame):
        raise Interrupted(signum)

    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, handler)
