import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
GLUE_DIR = Path(os.environ.get("GLUE_DIR") or REPO.parent / "shared" / "glue")

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests never reach the hub


@pytest.fixture(scope="session")
def glue_dir() -> str:
    if not (GLUE_DIR / "RTE" / "train.tsv").is_file():
        pytest.fail(f"GLUE files not found at {GLUE_DIR}: tests read ../shared/glue or $GLUE_DIR")
    return str(GLUE_DIR)
