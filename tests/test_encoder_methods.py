"""The methods a practitioner would try first: a probe on the frozen sentence embeddings, SetFit, and
plain finetuning at the learning rate and epochs chosen on a held-out part of the sample. Tiny
models and real TREC, MRPC and STS-B rows."""

import json
import sys

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from agwm.baselines.sentence_encoder.encoder import SCORERS, class_probabilities, load_encoder_model
from agwm.data import CLASSIFICATION_METRICS
from agwm.errors import ConfigError
from agwm.experiments.methods import grid_method, method_names
from agwm.finetune import run_finetune
from agwm.registry import METHODS as FINETUNE_METHODS
from agwm.registry import FinetuneMethod
from agwm.settings import build_run_config
from tests.conftest import REPO, run_script

TEXTCLS = REPO.parent / "shared" / "textcls"


@pytest.fixture(scope="module")
def trec(tmp_path_factory):
    """48 training and 30 test rows of TREC as the user-style CSVs have them (6 named classes)."""
    if not (TEXTCLS / "trec" / "train.csv").is_file():
        pytest.skip(f"text-classification files not found at {TEXTCLS}")
    out = tmp_path_factory.mktemp("trec")
    pd.read_csv(TEXTCLS / "trec" / "train.csv").iloc[:48].to_csv(out / "train.csv", index=False)
    pd.read_csv(TEXTCLS / "trec" / "test.csv").iloc[:30].to_csv(out / "test.csv", index=False)
    return out


def config(trec, model, out, method, *overrides, **flags):
    return build_run_config({"train_file": str(trec / "train.csv"), "validation_file": str(trec / "test.csv"),
                             "test_file": str(trec / "test.csv"), "model": model, "output_dir": str(out),
                             "finetune.method": method, "batch_size": 8, **flags}, list(overrides))


def test_probe_predicts_by_a_logistic_regression_on_the_frozen_embeddings(trec, tiny_model_dir, tmp_path):
    metrics = run_finetune(config(trec, tiny_model_dir, tmp_path / "p", "probe"), save_model=True)
    predictions = pd.read_csv(tmp_path / "p" / "predictions.csv")
    test = pd.read_csv(trec / "test.csv")
    names = sorted(pd.read_csv(trec / "train.csv")["label"].unique())
    assert list(predictions.columns) == ["text", "label", "prediction", *[f"prob_{n}" for n in names]]
    assert list(predictions["text"]) == list(test["text"]) and set(predictions["prediction"]) <= set(names)
    assert metrics["dev"]["accuracy"] == pytest.approx(100 * (predictions["prediction"] == test["label"]).mean())
    assert metrics["probe"]["features"] == 8  # the tiny model's hidden size: one text, u alone

    loaded = load_encoder_model(str(tmp_path / "p" / "model"))  # the saved folder predicts the same
    from datasets import Dataset

    again = loaded.predict(Dataset.from_dict({"text_a": list(test["text"])}))
    probabilities = predictions[[f"prob_{n}" for n in names]].to_numpy()
    np.testing.assert_allclose(again.probabilities, probabilities, atol=1e-6)
    assert [names[i] for i in again.values] == list(predictions["prediction"])


def test_probe_probabilities_are_scikit_learns_and_a_missing_class_gets_zero():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(40, 5)), rng.choice([0, 2, 3], size=40)  # class 1 absent from the sample
    head = LogisticRegression(max_iter=1000).fit(x, y)
    full = class_probabilities(x @ head.coef_.T + head.intercept_, head.classes_, 4)
    np.testing.assert_allclose(full[:, [0, 2, 3]], head.predict_proba(x), atol=1e-10)
    assert (full[:, 1] == 0).all()
    binary = LogisticRegression().fit(x, y > 1)
    two = class_probabilities(x @ binary.coef_.T + binary.intercept_, binary.classes_.astype(int), 2)
    np.testing.assert_allclose(two, binary.predict_proba(x), atol=1e-10)


def test_probe_takes_pairs_as_u_v_difference_and_product_and_regression_by_ridge(glue_dir, tiny_model_dir,
                                                                                 tmp_path):
    def run(task, out):
        return run_finetune(build_run_config({"task": task, "train_size": 24, "data_dir": glue_dir,
                                              "model": tiny_model_dir, "output_dir": str(tmp_path / out),
                                              "finetune.method": "probe"}))

    pairs = run("mrpc", "mrpc")
    assert pairs["probe"]["features"] == 4 * 8 and set(pairs["dev"]) >= {"accuracy", "f1"}
    scores = run("stsb", "stsb")
    assert scores["metric"] == "spearman" and scores["score"] is not None
    written = pd.read_csv(tmp_path / "stsb" / "validation_predictions.csv")
    assert written["prediction"].dtype == float and "prob_" not in "".join(written.columns)


