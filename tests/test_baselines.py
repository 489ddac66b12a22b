"""Each baseline's defining property, on a tiny BERT and real MRPC examples."""

import dataclasses
import re

import pytest
import torch
from torch import nn

from agwm.baselines.consistency.recipe import r3f_loss, r_dropout_loss, symmetric_divergence
from agwm.baselines.mixout.recipe import MixoutLinear
from agwm.baselines.peft_tuning.recipe import PrefixTuningUnsupported, wrap_with_peft
from agwm.baselines.reinit.recipe import reinit_top_layers
from agwm.baselines.subnetworks.recipe import BernoulliGradientMask, DynamicSelection, top_fraction_masks
from agwm.data import get_task, make_loader
from agwm.errors import ConfigError
from agwm.finetune import make_recipe, run_finetune, train
from agwm.settings import build_run_config
from agwm.training.averaging import UniformSoup
from agwm.training.build import build_model, load_run_data, model_loss
from agwm.training.device import device_of
from agwm.training.log import RunLog

CPU = torch.device("cpu")


@pytest.fixture
def run(tiny_model_dir, glue_dir, tmp_path):
    """A configuration builder and the data of a 24-example MRPC run (2 epochs of 6 batches of 4)."""
    def make(method="vanilla", *overrides):
        return build_run_config({"task": "mrpc", "train_size": 24, "seed": 3, "data_dir": glue_dir,
                                 "model": tiny_model_dir, "output_dir": str(tmp_path), "batch_size": 4,
                                 "finetune.method": method}, ["finetune.epochs=2", "finetune.lr=1e-3", *overrides])
    return make


def trained(cfg, tmp_path):
    data = load_run_data(cfg, CPU)
    recipe = make_recipe(cfg)
    model, _, _ = train(cfg, data, recipe, RunLog(str(tmp_path)))
    return model, recipe


def pretrained(cfg):
    model = build_model(cfg, get_task(cfg.task), with_mixup=False, device=CPU)
    return {k: v.clone() for k, v in model.state_dict().items()}


def test_mixout_with_p_zero_trains_exactly_like_vanilla(run, tmp_path):
    vanilla, _ = trained(run("vanilla"), tmp_path)
    mixout, _ = trained(run("mixout", "mixout.p=0"), tmp_path)
    for key, value in vanilla.state_dict().items():
        torch.testing.assert_close(mixout.state_dict()[key], value, rtol=0, atol=0)
    changed, _ = trained(run("mixout", "mixout.p=0.5"), tmp_path)
    assert not torch.equal(changed.state_dict()["bert.encoder.layer.0.attention.self.query.weight"],
                           vanilla.state_dict()["bert.encoder.layer.0.attention.self.query.weight"])


