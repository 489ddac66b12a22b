"""`agwm search` from a clone: python scripts/search.py --help (agwm/cli.py)."""

from agwm.cli import search

if __name__ == "__main__":
    search()
