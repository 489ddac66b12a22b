"""The attention-guided weight mixup layer, after PEFT's tuners: its config, the layer, its
injection into a model, merge, saving and loading, and a model wrapper for your own training loop.

A wrapped ``nn.Linear`` keeps its pretrained weight W0 frozen in ``base_layer`` and learns a task
weight W (initialised to W0) together with attention factors A (out x r) and B (r x in):

* ``factored`` (default): W~ = (A B / r) * W + ((1 - A)(1 - B) / r) * W0
* ``convex``:             alpha = A B / r,  W~ = alpha * W + (1 - alpha) * W0

where ``*`` is the elementwise product and ``1 - A`` subtracts every entry from one. A and B live
in [0, 1]; :func:`project_alphas` puts them back after every update. :class:`TaskWeightLayer` is
the shape mixup shares with Mixout: ``base_layer`` holds W0, W starts at W0, the forward pass uses
``mixed_weight()``, and ``merge`` writes W~ into a plain ``nn.Linear``.

    model = get_mixup_model(AutoModelForSequenceClassification.from_pretrained(name), MixupConfig())
    model.load_alphas("runs/search/alphas.safetensors")   # searched alphas, kept fixed
    Trainer(model=model, ...).train()                     # W trains; A, B do not
    model.merge_and_unload().save_pretrained("out")       # a stock Hugging Face model
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn
from transformers import AutoConfig, AutoModelForSequenceClassification, PretrainedConfig, PreTrainedModel

from agwm.config import FORMULATIONS, MixupConfig  # noqa: F401  (part of this module's interface)
from agwm.files import atomic_path, read_json, save_tensors, write_json

ALPHA_WEIGHTS_NAME = "alphas.safetensors"  # A and B of every mixup layer
ALPHA_CONFIG_NAME = "alphas.json"  # their layers' names, rank and formulation
WEIGHTS_NAME = "model.safetensors"


class TaskWeightLayer(nn.Module):
    """``y = x W~^T + bias`` with W~ = ``mixed_weight()``, a function of W and W0.

    ``merge()`` writes W~ into ``base_layer`` (kept W0 aside) and the layer then runs as that plain
    Linear; ``unmerge()`` puts W0 back. ``disable_adapters = True`` runs the pretrained weight W0
    (with the trained bias), as PEFT's switch does.
    """

    def __init__(self, base_layer: nn.Linear):
        super().__init__()
        self.base_layer = base_layer
        self.base_layer.weight.requires_grad_(False)
        self.in_features = base_layer.in_features
        self.out_features = base_layer.out_features
        self.weight = nn.Parameter(base_layer.weight.detach().clone())
        self.disable_adapters = False
        self._pretrained_weight: torch.Tensor | None = None  # W0 while merged

    @property
    def bias(self) -> torch.Tensor | None:
        return self.base_layer.bias

    @property
    def merged(self) -> bool:
        return self._pretrained_weight is not None

    def get_base_layer(self) -> nn.Linear:
        return self.base_layer

    def mixed_weight(self) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.merged or self.disable_adapters:
            return self.base_layer(x)
        return F.linear(x, self.mixed_weight(), self.bias)

    @torch.no_grad()
    def finite_mixed_weight(self) -> torch.Tensor:
        """W~, refused if any entry is NaN or infinite (a diverged training must not be saved)."""
        weight = self.mixed_weight()
        if not torch.isfinite(weight).all():
            raise ValueError(f"{type(self).__name__}: the mixed weight has non-finite values; nothing merged")
        return weight

    @torch.no_grad()
    def merge(self) -> None:
        if not self.merged:
            weight = self.finite_mixed_weight()
            self._pretrained_weight = self.base_layer.weight.detach().clone()
            self.base_layer.weight.copy_(weight)

    @torch.no_grad()
    def unmerge(self) -> None:
        if self.merged:
            self.base_layer.weight.copy_(self._pretrained_weight)
            self._pretrained_weight = None

    def merged_linear(self) -> nn.Linear:
        """A plain ``nn.Linear`` computing the same function as the layer in evaluation: weight W~,
        the trained bias."""
        w0 = self.base_layer.weight
        linear = nn.Linear(self.in_features, self.out_features, bias=self.bias is not None,
                           device=w0.device, dtype=w0.dtype)
        with torch.no_grad():
            linear.weight.copy_(self.finite_mixed_weight())
            if self.bias is not None:
                linear.bias.copy_(self.bias)
        return linear


def _parent_and_attr(model: nn.Module, name: str) -> tuple[nn.Module, str]:
    parent_name, _, attr = name.rpartition(".")
    return (model.get_submodule(parent_name) if parent_name else model), attr


def replace_module(model: nn.Module, name: str, new: nn.Module) -> None:
    parent, attr = _parent_and_attr(model, name)
    setattr(parent, attr, new)


def _matches(name: str, targets: str | Iterable[str]) -> bool:
    """PEFT's rule: a regex is matched against the whole name, a list against its last parts."""
    if isinstance(targets, str):
        return re.fullmatch(targets, name) is not None
    return any(name == t or name.endswith("." + t) for t in targets)


