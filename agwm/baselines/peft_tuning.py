"""LoRA, prefix tuning and prompt tuning through Hugging Face ``peft``: the pretrained weights
stay frozen; only the method's new parameters and the classification head are trained.

    LoRA:   W x + (lora_alpha / r) B A x,  A (r x in), B (out x r), dropout on x
    prefix: ``virtual_tokens`` trained key/value vectors prepended in every attention layer
    prompt: ``virtual_tokens`` trained input embeddings prepended to the input
"""

from __future__ import annotations

import inspect

import transformers
from torch import nn


class PrefixTuningUnsupported(ValueError):
    """The model cannot take peft's prefix (no ``past_key_values`` argument)."""


def wrap_with_peft(model: nn.Module, method: str, settings) -> nn.Module:
    from peft import LoraConfig, PrefixTuningConfig, PromptTuningConfig, TaskType, get_peft_model

    if method == "lora":
        config = LoraConfig(task_type=TaskType.SEQ_CLS, r=settings.lora_r, lora_alpha=settings.lora_alpha,
                            lora_dropout=settings.lora_dropout)
    elif method == "prefix":
        backbone = getattr(model, "base_model", model)
        if "past_key_values" not in inspect.signature(backbone.forward).parameters:
            raise PrefixTuningUnsupported(
                f"finetune.method=prefix is not allowed with {type(backbone).__name__} in transformers "
                f"{transformers.__version__}: peft's prefix tuning passes the prefix as past_key_values, "
                "which this model's forward does not accept")
        config = PrefixTuningConfig(task_type=TaskType.SEQ_CLS, num_virtual_tokens=settings.virtual_tokens)
    elif method == "prompt":
        config = PromptTuningConfig(task_type=TaskType.SEQ_CLS, num_virtual_tokens=settings.virtual_tokens)
    else:
        raise ValueError(f"peft method {method!r} is not allowed: one of lora, prefix, prompt")
    return get_peft_model(model, config)


def unwrap_peft(model: nn.Module) -> nn.Module:
    """LoRA merged into the base weights (a stock model); prefix and prompt stay wrapped."""
    return model.merge_and_unload() if hasattr(model, "merge_and_unload") else model
