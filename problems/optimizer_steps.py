"""The inner optimizer's step as a function: differentiable (for reverse mode through unrolled
steps) and its diagonal Jacobian with respect to the gradient (for one-step methods).

Written for torch's ``SGD`` (momentum, dampening, Nesterov, coupled weight decay), ``Adam``
(coupled decay) and ``AdamW`` (decoupled decay), with these symbols for one parameter at step t
(t counted from 1), learning rate eta, gradient g:

    SGD:    g' = g + wd w;  b = g' (first step) or mu b + (1 - tau) g';  d = g' + mu b (Nesterov) or b
            w' = w - eta d
    Adam:   g' = g + wd w (Adam) or g' = g, w <- (1 - eta wd) w (AdamW)
            m = beta1 m + (1 - beta1) g';  v = beta2 v + (1 - beta2) g'^2
            w' = w - eta m / (c1 (sqrt(v / c2) + eps)),  c1 = 1 - beta1^t,  c2 = 1 - beta2^t

Other optimizers, ``amsgrad`` and ``maximize`` raise ``ValueError``.
"""

from __future__ import annotations

import torch

KINDS = {torch.optim.SGD: "sgd", torch.optim.Adam: "adam", torch.optim.AdamW: "adamw"}


def optimizer_kind(optimizer: torch.optim.Optimizer) -> str:
    kind = KINDS.get(type(optimizer))
    if kind is None:
        raise ValueError(f"inner optimizer {type(optimizer).__name__} is not allowed for this hypergradient: "
                         "SGD, Adam or AdamW")
    for group in optimizer.param_groups:
        for flag in ("amsgrad", "maximize"):
            if group.get(flag):
                raise ValueError(f"inner optimizer with {flag}=True is not allowed for this hypergradient")
    return kind


def group_of(optimizer: torch.optim.Optimizer, params) -> list[dict]:
    """Each parameter's param group (its hyperparameters)."""
    by_id = {id(p): group for group in optimizer.param_groups for p in group["params"]}
    return [by_id[id(p)] for p in params]


def state_snapshot(optimizer: torch.optim.Optimizer, params) -> list[dict]:
    """A copy of each parameter's optimizer state (empty before its first step)."""
    return [{k: v.detach().clone() if torch.is_tensor(v) else v for k, v in optimizer.state.get(p, {}).items()}
            for p in params]


def _step_count(state: dict) -> int:
    step = state.get("step", 0)
    return int(step.item() if torch.is_tensor(step) else step)


def _safe_sqrt(x: torch.Tensor) -> torch.Tensor:
    """sqrt(x) whose derivative at 0 is 0 instead of inf (an entry that never had a gradient)."""
    positive = x > 0
    return torch.where(positive, torch.where(positive, x, torch.ones_like(x)).sqrt(), torch.zeros_like(x))


def functional_step(kind: str, group: dict, w: torch.Tensor, g: torch.Tensor, state: dict, lr: float):
    """(w', state') after one step from (w, state) with gradient g; differentiable in w and g."""
    wd = group.get("weight_decay", 0.0)
    if kind == "sgd":
        g = g + wd * w if wd else g
        mu, tau = group.get("momentum", 0.0), group.get("dampening", 0.0)
        if not mu:
            return w - lr * g, {}
        buf = state.get("momentum_buffer")
        buf = g if buf is None else mu * buf + (1 - tau) * g
        direction = g + mu * buf if group.get("nesterov") else buf
        return w - lr * direction, {"momentum_buffer": buf}
    beta1, beta2 = group["betas"]
    if kind == "adamw":
        w = w * (1 - lr * wd)
    elif wd:
        g = g + wd * w
    t = _step_count(state) + 1
    m = beta1 * state.get("exp_avg", torch.zeros_like(w)) + (1 - beta1) * g
    v = beta2 * state.get("exp_avg_sq", torch.zeros_like(w)) + (1 - beta2) * g * g
    c1, c2 = 1 - beta1 ** t, 1 - beta2 ** t
    denom = _safe_sqrt(v) / c2 ** 0.5 + group["eps"]
    return w - (lr / c1) * m / denom, {"step": t, "exp_avg": m, "exp_avg_sq": v}


@torch.no_grad()
def step_jacobian(kind: str, group: dict, w: torch.Tensor, g: torch.Tensor, state: dict, lr: float) -> torch.Tensor:
    """dw'/dg, the diagonal Jacobian of one step from (w, state) with gradient g:

        SGD:   -eta (1 on the first step with momentum, else (1 - tau), times (1 + mu) for Nesterov)
        Adam:  -(eta / c1) [(1 - beta1) / D - m (1 - beta2) g' / (c2 sqrt(v / c2) D^2)],  D = sqrt(v / c2) + eps
    """
    if kind == "sgd":
        mu, tau = group.get("momentum", 0.0), group.get("dampening", 0.0)
        if not mu:
            factor = 1.0
        else:
            factor = 1.0 if state.get("momentum_buffer") is None else 1 - tau
            if group.get("nesterov"):
                factor = 1 + mu * factor
        return torch.full_like(g, -lr * factor)
    beta1, beta2 = group["betas"]
    wd = group.get("weight_decay", 0.0)
    if kind == "adam" and wd:
        g = g + wd * w
    t = _step_count(state) + 1
    m = beta1 * state.get("exp_avg", torch.zeros_like(g)) + (1 - beta1) * g
    v = beta2 * state.get("exp_avg_sq", torch.zeros_like(g)) + (1 - beta2) * g * g
    c1, c2 = 1 - beta1 ** t, 1 - beta2 ** t
    root = (v / c2).sqrt()
    denom = root + group["eps"]
    second = torch.where(root > 0, m * (1 - beta2) * g / (c2 * root.clamp_min(1e-300) * denom ** 2),
                         torch.zeros_like(g))
    return -(lr / c1) * ((1 - beta1) / denom - second)