def default_search_root(model: nn.Module) -> str:
    """The encoder of a Hugging Face model (``model.base_model``): every Linear but the head."""
    base = getattr(model, "base_model", model)
    for name, module in model.named_modules():
        if module is base:
            return name
    return ""


def target_linear_names(model: nn.Module, target_modules: str | Iterable[str] | None = None) -> list[str]:
    """The names of the ``nn.Linear`` modules that ``target_modules`` selects: ``None`` every Linear
    inside the encoder (the pooler included, the classification head not); a string is a regex on
    the full module name; a list names modules by their last dotted parts (``["query", "value"]``)."""
    if isinstance(target_modules, (list, tuple)) and not target_modules:
        raise ValueError("target_modules is empty: name at least one module, or pass None")
    root = default_search_root(model) if target_modules is None else ""
    names = [
        name for name, module in model.named_modules()
        if type(module) is nn.Linear
        and (target_modules is None and (not root or name.startswith(root + "."))
             or target_modules is not None and _matches(name, target_modules))
    ]
    if not names:
        raise ValueError(f"no nn.Linear module matches target_modules={target_modules!r}")
    return names


def merge_layers(model: nn.Module, kind: type[TaskWeightLayer]) -> nn.Module:
    """Replace every layer of ``kind`` by its merged ``nn.Linear`` (in place); the state dict then
    has the original names, so ``save_pretrained`` writes a stock Hugging Face folder."""
    for name, layer in [(n, m) for n, m in model.named_modules() if isinstance(m, kind)]:
        replace_module(model, name, layer.merged_linear())
    return model


