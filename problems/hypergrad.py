"""Hypergradient methods registered with Betty (``betty.hypergradient.jvp_fn_mapping``) when
``problems`` is imported, selectable as an inner level's ``Config.type``.

Notation: inner variables w (the task weights W), outer variables lambda (the attention factors
A, B), inner objective L_tr(w, lambda), outer objective L_val(w, lambda), H = d^2 L_tr / dw^2 and
v = dL_val/dw (Betty's ``vector``). Each function returns the indirect part of the hypergradient

    dL_val/dlambda = dL_val/dlambda (direct, computed by Betty) + indirect,

or, when ``sync`` is set, adds it to the outer parameters' ``.grad`` and returns None.

Registered here: ``agwm_darts``, ``agwm_sama``, ``agwm_reverse``, ``agwm_cg``, ``agwm_neumann``.
Why not Betty 0.2.1's own: its ``darts`` returns -d^2 L_tr/(dlambda dw) v without the inner learning
rate xi and evaluates it after the inner step instead of before; its ``cg`` updates the search
direction with the old residual (upstream issue 15); its ``sama`` reads optimizer state torch's
AdamW does not keep; its ``cg`` and ``neumann`` see no weight decay applied by the optimizer. The
tests (``tests/test_hypergrad.py``, ``tests/test_hypergrad_optimizers.py``) show each against an
exact answer.
"""

from __future__ import annotations

import torch
from betty.utils import to_vec
from torch.func import functional_call

from .base import register_hypergradient, rng_state, set_rng_state
from .optimizer_steps import functional_step, group_of, optimizer_kind, step_jacobian


def _grad(output, inputs, **kwargs) -> list[torch.Tensor]:
    grads = torch.autograd.grad(output, inputs, allow_unused=True, **kwargs)
    return [torch.zeros_like(p) if g is None else g for g, p in zip(grads, inputs)]


def _deliver(indirect: list[torch.Tensor], prev, sync: bool):
    if sync:
        prev.set_grads(prev.trainable_parameters(), indirect)
        return None
    return indirect


def _loss_with(curr, weights, batch):
    """L_tr at the inner weights ``weights`` (tensors in place of ``curr``'s own parameters, which
    may carry a graph), the outer variables as they are in the module."""
    names = {id(p): n for n, p in curr.module.named_parameters()}
    replaced = {f"module.{names[id(p)]}": w for p, w in zip(curr.trainable_parameters(), weights)}
    return functional_call(_LossOf(curr), replaced, (batch,), strict=False)


class _LossOf(torch.nn.Module):
    def __init__(self, problem):
        super().__init__()
        self.module, self._problem = problem.module, problem

    def forward(self, batch):
        return self._problem.training_step(batch)


def _last_steps(curr, method: str, count: int):
    history = list(getattr(curr, "step_history", ()))
    if len(history) < count:
        raise RuntimeError(
            f"problem {curr.name!r} kept {len(history)} of the {count} inner step(s) the {method!r} "
            "hypergradient reads back; use a problem of problems/ (LevelProblem) as the inner level"
        )
    return history[-count:]


def _one_step_directions(record, curr, vector, response: str) -> list[torch.Tensor]:
    """u with indirect = -d/dlambda (g . u): xi * v (``sgd``), or -diag(dw'/dg) v, the inner
    optimizer's exact one-step response (``optimizer``)."""
    if response == "sgd":
        return [lr * v for lr, v in zip(record.lrs, vector)]
    kind, params = optimizer_kind(curr.optimizer), curr.trainable_parameters()
    groups = group_of(curr.optimizer, params)
    return [-step_jacobian(kind, group, w, g, state, lr) * v for group, w, g, state, lr, v in
            zip(groups, record.weights, record.grads, record.optimizer_state, record.lrs, vector)]


def _finite_difference(curr, prev, weights, direction, radius, batch, rng) -> list[torch.Tensor]:
    """-d^2 L_tr(w, lambda)/(dlambda dw) u ~= -[dL_tr(w + eps u)/dlambda - dL_tr(w - eps u)/dlambda] / (2 eps),
    eps = radius / ||u||, at w = ``weights`` on ``batch`` with the random state ``rng`` replayed for
    both passes; the inner weights and the random state are put back afterwards."""
    params, outer = curr.trainable_parameters(), prev.trainable_parameters()
    # eps stays a device tensor and the copies are foreach ops: no host sync, few kernel launches
    eps = radius / (torch.linalg.vector_norm(torch.stack(torch._foreach_norm(direction))) + 1e-12)
    step = torch._foreach_mul(direction, eps)
    now = [p.detach().clone() for p in params]
    rng_now = rng_state()

    def outer_grad_at(sign: float) -> list[torch.Tensor]:
        with torch.no_grad():
            torch._foreach_copy_(params, torch._foreach_add(weights, step, alpha=sign))
        set_rng_state(rng)
        return _grad(curr.training_step_exec(batch), outer)

    grad_plus, grad_minus = outer_grad_at(+1.0), outer_grad_at(-1.0)
    with torch.no_grad():
        torch._foreach_copy_(params, now)
    set_rng_state(rng_now)
    return torch._foreach_mul(torch._foreach_sub(grad_minus, grad_plus), 0.5 / eps)


