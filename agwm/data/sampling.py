"""From a task's examples to batches: low-resource sampling, K random splits, tokenisation, loaders.

Every random choice takes its own named stream (:func:`stream_seed`), so the same seed gives the
same examples and splits to every method, and one method's extra draws never shift another's."""

from __future__ import annotations

import hashlib

import torch
from datasets import Dataset, Value
from torch.utils.data import DataLoader
from transformers import DataCollatorWithPadding, PreTrainedTokenizerBase

from agwm.data.tasks import Task
from agwm.errors import DataError


def stream_seed(seed: int, stream: str) -> int:
    """A 63-bit seed for the named random stream, a pure function of (seed, stream)."""
    digest = hashlib.sha256(f"{seed}:{stream}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def generator(seed: int, stream: str, device: torch.device | str = "cpu") -> torch.Generator:
    """A generator on ``device`` seeded with the ``stream`` of ``seed`` (the CPU and CUDA
    generators draw different numbers from the same seed)."""
    return torch.Generator(device=device).manual_seed(stream_seed(seed, stream))


def sample_examples(dataset: Dataset, size: int, seed: int) -> Dataset:
    """``size`` examples drawn without replacement from ``dataset`` by ``seed``."""
    if not 2 <= size <= len(dataset):
        raise DataError(f"--train-size {size} is out of range: allowed 2 to {len(dataset)} (the training examples)")
    order = torch.randperm(len(dataset), generator=generator(seed, "sample"))[:size]
    return dataset.select(sorted(order.tolist()))


def random_splits(size: int, folds: int, ratio: float, seed: int) -> list[tuple[list[int], list[int]]]:
    """``folds`` independent random (train, validation) index splits with ``round(ratio * size)``
    training indices each (at least one index on each side)."""
    if folds < 1:
        raise DataError(f"--folds {folds} is not allowed: at least 1")
    if not 0.0 < ratio < 1.0:
        raise DataError(f"--split-ratio {ratio} is not allowed: strictly between 0 and 1")
    n_train = min(max(round(ratio * size), 1), size - 1)
    splits = []
    for k in range(folds):
        order = torch.randperm(size, generator=generator(seed, f"split{k}")).tolist()
        splits.append((sorted(order[:n_train]), sorted(order[n_train:])))
    return splits


def tokenize(dataset: Dataset, task: Task, tokenizer: PreTrainedTokenizerBase, max_length: int) -> Dataset:
    """Token ids of ``text_a`` [and ``text_b``], truncated to ``max_length``; padding is left to
    the collator (dynamic padding). Regression labels become float32; a dataset without labels
    (a test file) stays without."""
    def encode(batch):
        texts = [batch["text_a"]] + ([batch["text_b"]] if "text_b" in batch else [])
        return tokenizer(*texts, truncation=True, max_length=max_length)

    text_columns = [c for c in dataset.column_names if c.startswith("text_")]
    # the fingerprint named, not hashed: datasets would pickle the whole tokenizer (about 0.5 s a call)
    fingerprint = hashlib.sha256(f"{dataset._fingerprint} {tokenizer.name_or_path} {len(tokenizer)} "
                                 f"{max_length}".encode()).hexdigest()[:16]
    encoded = dataset.map(encode, batched=True, remove_columns=text_columns, new_fingerprint=fingerprint)
    if "label" not in encoded.column_names:
        return encoded
    encoded = encoded.rename_column("label", "labels")
    if task.is_regression:
        encoded = encoded.cast_column("labels", Value("float32"))
    return encoded


def make_loader(dataset: Dataset, tokenizer: PreTrainedTokenizerBase, batch_size: int,
                shuffle: bool, seed: int = 0, stream: str = "order", device: torch.device | str = "cpu") -> DataLoader:
    """Batches padded to their longest example, on ``device``; the shuffle order is the ``stream``
    of ``seed`` (drawn on the CPU, so it is the same on every device)."""
    pad = DataCollatorWithPadding(tokenizer)
    return DataLoader(
        dataset.with_format("torch"), batch_size=batch_size, shuffle=shuffle,
        collate_fn=lambda features: {k: v.to(device) for k, v in pad(features).items()},  # a plain dict for Betty
        generator=generator(seed, stream) if shuffle else None,
    )
