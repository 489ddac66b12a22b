"""Consistency regularisers: R-Dropout (Wu et al. 2021) and R3F (Aghajanyan et al. 2020).

Both add a symmetric divergence between two predictions of the same batch to the task loss:

    R-Dropout: L = (CE(p1, y) + CE(p2, y)) / 2 + alpha * SKL(p1, p2),  p1, p2 two dropout passes
    R3F:       L = CE(f(x), y) + lambda * SKL(f(x), f(x + z)),  z ~ U(-eps, eps) or N(0, eps^2)
                   on the input token embeddings

with SKL(p, q) = KL(p || q) + KL(q || p) summed over classes and averaged over the batch. For a
regression task (STS-B) the divergence is the squared difference of the two predictions.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from agwm.baselines.recipe import Recipe
from agwm.data import generator
from agwm.training.device import device_of


def symmetric_divergence(a: torch.Tensor, b: torch.Tensor, regression: bool) -> torch.Tensor:
    """SKL of the softmaxes of logits ``a`` and ``b``, or mean (a - b)^2 for a regression."""
    if regression:
        return F.mse_loss(a.float(), b.float())
    log_p, log_q = F.log_softmax(a.float(), -1), F.log_softmax(b.float(), -1)
    kl_pq = F.kl_div(log_q, log_p, log_target=True, reduction="batchmean")  # KL(p || q)
    kl_qp = F.kl_div(log_p, log_q, log_target=True, reduction="batchmean")
    return kl_pq + kl_qp


def r_dropout_loss(model: nn.Module, batch: dict, alpha: float) -> torch.Tensor:
    first, second = model(**batch), model(**batch)  # two dropout masks
    regression = first.logits.shape[-1] == 1
    return 0.5 * (first.loss + second.loss) + alpha * symmetric_divergence(first.logits, second.logits, regression)


def r3f_loss(model: nn.Module, batch: dict, noise: str, eps: float, lam: float,
             generator: torch.Generator) -> torch.Tensor:
    inputs = {k: v for k, v in batch.items() if k != "input_ids"}
    embeddings = model.get_input_embeddings()(batch["input_ids"])
    clean = model(inputs_embeds=embeddings, **inputs)
    shape, device = embeddings.shape, embeddings.device
    if noise == "uniform":
        z = (torch.rand(shape, generator=generator, device=device) * 2 - 1) * eps
    else:
        z = torch.randn(shape, generator=generator, device=device) * eps
    noisy = model(inputs_embeds=embeddings.detach() + z.to(embeddings.dtype), **inputs)
    regression = clean.logits.shape[-1] == 1
    return clean.loss + lam * symmetric_divergence(clean.logits, noisy.logits, regression)




class R3f(Recipe):
    def prepare(self, model, train_batches):
        self.noise = generator(self.run.seed, "r3f", device_of(model))
        return model

    def loss(self, model, batch):
        r = self.settings
        return r3f_loss(model, batch, r.noise, r.eps, r.kl_lambda, self.noise)


class RDropout(Recipe):
    def loss(self, model, batch):
        return r_dropout_loss(model, batch, self.settings.kl_alpha)