def darts(vector, curr, prev, sync):
    """DARTS (Liu et al. 2018, eqs. 6-8), the hypergradient through the one inner step just taken.

    With w the inner weights before that step, g = dL_tr(w, lambda)/dw, w' the weights after it,
    v = dL_val(w', lambda)/dw' and u the step's response to g applied to v, the indirect part is

        v . dw'/dlambda = -d^2 L_tr(w, lambda)/(dlambda dw) u
                        ~= -[dL_tr(w + eps u, lambda)/dlambda - dL_tr(w - eps u, lambda)/dlambda] / (2 eps),

    eps = ``darts_alpha`` / ||u|| (central finite difference). ``darts_direction=sgd``: u = xi * v,
    as in the paper, where w' = w - xi g (exact for plain SGD); ``optimizer``: u = -diag(dw'/dg) v
    for the inner optimizer actually used (:func:`agwm_problems.optimizer_steps.step_jacobian`; for AdamW
    this matches reverse mode through that one step). Both passes replay the step's batch and
    random state (its dropout masks), so they differentiate the function it stepped on.
    """
    (record,) = _last_steps(curr, "agwm_darts", 1)
    direction = _one_step_directions(record, curr, vector, getattr(curr.config, "darts_direction", "sgd"))
    indirect = _finite_difference(curr, prev, record.weights, direction, curr.config.darts_alpha,
                                  record.batch, record.rng)
    return _deliver(indirect, prev, sync)


def sama(vector, curr, prev, sync):
    """SAMA (Choe et al. 2023, "Making Scalable Meta Learning Practical"): the one-step hypergradient
    with the inner optimizer's update Jacobian as preconditioner, evaluated at the inner weights as
    they are *after* the step (no copy of the weights before it), on the step's batch:

        indirect ~= -[dL_tr(w' + eps u)/dlambda - dL_tr(w' - eps u)/dlambda] / (2 eps),  u = -diag(dw'/dg) v

    eps = ``sama_adam_alpha`` / ||u||. Betty 0.2.1's ``sama`` reads a ``last_grad`` that torch's
    Adam and AdamW do not keep (so its preconditioner used g = 0), drops Adam's bias corrections
    and draws new dropout masks for each pass; here g and the state before the step come from the
    step's record, dw'/dg is exact for torch's SGD, Adam and AdamW, and both passes replay the
    step's random state.
    """
    (record,) = _last_steps(curr, "agwm_sama", 1)
    direction = _one_step_directions(record, curr, vector, "optimizer")
    after = [p.detach().clone() for p in curr.trainable_parameters()]
    indirect = _finite_difference(curr, prev, after, direction, curr.config.sama_adam_alpha,
                                  record.batch, record.rng)
    return _deliver(indirect, prev, sync)


def reverse(vector, curr, prev, sync):
    """Reverse-mode differentiation through the last T = ``unroll_steps`` inner steps (iterative
    differentiation; Finn et al. 2017, Franceschi et al. 2017): from the weights and optimizer state
    kept before the first of them, the T steps of the inner optimizer actually used (its learning
    rate of each step, momentum or Adam moments, weight decay; :func:`functional_step`) are replayed
    with a graph to lambda, each on its own batch and random state, and

        indirect = v . dw_T/dlambda      (w_T the weights after the T-th step)

    by one backward pass. Memory grows with T: the T forward and backward passes are kept.
    """
    records = _last_steps(curr, "agwm_reverse", curr.config.unroll_steps)
    params, outer = curr.trainable_parameters(), prev.trainable_parameters()
    kind, groups = optimizer_kind(curr.optimizer), group_of(curr.optimizer, params)
    weights = [w.clone().requires_grad_(True) for w in records[0].weights]
    states = records[0].optimizer_state
    rng_now = rng_state()
    for record in records:
        set_rng_state(record.rng)
        grads = torch.autograd.grad(_loss_with(curr, weights, record.batch), weights, create_graph=True,
                                    allow_unused=True)
        grads = [torch.zeros_like(w) if g is None else g for g, w in zip(grads, weights)]
        stepped = [functional_step(kind, group, w, g, state, lr) for group, w, g, state, lr in
                   zip(groups, weights, grads, states, record.lrs)]
        weights, states = [w for w, _ in stepped], [state for _, state in stepped]
    set_rng_state(rng_now)
    indirect = _grad(weights, outer, grad_outputs=vector)
    return _deliver(indirect, prev, sync)


def _decay_of(curr) -> list[float]:
    """Each inner parameter's weight decay when ``implicit_weight_decay`` is set, else zeros."""
    params = curr.trainable_parameters()
    if not getattr(curr.config, "implicit_weight_decay", False):
        return [0.0] * len(params)
    return [group.get("weight_decay", 0.0) for group in group_of(curr.optimizer, params)]