def test_probe_tuned_is_the_probe_at_the_c_its_cross_validation_chose(trec, glue_dir, tiny_model_dir, tmp_path):
    cs = [0.001, 1.0, 1000.0]
    tuned = run_finetune(config(trec, tiny_model_dir, tmp_path / "t", "probe-tuned", f"probe.cs={cs}", seed=3))
    chosen = tuned["probe-tuned"]["c"]
    assert chosen in cs
    again = run_finetune(config(trec, tiny_model_dir, tmp_path / "a", "probe-tuned", f"probe.cs={cs}", seed=3))
    assert again["probe-tuned"]["c"] == chosen and again["dev"] == tuned["dev"]  # the seed fixes the folds
    plain = run_finetune(config(trec, tiny_model_dir, tmp_path / "p", "probe", f"probe.c={chosen}"))
    assert plain["dev"] == pytest.approx(tuned["dev"])  # refitted on the whole sample at the chosen C
    ridge = run_finetune(build_run_config({"task": "stsb", "train_size": 24, "data_dir": glue_dir,
                                           "model": tiny_model_dir, "output_dir": str(tmp_path / "r"),
                                           "finetune.method": "probe-tuned"}, ["probe.ridge_alphas=[0.01, 100.0]"]))
    assert ridge["probe-tuned"]["ridge_alpha"] in (0.01, 100.0) and ridge["metric"] == "spearman"
    assert set(SCORERS) == set(CLASSIFICATION_METRICS)  # cross-validation scores by any headline metric


def test_cosine_scores_a_pair_by_the_cosine_of_its_embeddings_mapped_to_the_label(glue_dir, tiny_model_dir,
                                                                                  tmp_path):
    from scipy.stats import spearmanr
    from sentence_transformers import SentenceTransformer

    cfg = build_run_config({"task": "stsb", "train_size": 24, "data_dir": glue_dir, "model": tiny_model_dir,
                            "output_dir": str(tmp_path / "c"), "finetune.method": "cosine"})
    metrics = run_finetune(cfg, save_model=True)
    assert metrics["cosine"]["features"] == 1
    written = pd.read_csv(tmp_path / "c" / "validation_predictions.csv")
    encoder = SentenceTransformer(tiny_model_dir, device="cpu")
    u, v = (encoder.encode(list(written[c]), convert_to_numpy=True) for c in ("sentence1", "sentence2"))
    cosine = (u * v).sum(1) / np.linalg.norm(u, axis=1) / np.linalg.norm(v, axis=1)
    slope = np.polyfit(cosine, written["prediction"], 1)[0]
    np.testing.assert_allclose(written["prediction"], np.polyval(np.polyfit(cosine, written["prediction"], 1),
                                                                 cosine), atol=1e-4)  # an affine map of the cosine
    assert metrics["score"] == pytest.approx(100 * np.sign(slope) * spearmanr(cosine, written["score"])[0], abs=0.01)
    from datasets import Dataset

    again = load_encoder_model(str(tmp_path / "c" / "model")).predict(
        Dataset.from_dict({"text_a": list(written["sentence1"]), "text_b": list(written["sentence2"])}))
    np.testing.assert_allclose(again.values, written["prediction"], atol=1e-5)


def test_cosine_finetune_moves_the_encoder_repeats_itself_and_takes_two_classes(glue_dir, tiny_model_dir, tmp_path):
    def run(task, out, method="cosine-finetune"):
        return run_finetune(build_run_config({"task": task, "train_size": 24, "data_dir": glue_dir, "seed": 4,
                                              "model": tiny_model_dir, "output_dir": str(tmp_path / out),
                                              "finetune.method": method}, ["cosine.epochs=2"]), save_model=True)

    first, again, frozen = run("stsb", "a"), run("stsb", "b"), run("stsb", "f", "cosine")
    assert first["cosine-finetune"] == {"steps": 2 * 2, "pairs": 24, "features": 1} and first["dev"] == again["dev"]
    assert first["dev"] != frozen["dev"]  # the encoder moved
    pairs = run("mrpc", "m")
    assert set(pairs["dev"]) >= {"accuracy", "f1"}
    predicted = set(pd.read_csv(tmp_path / "m" / "validation_predictions.csv")["prediction"])
    assert predicted <= {"equivalent", "not_equivalent"}


