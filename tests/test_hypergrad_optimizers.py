"""The hypergradient methods against exact answers when the inner level is trained by a real
optimizer (SGD with momentum and weight decay, AdamW with its schedule and decoupled decay), on a
float64 data-reweighting problem: per-example weights lambda on a logistic regression,

    L_tr(w, lambda) = 1/n sum_i lambda_i l(x_i . drop(w), y_i),    L_val(w) = 1/m sum_j l(x'_j . w, y'_j),

l the logistic loss and drop() inverted dropout on the weights (``P_DROP``; 0 switches it off).

- reverse (T = 1, 3) against autograd through T optimizer steps written out here from torch's
  update rules (checked to reproduce torch's own optimizer to 1e-12 first);
- optimizer-aware DARTS and SAMA with an AdamW inner level against reverse with T = 1;
- CG and Neumann (``neumann_alpha=auto``) with the optimizer's weight decay against the implicit
  function theorem on L_tr + wd/2 ||w||^2 at its minimiser.
"""

import math

import pytest
import torch
import torch.nn.functional as F
from betty.configs import EngineConfig
from torch import nn

import agwm_problems  # noqa: F401  (registers the methods)
from agwm_problems import AttentionProblem, TaskWeightProblem, build_engine
from agwm_problems.engine_settings import LevelConfig

F64 = torch.float64
D, N, M = 5, 24, 30
P_DROP = 0.3


class Reweighted(nn.Module):
    def __init__(self, w, lam):
        super().__init__()
        self.w = nn.Parameter(w.clone())
        self.lam = nn.Parameter(lam.clone())


def logistic(z, y):
    return F.softplus(z) - y * z


def train_loss(module, batch, p_drop=P_DROP):
    x, y = batch
    w = F.dropout(module.w, p_drop, training=True) if p_drop else module.w
    return (module.lam * logistic(x @ w, y)).mean()


def val_loss(module, batch):
    x, y = batch
    return logistic(x @ module.w, y).mean()


@pytest.fixture(scope="module")
def data():
    g = torch.Generator().manual_seed(3)
    w_true = torch.randn(D, generator=g, dtype=F64)
    x, xv = torch.randn(N, D, generator=g, dtype=F64), torch.randn(M, D, generator=g, dtype=F64)
    y = (torch.rand(N, generator=g, dtype=F64) < torch.sigmoid(x @ w_true)).to(F64)
    yv = (torch.rand(M, generator=g, dtype=F64) < torch.sigmoid(xv @ w_true)).to(F64)
    lam = 0.5 + torch.rand(N, generator=g, dtype=F64)
    w0 = 0.3 * torch.randn(D, generator=g, dtype=F64)
    return (x, y), (xv, yv), lam, w0


def make_optimizer(name, params, lr):
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=0.9, dampening=0.1, weight_decay=0.05)
    return torch.optim.AdamW(params, lr=lr, betas=(0.8, 0.95), eps=1e-6, weight_decay=0.05)


def run(data, inner_type, optimizer, steps, unroll, lr=0.05, w=None, p_drop=P_DROP, **config):
    """``steps`` inner steps on the full batch (linear decay of the learning rate over them), an
    outer step after each ``unroll`` of them with the outer learning rate 0; returns the outer
    problem (its ``last_hypergradient`` is that of the last outer step), the inner one and the model."""
    train, val, lam, w0 = data
    model = Reweighted(w0 if w is None else w, lam)
    opt = make_optimizer(optimizer, [model.w], lr)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda t: 1 - 0.5 * t / steps)
    inner = TaskWeightProblem("inner", LevelConfig(type=inner_type, unroll_steps=unroll, **config), model,
                              lambda m, b: train_loss(m, b, p_drop), [model.w], opt, [train], sched)
    outer = AttentionProblem("outer", LevelConfig(first_order=True, retain_graph=True), model, val_loss,
                             [model.lam], torch.optim.SGD([model.lam], lr=0.0), [val])
    torch.manual_seed(11)
    build_engine(inner, outer, EngineConfig(valid_step=10**9), train_iters=steps).run()
    return outer, inner, model


def written_out_steps(optimizer, w, grad_fn, steps, lr, total):
    """torch's SGD / AdamW update rules written out, differentiable; ``grad_fn(w)`` the gradient."""
    m = v = buf = None
    for t in range(1, steps + 1):
        eta = lr * (1 - 0.5 * (t - 1) / total)
        g = grad_fn(w)
        if optimizer == "sgd":
            g = g + 0.05 * w
            buf = g if buf is None else 0.9 * buf + (1 - 0.1) * g
            w = w - eta * buf
        else:
            w = w * (1 - eta * 0.05)
            m = (1 - 0.8) * g if m is None else 0.8 * m + (1 - 0.8) * g
            v = (1 - 0.95) * g * g if v is None else 0.95 * v + (1 - 0.95) * g * g
            seen = v > 0  # sqrt has no derivative at 0; an entry whose gradient is 0 (dropped) stays 0
            denom = torch.where(seen, torch.where(seen, v, 1.0) / (1 - 0.95 ** t), 0.0).sqrt() + 1e-6
            w = w - eta / (1 - 0.8 ** t) * m / denom
    return w


def reference_through_steps(data, optimizer, steps, lr=0.05):
    """Autograd through ``steps`` written-out optimizer steps with the engine's dropout masks."""
    train, val, lam, w0 = data
    lam_var = lam.clone().requires_grad_(True)
    probe = nn.Module()
    probe.lam = lam_var
    torch.manual_seed(11)

    def grad_fn(w):
        probe.w = w
        return torch.autograd.grad(train_loss(probe, train), w, create_graph=True)[0]

    w_end = written_out_steps(optimizer, w0.clone().requires_grad_(True), grad_fn, steps, lr, steps)
    probe.w = w_end
    return torch.autograd.grad(val_loss(probe, val), lam_var)[0], w_end.detach()


