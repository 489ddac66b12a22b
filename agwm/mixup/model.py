"""A model with mixup layers for your own training loop or a Hugging Face ``Trainer``, as PEFT's
``PeftModel``: :func:`get_mixup_model` wraps a model, a ``Trainer`` saves and resumes it, and
``merge_and_unload`` gives a stock model.

    model = get_mixup_model(AutoModelForSequenceClassification.from_pretrained(name), MixupConfig())
    model.load_alphas("runs/search/alphas.safetensors")   # searched alphas, kept fixed
    Trainer(model=model, ...).train()                     # W trains; A, B do not
    model.merge_and_unload().save_pretrained("out")       # a stock Hugging Face model"""

from __future__ import annotations

import os

from safetensors.torch import load_file, save_file
from torch import nn
from transformers import AutoConfig, AutoModelForSequenceClassification, PretrainedConfig, PreTrainedModel

from agwm.config import MixupConfig
from agwm.files import atomic_path, read_json, write_json
from agwm.mixup.inject import alpha_parameters, inject_mixup, merge_mixup, mixup_layers, project_alphas
from agwm.mixup.saved import ALPHA_CONFIG_NAME, inject_from_settings, layers_settings, load_alphas, save_alphas

WEIGHTS_NAME = "model.safetensors"

WRAPPED = "model"  # the wrapped model's attribute in MixupModel: saved keys are ``model.<its key>``


def save_mixup_model(model: nn.Module, directory: str, tokenizer=None) -> None:
    """``model``'s config (with its class in ``architectures``), the layers' settings and every
    tensor unmerged (W, A, B, W0, head), in :class:`MixupModel`'s keys."""
    os.makedirs(directory, exist_ok=True)
    model.config.architectures = [type(model).__name__]
    model.config.save_pretrained(directory)
    if tokenizer is not None:
        tokenizer.save_pretrained(directory)
    write_json(layers_settings(model), os.path.join(directory, ALPHA_CONFIG_NAME))
    tensors = {f"{WRAPPED}.{key}": value.detach().contiguous() for key, value in model.state_dict().items()}
    with atomic_path(os.path.join(directory, WEIGHTS_NAME)) as tmp:
        save_file(tensors, tmp, metadata={"format": "pt"})


def model_class(config) -> type:
    """The Hugging Face class named first in ``config.architectures`` (a sequence classifier if none)."""
    import transformers

    names = getattr(config, "architectures", None) or []
    found = getattr(transformers, names[0], None) if names else None
    return found if isinstance(found, type) and issubclass(found, PreTrainedModel) \
        else AutoModelForSequenceClassification