def test_cosine_methods_refuse_single_texts_and_cosine_finetune_more_than_two_classes(
        trec, glue_dir, tiny_model_dir, tmp_path):
    for method, message in (("cosine", "--method cosine is not allowed with one text column"),
                            ("cosine-finetune", "--method cosine-finetune is not allowed with one text column")):
        with pytest.raises(ConfigError, match=message):
            run_finetune(config(trec, tiny_model_dir, tmp_path / method, method))
        assert not (tmp_path / method).exists()  # refused before any work
    three = build_run_config({"task": "mnli", "train_size": 24, "data_dir": glue_dir, "model": tiny_model_dir,
                              "output_dir": str(tmp_path / "mnli"), "finetune.method": "cosine-finetune"})
    with pytest.raises(ConfigError, match="--method cosine-finetune is not allowed for a task of 3 classes"):
        run_finetune(three)
    assert not (tmp_path / "mnli").exists()


@pytest.mark.slow
def test_setfit_trains_predicts_saves_and_repeats_itself(trec, tiny_model_dir, tmp_path, monkeypatch):
    pytest.importorskip("setfit")
    monkeypatch.chdir(tmp_path)  # the library's trainer must leave nothing in the working folder
    first = run_finetune(config(trec, tiny_model_dir, tmp_path / "a", "setfit", "setfit.num_iterations=2",
                                seed=3), save_model=True)
    again = run_finetune(config(trec, tiny_model_dir, tmp_path / "b", "setfit", "setfit.num_iterations=2", seed=3))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "b"]
    assert first["setfit"] == {"steps": 192 // 8, "pairs": 2 * 2 * 48} and first["steps"] == 24
    a, b = (pd.read_csv(tmp_path / d / "predictions.csv") for d in ("a", "b"))
    pd.testing.assert_frame_equal(a, b)  # --seed determinism on the CPU
    assert again["score"] == first["score"]
    from setfit import SetFitModel

    loaded = SetFitModel.from_pretrained(str(tmp_path / "a" / "model"))
    assert list(loaded.predict(list(a["text"]))) == list(a["prediction"])  # label names, as predicted


def test_setfit_refuses_regression_and_pairs_and_says_when_it_is_missing(glue_dir, tmp_path, monkeypatch, capsys):
    pytest.importorskip("setfit")
    for task, message in (("stsb", "--method setfit is not allowed for a regression task"),
                          ("mrpc", "--method setfit is not allowed with two text columns")):
        code, err = run_script("finetune.py", ["--task", task, "--data-dir", glue_dir, "--method", "setfit",
                                               "--output-dir", str(tmp_path / task)], monkeypatch, capsys)
        assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
        assert not (tmp_path / task).exists()
    monkeypatch.setitem(sys.modules, "setfit", None)  # as if the optional extra were not installed
    code, err = run_script("finetune.py", ["--task", "sst2", "--data-dir", glue_dir, "--method", "setfit",
                                           "--output-dir", str(tmp_path / "x")], monkeypatch, capsys)
    assert code == 2 and err.strip() == f"error: --method setfit is not allowed: {FINETUNE_METHODS['setfit'].missing()}"


@pytest.mark.slow
def test_setfit_vanilla_is_vanilla_from_setfits_body_and_repeats_itself(trec, tiny_model_dir, tmp_path,
                                                                      monkeypatch):
    pytest.importorskip("setfit")
    from transformers import AutoModelForSequenceClassification

    from agwm.baselines.sentence_encoder.encoder import make_setfit_body
    from agwm.training.build import load_run_data
    from agwm.training.device import resolve_device

    monkeypatch.chdir(tmp_path)
    setting = ("setfit.num_iterations=2", "finetune.epochs=2")
    first = run_finetune(config(trec, tiny_model_dir, tmp_path / "a", "setfit-vanilla", *setting, seed=3),
                         save_model=True)
    again = run_finetune(config(trec, tiny_model_dir, tmp_path / "b", "setfit-vanilla", *setting, seed=3))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "b"]  # the body is not kept
    a, b = (pd.read_csv(tmp_path / d / "predictions.csv") for d in ("a", "b"))
    pd.testing.assert_frame_equal(a, b)  # --seed determinism on the CPU
    assert again["dev"] == first["dev"]

    cfg = config(trec, tiny_model_dir, tmp_path / "v", "vanilla", *setting, seed=3)
    make_setfit_body(cfg, load_run_data(cfg, resolve_device("cpu")), str(tmp_path / "body"))
    from_body = run_finetune(config(trec, str(tmp_path / "body"), tmp_path / "v", "vanilla", *setting, seed=3))
    run_finetune(config(trec, tiny_model_dir, tmp_path / "p", "vanilla", *setting, seed=3))
    assert first["dev"] == from_body["dev"]
    pd.testing.assert_frame_equal(a, pd.read_csv(tmp_path / "v" / "predictions.csv"))  # the composition
    assert not a.equals(pd.read_csv(tmp_path / "p" / "predictions.csv"))  # and the body matters

    loaded = AutoModelForSequenceClassification.from_pretrained(tmp_path / "a" / "model")  # label names
    assert set(loaded.config.id2label.values()) == set(pd.read_csv(trec / "train.csv")["label"])


