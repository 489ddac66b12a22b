"""The Betty problems on a tiny mixup BERT: the bi-level search and the joint problem."""

import re
import subprocess
import sys

import pytest
import torch
from betty.configs import Config, EngineConfig
from torch.func import functional_call
from transformers import AutoConfig, AutoModelForSequenceClassification

import agwm_problems  # noqa: F401
from agwm.mixup import alpha_parameters, inject_mixup, mixup_layers, project_alphas, task_parameters
from agwm.training.averaging import UniformSoup
from agwm.training.build import model_loss
from agwm_problems import AttentionProblem, JointProblem, TaskWeightProblem, build_engine
from agwm_problems.engine_settings import LevelConfig, load_engine_settings
from agwm_problems.overrides import ConfigError
from tests.conftest import REPO


def tiny_mixup_bert(dtype=torch.float32, dropout=0.1):
    torch.manual_seed(0)
    config = AutoConfig.for_model("bert", vocab_size=50, hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
                                  intermediate_size=16, max_position_embeddings=16, num_labels=2,
                                  hidden_dropout_prob=dropout, attention_probs_dropout_prob=dropout)
    model = AutoModelForSequenceClassification.from_config(config).to(dtype).train()
    inject_mixup(model, seed=0, init_mean=0.7, init_std=0.2)
    return model


def batches(n, seed):
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        ids = torch.randint(1, 50, (4, 6), generator=g)
        out.append({"input_ids": ids, "attention_mask": torch.ones_like(ids),
                    "labels": torch.randint(0, 2, (4,), generator=g)})
    return out


class RecordingAttention(AttentionProblem):
    def grad_callback(self):
        self.hypergrad = [p.grad.detach().clone() for p in self.trainable_parameters()]


def bilevel(model, inner_config, inner_lr, alpha_lr, train, val, outer_cls=AttentionProblem):
    weights, alphas = task_parameters(model), alpha_parameters(model)
    inner = TaskWeightProblem("inner", inner_config, model, model_loss, weights,
                              torch.optim.SGD(weights, lr=inner_lr), train)
    outer = outer_cls("outer", Config(first_order=True, retain_graph=True), model, model_loss, alphas,
                      torch.optim.SGD(alphas, lr=alpha_lr), val, projection=project_alphas)
    return inner, outer


def test_search_moves_alpha_keeps_it_in_the_box_and_never_touches_w0():
    model = tiny_mixup_bert()
    w0 = {n: layer.base_layer.weight.detach().clone() for n, layer in mixup_layers(model)}
    a0 = [p.detach().clone() for p in alpha_parameters(model)]
    w_start = [p.detach().clone() for p in task_parameters(model)]
    inner, outer = bilevel(model, Config(type="agwm_darts"), 0.1, 5.0, batches(3, 1), batches(2, 2))
    build_engine(inner, outer, EngineConfig(valid_step=10**9), train_iters=6).run()
    alphas = alpha_parameters(model)
    assert any((a - b).abs().max() > 1e-3 for a, b in zip(alphas, a0))
    assert all(a.min() >= 0 and a.max() <= 1 for a in alphas)
    assert any(a.min() == 0 or a.max() == 1 for a in alphas)  # the large step hit the box: projected
    assert all(torch.equal(layer.base_layer.weight, w0[n]) for n, layer in mixup_layers(model))
    assert any(not torch.equal(a, b) for a, b in zip(task_parameters(model), w_start))


