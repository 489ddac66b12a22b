"""The training runtime shared by both phases: the device, the model with its new head and the
run's data, the optimizers and schedules, the guards that stop a run, the per-step log, weight
averaging, and the measures of a run's memory and of the machine's speed.

* Guards: a non-finite loss, a non-finite weight after an update, or an attention factor outside
  its box ends the run with :class:`RunFailed` (one line, exit code 3, no ``metrics.json``); SIGINT
  and SIGTERM end it with one line (exit 130 / 143).
* Log: rows ``(phase, fold, step, name, value)`` in ``log.csv`` and the same scalars as TensorBoard
  events under ``tensorboard/`` (tags ``search/fold<k>/<name>``, ``finetune/<name>``,
  ``finetune/member<m>/<name>`` for a soup's members).
* Averaging: theta_bar = (1/K) sum_k theta_k, the search's fold-averaged alpha and task weights (the
  finetune's start), SWA's epoch ends and the model soup (Wortsman et al. 2022).
* Peak memory: on CUDA the allocator's peak, on the CPU the resident set's high-water mark (VmHWM).
* Speed probe: a fixed workload whose time p is stored with each grid record. A run's wall time t
  over p is in units of the machine's own speed, so (t_1 / p_1) / (t_2 / p_2) compares methods more
  than machines (``scripts/bench_speed_probe.py`` measures how well p tracks a training step); only
  probes of the same workload (``WORKLOAD``) are compared, and records from before the name was
  stored timed ``FIRST_WORKLOAD``."""

from __future__ import annotations

import csv
import ctypes
import gc
import importlib.util
import math
import os
import statistics
import sys
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from datasets import Dataset
from torch import nn
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from agwm.data import (
    Examples,
    Task,
    load_files,
    load_glue,
    make_loader,
    random_splits,
    sample_examples,
    stream_seed,
    tokenize,
)
from agwm.errors import ConfigError
from agwm.mixup import inject_mixup
from agwm.models import model_path

if TYPE_CHECKING:
    from agwm.settings import RunConfig


def resolve_device(name: str) -> torch.device:
    """The torch device of a run's ``device`` setting (``auto``: the first CUDA device if there is
    one, else the CPU). Betty places a search's problems on the current CUDA device, so a named
    one becomes the current device."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(name)
    if device.type == "cuda":
        if device.index is not None:
            torch.cuda.set_device(device)
        device = torch.device("cuda", torch.cuda.current_device())
    return device


def device_of(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


def autocast(enabled: bool, device: torch.device):
    """bfloat16 autocast on ``device`` when ``enabled`` (a run's ``bf16``), else a no-op."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=enabled)


def adamw(groups: list[dict], **defaults) -> torch.optim.AdamW:
    """AdamW with no weight decay on biases and LayerNorm weights (one-dimensional tensors),
    as in BERT; ``groups`` are ``{"params": [...], "weight_decay": wd, ...}``."""
    split = []
    for group in groups:
        params, wd = group["params"], group.get("weight_decay", 0.0)
        rest = {k: v for k, v in group.items() if k not in ("params", "weight_decay")}
        decay = [p for p in params if p.dim() > 1]
        no_decay = [p for p in params if p.dim() <= 1]
        split += [g for g in ({"params": decay, "weight_decay": wd, **rest},
                              {"params": no_decay, "weight_decay": 0.0, **rest}) if g["params"]]
    return torch.optim.AdamW(split, **defaults)


def warmup_then_decay(kind: str, steps: int, warmup_ratio: float):
    """The learning-rate factor at step t: t / T_w during the warm-up T_w = ceil(ratio * T) steps,
    then (T - t) / (T - T_w) for ``linear`` or (1 + cos(pi (t - T_w) / (T - T_w))) / 2 for
    ``cosine``."""
    warmup = int(math.ceil(warmup_ratio * steps))

    def factor(t: int) -> float:
        if t < warmup:
            return t / warmup
        progress = min(1.0, (t - warmup) / max(1, steps - warmup))
        return 1.0 - progress if kind == "linear" else 0.5 * (1.0 + math.cos(math.pi * progress))

    return factor


def schedule(optimizer, kind: str, steps: int, warmup_ratio: float) -> torch.optim.lr_scheduler.LambdaLR:
    return torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_then_decay(kind, steps, warmup_ratio))