def test_setfit_vanilla_makes_its_body_without_the_held_out_part(trec, tiny_model_dir, tmp_path, monkeypatch):
    from agwm.baselines.sentence_encoder import encoder

    seen = []

    def body(cfg, data, directory):
        seen.append(len(data.sample))
        raise KeyboardInterrupt  # stop before any training

    monkeypatch.setattr(FinetuneMethod, "installed", lambda self: True)  # runs without the extra too
    monkeypatch.setattr(encoder, "make_setfit_body", body)
    for holdout, out in ((False, "all"), (True, "held")):
        with pytest.raises(KeyboardInterrupt):
            run_finetune(config(trec, tiny_model_dir, tmp_path / out, "setfit-vanilla", f"finetune.holdout={holdout}"))
    assert seen == [48, int(48 * 0.8)]  # split 0's training part (search.split_ratio)


def test_setfit_vanilla_refuses_what_setfit_refuses_and_a_second_body(glue_dir, trec, tiny_model_dir, tmp_path,
                                                                      monkeypatch, capsys):
    refusals = (("stsb", "--method setfit-vanilla is not allowed for a regression task"),
                ("mrpc", "--method setfit-vanilla is not allowed with two text columns"))
    # without setfit, the missing package is said
    for task, message in refusals if FINETUNE_METHODS["setfit"].installed() else ():
        code, err = run_script("finetune.py", ["--task", task, "--data-dir", glue_dir, "--method", "setfit-vanilla",
                                               "--output-dir", str(tmp_path / task)], monkeypatch, capsys)
        assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
        assert not (tmp_path / task).exists()
    with pytest.raises(ConfigError, match="body=setfit is not allowed: pretrained with finetune.method=setfit-vanilla"):
        config(trec, tiny_model_dir, tmp_path / "x", "setfit-vanilla", "body=setfit")
    monkeypatch.setitem(sys.modules, "setfit", None)  # as if the optional extra were not installed
    code, err = run_script("finetune.py", ["--task", "sst2", "--data-dir", glue_dir, "--method", "setfit-vanilla",
                                           "--output-dir", str(tmp_path / "y")], monkeypatch, capsys)
    assert code == 2 and "--method setfit-vanilla is not allowed: it needs the setfit package" in err, err
    assert not (tmp_path / "y").exists()


def test_vanilla_tuned_trains_vanilla_at_the_best_held_out_setting(glue_dir, tiny_model_dir, tmp_path):
    def run(method, out, *overrides):
        return run_finetune(build_run_config(
            {"task": "mrpc", "train_size": 20, "seed": 2, "data_dir": glue_dir, "model": tiny_model_dir,
             "output_dir": str(tmp_path / out), "batch_size": 4, "finetune.method": method}, list(overrides)))

    tuned = run("vanilla-tuned", "t", "tuned.lrs=[1e-3, 1e-2]", "tuned.epochs=[1, 2]")
    trials = tuned["tuned"]["trials"]
    assert [(t["lr"], t["epochs"]) for t in trials] == [(1e-3, 1.0), (1e-3, 2.0), (1e-2, 1.0), (1e-2, 2.0)]
    best = max(trials, key=lambda t: t["score"])
    assert (tuned["tuned"]["lr"], tuned["tuned"]["epochs"]) == (best["lr"], best["epochs"])
    assert tuned["tuned"]["train_rows"] == 16 and tuned["tuned"]["held_out_rows"] == 4
    plain = run("vanilla", "v", f"finetune.lr={best['lr']}", f"finetune.epochs={best['epochs']}")
    assert tuned["score"] == plain["score"]  # then exactly vanilla at that setting, on all 20
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "t" / "validation_predictions.csv"),
                                  pd.read_csv(tmp_path / "v" / "validation_predictions.csv"))
    log = pd.read_csv(tmp_path / "t" / "log.csv")
    assert set(log["phase"]) == {"tune0", "tune1", "tune2", "tune3", "finetune"}


