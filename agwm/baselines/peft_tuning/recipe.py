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

from agwm.baselines.recipe import Recipe
from agwm.errors import ConfigError


class PrefixTuningUnsupported(ValueError):
    """The model cannot take peft's prefix (no ``past_key_values`` argument)."""


def wrap_with_peft(model: nn.Module, method: str, settings) -> nn.Module:
    from peft import LoraConfig, PrefixTuningConfig, PromptTuningConfig, TaskType, get_peft_model

    if method == "lora":
        config = LoraConfig(task_type=TaskType.SEQ_CLS, r=settings.lora_r, lora_alpha=settings.lora_alpha,
                            lora_dropout=settings.lora_dropout)
    elif method == "prefix":
        backbone = getattr(model, "base_model", model)
        accepted = inspect.signature(backbone.forward).parameters
        passed_as = peft_cache_name()
        if passed_as not in accepted:
            if "cache" not in accepted:
                raise PrefixTuningUnsupported(
                    f"finetune.method=prefix is not allowed with {type(backbone).__name__} in transformers "
                    f"{transformers.__version__}: peft's prefix tuning passes the prefix as {passed_as}, "
                    "which this model's forward does not accept")
            take_past_key_values_as_cache(backbone)
        config = PrefixTuningConfig(task_type=TaskType.SEQ_CLS, num_virtual_tokens=settings.virtual_tokens)
    elif method == "prompt":
        config = PromptTuningConfig(task_type=TaskType.SEQ_CLS, num_virtual_tokens=settings.virtual_tokens)
    else:
        raise ValueError(f"peft method {method!r} is not allowed: one of lora, prefix, prompt")
    return get_peft_model(model, config)


def peft_cache_name() -> str:
    """The argument peft passes the prefix in: ``cache`` from peft 0.22 with transformers 5.24 or
    later (peft's ``get_transformers_cache_name``), ``past_key_values`` before."""
    try:
        from peft.import_utils import get_transformers_cache_name
    except ImportError:
        return "past_key_values"
    return get_transformers_cache_name()


def take_past_key_values_as_cache(backbone: nn.Module) -> None:
    """Let ``backbone`` take peft's prefix under its old argument name: transformers 5.24 renamed
    BertModel's ``past_key_values`` to ``cache``, and peft (0.21) passes the prefix as
    ``past_key_values`` to a backbone whose signature names it. Same logits as transformers 5.23
    with the same prefix (checked on a random BERT, padded batch)."""
    original = backbone.forward

    def forward(*args, past_key_values=None, **kwargs):
        return original(*args, cache=past_key_values, **kwargs)

    signature = inspect.signature(original)
    named = [p for p in signature.parameters.values() if p.kind != p.VAR_KEYWORD]
    rest = [p for p in signature.parameters.values() if p.kind == p.VAR_KEYWORD]
    extra = inspect.Parameter("past_key_values", inspect.Parameter.KEYWORD_ONLY, default=None)
    forward.__signature__ = signature.replace(parameters=[*named, extra, *rest])
    backbone.forward = forward


def unwrap_peft(model: nn.Module) -> nn.Module:
    """LoRA merged into the base weights (a stock model); prefix and prompt stay wrapped."""
    return model.merge_and_unload() if hasattr(model, "merge_and_unload") else model



class Peft(Recipe):
    def prepare(self, model, train_batches):
        try:
            return wrap_with_peft(model, self.run.method, self.settings)
        except PrefixTuningUnsupported as error:
            raise ConfigError(str(error)) from None

    def finished(self, model):
        return unwrap_peft(model)