class MixupLinear(TaskWeightLayer):
    """``y = x W~^T + bias`` with W~ the mix of the task weight W and the pretrained weight W0."""

    def __init__(
        self,
        base_layer: nn.Linear,
        rank: int = 1,
        formulation: str = "factored",
        init_mean: float = 1.0,
        init_std: float = 0.005,
        generator: torch.Generator | None = None,
    ):
        if rank < 1:
            raise ValueError(f"rank must be at least 1, got {rank}")
        if formulation not in FORMULATIONS:
            raise ValueError(f"formulation must be one of {FORMULATIONS}, got {formulation!r}")
        super().__init__(base_layer)
        self.rank = rank
        self.formulation = formulation
        w0 = base_layer.weight
        self.A = nn.Parameter(torch.empty(self.out_features, rank, dtype=w0.dtype, device=w0.device))
        self.B = nn.Parameter(torch.empty(rank, self.in_features, dtype=w0.dtype, device=w0.device))
        self._fixed_terms = None  # (key, alpha, C) while A and B are frozen: see mixed_weight
        self.reset_alpha(init_mean, init_std, generator)

    @torch.no_grad()
    def reset_alpha(self, mean: float, std: float, generator: torch.Generator | None = None) -> None:
        """Draw every entry of A and B from N(mean, std) and clamp it to [0, 1]."""
        for factor in (self.A, self.B):
            sample = torch.randn(factor.shape, generator=generator, dtype=torch.float64)
            factor.copy_((sample * std + mean).clamp_(0.0, 1.0))

    def alpha(self) -> torch.Tensor:
        """alpha = A B / r, the (out x in) attention on the task weight W."""
        return self.A @ self.B / self.rank

    def mixing_terms(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(alpha, C) with W~ = alpha * W + C: C = ((1 - A)(1 - B) / r) * W0 (factored) or
        (1 - alpha) * W0 (convex)."""
        alpha = self.alpha()
        if self.formulation == "factored":
            return alpha, ((1 - self.A) @ (1 - self.B) / self.rank) * self.base_layer.weight
        return alpha, (1 - alpha) * self.base_layer.weight

    def _fixed_mixing_terms(self) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`mixing_terms`, computed once while A and B are frozen (the finetune phase) and
        again only after A, B or W0 change: in place (their version counters) or by moving."""
        key = tuple((t._version, t.data_ptr()) for t in (self.A, self.B, self.base_layer.weight))
        if self._fixed_terms is None or self._fixed_terms[0] != key:
            with torch.no_grad():
                self._fixed_terms = (key, *self.mixing_terms())
        return self._fixed_terms[1:]

    def mixed_weight(self) -> torch.Tensor:
        """W~ = alpha * W + C (see :meth:`mixing_terms`)."""
        if self.A.requires_grad or self.B.requires_grad:
            self._fixed_terms = None
            alpha, w0_term = self.mixing_terms()
        else:
            alpha, w0_term = self._fixed_mixing_terms()
        return torch.addcmul(w0_term, alpha, self.weight)

    def extra_repr(self) -> str:
        return f"rank={self.rank}, formulation={self.formulation}"


def inject_mixup(
    model: nn.Module,
    target_modules: str | Iterable[str] | None = None,
    rank: int = 1,
    formulation: str = "factored",
    init_mean: float = 1.0,
    init_std: float = 0.005,
    seed: int | None = None,
) -> list[str]:
    """Wrap the targeted ``nn.Linear`` layers of ``model`` in place; return their names.

    ``target_modules``: ``None`` targets every Linear inside the encoder (``model.base_model``,
    the pooler included, the classification head not); a string is a regex on the full module
    name; a list names modules by their last dotted parts (``["query", "value"]``).
    ``seed`` makes the initial A and B reproducible independently of the global random stream.
    """
    names = target_linear_names(model, target_modules)
    generator = torch.Generator().manual_seed(seed) if seed is not None else None
    for name in names:
        replace_module(model, name, MixupLinear(
            model.get_submodule(name), rank, formulation, init_mean, init_std, generator))
    return names


def mixing_means(A: torch.Tensor, B: torch.Tensor, rank: int, formulation: str = "factored") -> tuple[float, float]:
    """The means over all entries of alpha = A B / r and of the W0 weight, (1 - A)(1 - B) / r
    (factored) or 1 - alpha (convex), without forming them: mean_ij (A B)_ij = sum_k mean_i A_ik
    mean_j B_kj."""
    alpha, w0_weight = mixing_mean_tensors(A, B, rank, formulation)
    return alpha.item(), w0_weight.item()


def mixing_mean_tensors(A: torch.Tensor, B: torch.Tensor, rank: int,
                        formulation: str = "factored") -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`mixing_means` as 0-d tensors on A's device (no host sync)."""
    alpha = (A.mean(0) @ B.mean(1)) / rank
    if formulation == "convex":
        return alpha, 1.0 - alpha
    return alpha, ((1 - A).mean(0) @ (1 - B).mean(1)) / rank


def mixup_layers(model: nn.Module) -> Iterator[tuple[str, MixupLinear]]:
    for name, module in model.named_modules():
        if isinstance(module, MixupLinear):
            yield name, module


def alpha_parameters(model: nn.Module) -> list[nn.Parameter]:
    """The attention factors A, B of every mixup layer: the outer level's variables."""
    return [p for _, layer in mixup_layers(model) for p in (layer.A, layer.B)]


def task_parameters(model: nn.Module) -> list[nn.Parameter]:
    """Every trainable parameter except the attention factors: the inner level's variables."""
    alphas = {id(p) for p in alpha_parameters(model)}
    return [p for p in model.parameters() if p.requires_grad and id(p) not in alphas]


@torch.no_grad()
def project_alphas(parameters: Iterable[torch.Tensor]) -> None:
    """Euclidean projection onto the box: A <- clip(A, 0, 1), B <- clip(B, 0, 1)."""
    for p in parameters:
        p.clamp_(0.0, 1.0)


def merge_mixup(model: nn.Module) -> nn.Module:
    """Replace every mixup layer by its merged ``nn.Linear`` (in place); the model's state dict
    then has the original names, so ``save_pretrained`` writes a stock Hugging Face folder."""
    return merge_layers(model, MixupLinear)


def alpha_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    return {
        f"{name}.{factor}": getattr(layer, factor).detach().cpu().contiguous()
        for name, layer in mixup_layers(model) for factor in ("A", "B")
    }


def layers_settings(model: nn.Module) -> dict:
    layers = dict(mixup_layers(model))
    if not layers:
        raise ValueError("the model has no mixup layers")
    first = next(iter(layers.values()))
    return {"layers": list(layers), "rank": first.rank, "formulation": first.formulation}


def save_alphas(model: nn.Module, directory: str) -> None:
    """Write only A and B (``alphas.safetensors``) and the layer names, rank and formulation
    (``alphas.json``); each file goes to a temporary name first and is renamed when complete."""
    os.makedirs(directory, exist_ok=True)
    save_tensors(alpha_state_dict(model), os.path.join(directory, ALPHA_WEIGHTS_NAME))
    write_json(layers_settings(model), os.path.join(directory, ALPHA_CONFIG_NAME))


def read_alpha_settings(weights_path: str) -> dict:
    """The ``alphas.json`` beside an ``alphas.safetensors`` file."""
    config_path = os.path.join(os.path.dirname(weights_path) or ".", ALPHA_CONFIG_NAME)
    if not os.path.isfile(config_path):
        raise FileNotFoundError(f"{config_path} (written beside {weights_path} by save_alphas) is missing")
    return read_json(config_path)


def load_alphas(model: nn.Module, weights_path: str) -> None:
    """Copy the A, B saved at ``weights_path`` into the mixup layers of ``model``."""
    load_alpha_state(model, load_file(weights_path), source=weights_path)


def load_alpha_state(model: nn.Module, tensors: dict[str, torch.Tensor], source: str = "the state") -> None:
    """Copy ``{"<layer>.A": tensor, "<layer>.B": tensor}`` into the mixup layers of ``model``;
    names and shapes must match exactly."""
    own = dict(mixup_layers(model))
    expected = {f"{name}.{factor}" for name in own for factor in ("A", "B")}
    if set(tensors) != expected:
        missing, extra = sorted(expected - set(tensors)), sorted(set(tensors) - expected)
        raise ValueError(f"{source} does not fit this model: missing {missing[:3]}, unexpected {extra[:3]}")
    with torch.no_grad():
        for key, value in tensors.items():
            name, _, factor = key.rpartition(".")
            target = getattr(own[name], factor)
            if target.shape != value.shape:
                raise ValueError(f"{key}: saved shape {tuple(value.shape)}, model has {tuple(target.shape)}")
            target.copy_(value)


def inject_from_saved(model: nn.Module, weights_path: str) -> list[str]:
    """Wrap exactly the layers named in the saved ``alphas.json`` and load their A, B."""
    names = inject_from_settings(model, read_alpha_settings(weights_path))
    load_alphas(model, weights_path)
    return names


def inject_from_settings(model: nn.Module, settings: dict) -> list[str]:
    """Wrap exactly the layers of ``settings`` (:func:`layers_settings`: names, rank, formulation)."""
    return inject_mixup(model, target_modules="|".join(re.escape(n) for n in settings["layers"]),
                        rank=settings["rank"], formulation=settings["formulation"])


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