class MixupModel(PreTrainedModel):
    """A model whose targeted Linear layers are mixup layers, for your own training loop or a Hugging
    Face ``Trainer`` (as PEFT's ``PeftModel``): it calls the wrapped model (``base_model``) and
    otherwise behaves as it (``model.config``, ...). A and B are frozen unless ``train_alphas`` is
    set; W, the biases and the head train. A ``PreTrainedModel``, so a ``Trainer`` saves it (its
    ``save_model`` and every checkpoint) through :meth:`save_pretrained`, and
    ``resume_from_checkpoint`` reads it back; :meth:`from_pretrained` restores it exactly, with the
    head class it was saved with; ``merge_and_unload`` gives a plain Hugging Face model computing W~."""

    base_model_prefix = WRAPPED
    config_class = PretrainedConfig
    # attention runs in the wrapped model, which checked its implementation when it was built
    _supports_sdpa = _supports_flash_attn = _supports_flex_attn = _supports_attention_backend = True

    def __init__(self, model: nn.Module, config: MixupConfig | None = None, seed: int | None = None,
                 layers: dict | None = None):
        if isinstance(model, MixupModel) or next(mixup_layers(model), None) is not None:
            raise ValueError("this model already has mixup layers: get_mixup_model takes a model without them "
                             "(load other alphas into it with load_alphas)")
        super().__init__(model.config)
        self.model = model
        if layers is not None:  # exactly the layers of a saved alphas.json (:func:`layers_settings`)
            inject_from_settings(model, layers)
        else:
            c = config or MixupConfig()
            inject_mixup(model, c.target_modules, c.rank, c.formulation, c.init_mean, c.init_std, seed)
        self.train_alphas(False)
        self._show_wrapped_signature()

    def forward(self, *args, **kwargs):
        return self.model(*args, **kwargs)

    def _show_wrapped_signature(self) -> None:
        """``forward``'s signature is the wrapped model's (a Trainer keeps the dataset columns it names)."""
        def forward(*args, **kwargs):
            return self.model(*args, **kwargs)

        forward.__wrapped__ = self.model.forward
        self.__dict__["forward"] = forward

    def __getattr__(self, name: str):
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(self.model, name)

    def get_input_embeddings(self) -> nn.Module:
        return self.model.get_input_embeddings()

    def train_alphas(self, enabled: bool = True) -> None:
        """Whether the optimizer's gradients reach A and B (the search, or the ``joint`` ablation);
        with it, call :meth:`project_alphas` after each step."""
        for p in alpha_parameters(self.model):
            p.requires_grad_(enabled)

    def alpha_parameters(self) -> list[nn.Parameter]:
        return alpha_parameters(self.model)

    def project_alphas(self) -> None:
        project_alphas(self.alpha_parameters())

    def load_alphas(self, path: str) -> None:
        """A and B from an ``alphas.safetensors`` (a search's output); layers and shapes must match."""
        load_alphas(self.model, path)

    def save_alphas(self, directory: str) -> None:
        save_alphas(self.model, directory)

    def save_pretrained(self, save_directory: str, is_main_process: bool = True, **kwargs) -> None:
        """Every weight unmerged (W, A, B, W0, head) with the model's config and the layers' settings,
        in the keys of this model's ``state_dict`` (what a ``Trainer`` resumes from). Hugging Face's
        signature: a ``state_dict`` given is ignored (the model's own is saved), as are the other
        options of a stock model's save."""
        if is_main_process:
            save_mixup_model(self.model, save_directory)

    @classmethod
    def from_pretrained(cls, directory: str, *args, **kwargs) -> MixupModel:
        """The model :meth:`save_pretrained` wrote, every tensor as saved (a folder that an earlier
        version wrote, its keys without ``model.``, too)."""
        config_file, settings = os.path.join(directory, "config.json"), os.path.join(directory, ALPHA_CONFIG_NAME)
        if not (os.path.isfile(config_file) and os.path.isfile(settings)):
            missing = [os.path.basename(f) for f in (config_file, settings) if not os.path.isfile(f)]
            raise ValueError(f"{directory} is not a folder MixupModel.save_pretrained wrote: no {' or '.join(missing)} "
                             "(a merged model loads with AutoModelForSequenceClassification.from_pretrained)")
        config = AutoConfig.from_pretrained(directory)
        wrapper = cls(model_class(config)(config), layers=read_json(settings))
        tensors = load_file(os.path.join(directory, WEIGHTS_NAME))
        target = wrapper if all(key.startswith(f"{WRAPPED}.") for key in tensors) else wrapper.model
        target.load_state_dict(tensors, strict=True)  # no key missing or left over
        return wrapper

    def merge_and_unload(self) -> nn.Module:
        """The wrapped model with each mixup layer replaced by a plain ``nn.Linear`` of weight W~."""
        return merge_mixup(self.model)


def get_mixup_model(model: nn.Module, config: MixupConfig | None = None, seed: int | None = None) -> MixupModel:
    """``model`` (changed in place) with mixup layers where ``config`` targets them, A and B drawn
    with ``seed``; then ``load_alphas`` for a search's alphas."""
    return MixupModel(model, config, seed)
