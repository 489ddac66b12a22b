"""Plain finetuning of every weight, and the three methods built on it in :mod:`agwm.finetune`:
a uniform soup of members, vanilla at a tuned lr and epochs, and vanilla from SetFit's body."""

from dataclasses import dataclass, field

from agwm.registry import FinetuneMethod, positive_lists, register_method

# why SetFit and setfit-vanilla (SetFit's contrastive stage) refuse pairs and regression
SETFIT = {"texts": "SetFit takes one text per example", "labels": "SetFit's contrastive stage pairs texts by class"}


@dataclass
class SoupConfig:
    members: int = 5  # vanilla runs with different training seeds, averaged uniformly

    def check(self) -> list[tuple[str, str]]:
        return [] if self.members >= 1 else [("members", "at least 1")]


@dataclass
class TunedConfig:
    # vanilla-tuned: every (lr, epochs) pair is trained on split 0's training part of the sample and
    # scored on its held-out part, as agwm's own defaults were chosen; the best is retrained on all of it
    lrs: list = field(default_factory=lambda: [3e-5, 1e-4, 3e-4])
    epochs: list = field(default_factory=lambda: [5.0, 10.0])

    def check(self) -> list[tuple[str, str]]:
        return positive_lists(self, ("lrs", "epochs"))


register_method(FinetuneMethod("vanilla", "plain finetuning of every weight", recipe="agwm.baselines.recipe:Recipe",
                               candidate="everywhere"))
register_method(FinetuneMethod("vanilla-tuned", "vanilla at the lr and epochs chosen on a held-out part of the sample",
                               fit="agwm.finetune:fit_tuned", settings=("tuned", TunedConfig)))
register_method(FinetuneMethod("soup", "the uniform average of soup.members vanilla runs", fit="agwm.finetune:fit_soup",
                               settings=("soup", SoupConfig)))
register_method(FinetuneMethod("setfit-vanilla", "vanilla from the encoder SetFit's contrastive stage makes of the "
                               "sample", fit="agwm.finetune:fit_setfit_vanilla", texts=(1,), labels=("classes",),
                               why=SETFIT,
                               needs=("setfit", "setfit"), from_weights=False, candidate="single texts"))