def test_the_new_methods_are_grid_methods_and_record_what_they_chose(glue_dir, tiny_model_dir, tmp_path):
    base = {"task": "rte", "train_size": 16, "data_dir": glue_dir, "model": tiny_model_dir, "batch_size": 4}
    cfg = build_run_config({**base, "output_dir": str(tmp_path / "t")}, ["tuned.lrs=[1e-3]", "tuned.epochs=[1]"])
    outcome = grid_method("vanilla-tuned")(cfg, [])
    assert outcome["tuned"]["lr"] == 1e-3 and outcome["score"] == outcome["dev"]["score"]
    probe = grid_method("probe")(build_run_config({**base, "output_dir": str(tmp_path / "p")}), [])
    assert probe["probe"]["features"] == 32 and json.loads((tmp_path / "p" / "finetune" / "metrics.json")
                                                           .read_text())["method"] == "probe"
    assert {"setfit", "probe", "probe-tuned", "vanilla-tuned"} <= set(method_names())


@pytest.mark.parametrize("override, message", [
    ("tuned.lrs=[]", "tuned.lrs=[] is not allowed: empty; expected a list of numbers"),
    ("tuned.lrs=[1e-4, -1]", "tuned.lrs=[1e-4, -1] is not allowed: a list of numbers greater than 0"),
    ("tuned.epochs=ten", "tuned.epochs=ten: 'ten' is not allowed: expected a number"),
    ("setfit.num_iterations=0", "setfit.num_iterations=0 is not allowed: at least 1"),
    ("probe.c=0", "probe.c=0 is not allowed: greater than 0"),
    ("probe.cs=[1, 0]", "probe.cs=[1, 0] is not allowed: a list of numbers greater than 0"),
    ("probe.folds=1", "probe.folds=1 is not allowed: at least 2"),
    ("cosine.epochs=0", "cosine.epochs=0 is not allowed: at least 1"),
    ("cosine.lr=0", "cosine.lr=0 is not allowed: greater than 0"),
    ("cosine.warmup_ratio=1", "cosine.warmup_ratio=1 is not allowed: in [0, 1)"),
])
def test_bad_settings_of_the_new_methods_are_named(override, message, glue_dir):
    with pytest.raises(ConfigError) as error:
        build_run_config({"task": "rte", "data_dir": glue_dir, "output_dir": "unused"}, [override])
    assert str(error.value) == message


