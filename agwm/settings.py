"""A run's settings: the schema (one dataclass per section, each field with its default), the
choices allowed, and how each field is spelt on the command line."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from problems.overrides import ConfigError  # noqa: F401  (the one error class of settings, here and in problems)

HYPERGRADS = ("darts", "opt_darts", "sama", "reverse", "neumann", "cg")
PROBLEMS = ("bilevel", "joint", "inner_only")
FINETUNE_STARTS = ("pretrained", "fold_average")
ALPHA_MODES = ("fixed", "random", "joint")
BODIES = ("pretrained", "setfit")
FOLD_DATA = ("split", "whole")
R3F_NOISES = ("uniform", "normal")


@dataclass
class MixupConfig:
    rank: int = 1
    formulation: str = "factored"
    init_mean: float = 1.0
    init_std: float = 0.005
    target_modules: Any = None  # None: every Linear of the encoder; a regex; or a list of names


@dataclass
class SearchConfig:
    problem: str = "bilevel"
    folds: int = 2
    split_ratio: float = 0.8
    epochs: float = 3.0
    max_steps: int | None = None  # stop each fold after this many outer iterations
    alpha_every: int | None = None  # one outer (alpha) step every N inner steps; None: the engine config's
    # inner.unroll_steps (1 in every shipped one). Sets inner.unroll_steps: reverse mode goes through all N steps
    w_lr: float = 1e-4
    w_weight_decay: float = 0.01
    w_warmup_ratio: float = 0.1
    alpha_lr: float = 2e-3
    alpha_beta1: float = 0.9
    alpha_beta2: float = 0.999
    alpha_weight_decay: float = 0.01
    alpha_warmup_ratio: float = 0.1
    finetune_start: str = "fold_average"  # experiments/finetune-start.yaml
    fold_data: str = "split"  # split: W on each split's train part; whole (inner_only): on the whole sample


@dataclass
class FinetuneConfig:
    epochs: float = 10.0
    lr: float = 1e-4
    weight_decay: float = 0.01
    warmup_ratio: float = 0.1
    eval_batch_size: int = 64
    swa_epochs: int = 0  # > 0: the weights averaged over the ends of the last swa_epochs epochs (SWA)
    holdout: bool = False  # train on split 0's training part, score on its held-out part, not dev
    alpha_mode: str = "fixed"  # fixed: --alphas (or none: vanilla); random: fresh draw, fixed; joint: trained with W
    method: str = "vanilla"  # vanilla or another method of agwm.recipes.FINETUNE_METHODS


# The baselines' own settings: each paper's default; the search space of each is in experiments/baselines-space.yaml.
@dataclass
class MixoutConfig:
    p: float = 0.7  # probability of replacing a weight by its pretrained value (Lee et al. 2019 use 0.7-0.9)


@dataclass
class ChildTuningConfig:
    reserve_p: float = 0.3  # fraction of weights in the child network (D) or kept per step (F)
    target: str = r".*\.layer\.\d+\..*"  # parameters masked: a regex on their names (the reference code's layers)


@dataclass
class DpsConfig:
    reserve_p: float = 0.3  # fraction of the target weights updated in stage II
    update_ratio: float = 0.5  # length of each stage as a fraction of an epoch's steps
    target: str = r".*\.layer\.\d+\..*"


@dataclass
class R3fConfig:
    noise: str = "uniform"  # uniform U(-eps, eps) or normal N(0, eps^2) on the input embeddings
    eps: float = 1e-5
    kl_lambda: float = 1.0  # lambda, the weight of the symmetric KL term


@dataclass
class RDropConfig:
    kl_alpha: float = 1.0  # alpha, the weight of the symmetric KL between the two dropout passes


@dataclass
class ReinitConfig:
    layers: int = 1  # top L transformer layers re-initialised (with the pooler)


@dataclass
class PeftConfig:
    lora_r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.1
    virtual_tokens: int = 20  # prefix and prompt tuning


@dataclass
class SoupConfig:
    members: int = 5  # vanilla runs with different training seeds, averaged uniformly


@dataclass
class ProbeConfig:
    c: float = 1.0  # inverse L2 strength of the logistic regression (scikit-learn's default)
    ridge_alpha: float = 1.0  # L2 strength of the ridge regression, for regression tasks (scikit-learn's default)


@dataclass
class SetFitConfig:
    # pairs drawn per example and kind (positive, negative): 2 * num_iterations * n pairs in all. Chosen
    # on held-out training splits between 5 and the SetFit paper's 20 (experiments/setfit-space.yaml: a
    # tie, so the cheaper); the library's own default (every pair, oversampled) is ~45,000 pairs at 300
    num_iterations: int = 5
    epochs: int = 1  # contrastive epochs over the pairs (the library's default)
    body_lr: float = 2e-5  # the library's default


@dataclass
class TunedConfig:
    # vanilla-tuned: every (lr, epochs) pair is trained on split 0's training part of the sample and
    # scored on its held-out part, as agwm's own defaults were chosen; the best is retrained on all of it
    lrs: list = field(default_factory=lambda: [3e-5, 1e-4, 3e-4])
    epochs: list = field(default_factory=lambda: [5.0, 10.0])


GLUE_TRAIN_SIZE = 300  # a GLUE preset's default sample; a user's file is used whole


@dataclass
class RunConfig:
    task: str | None = None  # a GLUE preset; or the user's files below
    train_size: int | None = None  # None: 300 for a GLUE preset, every training row of a user's file
    seed: int = 1
    data_dir: str | None = None
    train_file: str | None = None
    validation_file: str | None = None  # None: validation_split of the training file is held out
    test_file: str | None = None  # labels optional; its predictions are written
    text_columns: list | None = None  # one or two; None: text, sentence, or sentence1 and sentence2
    label_column: str | None = None  # None: label
    task_type: str = "auto"  # auto: guessed from the training labels
    metric: str | None = None  # None: the preset's; accuracy (classification) or spearman (regression)
    validation_split: float | None = None  # None: 0.2 when there is no validation file
    model: str | None = None  # None: the bundled all-MiniLM-L6-v2, else the hub copy
    output_dir: str = "runs/default"
    overwrite: bool = False  # replace a finished run in output_dir
    max_length: int = 128
    batch_size: int = 16
    device: str = "auto"  # auto: the first CUDA device if there is one, else the CPU
    bf16: bool = False  # forward passes of both phases under bfloat16 autocast (hypergradients stay float32)
    report_to: list | None = None  # csv, tensorboard, none; None: csv and tensorboard where it is installed
    body: str = "pretrained"  # a grid method's start: the pretrained encoder, or setfit's contrastive stage on the sample
    hypergrad: str = "darts"
    engine_config: str | None = None  # a YAML path; None: engine_configs/<hypergrad>.yaml
    mixup: MixupConfig = field(default_factory=MixupConfig)
    search: SearchConfig = field(default_factory=SearchConfig)
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)
    mixout: MixoutConfig = field(default_factory=MixoutConfig)
    child_tuning: ChildTuningConfig = field(default_factory=ChildTuningConfig)
    dps: DpsConfig = field(default_factory=DpsConfig)
    r3f: R3fConfig = field(default_factory=R3fConfig)
    rdrop: RDropConfig = field(default_factory=RDropConfig)
    reinit: ReinitConfig = field(default_factory=ReinitConfig)
    peft: PeftConfig = field(default_factory=PeftConfig)
    soup: SoupConfig = field(default_factory=SoupConfig)
    probe: ProbeConfig = field(default_factory=ProbeConfig)
    setfit: SetFitConfig = field(default_factory=SetFitConfig)
    tuned: TunedConfig = field(default_factory=TunedConfig)


# How each field is spelt on the command line, for messages.
FLAGS = {
    "task": "--task", "train_size": "--train-size", "train_file": "--train-file",
    "validation_file": "--validation-file", "test_file": "--test-file", "text_columns": "--text-columns",
    "label_column": "--label-column", "task_type": "--task-type", "metric": "--metric",
    "validation_split": "--validation-split", "seed": "--seed", "data_dir": "--data-dir",
    "model": "--model", "output_dir": "--output-dir", "overwrite": "--overwrite", "hypergrad": "--hypergrad",
    "engine_config": "--engine-config", "search.folds": "--folds", "search.split_ratio": "--split-ratio",
    "search.max_steps": "--max-steps", "search.alpha_every": "--alpha-every", "search.problem": "--problem",
    "mixup.rank": "--rank",
    "mixup.formulation": "--formulation", "max_length": "--max-length", "batch_size": "--batch-size",
    "device": "--device", "bf16": "--bf16", "finetune.method": "--method", "report_to": "--report-to",
}