def rel_err(a, b):
    return ((a - b).norm() / b.norm()).item()


@pytest.mark.parametrize("optimizer", ["sgd", "adamw"])
def test_the_written_out_steps_are_torchs(data, optimizer):
    _, _, model = run(data, "agwm_darts", optimizer, steps=3, unroll=1, p_drop=0.0)
    train, _, lam, w0 = data
    probe = nn.Module()
    probe.lam = lam

    def grad_fn(w):
        probe.w = w
        return torch.autograd.grad(train_loss(probe, train, 0.0), w)[0]

    w = written_out_steps(optimizer, w0.clone().requires_grad_(True), grad_fn, 3, 0.05, 3)
    assert torch.allclose(model.w.detach(), w.detach(), rtol=0, atol=1e-12)


@pytest.mark.parametrize("optimizer", ["sgd", "adamw"])
@pytest.mark.parametrize("unroll", [1, 3])
def test_reverse_equals_autograd_through_the_unrolled_steps(data, optimizer, unroll):
    outer, _, model = run(data, "agwm_reverse", optimizer, steps=unroll, unroll=unroll)
    exact, w_end = reference_through_steps(data, optimizer, unroll)
    assert torch.allclose(model.w.detach(), w_end, rtol=0, atol=1e-12)  # the same masks and steps
    assert rel_err(outer.last_hypergradient[0], exact) <= 1e-8


@pytest.mark.parametrize("inner_type, config", [("agwm_darts", {"darts_direction": "optimizer"}),
                                                ("agwm_sama", {"sama_adam_alpha": 0.01})])
def test_one_step_methods_match_reverse_mode_for_adamw(data, inner_type, config):
    """After two AdamW steps (moments warm), the third step's hypergradient."""
    reverse, _, _ = run(data, "agwm_reverse", "adamw", steps=3, unroll=1, lr=1e-3)
    got, _, _ = run(data, inner_type, "adamw", steps=3, unroll=1, lr=1e-3, **config)
    assert rel_err(got.last_hypergradient[0], reverse.last_hypergradient[0]) <= 1e-3


def test_paper_darts_is_off_for_adamw(data):
    """The xi * v direction assumes an SGD step: with AdamW it misses the one-step answer."""
    reverse, _, _ = run(data, "agwm_reverse", "adamw", steps=3, unroll=1, lr=1e-3)
    sgd_darts, _, _ = run(data, "agwm_darts", "adamw", steps=3, unroll=1, lr=1e-3)
    assert rel_err(sgd_darts.last_hypergradient[0], reverse.last_hypergradient[0]) > 0.5


def implicit_answer(data, wd):
    """w* = argmin L_tr + wd/2 ||w||^2 (Newton, no dropout) and dL_val(w*)/dlambda by the implicit
    function theorem: -d^2 L_tr/(dlambda dw) (H + wd I)^-1 dL_val/dw."""
    train, val, lam, w0 = data
    probe = nn.Module()

    def objective(w, lam_):
        probe.w, probe.lam = w, lam_
        return train_loss(probe, train, 0.0) + 0.5 * wd * (w * w).sum()

    w = w0.clone()
    for _ in range(50):
        grad = torch.autograd.functional.jacobian(lambda w_: objective(w_, lam), w)
        w = w - torch.linalg.solve(torch.autograd.functional.hessian(lambda w_: objective(w_, lam), w), grad)
    assert grad.norm() < 1e-12
    hessian = torch.autograd.functional.hessian(lambda w_: objective(w_, lam), w)
    mixed = torch.autograd.functional.jacobian(
        lambda lam_: torch.autograd.functional.jacobian(lambda w_: objective(w_, lam_), w, create_graph=True), lam)
    probe.w = w.clone().requires_grad_(True)
    v = torch.autograd.grad(val_loss(probe, val), probe.w)[0]
    return w, -mixed.T @ torch.linalg.solve(hessian, v), hessian


@pytest.mark.parametrize("inner_type, config, tolerance", [
    ("agwm_cg", {"cg_iterations": 20}, 1e-4),
    ("agwm_neumann", {"neumann_iterations": 300, "neumann_alpha": "auto", "neumann_power_iterations": 50}, 1e-3)])
def test_implicit_methods_see_the_optimizers_weight_decay(data, inner_type, config, tolerance):
    """At the minimiser of L_tr + wd/2 ||w||^2 (SGD with weight_decay=wd and learning rate 0, so
    the step stays there): within ``tolerance``; without the decay term, clearly off."""
    w_star, exact, _ = implicit_answer(data, wd=0.05)
    got, _, _ = run(data, inner_type, "sgd", steps=1, unroll=1, lr=0.0, w=w_star, p_drop=0.0, **config)
    assert rel_err(got.last_hypergradient[0], exact) <= tolerance
    blind, _, _ = run(data, inner_type, "sgd", steps=1, unroll=1, lr=0.0, w=w_star, p_drop=0.0,
                   implicit_weight_decay=False, **config)
    assert rel_err(blind.last_hypergradient[0], exact) > 10 * tolerance


def test_auto_neumann_step_is_one_over_the_largest_eigenvalue(data):
    w_star, _, hessian = implicit_answer(data, wd=0.05)
    config = {"neumann_iterations": 1, "neumann_alpha": "auto", "neumann_power_iterations": 100}
    _, inner, _ = run(data, "agwm_neumann", "sgd", steps=1, unroll=1, lr=0.0, w=w_star, p_drop=0.0, **config)
    top = torch.linalg.eigvalsh(hessian).max().item()
    assert math.isclose(inner.neumann_alpha_used, 1.0 / top, rel_tol=1e-6)