def weights_and_alphas_optimizer(weights, alphas, steps: int, lr: float, weight_decay: float, warmup_ratio: float,
                                 search) -> tuple[torch.optim.AdamW, torch.optim.lr_scheduler.LambdaLR]:
    """One AdamW over the task weights (``lr``, linear warm-up and decay) and, when ``alphas`` is
    not empty, the attention factors (the alpha settings of ``search``, cosine decay)."""
    optimizer = adamw([{"params": weights, "weight_decay": weight_decay}], lr=lr)
    factors = [warmup_then_decay("linear", steps, warmup_ratio)] * len(optimizer.param_groups)
    if alphas:
        optimizer.add_param_group({"params": alphas, "lr": search.alpha_lr, "weight_decay": search.alpha_weight_decay,
                                   "betas": (search.alpha_beta1, search.alpha_beta2)})
        factors.append(warmup_then_decay("cosine", steps, search.alpha_warmup_ratio))
    return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, factors)


def steps_for(epochs: float, examples: int, batch_size: int) -> int:
    return max(1, int(math.ceil(epochs * math.ceil(examples / batch_size))))


EXIT_FAILED = 3


class RunFailed(RuntimeError):
    """A run that cannot give a result (diverged, or the disk filled); ``str()`` is the message for the user."""


def disk_full(error: BaseException) -> RunFailed | None:
    """The run's failure if ``error`` is the disk (or the quota) filling while it wrote, else None;
    safetensors reports it as its own error, with the system's words."""
    import errno

    if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT):
        return RunFailed(f"the disk is full ({error.filename or 'writing the outputs'}): the run wrote no "
                         "metrics.json; free some space and run it again")
    if type(error).__name__ == "SafetensorError" and "No space left" in str(error):
        return RunFailed("the disk is full (writing a .safetensors file): the run wrote no metrics.json; free some "
                         "space and run it again")
    return None


def check_loss(value: float, phase: str, step: int, hint: str) -> None:
    """Stop if the loss of ``phase`` at ``step`` is NaN or infinite."""
    if not math.isfinite(value):
        raise RunFailed(f"{phase}: the training loss became {value} at step {step}; the run diverged "
                        f"({hint}); no metrics written")


def check_parameters(params: list, phase: str, step: int, hint: str) -> None:
    """Stop unless every entry of ``params`` is finite after the update of ``step``: a NaN or an
    infinity makes the sum of its tensor's entries NaN or infinite (one reduction per tensor, in
    float32, no copy; the loss, checked before the update, cannot see the last update)."""
    import torch  # here, so that the scripts can import this module before the libraries load

    sums = torch.stack([p.detach().sum(dtype=torch.float32) for p in params])
    if not bool(torch.isfinite(sums).all()):
        raise RunFailed(f"{phase}: a weight became NaN or infinite at step {step}; the run diverged ({hint}); "
                        "no metrics written")


def check_predictions(values, probabilities, phase: str) -> None:
    """Stop if a prediction (a regression value or a class probability; numpy arrays) is NaN or infinite."""
    import numpy as np

    for array in (values, probabilities):
        if array is not None and array.dtype.kind == "f" and not np.isfinite(array).all():
            raise RunFailed(f"{phase}: the model's predictions are NaN or infinite; the run diverged; "
                            "no metrics written")


def check_box(in_box: bool, phase: str, step: int) -> None:
    """Stop unless every attention factor is finite and in [0, 1] (``in_box``; the projection keeps
    them there unless the update was NaN)."""
    if not in_box:
        raise RunFailed(f"{phase}: an attention factor left [0, 1] or became NaN at step {step}; the run "
                        "diverged (try a smaller search.alpha_lr); no metrics written")


REPORTERS = ("csv", "tensorboard")


def tensorboard_installed() -> bool:
    return importlib.util.find_spec("tensorboard") is not None


def default_reporters() -> list[str]:
    """csv, and tensorboard where the package is installed."""
    return ["csv", "tensorboard"] if tensorboard_installed() else ["csv"]


class RunLog:
    def __init__(self, directory: str, report_to: list[str] | None = None):
        report_to = default_reporters() if report_to is None else report_to
        self.file = self.writer = self.events = None
        if "csv" in report_to:
            self.file = open(os.path.join(directory, "log.csv"), "w", newline="")
            self.writer = csv.writer(self.file)
            self.writer.writerow(["phase", "fold", "step", "name", "value"])
        if "tensorboard" in report_to:
            from torch.utils.tensorboard import SummaryWriter

            self.events = SummaryWriter(os.path.join(directory, "tensorboard"))

    def __call__(self, phase: str, fold: int, step: int, **values: float) -> None:
        if self.writer is not None:
            for name, value in values.items():
                self.writer.writerow([phase, fold, step, name, f"{value:.6g}"])
            self.file.flush()
        if self.events is not None:
            group = f"{phase}/fold{fold}" if phase == "search" else phase if fold == 0 else f"{phase}/member{fold}"
            for name, value in values.items():
                self.events.add_scalar(f"{group}/{name}", value, step)

    def close(self) -> None:
        if self.file is not None:
            self.file.close()
        if self.events is not None:
            self.events.close()