def _inner_hessian(curr):
    """(inner gradient with its graph, x -> (H + diag(wd)) x) at the inner level's current point
    and batch: H the Hessian of L_tr in w, wd each parameter's optimizer weight decay (see
    ``implicit_weight_decay``)."""
    params = curr.trainable_parameters()
    inner_grad = torch.autograd.grad(curr.training_step_exec(curr.cur_batch), params, create_graph=True)
    decay = _decay_of(curr)

    def hvp(x):
        hx = _grad(inner_grad, params, grad_outputs=x, retain_graph=True)
        return [h + wd * xi if wd else h for h, xi, wd in zip(hx, x, decay)]

    return inner_grad, hvp


def cg(vector, curr, prev, sync):
    """Implicit differentiation with conjugate gradient (Rajeswaran et al. 2019).

    At the current inner point w, solve (H + diag(wd)) x = v (the Hessian of L_tr plus the
    optimizer's weight decay; see ``implicit_weight_decay``) with ``cg_iterations`` steps of
    conjugate gradient on ``cg_alpha`` times that operator (the solution is rescaled by
    ``cg_alpha``, so the scale changes conditioning, not the answer), then the indirect part is

        -d^2 L_tr(w, lambda)/(dlambda dw) x  =  -d/dlambda (dL_tr/dw . x).
    """
    outer, scale = prev.trainable_parameters(), curr.config.cg_alpha
    inner_grad, hvp = _inner_hessian(curr)
    x = [torch.zeros_like(v) for v in vector]
    r = [v.detach().clone() for v in vector]
    p = [ri.clone() for ri in r]
    rr = to_vec(r).dot(to_vec(r))
    for _ in range(curr.config.cg_iterations):
        if rr.item() == 0.0:
            break
        hp = [scale * h for h in hvp(p)]
        step = rr / to_vec(p).dot(to_vec(hp))
        x = [xi + step * pi for xi, pi in zip(x, p)]
        r = [ri - step * hi for ri, hi in zip(r, hp)]
        rr_new = to_vec(r).dot(to_vec(r))
        p = [ri + (rr_new / rr) * pi for ri, pi in zip(r, p)]
        rr = rr_new
    x = [scale * xi for xi in x]
    indirect = [-g for g in _grad(inner_grad, outer, grad_outputs=x)]
    return _deliver(indirect, prev, sync)


def largest_eigenvalue(hvp, start: list[torch.Tensor], iterations: int) -> tuple[float, list[torch.Tensor]]:
    """|lambda|_max of the operator ``hvp`` by power iteration from ``start``: (estimate, last vector)."""
    x = start
    estimate = 0.0
    for _ in range(iterations):
        norm = to_vec(x).norm()
        x = [xi / norm for xi in x]
        hx = hvp(x)
        estimate = to_vec(hx).norm().item()
        x = [h.detach() for h in hx]
    return estimate, x


def neumann(vector, curr, prev, sync):
    """Implicit differentiation with a truncated Neumann series (Lorraine et al. 2020):

        (H + diag(wd))^-1 v ~= alpha sum_{j=0..K} (I - alpha (H + diag(wd)))^j v,   K = ``neumann_iterations``,

    converging when alpha < 2 / lambda_max. ``neumann_alpha=auto`` takes alpha = 1 / lambda_max,
    lambda_max estimated at every outer step by ``neumann_power_iterations`` power iterations
    (warm-started from the previous step's vector) and kept in ``curr.neumann_alpha_used``. Then
    the indirect part is -d/dlambda (dL_tr/dw . x) as for :func:`cg`. Unlike Betty's ``neumann``,
    this one includes the optimizer's weight decay (``implicit_weight_decay``).
    """
    outer = prev.trainable_parameters()
    inner_grad, hvp = _inner_hessian(curr)
    alpha = curr.config.neumann_alpha
    if alpha == "auto":
        start = getattr(curr, "_power_vector", None) or [torch.randn_like(v) for v in vector]
        top, curr._power_vector = largest_eigenvalue(hvp, start, curr.config.neumann_power_iterations)
        alpha = 1.0 / top
    curr.neumann_alpha_used = alpha
    term = [v.detach().clone() for v in vector]
    total = [t.clone() for t in term]
    for _ in range(curr.config.neumann_iterations):
        term = [t - alpha * h for t, h in zip(term, hvp(term))]
        total = [s + t for s, t in zip(total, term)]
    x = [alpha * s for s in total]
    indirect = [-g for g in _grad(inner_grad, outer, grad_outputs=x)]
    return _deliver(indirect, prev, sync)


register_hypergradient("agwm_darts", darts, steps_kept=1,
                       reads_optimizer=lambda config: getattr(config, "darts_direction", "sgd") == "optimizer")
register_hypergradient("agwm_sama", sama, steps_kept=1, reads_optimizer=True)
register_hypergradient("agwm_reverse", reverse, steps_kept=lambda config: config.unroll_steps, reads_optimizer=True)
register_hypergradient("agwm_cg", cg)
register_hypergradient("agwm_neumann", neumann)
