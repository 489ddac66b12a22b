"""``python -m agwm <command>``: the ``agwm`` command (:mod:`agwm.cli`)."""

import _signal  # built into the interpreter: Ctrl-C is one line from here on, before agwm.cli loads
import os


def _stopped_while_loading(signum, frame):
    """:func:`agwm.cli._stopped_while_starting` before that module has loaded (it replaces this one)."""
    os.write(2, f"stopped by {'SIGINT' if signum == _signal.SIGINT else 'SIGTERM'} while starting: nothing was "
                "run\n".encode())
    os._exit(128 + signum)


for _signum in (_signal.SIGINT, _signal.SIGTERM):
    _signal.signal(_signum, _stopped_while_loading)

from agwm.cli import main  # noqa: E402

main()
