"""Re-init (Zhang et al. 2020): the pooler and the top transformer layers re-initialised before
finetuning (:mod:`.recipe`)."""

from dataclasses import dataclass

from agwm.registry import FinetuneMethod, register_method


@dataclass
class ReinitConfig:
    layers: int = 1  # top L transformer layers re-initialised (with the pooler)

    def check(self) -> list[tuple[str, str]]:
        return [] if self.layers >= 1 else [("layers", "at least 1")]


register_method(FinetuneMethod("re-init", "the pooler and the top reinit.layers layers re-initialised",
                               recipe="agwm.baselines.reinit.recipe:Reinit", settings=("reinit", ReinitConfig)))
