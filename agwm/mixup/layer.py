"""The layers: :class:`TaskWeightLayer` (W0 kept in ``base_layer``, a task weight W that starts at
W0, the forward pass through ``mixed_weight()``; the shape mixup shares with Mixout) and
:class:`MixupLinear`, whose W~ mixes W and W0 through the attention factors A (out x r) and B (r x in):

* ``factored`` (default): W~ = (A B / r) * W + ((1 - A)(1 - B) / r) * W0
* ``convex``:             alpha = A B / r,  W~ = alpha * W + (1 - alpha) * W0"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from agwm.config import FORMULATIONS


class TaskWeightLayer(nn.Module):
    """``y = x W~^T + bias`` with W~ = ``mixed_weight()``, a function of W and W0.

    ``merge()`` writes W~ into ``base_layer`` (kept W0 aside) and the layer then runs as that plain
    Linear; ``unmerge()`` puts W0 back. ``disable_adapters = True`` runs the pretrained weight W0
    (with the trained bias), as PEFT's switch does.
    """

    def __init__(self, base_layer: nn.Linear):
        super().__init__()
        self.base_layer = base_layer
        self.base_layer.weight.requires_grad_(False)
        self.in_features = base_layer.in_features
        self.out_features = base_layer.out_features
        self.weight = nn.Parameter(base_layer.weight.detach().clone())
        self.disable_adapters = False
        self._pretrained_weight: torch.Tensor | None = None  # W0 while merged

    @property
    def bias(self) -> torch.Tensor | None:
        return self.base_layer.bias

    @property
    def merged(self) -> bool:
        return self._pretrained_weight is not None

    def get_base_layer(self) -> nn.Linear:
        return self.base_layer

    def mixed_weight(self) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.merged or self.disable_adapters:
            return self.base_layer(x)
        return F.linear(x, self.mixed_weight(), self.bias)

    @torch.no_grad()
    def finite_mixed_weight(self) -> torch.Tensor:
        """W~, refused if any entry is NaN or infinite (a diverged training must not be saved)."""
        weight = self.mixed_weight()
        if not torch.isfinite(weight).all():
            raise ValueError(f"{type(self).__name__}: the mixed weight has non-finite values; nothing merged")
        return weight

    @torch.no_grad()
    def merge(self) -> None:
        if not self.merged:
            weight = self.finite_mixed_weight()
            self._pretrained_weight = self.base_layer.weight.detach().clone()
            self.base_layer.weight.copy_(weight)

    @torch.no_grad()
    def unmerge(self) -> None:
        if self.merged:
            self.base_layer.weight.copy_(self._pretrained_weight)
            self._pretrained_weight = None

    def merged_linear(self) -> nn.Linear:
        """A plain ``nn.Linear`` computing the same function as the layer in evaluation: weight W~,
        the trained bias."""
        w0 = self.base_layer.weight
        linear = nn.Linear(self.in_features, self.out_features, bias=self.bias is not None,
                           device=w0.device, dtype=w0.dtype)
        with torch.no_grad():
            linear.weight.copy_(self.finite_mixed_weight())
            if self.bias is not None:
                linear.bias.copy_(self.bias)
        return linear


class MixupLinear(TaskWeightLayer):
    """``y = x W~^T + bias`` with W~ the mix of the task weight W and the pretrained weight W0."""

    def __init__(
        self,
        base_layer: nn.Linear,
        rank: int = 1,
        formulation: str = "factored",
        init_mean: float = 1.0,
        init_std: float = 0.005,
        generator: torch.Generator | None = None,
    ):
        if rank < 1:
            raise ValueError(f"rank must be at least 1, got {rank}")
        if formulation not in FORMULATIONS:
            raise ValueError(f"formulation must be one of {FORMULATIONS}, got {formulation!r}")
        super().__init__(base_layer)
        self.rank = rank
        self.formulation = formulation
        w0 = base_layer.weight
        self.A = nn.Parameter(torch.empty(self.out_features, rank, dtype=w0.dtype, device=w0.device))
        self.B = nn.Parameter(torch.empty(rank, self.in_features, dtype=w0.dtype, device=w0.device))
        self._fixed_terms = None  # (key, alpha, C) while A and B are frozen: see mixed_weight
        self.reset_alpha(init_mean, init_std, generator)

    @torch.no_grad()
    def reset_alpha(self, mean: float, std: float, generator: torch.Generator | None = None) -> None:
        """Draw every entry of A and B from N(mean, std) and clamp it to [0, 1]."""
        for factor in (self.A, self.B):
            sample = torch.randn(factor.shape, generator=generator, dtype=torch.float64)
            factor.copy_((sample * std + mean).clamp_(0.0, 1.0))

    def alpha(self) -> torch.Tensor:
        """alpha = A B / r, the (out x in) attention on the task weight W."""
        return self.A @ self.B / self.rank

    def mixing_terms(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(alpha, C) with W~ = alpha * W + C: C = ((1 - A)(1 - B) / r) * W0 (factored) or
        (1 - alpha) * W0 (convex)."""
        alpha = self.alpha()
        if self.formulation == "factored":
            return alpha, ((1 - self.A) @ (1 - self.B) / self.rank) * self.base_layer.weight
        return alpha, (1 - alpha) * self.base_layer.weight

    def _fixed_mixing_terms(self) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`mixing_terms`, computed once while A and B are frozen (the finetune phase) and
        again only after A, B or W0 change: in place (their version counters) or by moving."""
        key = tuple((t._version, t.data_ptr()) for t in (self.A, self.B, self.base_layer.weight))
        if self._fixed_terms is None or self._fixed_terms[0] != key:
            with torch.no_grad():
                self._fixed_terms = (key, *self.mixing_terms())
        return self._fixed_terms[1:]

    def mixed_weight(self) -> torch.Tensor:
        """W~ = alpha * W + C (see :meth:`mixing_terms`)."""
        if self.A.requires_grad or self.B.requires_grad:
            self._fixed_terms = None
            alpha, w0_term = self.mixing_terms()
        else:
            alpha, w0_term = self._fixed_mixing_terms()
        return torch.addcmul(w0_term, alpha, self.weight)

    def extra_repr(self) -> str:
        return f"rank={self.rank}, formulation={self.formulation}"


def mixing_means(A: torch.Tensor, B: torch.Tensor, rank: int, formulation: str = "factored") -> tuple[float, float]:
    """The means over all entries of alpha = A B / r and of the W0 weight, (1 - A)(1 - B) / r
    (factored) or 1 - alpha (convex), without forming them: mean_ij (A B)_ij = sum_k mean_i A_ik
    mean_j B_kj."""
    alpha, w0_weight = mixing_mean_tensors(A, B, rank, formulation)
    return alpha.item(), w0_weight.item()


def mixing_mean_tensors(A: torch.Tensor, B: torch.Tensor, rank: int,
                        formulation: str = "factored") -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`mixing_means` as 0-d tensors on A's device (no host sync)."""
    alpha = (A.mean(0) @ B.mean(1)) / rank
    if formulation == "convex":
        return alpha, 1.0 - alpha
    return alpha, ((1 - A).mean(0) @ (1 - B).mean(1)) / rank
