"""Child-Tuning-D and -F (Xu et al. 2021) and DPS dense (Zhang et al. 2022): the gradient of a
sub-network of the weights, masked before each step (:mod:`.recipe`)."""

import re
from dataclasses import dataclass

from agwm.registry import FinetuneMethod, register_method


def _is_regex(text) -> bool:
    try:
        re.compile(text)
    except (re.error, TypeError):
        return False
    return True


@dataclass
class ChildTuningConfig:
    reserve_p: float = 0.3  # fraction of weights in the child network (D) or kept per step (F)
    target: str = r".*\.layer\.\d+\..*"  # parameters masked: a regex on their names (the reference code's layers)

    def check(self) -> list[tuple[str, str]]:
        return ([] if 0.0 < self.reserve_p <= 1.0 else [("reserve_p", "in (0, 1]")]) + (
            [] if _is_regex(self.target) else [("target", "a regular expression")])


@dataclass
class DpsConfig:
    reserve_p: float = 0.3  # fraction of the target weights updated in stage II
    update_ratio: float = 0.5  # length of each stage as a fraction of an epoch's steps
    target: str = r".*\.layer\.\d+\..*"

    def check(self) -> list[tuple[str, str]]:
        return ChildTuningConfig.check(self) + ([] if self.update_ratio > 0 else [("update_ratio", "greater than 0")])


register_method(FinetuneMethod("child-tuning-d", "the gradient of a child network fixed by the Fisher information",
                               recipe="agwm.baselines.subnetworks.recipe:ChildTuningD",
                               settings=("child_tuning", ChildTuningConfig)))
register_method(FinetuneMethod("child-tuning-f", "the gradient masked by a fresh Bernoulli draw each step",
                               recipe="agwm.baselines.subnetworks.recipe:ChildTuningF",
                               settings=("child_tuning", ChildTuningConfig)))
register_method(FinetuneMethod("dps", "DPS dense: stages of every weight, then of the top accumulated gradients",
                               recipe="agwm.baselines.subnetworks.recipe:Dps", settings=("dps", DpsConfig)))
