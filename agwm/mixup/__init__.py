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

The package, as PEFT's tuners: the settings are :class:`agwm.config.MixupConfig`; :mod:`.layer` holds
the layers and the formula, :mod:`.inject` puts them into a model and takes them out (merge),
:mod:`.saved` writes and reads the alpha files, and :mod:`.model` is the wrapper for your own loop
(:class:`MixupModel`, :func:`get_mixup_model`). Every name imports from ``agwm.mixup``.
"""

from agwm.config import FORMULATIONS, MixupConfig
from agwm.mixup.inject import (
    alpha_parameters,
    default_search_root,
    inject_mixup,
    merge_layers,
    merge_mixup,
    mixup_layers,
    project_alphas,
    replace_module,
    target_linear_names,
    task_parameters,
)
from agwm.mixup.layer import MixupLinear, TaskWeightLayer, mixing_mean_tensors, mixing_means
from agwm.mixup.model import WEIGHTS_NAME, WRAPPED, MixupModel, get_mixup_model, model_class, save_mixup_model
from agwm.mixup.saved import (
    ALPHA_CONFIG_NAME,
    ALPHA_WEIGHTS_NAME,
    alpha_state_dict,
    inject_from_saved,
    inject_from_settings,
    layers_settings,
    load_alpha_state,
    load_alphas,
    read_alpha_settings,
    save_alphas,
)

__all__ = [
    "ALPHA_CONFIG_NAME", "ALPHA_WEIGHTS_NAME", "FORMULATIONS", "WEIGHTS_NAME", "WRAPPED", "MixupConfig", "MixupLinear",
    "MixupModel", "TaskWeightLayer", "alpha_parameters", "alpha_state_dict", "default_search_root",
    "get_mixup_model", "inject_from_saved", "inject_from_settings", "inject_mixup", "layers_settings",
    "load_alpha_state", "load_alphas", "merge_layers", "merge_mixup", "mixing_mean_tensors", "mixing_means",
    "mixup_layers", "model_class", "project_alphas", "read_alpha_settings", "replace_module", "save_alphas",
    "save_mixup_model", "target_linear_names", "task_parameters",
]