def test_darts_replays_the_inner_dropout_and_matches_autograd_on_the_mixup_model():
    """The hypergradient of the first outer step against autograd through the same inner SGD
    step, dropout on: the finite differences must see the inner step's dropout masks."""
    torch.manual_seed(0)
    model = tiny_mixup_bert(torch.float64, dropout=0.3)
    train, val = batches(1, 1), batches(1, 2)
    xi = 0.5
    weights, alphas = task_parameters(model), alpha_parameters(model)
    names = {id(p): n for n, p in model.named_parameters()}

    torch.manual_seed(123)
    w = {names[id(p)]: p.detach().clone().requires_grad_(True) for p in weights}
    lam = {names[id(p)]: p.detach().clone().requires_grad_(True) for p in alphas}
    inner_loss = functional_call(model, {**w, **lam}, kwargs=train[0]).loss
    grads = torch.autograd.grad(inner_loss, list(w.values()), create_graph=True)
    stepped = {n: p - xi * g for (n, p), g in zip(w.items(), grads)}
    outer_loss = functional_call(model, {**stepped, **lam}, kwargs=val[0]).loss
    exact = torch.autograd.grad(outer_loss, list(lam.values()))

    inner, outer = bilevel(model, Config(type="agwm_darts", darts_alpha=1e-4), xi, 0.0, train, val,
                           outer_cls=RecordingAttention)
    torch.manual_seed(123)
    build_engine(inner, outer, EngineConfig(valid_step=10**9), train_iters=1).run()
    got, want = torch.cat([g.flatten() for g in outer.hypergrad]), torch.cat([g.flatten() for g in exact])
    assert ((got - want).norm() / want.norm()).item() < 1e-3


def test_joint_problem_trains_weights_and_alpha_together_inside_the_box():
    model = tiny_mixup_bert()
    weights, alphas = task_parameters(model), alpha_parameters(model)
    before = [p.detach().clone() for p in weights + alphas]
    optimizer = torch.optim.SGD([{"params": weights, "lr": 0.1}, {"params": alphas, "lr": 5.0}])
    joint = JointProblem("joint", Config(), model, model_loss, weights + alphas, optimizer, batches(3, 1),
                         projection=project_alphas, constrained_parameters=alphas)
    build_engine(joint, engine=EngineConfig(valid_step=10**9), train_iters=4).run()
    after = weights + alphas
    assert any(not torch.equal(a, b) for a, b in zip(after[:len(weights)], before))
    assert any(not torch.equal(a, b) for a, b in zip(after[len(weights):], before[len(weights):]))
    assert all(a.min() >= 0 and a.max() <= 1 for a in alphas)


def test_fold_average_of_the_factors():
    states = [{"l.A": torch.tensor([0.2, 1.0]), "l.B": torch.tensor([[0.0]])},
              {"l.A": torch.tensor([0.4, 0.0]), "l.B": torch.tensor([[1.0]])}]
    soup = UniformSoup()
    for state in states:
        soup.add(state)
    avg = soup.average()
    assert torch.allclose(avg["l.A"], torch.tensor([0.3, 0.5])) and torch.allclose(avg["l.B"], torch.tensor([[0.5]]))
    with pytest.raises(ValueError):
        UniformSoup().average()


