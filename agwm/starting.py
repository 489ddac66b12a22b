"""SIGINT or SIGTERM while a command starts (its libraries load) ends it with one line and exit code
130 / 143: nothing has run yet. Built-in modules only, so that ``python -m agwm`` sets it before
anything else loads; :func:`agwm.cli.raise_on_signals` takes over for the run."""

import _signal
import os

NAMES = {_signal.SIGINT: "SIGINT", _signal.SIGTERM: "SIGTERM"}


def stopped_while_starting(signum, frame):
    """Ends the process at once: a ``SystemExit`` raised inside a library's import can come out as
    another error (transformers' lazy imports turn it into ``ModuleNotFoundError``), with a traceback."""
    os.write(2, f"stopped by {NAMES[signum]} while starting: nothing was run\n".encode())
    os._exit(128 + signum)


def stop_while_starting() -> dict:
    """Sets :func:`stopped_while_starting` for SIGINT and SIGTERM; returns the handlers it replaced."""
    return {signum: _signal.signal(signum, stopped_while_starting) for signum in NAMES}
