"""`agwm select` from a clone: python scripts/select_method.py --help (agwm/cli.py)."""

from agwm.cli import select

if __name__ == "__main__":
    select()
