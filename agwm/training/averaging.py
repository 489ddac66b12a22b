"""Weight averaging, theta_bar = (1/K) sum_k theta_k: the search's fold-averaged alpha and task
weights (the finetune's start), SWA's epoch ends and the model soup (Wortsman et al. 2022)."""

from __future__ import annotations

import torch


class UniformSoup:
    """(1/K) sum_k theta_k, accumulated one member at a time: one running sum in memory, not K
    state dicts. Floating-point tensors are averaged (summed in float32); any other tensor (ids)
    must be equal in every member."""

    def __init__(self):
        self.sums: dict[str, torch.Tensor] = {}
        self.dtypes: dict[str, torch.dtype] = {}
        self.members = 0

    @torch.no_grad()
    def add(self, state: dict[str, torch.Tensor]) -> None:
        if self.members and set(state) != set(self.sums):
            raise ValueError(f"a member's tensors differ from the first's: {sorted(set(state) ^ set(self.sums))[:3]}")
        for key, value in state.items():
            if not self.members:
                self.dtypes[key] = value.dtype
                self.sums[key] = value.detach().float().clone() if value.is_floating_point() else value.detach().clone()
            elif value.is_floating_point():
                self.sums[key] += value.float()
            elif not torch.equal(self.sums[key], value):
                raise ValueError(f"{key}: the members' integer tensors differ and cannot be averaged")
        self.members += 1

    def average(self) -> dict[str, torch.Tensor]:
        if not self.members:
            raise ValueError("a soup needs at least one member")
        return {key: (total / self.members).to(self.dtypes[key]) if total.is_floating_point() else total
                for key, total in self.sums.items()}
