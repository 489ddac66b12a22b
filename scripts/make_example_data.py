"""Write user-style example files (renamed columns, label names, no GLUE layout) from the GLUE files,
to try --train-file without data of your own.

    python scripts/make_example_data.py --data-dir ../shared/glue --output-dir examples/data

acceptability_{train,dev,unlabelled}.csv: CoLA sentences, column ``text``, label ``judgement``
(acceptable / unacceptable). similarity_{train,dev}.csv: STS-B pairs, columns ``first``,
``second``, label ``similarity`` (0-5). Rows are drawn by --seed; the files keep GLUE's licences
and are for trying the tool, not for committing.
"""

import argparse
import os

import pandas as pd

from agwm.cli import main_guard
from agwm.data import get_task, load_split, sample_examples


def user_style(task_name: str, split: str, data_dir: str, rows: int, seed: int, columns: dict) -> pd.DataFrame:
    """``rows`` examples of a GLUE split with the columns renamed (``columns``: text_a/text_b/label ->
    new name) and class indices replaced by the class names."""
    task = get_task(task_name)
    examples = load_split(task, split, data_dir)
    table = sample_examples(examples, min(rows, len(examples)), seed).to_pandas()
    if not task.is_regression:
        table["label"] = [task.class_names[i] for i in table["label"]]
    return table.rename(columns=columns)[list(columns.values())]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", default=None, help="the GLUE folder (default $GLUE_DIR)")
    p.add_argument("--output-dir", default="examples/data")
    p.add_argument("--train-rows", type=int, default=300)
    p.add_argument("--dev-rows", type=int, default=200)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()

    def body() -> None:
        os.makedirs(args.output_dir, exist_ok=True)
        cola = {"text_a": "text", "label": "judgement"}
        stsb = {"text_a": "first", "text_b": "second", "label": "similarity"}
        files = {
            "acceptability_train.csv": user_style("cola", "train", args.data_dir, args.train_rows, args.seed, cola),
            "acceptability_dev.csv": user_style("cola", "dev", args.data_dir, args.dev_rows, args.seed, cola),
            "acceptability_unlabelled.csv": user_style("cola", "dev", args.data_dir, 20, args.seed + 1,
                                                       {"text_a": "text"}),
            "similarity_train.csv": user_style("stsb", "train", args.data_dir, args.train_rows, args.seed, stsb),
            "similarity_dev.csv": user_style("stsb", "dev", args.data_dir, args.dev_rows, args.seed, stsb),
        }
        for name, table in files.items():
            table.to_csv(os.path.join(args.output_dir, name), index=False)
            print(f"{os.path.join(args.output_dir, name)}: {len(table)} rows, columns {', '.join(table.columns)}")

    main_guard(body)


if __name__ == "__main__":
    main()
