"""Hypergradient methods registered with Betty (``betty.hypergradient.jvp_fn_mapping``) when
``problems`` is imported, selectable as an inner level's ``Config.type``.

Notation: inner variables w (the task weights W), outer variables lambda (the attention factors
A, B), inner objective L_tr(w, lambda), outer objective L_val(w, lambda), H = d^2 L_tr / dw^2 and
v = dL_val/dw (Betty's ``vector``). Each function returns the indirect part of the hypergradient

    dL_val/dlambda = dL_val/dlambda (direct, computed by Betty) + indirect,

or, when ``sync`` is set, adds it to the outer parameters' ``.grad`` and returns None.

Why not Betty 0.2.1's own ``darts`` and ``cg``: its ``darts`` returns -d^2 L_tr/(dlambda dw) v
without the inner learning rate xi and evaluates it after the inner step instead of before, and its
``cg`` updates the search direction with the old residual (upstream issue 15), so neither matches
the formula it names (``tests/test_hypergrad.py`` shows it). Its ``neumann`` is right and is used
as it is.
"""

from __future__ import annotations

from contextlib import nullcontext

import torch
from betty.utils import to_vec

from .base import register_hypergradient, rng_state, set_rng_state


def _grad(output, inputs, **kwargs) -> list[torch.Tensor]:
    grads = torch.autograd.grad(output, inputs, allow_unused=True, **kwargs)
    return [torch.zeros_like(p) if g is None else g for g, p in zip(grads, inputs)]


def _deliver(indirect: list[torch.Tensor], prev, sync: bool):
    if sync:
        prev.set_grads(prev.trainable_parameters(), indirect)
        return None
    return indirect


def darts(vector, curr, prev, sync):
    """DARTS (Liu et al. 2018, eqs. 6-8), the hypergradient through the one inner step just taken.

    With w the inner weights before that step, w' = w - xi * dL_tr(w, lambda)/dw after it (xi the
    inner learning rate of each weight), v = dL_val(w', lambda)/dw' and u = xi * v, the indirect
    part is

        -d^2 L_tr(w, lambda)/(dlambda dw) u
        ~= -[dL_tr(w + eps u, lambda)/dlambda - dL_tr(w - eps u, lambda)/dlambda] / (2 eps),

    eps = ``darts_alpha`` / ||u|| (central finite difference). Both passes replay the inner step's
    batch and random state (its dropout masks), so they differentiate the function it stepped on.
    ``curr`` must keep ``pre_step_state`` (weights, learning rates, batch and random state before
    its last optimizer step); the problems in ``problems/`` do so for a method that sets
    ``needs_pre_step_state``.
    """
    state = getattr(curr, "pre_step_state", None)
    if state is None:
        raise RuntimeError(
            f"problem {curr.name!r} kept no pre_step_state; the 'agwm_darts' hypergradient needs a "
            "lower problem that records it before each optimizer step (see problems/)"
        )
    params, outer = curr.trainable_parameters(), prev.trainable_parameters()
    direction = [lr * v for lr, v in zip(state["lrs"], vector)]
    eps = curr.config.darts_alpha / (to_vec(direction).norm().item() + 1e-12)
    after_step = [p.detach().clone() for p in params]
    rng_now = rng_state()

    def outer_grad_at(sign: float) -> list[torch.Tensor]:
        with torch.no_grad():
            for p, w, u in zip(params, state["weights"], direction):
                p.copy_(w + sign * eps * u)
        set_rng_state(state["rng"])
        return _grad(curr.training_step_exec(state["batch"]), outer)

    grad_plus, grad_minus = outer_grad_at(+1.0), outer_grad_at(-1.0)
    with torch.no_grad():
        for p, w in zip(params, after_step):
            p.copy_(w)
    set_rng_state(rng_now)
    indirect = [-(gp - gm) / (2 * eps) for gp, gm in zip(grad_plus, grad_minus)]
    return _deliver(indirect, prev, sync)




def cg(vector, curr, prev, sync):
    """Implicit differentiation with conjugate gradient (Rajeswaran et al. 2019).

    At the current inner point w, solve H x = v with ``cg_iterations`` steps of conjugate
    gradient on the operator ``cg_alpha`` H (the solution is rescaled by ``cg_alpha``, so the
    scale changes conditioning, not the answer), then the indirect part is

        -d^2 L_tr(w, lambda)/(dlambda dw) x  =  -d/dlambda (dL_tr/dw . x).
    """
    params, outer = curr.trainable_parameters(), prev.trainable_parameters()
    scale = curr.config.cg_alpha
    inner_grad = torch.autograd.grad(curr.training_step_exec(curr.cur_batch), params, create_graph=True)

    def hvp(p):
        return [scale * h for h in _grad(inner_grad, params, grad_outputs=p, retain_graph=True)]

    x = [torch.zeros_like(v) for v in vector]
    r = [v.detach().clone() for v in vector]
    p = [ri.clone() for ri in r]
    rr = to_vec(r).dot(to_vec(r))
    for _ in range(curr.config.cg_iterations):
        if rr.item() == 0.0:
            break
        hp = hvp(p)
        step = rr / to_vec(p).dot(to_vec(hp))
        x = [xi + step * pi for xi, pi in zip(x, p)]
        r = [ri - step * hi for ri, hi in zip(r, hp)]
        rr_new = to_vec(r).dot(to_vec(r))
        p = [ri + (rr_new / rr) * pi for ri, pi in zip(r, p)]
        rr = rr_new
    x = [scale * xi for xi in x]
    indirect = [-g for g in _grad(inner_grad, outer, grad_outputs=x)]
    return _deliver(indirect, prev, sync)


FIRST_DERIVATIVES_ONLY = ("agwm_darts", "darts")  # finite differences of gradients


def attention_kernels(method: str | None, device: torch.device):
    """The attention kernels a search with ``method`` (a Betty ``Config.type``; None for a
    single-level problem) may run on.

    Neumann and CG take Hessian-vector products, a backward pass through a backward pass, and
    CUDA's fused attention kernels (flash, memory-efficient) have no derivative of their backward:
    on a GPU those methods run with PyTorch's math attention. The finite-difference methods and
    every method on the CPU keep the default kernels."""
    if device.type != "cuda" or method is None or method in FIRST_DERIVATIVES_ONLY:
        return nullcontext()
    from torch.nn.attention import SDPBackend, sdpa_kernel

    return sdpa_kernel(SDPBackend.MATH)


register_hypergradient("agwm_darts", darts, needs_pre_step_state=True)
register_hypergradient("agwm_cg", cg)
