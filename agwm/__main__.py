"""``python -m agwm <command>``: the ``agwm`` command (:mod:`agwm.cli`)."""

from agwm.starting import stop_while_starting

stop_while_starting()  # before agwm.cli loads: Ctrl-C from here on is one line

from agwm.cli import main  # noqa: E402

main()
