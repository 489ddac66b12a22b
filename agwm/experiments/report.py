"""``agwm report``: the records of results files read, filtered and merged, then report.md (the
tables of :mod:`agwm.experiments.tables`) and the plots written into an output folder that only
agwm's reports have written to."""

from __future__ import annotations

import os
import re

from agwm.errors import ConfigError
from agwm.experiments.paired import merge_records, size_order, split_unscored
from agwm.experiments.tables import comparison, markdown_report
from agwm.files import atomic_path
from agwm.settings import refuse_unknown

REPORT_START = re.compile(r"^# Results\n\n\d+ runs; seeds ", re.M)  # in the first lines of every report.md written


def refuse_foreign_outputs(output_dir: str, names: list[str]) -> None:
    """Refuse, before writing, a file among ``names`` in ``output_dir`` that agwm report did not
    write: a report.md without its reports' header, a picture that matplotlib did not make."""
    for name in names:
        path = os.path.join(output_dir, name)
        if not os.path.exists(path):
            continue
        try:
            with open(path, "rb") as f:
                head = f.read(400)
        except OSError as error:
            raise ConfigError(f"--output-dir {output_dir} is not allowed: its {name} cannot be read ({error.strerror})")
        text = head.decode("utf-8", "replace")
        ours = REPORT_START.search(text) if name.endswith(".md") else b"Matplotlib" in head
        if not ours:
            raise ConfigError(f"--output-dir {output_dir} is not allowed: it holds a {name} that agwm report did not "
                              "write; give another folder, or move that file")


def write_report(results: list[str] | None, output_dir: str | None, data_dir: str | None = None,
                 tasks: list[str] | None = None, sizes: list[int] | None = None,
                 methods: list[str] | None = None, search: list[str] = (),
                 compare: list[str] | None = None, compare_searches: list[str] = ()) -> list[str]:
    """``agwm report``: ``report.md`` and ``score_vs_size.png`` in ``output_dir`` from the ``results``
    files' records (only ``tasks``, ``sizes`` and ``methods``), each ``search`` folder's plots, the
    ``compare_searches`` plot, and the ``compare`` table (METHOD BASE); returns what to print."""
    from agwm.experiments.grid import read_records
    from agwm.experiments.plots import plot_alpha_layers, plot_alpha_movement, plot_score_vs_size, plot_search

    lines = []

    def require_search_folder(written: str, folder: str) -> None:
        for name in ("log.csv", "alphas.safetensors"):
            if not os.path.isfile(os.path.join(folder, name)):
                raise ConfigError(f"{written} is not allowed: it has no {name} (not a search folder)")

    for folder in search:
        require_search_folder(f"--search {folder}", folder)
        plot_search(os.path.join(folder, "log.csv"), os.path.join(folder, "search.png"))
        plot_alpha_layers(os.path.join(folder, "alphas.safetensors"), os.path.join(folder, "alpha_layers.png"))
        lines.append(f"{folder}/search.png, {folder}/alpha_layers.png")
    if compare_searches:
        searches = dict(item.partition("=")[::2] for item in compare_searches)
        for label, folder in searches.items():
            if not label or not folder:
                raise ConfigError(f"--compare-searches {label}={folder} is not allowed: expected LABEL=FOLDER")
            require_search_folder(f"--compare-searches {label}={folder}", folder)
        if output_dir is None:
            raise ConfigError("--compare-searches needs --output-dir")
        refuse_foreign_outputs(output_dir, ["alpha_movement.png"])
        os.makedirs(output_dir, exist_ok=True)
        plot_alpha_movement(searches, os.path.join(output_dir, "alpha_movement.png"))
        lines.append(f"{output_dir}/alpha_movement.png")
    if results is None:
        if compare:
            raise ConfigError("--compare needs --results")
        return lines
    if output_dir is None and not compare:
        raise ConfigError("--results needs --output-dir (or --compare)")
    records = []
    for path in results:
        found = read_records(path) if os.path.isfile(path) else []
        if not found:
            raise ConfigError(f"--results {path} is not allowed: no such file or no records in it")
        records += found
    records = only_these(records, "--tasks", "task", tasks)
    records = only_these(records, "--sizes", "train_size", sizes)
    records = only_these(records, "--methods", "method", methods)

    def not_one_report(error: ValueError) -> ConfigError:  # records that cannot go in one report
        return ConfigError(f"--results {' '.join(results)} is not allowed: {error}")

    try:
        records = merge_records(records)
    except ValueError as error:
        raise not_one_report(error) from None
    records, unscored = split_unscored(records)
    if unscored:
        lines.append(unscored)
    if not records:
        raise ConfigError(f"--results {' '.join(results)} is not allowed: no run in them has a score")
    if compare:
        lines.append(comparison(records, *compare))
        if output_dir is None:
            return lines
    try:
        constant = None if data_dir is None else one_class_scores(
            {r["task"] for r in records}, data_dir, {r.get("evaluated_on", "dev") for r in records})
        report = markdown_report(records, constant)
        if unscored:
            report = f"{unscored}\n\n{report}"
    except ConfigError:  # a bad --data-dir: its own message
        raise
    except ValueError as error:
        raise not_one_report(error) from None
    refuse_foreign_outputs(output_dir, ["report.md", "score_vs_size.png"])
    made = not os.path.isdir(output_dir)
    os.makedirs(output_dir, exist_ok=True)
    try:
        plot_score_vs_size(records, os.path.join(output_dir, "score_vs_size.png"), constant)
        with atomic_path(os.path.join(output_dir, "report.md")) as tmp, open(tmp, "w") as f:
            f.write(report)
    except BaseException:
        if made and not os.listdir(output_dir):  # a report that broke leaves no empty folder
            os.rmdir(output_dir)
        raise
    lines.append(f"{len(records)} records -> {output_dir}/report.md, score_vs_size.png")
    return lines


def only_these(records: list[dict], flag: str, field: str, wanted: list | None) -> list[dict]:
    """The records whose ``field`` is one of ``wanted`` (all when None); a wanted value that no record
    has is refused, naming those the records have."""
    if wanted is None:
        return records
    refuse_unknown(flag, wanted, sorted({r[field] for r in records}, key=size_order), "the results hold")
    return [r for r in records if r[field] in wanted]


def one_class_scores(tasks: set[str], data_dir: str, evaluated_on: set[str]) -> dict:
    """Task -> (best one-class dev score, class), from the dev files under ``data_dir`` (GLUE tasks;
    a user's task has no file there and is left out)."""
    from agwm.data import TASKS, get_task, load_split
    from agwm.metrics import constant_prediction_score

    if not os.path.isdir(data_dir):
        raise ConfigError(f"--data-dir {data_dir} is not allowed: no such folder")
    if evaluated_on != {"dev"}:
        raise ConfigError("--data-dir is not allowed with held-out scores (finetune.holdout): "
                          "the one-class scores are the dev set's")
    tasks_by_name = {name: get_task(name) for name in tasks if name in TASKS}
    return {name: constant_prediction_score(task, load_split(task, "dev", data_dir)["label"][:])
            for name, task in tasks_by_name.items()}
