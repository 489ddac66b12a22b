"""`agwm finetune` from a clone: python scripts/finetune.py --help (agwm/cli.py)."""

from agwm.cli import finetune

if __name__ == "__main__":
    finetune()
