import os
import runpy
import sys
from pathlib import Path

import pytest
import torch
from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

REPO = Path(__file__).resolve().parents[1]
GLUE_DIR = Path(os.environ.get("GLUE_DIR") or REPO.parent / "shared" / "glue")

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests never reach the hub


@pytest.fixture(scope="session")
def glue_dir() -> str:
    if not (GLUE_DIR / "RTE" / "train.tsv").is_file():
        pytest.skip(f"GLUE files not found at {GLUE_DIR}: tests that read them look in ../shared/glue or $GLUE_DIR")
    return str(GLUE_DIR)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """A 1-layer BERT with the default model's tokenizer, saved as a Hugging Face folder."""
    path = tmp_path_factory.mktemp("tiny")
    from agwm.models import default_model

    tokenizer = AutoTokenizer.from_pretrained(default_model())
    config = AutoConfig.for_model("bert", vocab_size=tokenizer.vocab_size, hidden_size=8, num_hidden_layers=1,
                                  num_attention_heads=2, intermediate_size=16, max_position_embeddings=128)
    torch.manual_seed(0)
    AutoModelForSequenceClassification.from_config(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return str(path)


@pytest.fixture
def quick_probe(monkeypatch):
    """The grid's speed probe (about a second, before and after each run) as a constant 0.25 s."""
    from agwm.experiments import grid

    monkeypatch.setattr(grid, "speed_probe", lambda device: 0.25)


def run_script(name, args, monkeypatch, capsys):
    """Run ``scripts/<name>`` in this process with ``args``; its exit code and stderr (it must exit)."""
    monkeypatch.setattr(sys, "argv", [name, *args])
    with pytest.raises(SystemExit) as stopped:
        runpy.run_path(str(REPO / "scripts" / name), run_name="__main__")
    err = capsys.readouterr().err
    return stopped.value.code, err


def write_grid(tmp_path, methods, tasks=("rte",), seeds=(1,), overrides=(), **settings) -> Path:
    """``tmp_path/grid.yaml`` at 16 examples: its runs in ``tmp_path/runs``, its records in
    ``tmp_path/results.jsonl``; ``methods`` are names or method entries, ``settings`` the grid's other keys
    (``data_dir``, ``model``, ...)."""
    import yaml

    grid = {"tasks": list(tasks), "sizes": [16], "seeds": list(seeds), **settings,
            "output_dir": str(tmp_path / "runs"), "results": str(tmp_path / "results.jsonl"),
            "overrides": list(overrides), "methods": [m if isinstance(m, dict) else {"name": m} for m in methods]}
    path = tmp_path / "grid.yaml"
    path.write_text(yaml.safe_dump(grid, sort_keys=False))
    return path
