"""Finetune phase: train the task weights with alpha fixed (or plain finetuning without
--alphas) on the whole training sample, score on the validation set, predict a test file.

    python scripts/finetune.py --task rte --train-size 300 --seed 1 \
        --alphas runs/rte-300-s1/alphas.safetensors --data-dir ../shared/glue \
        --output-dir runs/rte-300-s1/finetune
    python scripts/finetune.py --train-file reviews.csv --text-columns review --label-column sentiment \
        --validation-file reviews_dev.csv --test-file reviews_unlabelled.csv \
        --alphas runs/reviews/alphas.safetensors --output-dir runs/reviews/finetune --save-model
"""

import os

from agwm.cli import main_guard, parser, run_config
from agwm.settings import ConfigError


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--method", default=None, help="vanilla (default), vanilla-tuned (lr and epochs chosen on a "
                   "held-out part of the sample), probe (logistic regression on the frozen sentence embeddings), "
                   "setfit (pip install \"agwm[setfit]\"), or a baseline: mixout, child-tuning-d, child-tuning-f, "
                   "dps, r3f, r-dropout, re-init, lora, prefix, prompt, soup; settings as key=value (e.g. mixout.p=0.5)")
    p.add_argument("--alphas", default=None, help="alphas.safetensors written by search.py (omit: vanilla)")
    p.add_argument("--start-weights", default=None,
                   help="task weights to start from (default with --alphas: the task_weights.safetensors beside "
                        "the alphas file, or the pretrained weights with search.finetune_start=pretrained)")
    p.add_argument("--test-file", default=None, help="examples to predict (labels not needed): "
                   "<output-dir>/predictions.csv")
    p.add_argument("--save-model", action="store_true", help="also write the merged model to <output-dir>/model "
                   "(loads with transformers alone)")
    args = p.parse_args()

    def body() -> None:
        cfg = run_config(args, {"finetune.method": args.method, "test_file": args.test_file})
        for flag, path in (("--alphas", args.alphas), ("--start-weights", args.start_weights)):
            if path is not None and not os.path.isfile(path):
                raise ConfigError(f"{flag} {path} is not allowed: no such file")
        from agwm.finetune import run_finetune

        metrics = run_finetune(cfg, args.alphas, args.start_weights, args.save_model)
        scores = metrics[metrics["evaluated_on"]]
        if metrics["score"] is None:
            print(f"{metrics['evaluated_on']} {metrics['metric']} undefined: {scores['undefined']} "
                  f"({metrics['wall_time_s']:.0f} s)")
        else:
            print(f"{metrics['evaluated_on']} {metrics['metric']} {metrics['score']:.2f} (all: "
                  + ", ".join(f"{k} {v:.2f}" for k, v in scores.items() if isinstance(v, float) and k != "score")
                  + f"; {metrics['wall_time_s']:.0f} s)")
        if "warning" in scores:
            print(f"warning: {scores['warning']}: the model did not learn to tell the classes apart")
        if args.test_file:
            print(f"predictions written to {os.path.join(cfg.output_dir, 'predictions.csv')}")

    main_guard(body)


if __name__ == "__main__":
    main()
