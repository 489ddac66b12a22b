"""Injection, merge and alpha I/O on tiny randomly initialised models of five architectures."""

import pytest
import torch
from torch import nn
from transformers import AutoConfig, AutoModelForSequenceClassification

from agwm.mixup import (
    MixupLinear,
    alpha_parameters,
    inject_from_saved,
    inject_mixup,
    merge_mixup,
    mixup_layers,
    save_alphas,
    task_parameters,
)

TINY = {
    "bert": dict(hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32),
    "roberta": dict(hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32,
                    pad_token_id=1),
    "deberta-v2": dict(hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32),
    "bart": dict(d_model=16, encoder_layers=1, decoder_layers=1, encoder_attention_heads=2,
                 decoder_attention_heads=2, encoder_ffn_dim=32, decoder_ffn_dim=32),
    "xlnet": dict(d_model=16, n_layer=2, n_head=2, d_inner=32),
}


def tiny_model(model_type: str) -> nn.Module:
    torch.manual_seed(0)
    extra = {} if model_type == "xlnet" else {"max_position_embeddings": 64}  # XLNet has no limit
    config = AutoConfig.for_model(model_type, vocab_size=100, num_labels=3, **extra, **TINY[model_type])
    return AutoModelForSequenceClassification.from_config(config).eval()


def inputs(model_type: str) -> dict:
    ids = torch.randint(3, 100, (2, 7), generator=torch.Generator().manual_seed(1))
    ids[:, -1] = 2  # BART classifies from the last end-of-sequence token
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids)}


def logits(model, model_type):
    with torch.no_grad():
        return model(**inputs(model_type)).logits


def perturb(model):
    g = torch.Generator().manual_seed(2)
    with torch.no_grad():
        for _, layer in mixup_layers(model):
            layer.A.copy_(torch.rand(layer.A.shape, generator=g))
            layer.B.copy_(torch.rand(layer.B.shape, generator=g))
            layer.weight.add_(0.1 * torch.randn(layer.weight.shape, generator=g))


@pytest.mark.parametrize("model_type", list(TINY))
def test_default_targets_every_encoder_linear_but_not_the_head(model_type):
    model = tiny_model(model_type)
    base_prefix = next(n for n, m in model.named_modules() if m is model.base_model)
    encoder_linears = {n for n, m in model.named_modules() if type(m) is nn.Linear and n.startswith(base_prefix + ".")}
    names = inject_mixup(model)
    assert set(names) == encoder_linears and names
    plain = [n for n, m in model.named_modules() if type(m) is nn.Linear and not n.endswith(".base_layer")]
    assert plain and all(not n.startswith(base_prefix + ".") for n in plain)  # only the head is left


@pytest.mark.parametrize("model_type", list(TINY))
def test_alpha_one_reproduces_the_original_model(model_type):
    model = tiny_model(model_type)
    before = logits(model, model_type)
    inject_mixup(model, init_std=0.0)
    torch.testing.assert_close(logits(model, model_type), before)


@pytest.mark.parametrize("model_type", list(TINY))
def test_merge_writes_a_stock_folder_with_the_same_logits(model_type, tmp_path):
    model = tiny_model(model_type)
    inject_mixup(model, rank=2)
    perturb(model)
    mixed = logits(model, model_type)
    merge_mixup(model)
    assert not list(mixup_layers(model))
    torch.testing.assert_close(logits(model, model_type), mixed, rtol=1e-5, atol=1e-6)
    model.save_pretrained(tmp_path)
    reloaded = AutoModelForSequenceClassification.from_pretrained(tmp_path).eval()
    torch.testing.assert_close(logits(reloaded, model_type), mixed, rtol=1e-5, atol=1e-6)