@pytest.mark.slow  # SetFit's contrastive stage, then two finetunes from it
def test_a_grid_method_can_start_from_setfits_contrastive_body(trec, tiny_model_dir, tmp_path, monkeypatch, capsys):
    pytest.importorskip("setfit")
    import yaml

    from agwm.experiments.grid import load_grid, read_records, run_grid

    grid = tmp_path / "grid.yaml"
    grid.write_text(f"""
tasks: [{{name: trec, train_file: {trec}/train.csv, validation_file: {trec}/test.csv}}]
sizes: [24]
seeds: [1]
model: {tiny_model_dir}
output_dir: {tmp_path}/runs
results: {tmp_path}/results.jsonl
overrides: [finetune.epochs=1, search.epochs=1, setfit.num_iterations=1, report_to=none]
methods:
  - {{name: setfit-fold-average, method: mixup, overrides: [search.problem=inner_only, body=setfit]}}
  - {{name: setfit-vanilla, method: vanilla, overrides: [body=setfit]}}
  - {{name: setfit-other, method: vanilla, overrides: [body=setfit, setfit.body_lr=0.001]}}
""")
    assert run_grid(load_grid(str(grid))) == (3, 0)
    records = {r["method"]: r for r in read_records(str(tmp_path / "results.jsonl"))}
    bodies = sorted(path for path in (tmp_path / "runs" / "bodies").iterdir() if path.is_dir())
    assert len(bodies) == 2  # made once for the two entries with the same settings, once for the other
    assert all((body / "config.json").exists() for body in bodies)
    shared = records["setfit-fold-average"]["wall_time_s"]["body"]
    assert shared > 0 and records["setfit-vanilla"]["wall_time_s"]["body"] == shared  # the maker's time
    assert records["setfit-other"]["wall_time_s"]["body"] != shared
    for record in records.values():  # the total counts the body at its making time, not at the time to read it
        assert record["wall_time_s"]["total"] >= record["wall_time_s"]["body"] + record["wall_time_s"]["finetune"]
    started = {name: [yaml.safe_load((tmp_path / "runs" / name / "trec-24-s1" / phase / "config.yaml")
                                     .read_text())["run"]["model"] for phase in phases]
               for name, phases in (("setfit-fold-average", ("search", "finetune")), ("setfit-vanilla", ("finetune",)),
                                    ("setfit-other", ("finetune",)))}
    assert started["setfit-fold-average"] == 2 * started["setfit-vanilla"]  # both phases start from the body
    assert started["setfit-other"] != started["setfit-vanilla"] and set(map(str, bodies)) == {
        started["setfit-vanilla"][0], started["setfit-other"][0]}
    code, err = run_script("finetune.py", ["--train-file", str(trec / "train.csv"), "--output-dir",
                                           str(tmp_path / "x"), "body=setfit"], monkeypatch, capsys)
    assert code == 2 and "body=setfit is not allowed here: it is a grid method's start" in err


def test_cosine_finetune_pulls_the_more_similar_class_to_one_whatever_its_index():
    """RTE's class 0 is entailment: the target must come from the pairs' cosines, not the label's index."""
    from datasets import Dataset

    from agwm.baselines.sentence_encoder.encoder import similarity_targets
    from agwm.data import Task

    vectors = {"a": [1.0, 0.0], "a'": [0.9, 0.1], "b": [0.0, 1.0], "c": [1.0, 0.0]}

    class Encoder:
        def encode(self, texts, **_):
            return np.array([vectors[t] for t in texts])

    pairs = Dataset.from_dict({"text_a": ["a", "a", "c", "b"], "text_b": ["a'", "a", "b", "c"], "label": [0, 0, 1, 1]})
    classes = Task("pairs", ("text_a", "text_b"), "label", ("0", "1"), "accuracy")
    np.testing.assert_array_equal(similarity_targets(Encoder(), pairs, classes, 2), [1, 1, 0, 0])
    flipped = pairs.map(lambda row: {"label": 1 - row["label"]})
    np.testing.assert_array_equal(similarity_targets(Encoder(), flipped, classes, 2), [1, 1, 0, 0])
    scores = pairs.map(lambda row, i: {"label": float(i)}, with_indices=True)
    regression = Task("scores", ("text_a", "text_b"), "label", None, "spearman")
    np.testing.assert_allclose(similarity_targets(Encoder(), scores, regression, 2), [0, 1 / 3, 2 / 3, 1])


def test_probe_tuned_folds_fit_the_smallest_class_and_a_one_class_sample_is_one_line(tiny_model_dir, tmp_path,
                                                                                     capsys):
    import torch
    from datasets import Dataset

    from agwm.baselines.sentence_encoder import ProbeConfig
    from agwm.baselines.sentence_encoder.encoder import ProbeModel, load_encoder
    from agwm.data import DataError, Task

    task = Task("t", ("text",), "label", ("neg", "pos"), "accuracy")
    probe = ProbeModel(load_encoder(tiny_model_dir, 16, torch.device("cpu")), task, batch_size=4)
    six = Dataset.from_dict({"text_a": ["good", "bad", "great", "awful", "fine", "dull"], "label": [1, 0] * 3})
    assert probe.fit(six, ProbeConfig(), tuned=True)["folds"] == 3
    assert "probe-tuned: 3 folds, not 5: the sample's smallest class has 3 rows" in capsys.readouterr().err
    one = Dataset.from_dict({"text_a": ["good", "great"], "label": [1, 1]})
    with pytest.raises(DataError, match="--method probe is not allowed on this sample: it holds one class \\('pos'\\)"):
        probe.fit(one, ProbeConfig())
    lone = Dataset.from_dict({"text_a": ["good", "great", "bad"], "label": [1, 1, 0]})
    with pytest.raises(DataError, match="its smallest class has one row"):
        probe.fit(lone, ProbeConfig(), tuned=True)
