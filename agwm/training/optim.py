"""The optimizers and learning-rate schedules of both phases."""

from __future__ import annotations

import math

import torch


def adamw(groups: list[dict], **defaults) -> torch.optim.AdamW:
    """AdamW with no weight decay on biases and LayerNorm weights (one-dimensional tensors),
    as in BERT; ``groups`` are ``{"params": [...], "weight_decay": wd, ...}``."""
    split = []
    for group in groups:
        params, wd = group["params"], group.get("weight_decay", 0.0)
        rest = {k: v for k, v in group.items() if k not in ("params", "weight_decay")}
        decay = [p for p in params if p.dim() > 1]
        no_decay = [p for p in params if p.dim() <= 1]
        split += [g for g in ({"params": decay, "weight_decay": wd, **rest},
                              {"params": no_decay, "weight_decay": 0.0, **rest}) if g["params"]]
    return torch.optim.AdamW(split, **defaults)


def warmup_then_decay(kind: str, steps: int, warmup_ratio: float):
    """The learning-rate factor at step t: t / T_w during the warm-up T_w = ceil(ratio * T) steps,
    then (T - t) / (T - T_w) for ``linear`` or (1 + cos(pi (t - T_w) / (T - T_w))) / 2 for
    ``cosine``."""
    warmup = int(math.ceil(warmup_ratio * steps))

    def factor(t: int) -> float:
        if t < warmup:
            return t / warmup
        progress = min(1.0, (t - warmup) / max(1, steps - warmup))
        return 1.0 - progress if kind == "linear" else 0.5 * (1.0 + math.cos(math.pi * progress))

    return factor


def schedule(optimizer, kind: str, steps: int, warmup_ratio: float) -> torch.optim.lr_scheduler.LambdaLR:
    return torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_then_decay(kind, steps, warmup_ratio))


def weights_and_alphas_optimizer(weights, alphas, steps: int, lr: float, weight_decay: float, warmup_ratio: float,
                                 search) -> tuple[torch.optim.AdamW, torch.optim.lr_scheduler.LambdaLR]:
    """One AdamW over the task weights (``lr``, linear warm-up and decay) and, when ``alphas`` is
    not empty, the attention factors (the alpha settings of ``search``, cosine decay)."""
    optimizer = adamw([{"params": weights, "weight_decay": weight_decay}], lr=lr)
    factors = [warmup_then_decay("linear", steps, warmup_ratio)] * len(optimizer.param_groups)
    if alphas:
        optimizer.add_param_group({"params": alphas, "lr": search.alpha_lr, "weight_decay": search.alpha_weight_decay,
                                   "betas": (search.alpha_beta1, search.alpha_beta2)})
        factors.append(warmup_then_decay("cosine", steps, search.alpha_warmup_ratio))
    return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, factors)


def steps_for(epochs: float, examples: int, batch_size: int) -> int:
    return max(1, int(math.ceil(epochs * math.ceil(examples / batch_size))))
