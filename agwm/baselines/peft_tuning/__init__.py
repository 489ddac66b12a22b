"""LoRA, prefix tuning and prompt tuning through Hugging Face ``peft``: the pretrained weights
frozen, the method's new parameters and the head trained (:mod:`.recipe`)."""

from dataclasses import dataclass

from agwm.registry import FinetuneMethod, register_method


@dataclass
class PeftConfig:
    lora_r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.1
    virtual_tokens: int = 20  # prefix and prompt tuning

    def check(self) -> list[tuple[str, str]]:
        return [(name, "at least 1") for name in ("lora_r", "lora_alpha", "virtual_tokens")
                if getattr(self, name) < 1] + ([] if 0 <= self.lora_dropout < 1 else [("lora_dropout", "in [0, 1)")])


RECIPE = "agwm.baselines.peft_tuning.recipe:Peft"
register_method(FinetuneMethod("lora", "low-rank updates B A of the frozen weights (peft)", recipe=RECIPE,
                               settings=("peft", PeftConfig)))
register_method(FinetuneMethod("prefix", "trained key/value vectors in every attention layer (peft)", recipe=RECIPE,
                               settings=("peft", PeftConfig)))
register_method(FinetuneMethod("prompt", "trained input embeddings prepended to the input (peft)", recipe=RECIPE,
                               settings=("peft", PeftConfig)))