def test_mixout_weight_is_w_in_expectation_and_at_evaluation():
    torch.manual_seed(0)
    base = nn.Linear(6, 5)
    layer = MixoutLinear(base, p=0.6, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        layer.weight.add_(torch.randn_like(layer.weight))
    mean = torch.stack([layer.mixed_weight() for _ in range(20000)]).mean(0)
    torch.testing.assert_close(mean, layer.weight.detach(), atol=0.05, rtol=0)
    one = layer.mixed_weight()  # each entry is (W0 - p W0) / (1 - p) = W0 or (W - p W0) / (1 - p)
    w, w0 = layer.weight.detach(), base.weight.detach()
    assert torch.all(torch.isclose(one, w0, atol=1e-6) | torch.isclose(one, (w - 0.6 * w0) / 0.4, atol=1e-6))
    layer.eval()
    assert torch.equal(layer.mixed_weight(), layer.weight)


def test_child_tuning_d_updates_only_its_child_network(run, tmp_path):
    cfg = run("child-tuning-d", "child_tuning.reserve_p=0.2")
    before = pretrained(cfg)
    model, recipe = trained(cfg, tmp_path)
    masks = recipe.mask.masks
    kept = sum(int(m.sum()) for m in masks.values()) / sum(m.numel() for m in masks.values())
    assert 0.19 < kept < 0.21
    after = model.state_dict()
    for name, mask in masks.items():
        assert torch.equal(after[name][~mask], before[name][~mask])  # outside the child: unchanged
    inside = torch.cat([(after[n][m] != before[n][m]).flatten() for n, m in masks.items()])
    assert inside.float().mean() > 0.9  # the child's weights are trained
    assert all(".layer." in name for name in masks)
    assert not torch.equal(after["bert.embeddings.word_embeddings.weight"],
                           before["bert.embeddings.word_embeddings.weight"])  # not a target: trained fully


def test_child_tuning_f_masks_gradients_by_bernoulli_and_rescales():
    p = nn.Parameter(torch.zeros(200, 200))
    p.grad = torch.ones_like(p)
    BernoulliGradientMask({"p": p}, 0.25, torch.Generator().manual_seed(0)).before_step()
    values = set(p.grad.unique().tolist())
    assert values == {0.0, 4.0} and abs(p.grad.mean().item() - 1.0) < 0.03


def test_top_fraction_masks_take_one_threshold_over_all_tensors():
    masks = top_fraction_masks({"a": torch.tensor([1.0, 5.0, 3.0]), "b": torch.tensor([[4.0, 2.0, 6.0]])}, 0.5)
    assert masks["a"].tolist() == [False, True, False] and masks["b"].tolist() == [[True, False, True]]


def test_dps_updates_everything_in_stage_one_and_only_the_selection_in_stage_two():
    torch.manual_seed(0)
    layer = nn.Linear(10, 10)
    params = {"weight": layer.weight}
    optimizer = torch.optim.AdamW(layer.parameters(), lr=0.1, weight_decay=0.1)
    dps = DynamicSelection(params, reserve_p=0.3, window=2)
    x = torch.randn(8, 10)
    history = []
    for step in range(4):
        before = layer.weight.detach().clone()
        layer(x).pow(2).sum().backward()
        gradient = layer.weight.grad.clone()
        dps.before_step()
        optimizer.step()
        dps.after_step()
        optimizer.zero_grad()
        history.append((before, layer.weight.detach().clone(), gradient))
    for before, after, _ in history[:2]:  # stage I
        assert torch.all(before != after)
    accumulated = history[0][2] + history[1][2]
    selected = top_fraction_masks({"weight": accumulated.abs()}, 0.3)["weight"]
    assert selected.sum() == 30
    for before, after, _ in history[2:]:  # stage II
        assert torch.equal(after[~selected], before[~selected]) and torch.all(after[selected] != before[selected])


def test_consistency_terms_vanish_without_randomness_and_are_symmetric(run):
    cfg = run()
    data = load_run_data(cfg, CPU)
    model = build_model(cfg, data.task, with_mixup=False, device=data.device).eval()  # no dropout: both passes agree
    device = device_of(model)
    batch = next(iter(make_loader(data.train, data.tokenizer, 4, shuffle=False, device=device)))
    plain = model_loss(model, batch)
    torch.testing.assert_close(r_dropout_loss(model, batch, alpha=1.0), plain)
    torch.testing.assert_close(r3f_loss(model, batch, "normal", 0.0, 1.0, torch.Generator(device)), plain)
    a, b = torch.randn(4, 3), torch.randn(4, 3)
    p, q = a.softmax(-1), b.softmax(-1)
    manual = ((p * (p / q).log()).sum(-1) + (q * (q / p).log()).sum(-1)).mean()
    torch.testing.assert_close(symmetric_divergence(a, b, False), manual)
    torch.testing.assert_close(symmetric_divergence(b, a, False), manual)
    assert symmetric_divergence(a, a, False).item() == pytest.approx(0.0, abs=1e-6)
    noisy = r3f_loss(model, batch, "uniform", 1.0, 1.0, torch.Generator(device).manual_seed(0))
    assert noisy > plain


def test_re_init_changes_exactly_the_top_layers_and_the_pooler(run):
    cfg = run()
    model = build_model(cfg, get_task(cfg.task), with_mixup=False, device=CPU)
    model.bert.encoder.layer.append(type(model.bert.encoder.layer[0])(model.config).to(device_of(model)))  # 2 layers
    before = {k: v.clone() for k, v in model.state_dict().items()}
    names = reinit_top_layers(model, 1, seed=5)
    assert names == ["bert.encoder.layer.1", "bert.pooler"]
    for key, value in model.state_dict().items():
        moved = not torch.equal(value, before[key])
        in_reinit = key.startswith(("bert.encoder.layer.1.", "bert.pooler."))
        if key.endswith("weight") and "LayerNorm" not in key:
            assert moved == in_reinit, key
        elif not in_reinit:
            assert not moved, key
    with pytest.raises(ValueError, match="reinit.layers=3 is not allowed"):
        reinit_top_layers(model, 3, seed=5)


def test_prefix_tuning_reaches_attention_and_a_model_without_a_cache_argument_is_named(run):
    cfg = run("prefix", "peft.virtual_tokens=4")
    model = build_model(cfg, get_task(cfg.task), with_mixup=False, device=CPU).eval()
    batch = {"input_ids": torch.tensor([[101, 2023, 102, 0]]), "attention_mask": torch.tensor([[1, 1, 1, 0]])}
    batch = {k: v.to(device_of(model)) for k, v in batch.items()}
    plain = model(**batch).logits
    wrapped = wrap_with_peft(model, "prefix", cfg.peft).eval()
    assert not torch.allclose(wrapped(**batch).logits, plain)  # the prefix is attended to, not dropped

    class NoCache(nn.Module):
        def forward(self, input_ids=None, attention_mask=None):
            return input_ids

    with pytest.raises(PrefixTuningUnsupported, match="finetune.method=prefix is not allowed with NoCache"):
        wrap_with_peft(NoCache(), "prefix", cfg.peft)


@pytest.mark.parametrize("method", ["lora", "prefix", "prompt"])
def test_peft_methods_leave_the_pretrained_weights_unchanged(run, tmp_path, method):
    cfg = run(method, "peft.virtual_tokens=4")
    before = pretrained(cfg)
    data = load_run_data(cfg, CPU)
    recipe = make_recipe(cfg)
    wrapped, _, _ = train(dataclasses.replace(cfg), data, _KeepWrapped(recipe), RunLog(str(tmp_path)))
    trainable = {n for n, p in wrapped.named_parameters() if p.requires_grad}
    assert trainable and all("classifier" in n or method in n or "prompt" in n for n in trainable), trainable
    base = wrapped.get_base_model().state_dict()
    for key, value in before.items():
        if key.startswith("bert."):
            stored = base.get(key, base.get(key.replace(".weight", ".base_layer.weight")))
            stored = stored if stored is not None else base[key.replace(".bias", ".base_layer.bias")]
            assert torch.equal(stored, value), key


class _KeepWrapped:
    """The recipe, but the model is returned still wrapped (to read the base weights)."""

    def __init__(self, recipe):
        self.recipe = recipe

    def __getattr__(self, name):
        return getattr(self.recipe, name)

    def finished(self, model):
        return model


def test_soup_members_share_their_start_and_differ_in_order_and_dropout(run, tmp_path, monkeypatch):
    import agwm.finetune

    cfg = run("soup")
    data = load_run_data(cfg, CPU)
    starts = []
    original = agwm.finetune.build_model

    def recording_build_model(*args, **kwargs):
        model = original(*args, **kwargs)
        starts.append({k: v.clone() for k, v in model.state_dict().items()})
        return model

    monkeypatch.setattr(agwm.finetune, "build_model", recording_build_model)
    ends = [train(cfg, data, make_recipe(cfg), RunLog(str(tmp_path)), member=k)[0].state_dict() for k in (0, 1)]
    assert all(torch.equal(starts[0][k], starts[1][k]) for k in starts[0])  # head initialisation included
    assert not torch.equal(ends[0]["classifier.weight"], ends[1]["classifier.weight"])


def test_soup_is_the_mean_of_its_members():
    half = torch.float16
    members = [{"w": torch.tensor([1.0, 2.0]), "h": torch.tensor([1.0], dtype=half), "ids": torch.tensor([0, 1])},
               {"w": torch.tensor([3.0, 6.0]), "h": torch.tensor([2.0], dtype=half), "ids": torch.tensor([0, 1])}]
    soup = UniformSoup()
    for member in members:
        soup.add(member)
    average = soup.average()
    assert average["w"].tolist() == [2.0, 4.0] and average["ids"].tolist() == [0, 1]
    assert average["h"].dtype == torch.float16 and average["h"].item() == 1.5
    assert members[0]["w"].tolist() == [1.0, 2.0]  # the members are not changed
    with pytest.raises(ValueError, match="ids"):
        soup.add({"w": members[1]["w"], "h": members[1]["h"], "ids": torch.tensor([1, 1])})
    with pytest.raises(ValueError, match="differ from the first's"):
        soup.add({"w": members[1]["w"]})
    with pytest.raises(ValueError, match="at least one member"):
        UniformSoup().average()


@pytest.mark.parametrize("method", ["soup", "dps", "child-tuning-f", "r3f", "r-dropout", "lora"])
def test_each_method_runs_through_the_finetune_entry_point(run, method):
    cfg = run(method, "soup.members=2", "finetune.epochs=1")
    metrics = run_finetune(cfg)
    assert metrics["method"] == method and metrics["score"] == metrics["dev"][metrics["metric"]]
    if method == "soup":
        assert len(metrics["member_scores"]) == 2
        from agwm.experiments.methods import grid_method

        outcome = grid_method("soup")(cfg, [])  # what the grid records
        assert outcome["member_scores"] == metrics["member_scores"] and outcome["score"] == metrics["score"]


def test_bad_baseline_settings_are_named(run):
    for override, message in (("mixout.p=1", "mixout.p=1 is not allowed: in [0, 1)"),
                              ("r3f.noise=laplace", "r3f.noise=laplace is not allowed: one of uniform, normal"),
                              ("child_tuning.target=(", "child_tuning.target=( is not allowed: a regular expression"),
                              ("finetune.method=lasso", "finetune.method=lasso is not allowed: one of vanilla")):
        with pytest.raises(ConfigError, match=re.escape(message)):
            run("vanilla", override)