class UniformSoup:
    """(1/K) sum_k theta_k, accumulated one member at a time: one running sum in memory, not K
    state dicts. Floating-point tensors are averaged (summed in float32); any other tensor (ids)
    must be equal in every member."""

    def __init__(self):
        self.sums: dict[str, torch.Tensor] = {}
        self.dtypes: dict[str, torch.dtype] = {}
        self.members = 0

    @torch.no_grad()
    def add(self, state: dict[str, torch.Tensor]) -> None:
        if self.members and set(state) != set(self.sums):
            raise ValueError(f"a member's tensors differ from the first's: {sorted(set(state) ^ set(self.sums))[:3]}")
        for key, value in state.items():
            if not self.members:
                self.dtypes[key] = value.dtype
                self.sums[key] = value.detach().float().clone() if value.is_floating_point() else value.detach().clone()
            elif value.is_floating_point():
                self.sums[key] += value.float()
            elif not torch.equal(self.sums[key], value):
                raise ValueError(f"{key}: the members' integer tensors differ and cannot be averaged")
        self.members += 1

    def average(self) -> dict[str, torch.Tensor]:
        if not self.members:
            raise ValueError("a soup needs at least one member")
        return {key: (total / self.members).to(self.dtypes[key]) if total.is_floating_point() else total
                for key, total in self.sums.items()}


def reset_peak(device: torch.device) -> int:
    """Start a stretch: reset the peak and return the bytes held now."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
        return torch.cuda.memory_allocated()
    release_freed_memory()  # so the resident set is the stretch's
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # resets VmHWM to the current resident set
    return _status_kib("VmRSS") * 1024


def release_freed_memory() -> None:
    """Collect garbage and hand the allocator's free pages back to the system (glibc's malloc_trim)."""
    gc.collect()
    if sys.platform.startswith("linux"):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def peak_mib_since(device: torch.device, before: int) -> float:
    """MiB above ``before`` (from ``reset_peak``) at the stretch's peak."""
    peak = torch.cuda.max_memory_allocated() if device.type == "cuda" else _status_kib("VmHWM") * 1024
    return (peak - before) / 2**20


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field + ":"))


# one encoder layer of the default model (all-MiniLM-L6-v2) on a batch of 16 x 128 tokens
BATCH, LENGTH, HIDDEN, HEADS, INTERMEDIATE = 16, 128, 384, 12, 1536
WORKLOAD = "encoder-layer-384"
FIRST_WORKLOAD = "feed-forward-384"  # Linear(384, 1536) -> GELU -> Linear(1536, 384), forward and backward


def speed_probe(device: torch.device, repeats: int = 3) -> float:
    """Seconds of one training step of a transformer encoder layer of the default model's shape
    (hidden 384, 12 heads, feed-forward 1536, GELU, dropout 0.1) on 16 x 128 tokens: forward,
    backward of the mean squared output, AdamW step. The median of ``repeats`` after one warm-up.
    Its random draws (weights, inputs, dropout) come from forked random streams, so the global ones
    are untouched."""
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.default_generator.manual_seed(0)  # not torch.manual_seed, which reseeds every GPU
        layer = torch.nn.TransformerEncoderLayer(HIDDEN, HEADS, INTERMEDIATE, dropout=0.1, activation="gelu",
                                                 batch_first=True).to(device)
        optimizer = torch.optim.AdamW(layer.parameters(), lr=1e-5)
        x = torch.randn(BATCH, LENGTH, HIDDEN).to(device)

        def once() -> float:
            synchronize(device)
            start = time.perf_counter()
            layer(x).square().mean().backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            synchronize(device)
            return time.perf_counter() - start

        once()
        return statistics.median(once() for _ in range(repeats))


def probe_workload(record: dict) -> str | None:
    """The workload whose time a grid record's ``speed_probe_s`` is; None if it has no probe."""
    if not record.get("speed_probe_s"):
        return None
    return record.get("speed_probe_workload", FIRST_WORKLOAD)


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work, so that a wall-clock interval covers it (a no-op on the CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


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
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
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
