"""Search phase: learn the mixup attention (alpha) by bi-level optimisation on Betty.

    python scripts/search.py --task rte --train-size 300 --seed 1 --hypergrad darts \
        --data-dir ../shared/glue --output-dir runs/rte-300-s1
    python scripts/search.py --train-file reviews.csv --text-columns review --label-column sentiment \
        --validation-file reviews_dev.csv --output-dir runs/reviews
"""

from agwm.cli import main_guard, parser, run_config
from agwm.engine_settings import run_engine_settings


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--hypergrad", default=None, help="darts (default), opt_darts, sama, reverse, neumann or cg: "
                   "engine_configs/<name>.yaml")
    p.add_argument("--engine-config", default=None, help="any engine YAML file (instead of --hypergrad)")
    p.add_argument("--problem", default=None, help="bilevel (default), joint (W and alpha trained together) "
                   "or inner_only (W alone on each split's train part, alpha at its initial draw)")
    p.add_argument("--folds", type=int, default=None, help="random 80/20 splits K (default 2)")
    p.add_argument("--split-ratio", type=float, default=None, help="training part of each split (default 0.8)")
    p.add_argument("--rank", type=int, default=None, help="rank r of alpha = A B / r (default 1)")
    p.add_argument("--formulation", default=None, help="factored (default) or convex")
    p.add_argument("--max-steps", type=int, default=None, help="stop each fold after N outer iterations")
    p.add_argument("--alpha-every", type=int, default=None,
                   help="one alpha (outer) step every N inner steps (default 1): a cheaper search")
    args = p.parse_args()

    def body() -> None:
        cfg = run_config(args, {
            "hypergrad": args.hypergrad, "engine_config": args.engine_config, "search.problem": args.problem,
            "search.folds": args.folds, "search.split_ratio": args.split_ratio, "mixup.rank": args.rank,
            "mixup.formulation": args.formulation, "search.max_steps": args.max_steps,
            "search.alpha_every": args.alpha_every})
        settings = run_engine_settings(cfg, args.overrides)
        from agwm.search import run_search

        metrics = run_search(cfg, settings)
        print(f"alphas written to {cfg.output_dir}/alphas.safetensors "
              f"(mean alpha {metrics['alpha']['alpha_mean']:.4f}, {metrics['wall_time_s']:.0f} s)")

    main_guard(body)


if __name__ == "__main__":
    main()
