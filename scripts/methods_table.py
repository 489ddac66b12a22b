"""Write docs/methods.md: the finetune methods as the registry (agwm.registry) declares them.

    python scripts/methods_table.py
"""

import os

from agwm.registry import methods_table

HEADER = """# The finetune methods

Every method `--method` (and a grid's `method`, and `agwm select --methods`) takes, as
`agwm/registry.py` has them registered; written by `python scripts/methods_table.py`, and checked
against the registry by `tests/test_registry.py`. `texts`: text columns it takes; `labels`: the
label kinds (`classes`: any number; `two classes` only; `regression`). A method's settings are given
as `section.field=value`; their defaults are in its package under `agwm/baselines/`. How to add a
method: docs/development.md.

"""

if __name__ == "__main__":
    path = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "docs", "methods.md")
    with open(path, "w", encoding="utf-8") as f:
        f.write(HEADER + methods_table())
    print(f"wrote {path}")