def adamw_bilevel(model, inner_type, train, val, lr=1e-3, **config):
    """The search's inner level as the search builds it (AdamW, decoupled decay, linear decay)."""
    weights, alphas = task_parameters(model), alpha_parameters(model)
    w_opt = torch.optim.AdamW(weights, lr=lr, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.LambdaLR(w_opt, lambda t: 1 - 0.2 * t)
    inner = TaskWeightProblem("inner", LevelConfig(type=inner_type, **config), model, model_loss, weights,
                              w_opt, train, sched)
    outer = AttentionProblem("outer", LevelConfig(first_order=True, retain_graph=True), model, model_loss, alphas,
                             torch.optim.SGD(alphas, lr=0.0), val, projection=project_alphas)
    torch.manual_seed(123)
    build_engine(inner, outer, EngineConfig(valid_step=10**9), train_iters=3).run()
    return torch.cat([g.flatten() for g in outer.last_hypergradient])


def test_optimizer_aware_darts_matches_reverse_mode_on_the_mixup_model_with_adamw_and_dropout():
    """The third outer step's hypergradient (three AdamW steps, dropout 0.3), float64."""
    train, val = batches(3, 1), batches(3, 2)
    reverse = adamw_bilevel(tiny_mixup_bert(torch.float64, dropout=0.3), "agwm_reverse", train, val)
    got = adamw_bilevel(tiny_mixup_bert(torch.float64, dropout=0.3), "agwm_darts", train, val,
                        darts_direction="optimizer", darts_alpha=1e-4)
    assert ((got - reverse).norm() / reverse.norm()).item() < 1e-3


def test_sama_differs_from_reverse_mode_by_the_step_it_evaluates_after():
    """SAMA evaluates the same one-step term at the weights after the step: its gap to reverse
    mode is small and shrinks with the step (the learning rate)."""
    train, val = batches(3, 1), batches(3, 2)
    gaps = []
    for lr in (1e-3, 1e-4):
        reverse = adamw_bilevel(tiny_mixup_bert(torch.float64, dropout=0.3), "agwm_reverse", train, val, lr=lr)
        got = adamw_bilevel(tiny_mixup_bert(torch.float64, dropout=0.3), "agwm_sama", train, val, lr=lr,
                            sama_adam_alpha=1e-4)
        gaps.append(((got - reverse).norm() / reverse.norm()).item())
    assert gaps[0] < 1e-2 and gaps[1] < gaps[0] / 5


def test_importing_problems_alone_registers_every_method():
    code = ("import agwm_problems; from betty.hypergradient import jvp_fn_mapping; "
            "print(sorted(k for k in jvp_fn_mapping if k.startswith('agwm_')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == str(sorted(["agwm_cg", "agwm_darts", "agwm_neumann", "agwm_reverse", "agwm_sama"]))


@pytest.mark.slow
def test_problems_imports_without_agwm_and_a_users_problems_folder_shadows_neither(tmp_path, glue_dir):
    """The repository's problems/ and engine_configs/ install as agwm_problems and agwm_engine_configs: a
    folder holding directories of those names (a user's own study) shadows neither, and agwm_problems
    needs nothing of agwm."""
    for name in ("problems", "engine_configs"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "__init__.py").write_text("raise ImportError('the user folder was imported')\n")
    (tmp_path / "engine_configs" / "darts.yaml").write_text("not: [an engine config\n")
    code = ("import sys, agwm_problems; print(agwm_problems.__file__); print(agwm_problems.engine_config_dir()); "
            "print([m for m in sys.modules if m == 'agwm' or m.startswith('agwm.')])")
    lines = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                           cwd=tmp_path).stdout.splitlines()
    assert lines[0] == str(REPO / "problems" / "__init__.py") and lines[1] == str(REPO / "engine_configs")
    assert lines[2] == "[]"
    done = subprocess.run([sys.executable, "-m", "agwm", "search", "--task", "rte", "--data-dir", glue_dir,
                           "--train-size", "8", "--max-steps", "1", "--hypergrad", "darts", "--batch-size", "0",
                           "--output-dir", "out"], capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 2 and done.stderr.strip() == "error: --batch-size 0 is not allowed: at least 1"
    assert not (tmp_path / "out").exists()


def test_an_unregistered_method_stops_when_the_level_is_built():
    model = tiny_mixup_bert()
    weights = task_parameters(model)
    with pytest.raises(ValueError, match="Config.type='agwm_nope' is not allowed: one of .*agwm_reverse"):
        TaskWeightProblem("inner", Config(type="agwm_nope"), model, model_loss, weights,
                          torch.optim.SGD(weights, lr=0.1), batches(1, 1))


@pytest.mark.parametrize("path", sorted((REPO / "engine_configs").glob("*.yaml")), ids=lambda p: p.stem)
def test_every_shipped_engine_config_loads_through_problems(path):
    settings = load_engine_settings(str(path))
    assert isinstance(settings.inner, LevelConfig) and settings.outer.first_order


@pytest.mark.parametrize("override, message", [
    ("inner.neumann_alpha=fast", "inner.neumann_alpha=fast is not allowed: a finite number above 0, or auto"),
    ("inner.darts_direction=adam", "inner.darts_direction=adam is not allowed: one of sgd, optimizer"),
    ("inner.darts_alpha=0", "inner.darts_alpha=0.0 is not allowed: a finite number above 0"),
    ("inner.unroll_steps=0", "inner.unroll_steps=0 is not allowed: at least 1"),
    ("inner.nope=1", "unknown key 'inner.nope'")])
def test_engine_settings_refuse_bad_values_with_one_line(override, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_engine_settings(str(REPO / "engine_configs" / "neumann.yaml"), [override])
