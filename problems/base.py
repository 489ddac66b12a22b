"""One level of a bi-level (or single-level) problem on Betty, with nothing task-specific in it.

A level is given a module, the subset of its parameters that this level owns, a loss function
``loss_fn(module, batch) -> scalar``, an optimizer over those parameters (its param groups are
kept), an optional scheduler, a data loader, and an optional ``projection`` applied to the owned
parameters after every update (for constrained variables).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from betty.hypergradient import jvp_fn_mapping
from betty.problems import ImplicitProblem
from torch import nn

from .optimizer_steps import state_snapshot

LossFn = Callable[[nn.Module, object], torch.Tensor]
StepsKept = Callable[[object], int]
STEPS_KEPT: dict[str, StepsKept] = {}  # hypergradient type -> how many inner steps it reads back
READS_OPTIMIZER: dict[str, Callable[[object], bool]] = {}  # type -> whether its records need optimizer state, g


@dataclass
class StepRecord:
    """One inner optimizer step as the hypergradient methods read it back: the owned parameters w,
    their optimizer state and gradient g just before the step, each one's learning rate, the batch
    and the random state before its loss (so dropout can be replayed)."""

    weights: list[torch.Tensor]
    optimizer_state: list[dict] | None  # None for a method that does not read it (see register_hypergradient)
    grads: list[torch.Tensor] | None
    lrs: list[float]
    batch: object
    rng: dict


def register_hypergradient(name: str, method: Callable, steps_kept: int | StepsKept = 0,
                           reads_optimizer: bool | Callable[[object], bool] = False) -> None:
    """Make ``method(vector, curr, prev, sync)`` selectable as an inner level's ``Config.type``.

    ``steps_kept`` (a number, or a function of the inner level's config) is how many of its last
    optimizer steps the inner level keeps as :class:`StepRecord` in ``step_history`` for the method:
    1 for the one-step methods evaluated before the step (DARTS), ``unroll_steps`` for reverse mode,
    0 for methods that read the inner level only as it is after its step (CG, Neumann).
    ``reads_optimizer`` (or a function of the config): whether the records carry the optimizer
    state and the gradient of each step (two to three more copies of the weights a step).
    """
    jvp_fn_mapping[name] = method
    STEPS_KEPT[name] = steps_kept if callable(steps_kept) else (lambda config, n=steps_kept: n)
    READS_OPTIMIZER[name] = reads_optimizer if callable(reads_optimizer) else (lambda config, r=reads_optimizer: r)


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
        self.last_loss_tensor: torch.Tensor | None = None  # the last training loss, detached, on the device
        self.step_history: deque[StepRecord] = deque(maxlen=1)
        self.last_hypergradient: list[torch.Tensor] | None = None
        self._rng_before_loss = None
        if config.type not in jvp_fn_mapping:
            raise ValueError(f"{name}: Config.type={config.type!r} is not allowed: one of "
                             f"{', '.join(sorted(jvp_fn_mapping))} (import agwm_problems to register its methods)")

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

    def _steps_kept(self) -> int:
        if not self._parents:
            return 0
        return STEPS_KEPT.get(self.config.type, lambda config: 0)(self.config)

    @property
    def last_loss(self) -> float | None:
        """The last training loss as a number (reading it waits for the device)."""
        return None if self.last_loss_tensor is None else self.last_loss_tensor.item()

    def get_loss(self, batch):
        """Betty's ``get_loss`` without its ``loss.item()``: the loss stays on the device
        (``last_loss_tensor``) until someone reads it, so a step does not wait for the GPU."""
        if self._steps_kept():
            self._rng_before_loss = rng_state()
        loss = self.training_step_exec(batch)
        if isinstance(loss, dict):  # Betty's other form: {"loss": ..., more to log}
            loss = loss["loss"]
        self.last_loss_tensor = loss.detach()
        if self.scaler is not None:
            loss = self.scaler.scale(loss)
        return loss / self.gas, {"loss": self.last_loss_tensor}

    def optimizer_step(self, *args, **kwargs):
        kept = self._steps_kept()
        if kept:
            if self.step_history.maxlen != kept:
                self.step_history = deque(self.step_history, maxlen=kept)
            params = self._own_parameters
            lr_of = {id(p): g["lr"] for g in self.optimizer.param_groups for p in g["params"]}
            full = READS_OPTIMIZER.get(self.config.type, lambda config: False)(self.config)
            self.step_history.append(StepRecord(
                weights=[p.detach().clone() for p in params],
                optimizer_state=state_snapshot(self.optimizer, params) if full else None,
                grads=[torch.zeros_like(p) if p.grad is None else p.grad.detach().clone() for p in params]
                if full else None,
                lrs=[lr_of[id(p)] for p in params], batch=self.cur_batch, rng=self._rng_before_loss))
        super().optimizer_step(*args, **kwargs)

    def backward(self, loss, params, paths, create_graph=False, retain_graph=True, allow_unused=True):
        """For an upper level with one lower level: dL/dlambda (direct) and v = dL/dw from one
        backward pass over the union of both parameter lists, then the lower level's method gives
        the indirect part; their sum, the hypergradient, is kept in ``last_hypergradient`` (one
        tensor per owned parameter) as well as set as the gradients. (Betty's own backward runs two
        passes over the same graph.) Any other case goes to Betty's."""
        simple = (len(paths) == 1 and len(paths[0]) == 3 and self._config.first_order and not create_graph
                  and self.gradient_accumulation_boundary() and self._strategy in ("default", "cpu", "gpu"))
        if not simple:
            return super().backward(loss, params, paths, create_graph, retain_graph, allow_unused)
        lower = paths[0][1]
        inner = list(lower.meta_trainable_parameters())
        grads = torch.autograd.grad(loss, list(params) + inner, allow_unused=True)
        vector = [torch.zeros_like(p) if g is None else g for g, p in zip(grads[len(params):], inner)]
        # in float32 under any autocast: a finite difference over a perturbation of relative size ~1e-5
        # is below bfloat16's resolution (3 digits)
        with torch.autocast(vector[0].device.type, enabled=False):
            indirect = jvp_fn_mapping[lower.config.type](vector, lower, self, False)
        total = [ind if g is None else g + ind for g, ind in zip(grads[:len(params)], indirect)]
        self.last_hypergradient = [t.detach().clone() for t in total]
        self.set_grads(params, total)

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
