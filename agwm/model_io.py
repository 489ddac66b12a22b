"""A finetuned mixup model saved whole and restored exactly, unmerged: W, A, B, W0, the head and every
other weight in ``model.safetensors``, with the model's ``config.json``, the mixup layers' names,
rank and formulation (``alphas.json``) and the tokenizer, in one folder. (``merge_mixup`` and
``save_pretrained`` give the stock Hugging Face folder for inference instead.)"""

from __future__ import annotations

import os

from safetensors.torch import load_model, save_model
from torch import nn
from transformers import AutoConfig, AutoModelForSequenceClassification

from .atomic import atomic_path
from .mixup import ALPHA_CONFIG_NAME, inject_from_settings, layers_settings, read_json, write_json

WEIGHTS_NAME = "model.safetensors"
MIXUP_MODEL_DIR = "mixup_model"  # in a finetune's output folder, with --save-model


def save_mixup_model(model: nn.Module, directory: str, tokenizer=None) -> None:
    os.makedirs(directory, exist_ok=True)
    model.config.save_pretrained(directory)
    if tokenizer is not None:
        tokenizer.save_pretrained(directory)
    write_json(layers_settings(model), os.path.join(directory, ALPHA_CONFIG_NAME))
    with atomic_path(os.path.join(directory, WEIGHTS_NAME)) as tmp:
        save_model(model, tmp)


def load_mixup_model(directory: str) -> nn.Module:
    """The model :func:`save_mixup_model` wrote, every tensor as saved (strict: no key missing or left over)."""
    model = AutoModelForSequenceClassification.from_config(AutoConfig.from_pretrained(directory))
    inject_from_settings(model, read_json(os.path.join(directory, ALPHA_CONFIG_NAME)))
    load_model(model, os.path.join(directory, WEIGHTS_NAME), strict=True)
    return model

