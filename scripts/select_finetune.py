"""Choose the finetuning learning rate and epochs of a model on the training sample alone.

For each task, learning rate and epoch count: plain finetuning on 80% of the ``--train-size``
sample of ``--seed``, scored on the other 20% (never the dev set). Prints and writes a table of
held-out scores and the setting with the best mean score over the tasks. The chosen setting is
then used for every method alike.

    python scripts/select_finetune.py --tasks rte stsb --lrs 3e-5 1e-4 3e-4 --epochs 10 \
        --data-dir ../shared/glue --output-dir results/finetune-selection
"""

import argparse
import itertools
import json
import os
import statistics

from agwm.cli import main_guard
from agwm.settings import build_run_config


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tasks", nargs="+", required=True)
    p.add_argument("--lrs", nargs="+", type=float, required=True)
    p.add_argument("--epochs", nargs="+", type=float, required=True)
    p.add_argument("--train-size", type=int, default=300)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--data-dir", default=None)
    p.add_argument("--model", default=None)
    p.add_argument("--output-dir", required=True)
    args = p.parse_args()

    def body() -> None:
        grid = list(itertools.product(args.tasks, args.lrs, args.epochs))
        configs = [build_run_config({
            "task": task, "train_size": args.train_size, "seed": args.seed, "data_dir": args.data_dir,
            "model": args.model, "finetune.lr": lr, "finetune.epochs": epochs, "finetune.holdout": True,
            "output_dir": os.path.join(args.output_dir, f"{task}-lr{lr:g}-ep{epochs:g}")}) for task, lr, epochs in grid]
        from agwm.finetune import run_finetune

        scores = {}
        for (task, lr, epochs), cfg in zip(grid, configs):
            done = os.path.join(cfg.output_dir, "metrics.json")
            if os.path.exists(done):
                with open(done) as f:
                    scores[task, lr, epochs] = json.load(f)["score"]
            else:
                scores[task, lr, epochs] = run_finetune(cfg)["score"]
        settings = sorted({(lr, ep) for _, lr, ep in grid})
        lines = ["| lr | epochs | " + " | ".join(args.tasks) + " | mean |", "|---" * (len(args.tasks) + 3) + "|"]
        means = {s: statistics.mean(scores[(t, *s)] for t in args.tasks) for s in settings}
        for s in settings:
            lines.append(f"| {s[0]:g} | {s[1]:g} | " + " | ".join(f"{scores[(t, *s)]:.1f}" for t in args.tasks)
                         + f" | {means[s]:.1f} |")
        best = max(settings, key=means.get)
        lines.append(f"\nbest on the held-out 20%: lr {best[0]:g}, {best[1]:g} epochs (mean {means[best]:.1f})")
        text = "\n".join(lines)
        print(text)
        with open(os.path.join(args.output_dir, "selection.md"), "w") as f:
            f.write(f"Held-out scores (train size {args.train_size}, seed {args.seed}, 80/20 split of the sample)\n\n"
                    + text + "\n")

    main_guard(body)


if __name__ == "__main__":
    main()
