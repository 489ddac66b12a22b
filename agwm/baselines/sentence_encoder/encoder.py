"""The sentence-encoder methods' models (declared in :mod:`agwm.baselines.sentence_encoder`): a
linear head on the encoder's embeddings (:class:`ProbeModel`), SetFit through its library
(:class:`SetFitPeer`), and the cosine finetune of the encoder on the sample's pairs."""

from __future__ import annotations

import inspect
import json
import math
import os
import sys
import tempfile
import warnings
from typing import TYPE_CHECKING

import numpy as np
import torch
from datasets import Dataset
from safetensors.numpy import load_file, save_file
from sklearn.linear_model import LogisticRegression, LogisticRegressionCV, Ridge, RidgeCV
from sklearn.metrics import make_scorer, matthews_corrcoef
from sklearn.model_selection import StratifiedKFold

from agwm.baselines.recipe import Fitted
from agwm.data import DataError, Task, stream_seed
from agwm.metrics import Predictions
from agwm.models import model_path

if TYPE_CHECKING:
    from agwm.baselines.sentence_encoder import CosineConfig, ProbeConfig

PROBE_HEAD_NAME = "probe_head.safetensors"
PROBE_CONFIG_NAME = "probe.json"


def load_encoder(model: str, max_length: int, device: torch.device):
    from sentence_transformers import SentenceTransformer

    encoder = SentenceTransformer(model, device=str(device))
    encoder.max_seq_length = max_length
    return encoder


def embed(encoder, examples: Dataset, batch_size: int, features: str = "concat") -> np.ndarray:
    """u for single texts; for pairs [u, v, |u - v|, u * v], or (``features="cosine"``) cos(u, v) alone."""
    def encode(texts):
        return encoder.encode(list(texts), batch_size=batch_size, convert_to_numpy=True, show_progress_bar=False)

    u = encode(examples["text_a"][:])
    if "text_b" not in examples.column_names:
        return u
    v = encode(examples["text_b"][:])
    if features == "cosine":
        norms = np.linalg.norm(u, axis=1) * np.linalg.norm(v, axis=1)
        return ((u * v).sum(axis=1) / np.maximum(norms, 1e-12))[:, None]
    return np.concatenate([u, v, np.abs(u - v), u * v], axis=1)


def class_probabilities(scores: np.ndarray, classes: np.ndarray, num_labels: int) -> np.ndarray:
    """Probabilities over all ``num_labels`` classes from a linear head's scores on the classes it saw
    in training (``classes``; one column of scores for two): sigmoid for two, softmax for more; a class
    the sample lacked gets probability 0."""
    if len(classes) == 2:
        p = 1.0 / (1.0 + np.exp(-scores[:, 0]))
        seen = np.stack([1.0 - p, p], axis=1)
    else:
        shifted = np.exp(scores - scores.max(axis=1, keepdims=True))
        seen = shifted / shifted.sum(axis=1, keepdims=True)
    full = np.zeros((len(scores), num_labels))
    full[:, classes.astype(int)] = seen
    return full



# the classification metrics (agwm.data.CLASSIFICATION_METRICS) as scikit-learn scorers, for probe-tuned's
# cross-validation
SCORERS = {"accuracy": "accuracy", "f1": "f1", "macro-f1": "f1_macro", "mcc": make_scorer(matthews_corrcoef)}
# scikit-learn 1.9 warns unless the plain L2 penalty is named as l1_ratios=(0,) and the 1.10 attributes are
# asked for; earlier versions take neither (the fit is the same)
L2_CV_SETTINGS = ({"l1_ratios": (0.0,), "use_legacy_attributes": False}
                  if "use_legacy_attributes" in inspect.signature(LogisticRegressionCV).parameters else {})



