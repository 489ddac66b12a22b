"""The two methods a practitioner tries first with a sentence encoder and a few hundred texts. The
encoder is used as the sentence-transformers model it was trained as (mean-pooled, normalised
where its folder says so), u = f(x):

* ``probe``: f frozen; a logistic regression on u, softmax(U w + b) with L2 strength 1 / C (a ridge
  regression for regression tasks); for a pair (x, y) on [u, v, |u - v|, u * v] (Conneau et al., 2017).
* ``probe-tuned``: the probe with C (or the ridge's alpha) chosen from a list by k-fold
  cross-validation on the sample, scored by the task's metric (scikit-learn's
  ``LogisticRegressionCV``; ``RidgeCV``'s leave-one-out squared error for regression), then refitted
  on all of it: how a practitioner fits a probe.
* ``setfit``: SetFit (Tunstall et al., 2022) through the ``setfit`` library: f finetuned
  contrastively on 2 R n pairs of the n examples (cosine similarity pulled to 1 for a pair of one
  class, to 0 otherwise; R = ``setfit.num_iterations``), then the same logistic regression on its
  embeddings. Single texts and classification only.
* ``cosine``: f frozen; for a pair, s = cos(u, v), mapped to the label by a ridge regression a + b s
  (at ``probe.ridge_alpha``), or for classes by the logistic regression on s: the pair scored as a
  sentence-similarity model is trained to score it. Pairs only.
* ``cosine-finetune``: f first finetuned on the sample's pairs with sentence-transformers'
  ``CosineSimilarityLoss``, mean (cos(u, v) - t)^2 with t the label scaled to [0, 1] by the sample's
  range; for two classes t = 1 for the class whose sample pairs have the higher mean untrained cosine
  and 0 for the other (which class means "similar" is read from the sample, not from the label's
  index: RTE's 0 is entailment), then the cosine head above. Pairs; regression or two classes.

Each fits on the run's examples as read (``text_a`` [, ``text_b``], ``label``) and predict
:class:`~agwm.metrics.Predictions` as a finetuned model does; ``save_pretrained`` writes a
folder that :func:`load_encoder_model` (or, for SetFit, ``setfit.SetFitModel.from_pretrained``)
loads and predicts with.
"""

from dataclasses import dataclass, field

from agwm.baselines.vanilla import SETFIT
from agwm.registry import FinetuneMethod, positive, positive_lists, register_method


@dataclass
class ProbeConfig:
    c: float = 1.0  # inverse L2 strength of the logistic regression (scikit-learn's default)
    ridge_alpha: float = 1.0  # L2 strength of the ridge regression, for regression tasks (scikit-learn's default)
    # probe-tuned: the choices, and the cross-validation's folds (stratified, shuffled by the seed)
    cs: list = field(default_factory=lambda: [0.01, 0.1, 1.0, 10.0, 100.0, 1000.0])
    ridge_alphas: list = field(default_factory=lambda: [0.001, 0.01, 0.1, 1.0, 10.0, 100.0])
    folds: int = 5

    def check(self) -> list[tuple[str, str]]:
        return (positive(self, ("c", "ridge_alpha")) + positive_lists(self, ("cs", "ridge_alphas"))
                + ([] if self.folds >= 2 else [("folds", "at least 2")]))


@dataclass
class CosineConfig:
    # cosine-finetune: sentence-transformers' STS-B training example (training_stsbenchmark.py), batch_size as set
    epochs: int = 4
    lr: float = 2e-5
    warmup_ratio: float = 0.1

    def check(self) -> list[tuple[str, str]]:
        return (([] if self.epochs >= 1 else [("epochs", "at least 1")]) + positive(self, ("lr",))
                + ([] if 0 <= self.warmup_ratio < 1 else [("warmup_ratio", "in [0, 1)")]))


@dataclass
class SetFitConfig:
    # pairs drawn per example and kind (positive, negative): 2 * num_iterations * n pairs in all. Chosen
    # on held-out training splits between 5 and the SetFit paper's 20 (experiments/setfit-space.yaml: a
    # tie, so the cheaper); the library's own default (every pair, oversampled) is ~45,000 pairs at 300
    num_iterations: int = 5
    epochs: int = 1  # contrastive epochs over the pairs (the library's default)
    body_lr: float = 2e-5  # the library's default

    def check(self) -> list[tuple[str, str]]:
        return [(name, "at least 1") for name in ("num_iterations", "epochs") if getattr(self, name) < 1] + positive(
            self, ("body_lr",))


FIT = "agwm.baselines.sentence_encoder.encoder:fit"
ENCODER = {"fit": FIT, "from_weights": False}  # each fits a head on the encoder's embeddings
PAIRS = {"texts": "it scores the cosine of a pair's two embeddings"}
register_method(FinetuneMethod("probe", "logistic regression on the frozen sentence embeddings", **ENCODER,
                               settings=("probe", ProbeConfig), candidate="everywhere"))
register_method(FinetuneMethod("probe-tuned", "the probe at the C chosen by cross-validation on the sample",
                               **ENCODER))
register_method(FinetuneMethod("setfit", "SetFit: the encoder finetuned contrastively on pairs, then the probe",
                               **ENCODER, settings=("setfit", SetFitConfig), texts=(1,), labels=("classes",),
                               why=SETFIT, needs=("setfit", "setfit"), candidate="single texts"))
register_method(FinetuneMethod("cosine", "the pair's cosine similarity, frozen, mapped to the label", **ENCODER,
                               texts=(2,), why=PAIRS, candidate="pairs"))
register_method(FinetuneMethod("cosine-finetune", "the encoder first finetuned on the pairs' cosine, then cosine",
                               **ENCODER, settings=("cosine", CosineConfig), texts=(2,),
                               labels=("two classes", "regression"), candidate="pairs",
                               why={**PAIRS, "labels": "its loss pulls a pair's cosine to a target in [0, 1]"}))
