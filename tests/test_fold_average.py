"""The search's fold-averaged outputs and the finetune start they feed, on a tiny model folder."""

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

from agwm.config import build_run_config, engine_config_path, load_engine_settings
from agwm.finetune import load_start_weights, run_finetune
from agwm.mixup import inject_from_saved, mixup_layers
from agwm.runtime import default_model
from agwm.search import TASK_WEIGHTS_NAME, run_search


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory):
    """A 1-layer BERT with the default model's tokenizer, saved as a Hugging Face folder."""
    path = tmp_path_factory.mktemp("tiny")
    tokenizer = AutoTokenizer.from_pretrained(default_model())
    config = AutoConfig.for_model("bert", vocab_size=tokenizer.vocab_size, hidden_size=8, num_hidden_layers=1,
                                  num_attention_heads=2, intermediate_size=16, max_position_embeddings=128)
    torch.manual_seed(0)
    AutoModelForSequenceClassification.from_config(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return str(path)


def test_alphas_are_the_fold_mean_and_fold_average_weights_start_the_finetune(tiny_model_dir, glue_dir, tmp_path):
    cfg = build_run_config({"task": "mrpc", "train_size": 20, "seed": 4, "data_dir": glue_dir,
                            "model": tiny_model_dir, "output_dir": str(tmp_path / "s"), "search.folds": 3,
                            "search.max_steps": 2}, ["search.finetune_start=fold_average", "search.alpha_lr=0.05"])
    run_search(cfg, load_engine_settings(engine_config_path(cfg)))
    folds = [load_file(tmp_path / "s" / f"fold{k}" / "alphas.safetensors") for k in range(3)]
    averaged = load_file(tmp_path / "s" / "alphas.safetensors")
    for key, value in averaged.items():
        torch.testing.assert_close(value, torch.stack([f[key] for f in folds]).mean(0))
    assert any(not torch.equal(folds[0][k], folds[1][k]) for k in averaged)  # the splits differ

    weights = load_file(tmp_path / "s" / TASK_WEIGHTS_NAME)
    assert weights and not any(k.endswith((".A", ".B", "base_layer.weight")) for k in weights)
    model = AutoModelForSequenceClassification.from_pretrained(tiny_model_dir)
    inject_from_saved(model, str(tmp_path / "s" / "alphas.safetensors"))
    load_start_weights(model, str(tmp_path / "s" / TASK_WEIGHTS_NAME))
    own = dict(model.named_parameters())
    assert all(torch.equal(own[k], v) for k, v in weights.items())
    assert len(list(mixup_layers(model))) == 7  # query, key, value, attention output, intermediate, output, pooler

    ft = build_run_config({"task": "mrpc", "train_size": 20, "seed": 4, "data_dir": glue_dir, "model": tiny_model_dir,
                           "output_dir": str(tmp_path / "f")}, ["finetune.epochs=1"])
    metrics = run_finetune(ft, str(tmp_path / "s" / "alphas.safetensors"), str(tmp_path / "s" / TASK_WEIGHTS_NAME))
    assert set(metrics["dev"]) == {"accuracy", "f1", "score"}
