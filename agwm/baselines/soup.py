"""Model soup (Wortsman et al. 2022), uniform: theta_soup = (1/K) sum_k theta_k over K finetuned
members that share their starting point (the pretrained encoder and one head initialisation) and
the training examples, and differ in data order and dropout."""

from __future__ import annotations

import torch


def uniform_soup(states: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """The mean of each floating-point tensor; other tensors (ids) must agree across members."""
    if not states:
        raise ValueError("a soup needs at least one member")
    soup = {}
    for key, first in states[0].items():
        values = [s[key] for s in states]
        if first.is_floating_point():
            soup[key] = torch.stack([v.float() for v in values]).mean(0).to(first.dtype)
        elif all(torch.equal(first, v) for v in values):
            soup[key] = first
        else:
            raise ValueError(f"{key}: the members' integer tensors differ and cannot be averaged")
    return soup
