"""Learn one ridge penalty per feature by bi-level optimisation: the project's Betty problems and
hypergradient methods outside GLUE and BERT, as another bi-level study would use them.

    python scripts/ridge_penalties.py --hypergrad darts|opt_darts|sama|reverse|neumann|cg [--steps 1000] \\
        [inner.key=value ...]

Data y = X w_true + noise, where only the first ``--informative`` of ``--features`` coefficients
are non-zero and there are fewer training rows than it takes to tell them apart. The inner level
(``TaskWeightProblem``) fits the weights on the training rows,

    w*(lambda) = argmin_w  1/(2n) ||X w - y||^2 + 1/2 sum_i lambda_i w_i^2,

the outer level (``AttentionProblem``, its variables projected back into [0, 10]) fits the
penalties to the validation rows,

    min_lambda  1/(2m) ||X' w*(lambda) - y'||^2,

one inner SGD step per outer step (learning rate 0.1: stable while the Hessian's eigenvalues,
those of X^T X / n plus the penalties, stay below 2 / 0.1), the outer gradient through w* by the method of
``engine_configs/<hypergrad>.yaml``. Printed: the test error of the exact ridge solution at the
initial penalty, at the best single penalty for all features (chosen on the validation rows) and at
the learned penalties, and the mean learned penalty of the informative and of the noise features.
"""

from __future__ import annotations

import argparse
import sys

import torch
from torch import nn

from agwm_problems import (
    HYPERGRADS,
    AttentionProblem,
    ConfigError,
    TaskWeightProblem,
    build_engine,
    shipped_engine_settings,
)

F64 = torch.float64
MAX_PENALTY = 10.0


class Ridge(nn.Module):
    """Weights w and per-feature penalties lambda; the losses below read both."""

    def __init__(self, features: int, penalty: float):
        super().__init__()
        self.w = nn.Parameter(torch.zeros(features, dtype=F64))
        self.penalty = nn.Parameter(torch.full((features,), penalty, dtype=F64))


def fit_loss(module: Ridge, batch) -> torch.Tensor:
    """L_tr(w, lambda) = 1/(2n) ||X w - y||^2 + 1/2 sum_i lambda_i w_i^2."""
    x, y = batch
    return 0.5 * ((x @ module.w - y) ** 2).mean() + 0.5 * (module.penalty * module.w ** 2).sum()


def squared_error(w: torch.Tensor, batch) -> torch.Tensor:
    """1/(2m) ||X w - y||^2."""
    x, y = batch
    return 0.5 * ((x @ w - y) ** 2).mean()


def ridge_solution(batch, penalty: torch.Tensor) -> torch.Tensor:
    """w*(lambda) = (X^T X / n + diag(lambda))^-1 X^T y / n, the exact inner solution."""
    x, y = batch
    return torch.linalg.solve(x.T @ x / len(y) + torch.diag(penalty), x.T @ y / len(y))


def make_data(features: int, informative: int, rows: int, noise: float, seed: int) -> dict:
    """Training and validation sets of ``rows`` rows each and a test set of 10000."""
    g = torch.Generator().manual_seed(seed)
    w_true = torch.zeros(features, dtype=F64)
    w_true[:informative] = torch.randn(informative, generator=g, dtype=F64)
    data = {}
    for part, n in (("train", rows), ("val", rows), ("test", 10_000)):
        x = torch.randn(n, features, generator=g, dtype=F64)
        data[part] = (x, x @ w_true + noise * torch.randn(n, generator=g, dtype=F64))
    return data


def learn_penalties(data: dict, settings, steps: int, penalty: float, inner_lr: float, outer_lr: float) -> torch.Tensor:
    """``steps`` engine iterations (an inner SGD step, then an outer Adam step); the penalties."""
    model = Ridge(data["train"][0].shape[1], penalty)
    inner = TaskWeightProblem("inner", settings.inner, model, fit_loss, [model.w],
                              torch.optim.SGD([model.w], lr=inner_lr), [data["train"]])
    outer = AttentionProblem("outer", settings.outer, model, lambda m, batch: squared_error(m.w, batch),
                             [model.penalty], torch.optim.Adam([model.penalty], lr=outer_lr), [data["val"]],
                             projection=lambda params: [p.data.clamp_(0.0, MAX_PENALTY) for p in params])
    build_engine(inner, outer, settings.engine, train_iters=steps).run()
    return model.penalty.detach().clone()


def run(hypergrad: str, overrides: list[str] = (), steps: int = 1000, features: int = 20, informative: int = 5,
        rows: int = 30, noise: float = 0.5, penalty: float = 0.1, inner_lr: float = 0.1, outer_lr: float = 0.02,
        seed: int = 0) -> dict:
    """Test errors at the initial, the best uniform and the learned penalties, and the penalties."""
    if hypergrad not in HYPERGRADS:
        raise ConfigError(f"--hypergrad {hypergrad} is not allowed: one of {', '.join(HYPERGRADS)}")
    for name, value, minimum in (("--steps", steps, 1), ("--features", features, 2), ("--rows", rows, 2)):
        if value < minimum:
            raise ConfigError(f"{name} {value} is not allowed: at least {minimum}")
    if not 1 <= informative < features:
        raise ConfigError(f"--informative {informative} is not allowed: 1 to {features - 1} (--features - 1)")
    settings = shipped_engine_settings(hypergrad, list(overrides))
    data = make_data(features, informative, rows, noise, seed)

    def test_error(penalties: torch.Tensor) -> float:
        return squared_error(ridge_solution(data["train"], penalties), data["test"]).item()

    uniform = min((10.0 ** e for e in torch.linspace(-3, 1, 41).tolist()),
                  key=lambda c: squared_error(ridge_solution(data["train"], torch.full((features,), c, dtype=F64)),
                                              data["val"]).item())
    learned = learn_penalties(data, settings, steps, penalty, inner_lr, outer_lr)
    return {"hypergrad": hypergrad, "initial_penalty": penalty,
            "initial": test_error(torch.full((features,), penalty, dtype=F64)),
            "uniform_penalty": uniform, "uniform": test_error(torch.full((features,), uniform, dtype=F64)),
            "learned": test_error(learned), "penalties": learned,
            "informative_mean": learned[:informative].mean().item(), "noise_mean": learned[informative:].mean().item()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--hypergrad", default="darts",
                   help=f"one of {', '.join(HYPERGRADS)} (default darts): engine_configs/<name>.yaml")
    p.add_argument("--steps", type=int, default=1000, help="outer iterations, one inner step each (default 1000)")
    p.add_argument("--features", type=int, default=20)
    p.add_argument("--informative", type=int, default=5, help="features with a non-zero coefficient (default 5)")
    p.add_argument("--rows", type=int, default=30, help="training rows, and as many validation rows (default 30)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("overrides", nargs="*", metavar="key=value",
                   help="engine settings, e.g. inner.neumann_iterations=10")
    args = p.parse_args()

    try:
        r = run(args.hypergrad, args.overrides, args.steps, args.features, args.informative, args.rows, seed=args.seed)
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    print(f"{r['hypergrad']}: test error {r['initial']:.4f} at penalty {r['initial_penalty']:g}, "
          f"{r['uniform']:.4f} at the best uniform penalty {r['uniform_penalty']:.3g}, "
          f"{r['learned']:.4f} at the learned penalties "
          f"(mean {r['informative_mean']:.3f} on the informative features, {r['noise_mean']:.3f} on the rest)")


if __name__ == "__main__":
    main()
