"""`agwm experiment` from a clone: python scripts/experiment.py --help (agwm/cli.py)."""

from agwm.cli import experiment

if __name__ == "__main__":
    experiment()