def test_save_and_load_alphas_round_trip(tmp_path):
    model = tiny_model("bert")
    inject_mixup(model, target_modules=["query", "value"], rank=2, formulation="convex")
    perturb(model)
    save_alphas(model, tmp_path)
    files = {p.name for p in tmp_path.iterdir()}
    assert files == {"alphas.safetensors", "alphas.json"}
    fresh = tiny_model("bert")
    names = inject_from_saved(fresh, str(tmp_path / "alphas.safetensors"))
    assert all(n.endswith((".query", ".value")) for n in names) and len(names) == 4
    for (_, a), (_, b) in zip(mixup_layers(model), mixup_layers(fresh)):
        assert torch.equal(a.A, b.A) and torch.equal(a.B, b.B)
        assert b.rank == 2 and b.formulation == "convex"


def test_targets_by_name_list_and_regex():
    model = tiny_model("bert")
    names = inject_mixup(model, target_modules=r".*layer\.0\..*dense")
    assert names and all(".layer.0." in n and n.endswith("dense") for n in names)
    with pytest.raises(ValueError, match="no nn.Linear"):
        inject_mixup(tiny_model("bert"), target_modules=["nonexistent"])


def test_parameter_split_between_levels():
    model = tiny_model("bert")
    inject_mixup(model)
    alphas, weights = alpha_parameters(model), task_parameters(model)
    assert {id(p) for p in alphas}.isdisjoint(id(p) for p in weights)
    assert all(isinstance(m, MixupLinear) for _, m in mixup_layers(model))
    frozen = [p for p in model.parameters() if not p.requires_grad]
    assert len(frozen) == len(list(mixup_layers(model)))  # exactly the W0 of each layer
    assert len(alphas) + len(weights) + len(frozen) == len(list(model.parameters()))


@pytest.mark.parametrize("model_type", ["bert", "bart"])
def test_merge_unmerge_and_disable_in_place(model_type):
    """PEFT's switches on each layer: merged, it runs the merged weight; unmerged, the mixup again;
    disabled, the pretrained weight W0."""
    model = tiny_model(model_type)
    pretrained = logits(model, model_type)
    inject_mixup(model, rank=2)
    perturb(model)
    mixed = logits(model, model_type)
    layers = [layer for _, layer in mixup_layers(model)]
    for layer in layers:
        layer.merge()
    assert all(layer.merged for layer in layers)
    torch.testing.assert_close(logits(model, model_type), mixed, rtol=1e-5, atol=1e-6)
    for layer in layers:
        layer.unmerge()
    torch.testing.assert_close(logits(model, model_type), mixed)
    assert all(torch.equal(layer.base_layer.weight, layer.get_base_layer().weight) for layer in layers)
    for layer in layers:
        layer.disable_adapters = True
    assert not torch.allclose(logits(model, model_type), mixed)
    torch.testing.assert_close(logits(model, model_type), pretrained)  # perturb moved only W, A, B


def test_a_non_finite_weight_is_never_merged(tmp_path):
    model = tiny_model("bert")
    inject_mixup(model)
    name, layer = next(mixup_layers(model))
    with torch.no_grad():
        layer.weight[0, 0] = float("nan")
    with pytest.raises(ValueError, match="non-finite"):
        merge_mixup(model)
    with pytest.raises(ValueError, match="non-finite"):
        layer.merge()
    assert not layer.merged


def test_a_finetuned_mixup_model_restores_exactly(tmp_path):
    from agwm.mixup import MixupModel, save_mixup_model

    model = tiny_model("bert")
    inject_mixup(model, target_modules=["query", "dense"], rank=3, formulation="convex")
    perturb(model)
    save_mixup_model(model, str(tmp_path))
    restored = MixupModel.from_pretrained(str(tmp_path)).base_model.eval()
    assert [(n, layer.rank, layer.formulation) for n, layer in mixup_layers(restored)] == \
        [(n, layer.rank, layer.formulation) for n, layer in mixup_layers(model)]
    for (name, saved), (_, loaded) in zip(model.state_dict().items(), restored.state_dict().items()):
        assert torch.equal(saved, loaded), name
    assert torch.equal(logits(restored, "bert"), logits(model, "bert"))