class ProbeModel:
    """A frozen encoder and a linear head on its ``features`` (:func:`embed`): logits U w + b over the
    classes seen, or a ridge score."""

    def __init__(self, encoder, task: Task, coef: np.ndarray | None = None, intercept: np.ndarray | None = None,
                 classes: np.ndarray | None = None, batch_size: int = 64, features: str = "concat"):
        self.encoder, self.task, self.batch_size, self.features = encoder, task, batch_size, features
        self.coef, self.intercept, self.classes = coef, intercept, classes

    def fit(self, examples: Dataset, probe: ProbeConfig, tuned: bool = False, seed: int = 0) -> dict:
        """The head at ``probe.c`` (``probe.ridge_alpha``), or, ``tuned``, at the one of ``probe.cs``
        (``probe.ridge_alphas``) that cross-validation on ``examples`` chooses: ``probe.folds`` stratified
        folds (leave-one-out for the ridge)."""
        x, y = embed(self.encoder, examples, self.batch_size, self.features), np.asarray(examples["label"][:])
        fitted = {"steps": 0, "features": int(x.shape[1])}
        if self.task.is_regression:
            if tuned:
                head = RidgeCV(alphas=probe.ridge_alphas).fit(x, y)
                fitted["ridge_alpha"] = float(head.alpha_)
            else:
                head = Ridge(alpha=probe.ridge_alpha).fit(x, y)
            self.coef, self.intercept = head.coef_.reshape(1, -1), np.atleast_1d(head.intercept_)
        else:
            present, counts = np.unique(y, return_counts=True)
            if len(present) < 2:
                raise DataError(f"--method probe{'-tuned' * tuned} is not allowed on this sample: it holds one class "
                                f"({self.task.class_names[int(present[0])]!r}); a classifier needs two (more rows, "
                                "or another --seed)")
            if tuned:
                k = min(probe.folds, int(counts.min()))
                if k < 2:
                    raise DataError("--method probe-tuned is not allowed on this sample: its smallest class has one "
                                    "row, too few to cross-validate C; use --method probe")
                if k < probe.folds:
                    print(f"probe-tuned: {k} folds, not {probe.folds}: the sample's smallest class has {k} rows",
                          file=sys.stderr)
                fitted["folds"] = k
                folds = StratifiedKFold(k, shuffle=True, random_state=stream_seed(seed, "probe") % 2**32)
                head = LogisticRegressionCV(Cs=probe.cs, cv=folds, scoring=SCORERS[self.task.metric],
                                            max_iter=1000, **L2_CV_SETTINGS).fit(x, y)
                fitted["c"] = float(np.ravel(head.C_)[0])  # one C for all classes (one per class before 1.9)
            else:
                head = LogisticRegression(C=probe.c, max_iter=1000).fit(x, y)
            self.coef, self.intercept, self.classes = head.coef_, head.intercept_, head.classes_
        return fitted

    def predict(self, examples: Dataset) -> Predictions:
        scores = embed(self.encoder, examples, self.batch_size, self.features) @ self.coef.T + self.intercept
        gold = np.asarray(examples["label"][:]) if "label" in examples.column_names else None
        if self.task.is_regression:
            return Predictions(scores[:, 0], None, gold)
        probabilities = class_probabilities(scores, self.classes, self.task.num_labels)
        return Predictions(probabilities.argmax(axis=1), probabilities, gold)

    def save_pretrained(self, directory: str) -> None:
        """The encoder as a sentence-transformers folder, the head's tensors and the task."""
        self.encoder.save(directory)
        head = {"coef": self.coef, "intercept": self.intercept}
        if self.classes is not None:
            head["classes"] = self.classes.astype(np.int64)
        save_file({k: np.ascontiguousarray(v) for k, v in head.items()}, os.path.join(directory, PROBE_HEAD_NAME))
        task = {"text_columns": list(self.task.text_columns), "label_column": self.task.label_column,
                "class_names": list(self.task.class_names) if self.task.class_names else None,
                "metric": self.task.metric, "max_length": self.encoder.max_seq_length, "features": self.features}
        with open(os.path.join(directory, PROBE_CONFIG_NAME), "w") as f:
            json.dump(task, f, indent=2)


