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


def run_script(name, args, monkeypatch, capsys):
    """Run ``scripts/<name>`` in this process with ``args``; its exit code and stderr (it must exit)."""
    monkeypatch.setattr(sys, "argv", [name, *args])
    with pytest.raises(SystemExit) as stopped:
        runpy.run_path(str(REPO / "scripts" / name), run_name="__main__")
    err = capsys.readouterr().err
    return stopped.value.code, err
