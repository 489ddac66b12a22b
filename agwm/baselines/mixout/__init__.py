"""Mixout (Lee et al. 2019): each task weight replaced by its pretrained value with probability p
during training (:mod:`.recipe`)."""

from dataclasses import dataclass

from agwm.registry import FinetuneMethod, register_method


@dataclass
class MixoutConfig:
    p: float = 0.7  # probability of replacing a weight by its pretrained value (Lee et al. 2019 use 0.7-0.9)

    def check(self) -> list[tuple[str, str]]:
        return [] if 0.0 <= self.p < 1.0 else [("p", "in [0, 1)")]


register_method(FinetuneMethod("mixout", "each weight replaced by its pretrained value with probability mixout.p",
                               recipe="agwm.baselines.mixout.recipe:Mixout", settings=("mixout", MixoutConfig)))
