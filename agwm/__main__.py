"""``python -m agwm <command>``: the ``agwm`` command (:mod:`agwm.cli`)."""

from agwm.cli import main

main()