class SetFitPeer:
    """SetFit's two stages on the run's examples, with the labels named as the task names them."""

    def __init__(self, model: str, task: Task, max_length: int, batch_size: int, device: torch.device,
                 eval_batch_size: int = 64):
        self.model_name, self.task, self.max_length = model, task, max_length
        self.batch_size, self.device, self.eval_batch_size = batch_size, device, eval_batch_size
        self.model = None

    def fit(self, examples: Dataset, num_iterations: int, epochs: int, body_lr: float, seed: int,
            body_only: bool = False) -> dict:
        """Both stages; with ``body_only`` the contrastive stage alone (the body, for another method to
        start from: :meth:`save_body`)."""
        from setfit import SetFitModel, Trainer, TrainingArguments

        self.model = SetFitModel.from_pretrained(self.model_name, labels=list(self.task.class_names),
                                                 device=str(self.device))
        pairs = 2 * num_iterations * len(examples)
        with tempfile.TemporaryDirectory() as scratch:  # the library's trainer wants a folder; nothing is kept
            args = TrainingArguments(output_dir=scratch, num_iterations=num_iterations, num_epochs=epochs,
                                     body_learning_rate=body_lr, batch_size=self.batch_size,
                                     max_length=self.max_length, seed=stream_seed(seed, "setfit") % 2**32,
                                     save_strategy="no", report_to="none", show_progress_bar=False)
            texts, labels = examples["text_a"][:], examples["label"][:]
            trainer = Trainer(model=self.model, args=args, train_dataset=Dataset.from_dict({"text": texts,
                                                                                          "label": labels}))
            with warnings.catch_warnings():  # SetFit's own loader asks for pinned memory on every device
                warnings.filterwarnings("ignore", "'pin_memory' argument is set as true but no accelerator")
                if body_only:
                    trainer.train_embeddings(texts, labels, args=args)
                else:
                    trainer.train()
        return {"steps": epochs * math.ceil(pairs / self.batch_size), "pairs": pairs}

    def save_body(self, directory: str) -> None:
        """The finetuned encoder as a sentence-transformers folder; its root loads with transformers
        (``AutoModelForSequenceClassification``, a new head) like the pretrained model's."""
        self.model.model_body.save(directory)

    def predict(self, examples: Dataset) -> Predictions:
        seen = self.model.predict_proba(examples["text_a"][:], batch_size=self.eval_batch_size, as_numpy=True)
        probabilities = np.zeros((len(examples), self.task.num_labels))
        probabilities[:, self.model.model_head.classes_.astype(int)] = seen  # a class the sample lacked: 0
        gold = np.asarray(examples["label"][:]) if "label" in examples.column_names else None
        return Predictions(probabilities.argmax(axis=1), probabilities, gold)

    def save_pretrained(self, directory: str) -> None:
        self.model.save_pretrained(directory)


def make_setfit_body(cfg, data, directory: str) -> None:
    """SetFit's contrastive stage alone (``cfg.setfit``'s settings) on ``data.sample``, the encoder
    saved to ``directory`` for plain finetuning to start from (:meth:`SetFitPeer.save_body`)."""
    from agwm.models import model_path

    s = cfg.setfit
    peer = SetFitPeer(model_path(cfg.model), data.task, cfg.max_length, cfg.batch_size, data.device)
    peer.fit(data.sample, s.num_iterations, s.epochs, s.body_lr, cfg.seed, body_only=True)
    peer.save_body(directory)


