"""`agwm report` from a clone: python scripts/report.py --help (agwm/cli.py)."""

from agwm.cli import report

if __name__ == "__main__":
    report()
