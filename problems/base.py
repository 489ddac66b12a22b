"""One level of a bi-level (or single-level) problem on Betty, with nothing task-specific in it.

A level is given a module, the subset of its parameters that this level owns, a loss function
``loss_fn(module, batch) -> scalar``, an optimizer over those parameters (its param groups are
kept), an optional scheduler, a data loader, and an optional ``projection`` applied to the owned
parameters after every update (for constrained variables).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from betty.hypergradient import jvp_fn_mapping
from betty.problems import ImplicitProblem
from torch import nn

LossFn = Callable[[nn.Module, object], torch.Tensor]
PRE_STEP_STATE_METHODS: set[str] = set()  # hypergradient types that read the inner level's pre-step state


def register_hypergradient(name: str, method: Callable, needs_pre_step_state: bool = False) -> None:
    """Make ``method(vector, curr, prev, sync)`` selectable as an inner level's ``Config.type``.

    The contract with the problems: a method evaluated at the inner weights from *before* the inner
    step (finite-difference DARTS) sets ``needs_pre_step_state``; the inner level then keeps, for
    every step, ``pre_step_state = {"weights", "lrs", "batch", "rng"}``: its parameters and their
    learning rates before the optimizer step, the batch the step used and the random state before its
    loss (so dropout can be replayed). Other methods see only the inner level as it is after its step.
    """
    jvp_fn_mapping[name] = method
    if needs_pre_step_state:
        PRE_STEP_STATE_METHODS.add(name)
    else:
        PRE_STEP_STATE_METHODS.discard(name)


class LevelProblem(ImplicitProblem):
    def __init__(
        self,
        name: str,
        config,
        module: nn.Module,
        loss_fn: LossFn,
        parameters: Sequence[nn.Parameter],
        optimizer: torch.optim.Optimizer,
        train_data_loader,
        scheduler=None,
        projection: Callable[[Sequence[torch.Tensor]], None] | None = None,
    ):
        super().__init__(name, config, module, optimizer, scheduler, train_data_loader)
        self.loss_fn = loss_fn
        self._own_parameters = list(parameters)
        self.projection = projection
        self.last_loss: float | None = None
        self.pre_step_state: dict | None = None
        self._rng_before_loss = None

    def training_step(self, batch):
        return self.loss_fn(self.module, batch)

    def trainable_parameters(self):
        return self._own_parameters

    def patch_optimizer(self):
        """Keep the optimizer handed in, on one device. (Betty 0.2.1 rebuilds it as
        ``cls(params, **optimizer.defaults)``, which torch >= 2.6's AdamW rejects.)"""
        if self._strategy not in ("default", "cpu", "gpu"):
            super().patch_optimizer()

    def patch_scheduler(self):
        if self._strategy not in ("default", "cpu", "gpu"):
            super().patch_scheduler()

    def _keeps_pre_step_state(self) -> bool:
        return bool(self._parents) and self.config.type in PRE_STEP_STATE_METHODS

    def get_loss(self, batch):
        if self._keeps_pre_step_state():
            self._rng_before_loss = rng_state()
        loss, loss_dict = super().get_loss(batch)
        self.last_loss = loss_dict["loss"]
        return loss, loss_dict

    def optimizer_step(self, *args, **kwargs):
        if self._keeps_pre_step_state():
            lr_of = {id(p): g["lr"] for g in self.optimizer.param_groups for p in g["params"]}
            self.pre_step_state = {
                "weights": [p.detach().clone() for p in self._own_parameters],
                "lrs": [lr_of[id(p)] for p in self._own_parameters],
                "batch": self.cur_batch,
                "rng": self._rng_before_loss,
            }
        super().optimizer_step(*args, **kwargs)

    def backward(self, loss, params, paths, create_graph=False, retain_graph=True, allow_unused=True):
        """For an upper level with one lower level: dL/dlambda (direct) and v = dL/dw from one
        backward pass over the union of both parameter lists, then the lower level's method adds
        the indirect part. (Betty's own backward runs two passes over the same graph.) Any other
        case goes to Betty's."""
        simple = (len(paths) == 1 and len(paths[0]) == 3 and self._config.first_order and not create_graph
                  and self.gradient_accumulation_boundary() and self._strategy in ("default", "cpu", "gpu"))
        if not simple:
            return super().backward(loss, params, paths, create_graph, retain_graph, allow_unused)
        lower = paths[0][1]
        inner = list(lower.meta_trainable_parameters())
        grads = torch.autograd.grad(loss, list(params) + inner, allow_unused=True)
        self.set_grads(params, grads[:len(params)])
        vector = [torch.zeros_like(p) if g is None else g for g, p in zip(grads[len(params):], inner)]
        jvp_fn_mapping[lower.config.type](vector, lower, self, True)

    def param_callback(self):
        if self.projection is not None:
            self.projection(self._own_parameters)


def rng_state() -> dict:
    """The random state that dropout draws from (CPU, and every CUDA device when present)."""
    return {"cpu": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None}


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["cpu"])
    if state["cuda"] is not None:
        torch.cuda.set_rng_state_all(state["cuda"])
