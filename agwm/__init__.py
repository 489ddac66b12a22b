"""agwm: attention-guided weight mixup for finetuning pretrained language models on a few hundred
labelled examples. Every targeted ``nn.Linear`` weight becomes W~ = alpha * W + (1 - alpha) * W0
(:mod:`agwm.mixup`); the attention alpha is searched by bi-level optimisation on Betty
(:mod:`agwm.search`, problems in the top-level ``problems`` package), then W is finetuned with
alpha fixed (:mod:`agwm.finetune`). Submodules are imported where used, so ``import agwm`` is cheap."""

__version__ = "0.1.0"
