"""R3F (Aghajanyan et al. 2020) and R-Dropout (Wu et al. 2021): a symmetric divergence between two
predictions of the same batch added to the task loss (:mod:`.recipe`)."""

from dataclasses import dataclass

from agwm.registry import FinetuneMethod, register_method

R3F_NOISES = ("uniform", "normal")


@dataclass
class R3fConfig:
    noise: str = "uniform"  # uniform U(-eps, eps) or normal N(0, eps^2) on the input embeddings
    eps: float = 1e-5
    kl_lambda: float = 1.0  # lambda, the weight of the symmetric KL term

    def check(self) -> list[tuple[str, str]]:
        return ([] if self.noise in R3F_NOISES else [("noise", f"one of {', '.join(R3F_NOISES)}")]) + [
            (name, "at least 0") for name in ("eps", "kl_lambda") if getattr(self, name) < 0]


@dataclass
class RDropConfig:
    kl_alpha: float = 1.0  # alpha, the weight of the symmetric KL between the two dropout passes

    def check(self) -> list[tuple[str, str]]:
        return [] if self.kl_alpha >= 0 else [("kl_alpha", "at least 0")]


register_method(FinetuneMethod("r3f", "the divergence from a prediction on noised input embeddings",
                               recipe="agwm.baselines.consistency.recipe:R3f", settings=("r3f", R3fConfig)))
register_method(FinetuneMethod("r-dropout", "the divergence between two dropout passes",
                               recipe="agwm.baselines.consistency.recipe:RDropout", settings=("rdrop", RDropConfig)))