def load_encoder_model(directory: str, device: str = "cpu") -> ProbeModel:
    """A probe saved by :meth:`ProbeModel.save_pretrained`, ready to predict."""
    with open(os.path.join(directory, PROBE_CONFIG_NAME)) as f:
        saved = json.load(f)
    names = saved["class_names"]
    task = Task("saved", tuple(saved["text_columns"]), saved["label_column"],
                tuple(names) if names else None, saved["metric"])
    head = load_file(os.path.join(directory, PROBE_HEAD_NAME))
    return ProbeModel(load_encoder(directory, saved["max_length"], torch.device(device)), task, head["coef"],
                      head["intercept"], head.get("classes"), features=saved.get("features", "concat"))


def similarity_targets(encoder, examples: Dataset, task: Task, batch_size: int) -> np.ndarray:
    """t of each pair: the label scaled to [0, 1]; for two classes 1 for the more similar class."""
    y = np.asarray(examples["label"][:], dtype=np.float64)
    if task.is_regression:
        return (y - y.min()) / max(y.max() - y.min(), 1e-12)
    cosines = embed(encoder, examples, batch_size, features="cosine")[:, 0]
    similar = max(np.unique(y), key=lambda c: cosines[y == c].mean())
    return (y == similar).astype(np.float64)


def finetune_cosine(encoder, examples: Dataset, task: Task, cosine: CosineConfig, batch_size: int, seed: int) -> dict:
    """``encoder`` finetuned in place with ``CosineSimilarityLoss`` on the pairs of ``examples``."""
    from sentence_transformers import SentenceTransformerTrainer, SentenceTransformerTrainingArguments
    try:
        from sentence_transformers.sentence_transformer.losses import CosineSimilarityLoss
    except ImportError:  # sentence-transformers before 6
        from sentence_transformers.losses import CosineSimilarityLoss

    y = similarity_targets(encoder, examples, task, batch_size)
    pairs = Dataset.from_dict({"sentence1": examples["text_a"][:], "sentence2": examples["text_b"][:],
                               "score": y.astype(np.float32).tolist()})
    steps = cosine.epochs * math.ceil(len(pairs) / batch_size)
    with tempfile.TemporaryDirectory() as scratch:  # the library's trainer wants a folder; nothing is kept
        args = SentenceTransformerTrainingArguments(
            output_dir=scratch, num_train_epochs=cosine.epochs, learning_rate=cosine.lr,
            warmup_steps=math.ceil(cosine.warmup_ratio * steps), per_device_train_batch_size=batch_size,
            seed=stream_seed(seed, "cosine") % 2**32, save_strategy="no", report_to="none",
            disable_tqdm=True, use_cpu=encoder.device.type == "cpu")
        SentenceTransformerTrainer(model=encoder, args=args, train_dataset=pairs,
                                   loss=CosineSimilarityLoss(encoder)).train()
    return {"steps": steps, "pairs": len(pairs)}



def fit(cfg, data, log, dev, alphas: str | None = None, start_weights: str | None = None) -> Fitted:
    """probe, probe-tuned, cosine, cosine-finetune or setfit fitted on the sample as read; what it
    chose and its steps are reported under the method's name."""
    model, method = model_path(cfg.model), cfg.finetune.method
    if method != "setfit":  # a linear head on the frozen (or cosine-finetuned) encoder
        encoder = load_encoder(model, cfg.max_length, data.device)
        finetuned = {}
        if method == "cosine-finetune":
            finetuned = finetune_cosine(encoder, data.sample, data.task, cfg.cosine, cfg.batch_size, cfg.seed)
        fitted = ProbeModel(encoder, data.task, batch_size=cfg.finetune.eval_batch_size,
                            features="cosine" if method.startswith("cosine") else "concat")
        reported = {**fitted.fit(data.sample, cfg.probe, tuned=method == "probe-tuned", seed=cfg.seed), **finetuned}
    else:
        s = cfg.setfit
        fitted = SetFitPeer(model, data.task, cfg.max_length, cfg.batch_size, data.device, cfg.finetune.eval_batch_size)
        reported = fitted.fit(data.sample, s.num_iterations, s.epochs, s.body_lr, cfg.seed)
    return Fitted(fitted, {method: reported}, reported["steps"], None)
