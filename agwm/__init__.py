"""agwm: attention-guided weight mixup for finetuning pretrained language models on a few hundred
labelled examples. Every targeted ``nn.Linear`` weight becomes W~ = alpha * W + (1 - alpha) * W0
(:mod:`agwm.mixup`); the attention alpha is searched by bi-level optimisation on Betty
(:mod:`agwm.search`, problems in ``agwm_problems``, the repository's ``problems/``), then W is finetuned with
alpha fixed (:mod:`agwm.finetune`). By default the search keeps the inner level alone on one split
(``search.problem=inner_only``, ``search.folds=1``): the short run of W that the finetune restarts
from carries the measured gain (docs/findings.md); ``search.problem=bilevel`` learns alpha.

The Python API, after PEFT's (each name is imported when first used, so ``import agwm`` is cheap)::

    from agwm import MixupConfig, default_model, get_mixup_model
    model = get_mixup_model(AutoModelForSequenceClassification.from_pretrained(default_model()), MixupConfig())
    model.load_alphas("runs/search/alphas.safetensors")   # alphas an `agwm search` learned
    ...                                                    # train with your loop or a Trainer
    model.merge_and_unload().save_pretrained("out")

and the two phases as functions: ``run_search(build_run_config(flags), run_engine_settings(cfg))``,
``run_finetune(cfg, alphas)``."""

import importlib

__version__ = "0.1.0"

_EXPORTS = {
    "MixupConfig": "agwm.mixup", "MixupModel": "agwm.mixup", "get_mixup_model": "agwm.mixup",
    "RunConfig": "agwm.settings", "build_run_config": "agwm.settings", "run_engine_settings": "agwm.settings",
    "run_search": "agwm.search", "run_finetune": "agwm.finetune",
    "default_model": "agwm.models", "model_path": "agwm.models",
}
__all__ = [*_EXPORTS, "__version__"]


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'agwm' has no attribute {name!r}")
