"""What a run builds from its settings: its data (every file read and checked, the sample drawn
and tokenised), the pretrained model with its new head, and its shuffled batches."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from datasets import Dataset
from torch import nn
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from agwm.data import (
    Examples,
    Task,
    data_files,
    data_fingerprint,
    load_files,
    load_glue,
    make_loader,
    random_splits,
    sample_examples,
    stream_seed,
    tokenize,
)
from agwm.errors import ConfigError, first_line
from agwm.mixup import inject_mixup
from agwm.models import model_path

if TYPE_CHECKING:
    from agwm.config import RunConfig


@dataclass
class RunData:
    task: Task
    tokenizer: object
    train: Dataset  # the low-resource sample, tokenised
    device: torch.device  # where the run's batches and model go
    examples: Examples  # every file's examples, read and checked, not tokenised
    sample: Dataset  # the rows of ``train`` as read (texts and labels), for methods that take text


def load_examples(cfg: RunConfig) -> Examples:
    """The examples of the run's GLUE preset or of the user's files; every file is read and checked."""
    if cfg.train_file is not None:
        return load_files(cfg.train_file, cfg.validation_file, cfg.test_file, cfg.text_columns, cfg.label_column,
                          None if cfg.task_type == "auto" else cfg.task_type, cfg.metric, cfg.validation_split,
                          cfg.seed, with_validation=not cfg.finetune.holdout)
    return load_glue(cfg.task, cfg.data_dir, cfg.metric, cfg.test_file)


def run_data_fingerprint(cfg: RunConfig) -> dict[str, dict]:
    """The run's files by role, each with the SHA-256 of its content (:func:`agwm.data.data_fingerprint`)."""
    return data_fingerprint(data_files(cfg.task, cfg.data_dir, cfg.train_file, cfg.validation_file, cfg.test_file))


def load_run_data(cfg: RunConfig, device: torch.device) -> RunData:
    """Every file of the task, read and checked; the ``train_size`` sample of ``seed`` (or the whole
    training set), tokenised, for a run on ``device`` (``resolve_device(cfg.device)``, resolved
    once by the run). What was guessed or held out is printed."""
    examples = load_examples(cfg)
    sample = examples.train
    if cfg.train_size is not None:
        sample = sample_examples(sample, cfg.train_size, cfg.seed)
    for note in examples.notes:
        print(note, file=sys.stderr)
    try:
        tokenizer = AutoTokenizer.from_pretrained(model_path(cfg.model))
    except (OSError, ValueError) as error:
        reason = first_line(error)
        raise ConfigError(f"--model {cfg.model} is not allowed: its tokenizer cannot be loaded ({reason[:160]})") \
            from None
    return RunData(examples.task, tokenizer, tokenize(sample, examples.task, tokenizer, cfg.max_length), device,
                   examples, sample)


def set_aside_holdout(cfg: RunConfig, data: RunData) -> Dataset:
    """For choosing settings without the dev set (``finetune.holdout``): keep the training part
    of split 0 of the sample in ``data.train`` (and ``data.sample``) and return its held-out part as
    read, which no phase sees."""
    train_idx, held_out_idx = random_splits(len(data.train), 1, cfg.search.split_ratio, cfg.seed)[0]
    held_out = data.sample.select(held_out_idx)
    data.train, data.sample = data.train.select(train_idx), data.sample.select(train_idx)
    return held_out


def member_stream(stream: str, member: int) -> str:
    """The name of ``stream`` for member ``member`` of a model soup (member 0: the plain name)."""
    return stream if member == 0 else f"{stream}/member{member}"


def build_model(cfg: RunConfig, task: Task, with_mixup: bool, device: torch.device) -> nn.Module:
    """The pretrained encoder with a new head, on ``device``; the head's random initialisation is
    the ``head`` stream of the seed, so every method starts from the same model."""
    torch.manual_seed(stream_seed(cfg.seed, "head"))
    names = {} if task.is_regression else {"id2label": dict(enumerate(task.class_names)),
                                           "label2id": {n: i for i, n in enumerate(task.class_names)}}
    model = AutoModelForSequenceClassification.from_pretrained(
        model_path(cfg.model), num_labels=task.num_labels,
        problem_type="regression" if task.is_regression else "single_label_classification", **names,
        ignore_mismatched_sizes=True,  # a checkpoint with a head of another task: a new head
    )
    if with_mixup:
        m = cfg.mixup
        inject_mixup(model, m.target_modules, m.rank, m.formulation, m.init_mean, m.init_std,
                     seed=stream_seed(cfg.seed, "alpha"))
    return model.to(device)


def model_loss(model: nn.Module, batch: dict) -> torch.Tensor:
    """The task loss the model's head defines: cross-entropy, or mean squared error for scores."""
    return model(**batch).loss


def loader(data: RunData, dataset: Dataset, cfg: RunConfig, stream: str):
    return make_loader(dataset, data.tokenizer, cfg.batch_size, shuffle=True, seed=cfg.seed, stream=stream,
                       device=data.device)


def load_dev(cfg: RunConfig, data: RunData) -> Dataset:
    """The validation examples (a GLUE dev file or the user's validation file), tokenised."""
    return tokenize(data.examples.validation, data.task, data.tokenizer, cfg.max_length)
