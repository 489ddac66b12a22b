"""Reading every GLUE task of ../shared/glue, sampling, splits, tokenisation and metrics."""

import numpy as np
import pytest
from scipy.stats import pearsonr, spearmanr
from transformers import AutoTokenizer

from agwm.data import TASKS, DataError, get_task, load_split, make_loader, random_splits, sample_examples, tokenize
from agwm.metrics import compute_metrics, constant_prediction_score
from agwm.models import default_model

SIZES = {"cola": (8551, 1043), "rte": (2490, 277), "mrpc": (3668, 408), "stsb": (5749, 1500),
         "mnli": (7999, 2000), "qqp": (7999, 2000), "sst2": (64, 64), "qnli": (64, 64)}


@pytest.mark.parametrize("name", list(TASKS))
def test_every_task_loads_with_its_official_size_and_labels(name, glue_dir):
    task = get_task(name)
    for split, size in zip(("train", "dev"), SIZES[name]):
        ds = load_split(task, split, glue_dir)
        assert len(ds) == size
        pairs = len(task.text_columns) == 2
        assert ("text_b" in ds.column_names) == pairs
        labels = np.asarray(ds["label"])
        if task.is_regression:
            assert labels.min() >= 0.0 and labels.max() <= 5.0
        else:
            assert set(np.unique(labels)) <= set(range(task.num_labels))
        assert all(isinstance(t, str) and t for t in ds["text_a"][:50])


def test_mrpc_byte_order_mark_and_first_row(glue_dir):
    ds = load_split(get_task("mrpc"), "train", glue_dir)
    assert ds[0]["label"] == 1 and ds[0]["text_a"].startswith("Amrozi accused his brother")


def test_label_indices_follow_the_hub_convention(glue_dir):
    rte = load_split(get_task("rte"), "train", glue_dir)
    assert rte[0]["label"] == 1  # not_entailment
    mnli = load_split(get_task("mnli"), "train", glue_dir)
    assert mnli[0]["label"] == 0 and mnli[1]["label"] == 2  # entailment, contradiction


def write_rte(tmp_path, body):
    folder = tmp_path / "RTE"
    folder.mkdir()
    header = "index\tsentence1\tsentence2\tlabel\n"
    (folder / "train.tsv").write_text(header + body)
    (folder / "dev.tsv").write_text(header + "0\ta\tb\tentailment\n")
    return str(tmp_path)


def test_malformed_rows_name_file_and_row(tmp_path):
    data_dir = write_rte(tmp_path, "0\ta\tb\tentailment\n1\tonly two\tfields\n")
    with pytest.raises(DataError, match=r"train.tsv, line 3: 3 fields, expected 4"):
        load_split(get_task("rte"), "train", data_dir)
    (tmp_path / "RTE" / "train.tsv").write_text("index\tsentence1\tsentence2\tlabel\n0\ta\tb\tc\tentailment\n")
    with pytest.raises(DataError, match=r"line 2: 5 fields, expected 4 \(index, sentence1, sentence2, label\)"):
        load_split(get_task("rte"), "train", data_dir)


def test_label_outside_the_label_set(tmp_path):
    data_dir = write_rte(tmp_path, "0\ta\tb\tmaybe\n")
    with pytest.raises(DataError, match=r"row 1: label 'maybe' is not one of \['entailment', 'not_entailment'\]"):
        load_split(get_task("rte"), "train", data_dir)


def test_missing_folder_and_file(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        load_split(get_task("rte"), "train", str(tmp_path / "nowhere"))
    with pytest.raises(DataError, match="task folder"):
        load_split(get_task("cola"), "train", str(tmp_path))
    (tmp_path / "CoLA").mkdir()
    with pytest.raises(DataError, match="data file"):
        load_split(get_task("cola"), "dev", str(tmp_path))


def test_unknown_task():
    with pytest.raises(DataError, match="--task wnli is not allowed: one of cola, sst2"):
        get_task("wnli")


def test_sampling_is_a_function_of_the_seed(glue_dir):
    train = load_split(get_task("rte"), "train", glue_dir)
    a, b, c = (sample_examples(train, 300, s) for s in (1, 1, 2))
    assert a["text_a"] == b["text_a"] and a["text_a"] != c["text_a"]
    assert len(set(a["text_a"])) > 290
    with pytest.raises(DataError, match="--train-size 2491 is out of range: allowed 2 to 2490"):
        sample_examples(train, 2491, 1)
    with pytest.raises(DataError, match="--train-size 1"):
        sample_examples(train, 1, 1)


def test_splits_partition_the_sample_and_repeat_by_seed():
    splits = random_splits(300, 3, 0.8, seed=5)
    assert splits == random_splits(300, 3, 0.8, seed=5)
    assert splits != random_splits(300, 3, 0.8, seed=6)
    for train, held_out in splits:
        assert len(train) == 240 and len(held_out) == 60
        assert sorted(train + held_out) == list(range(300))
    assert splits[0] != splits[1]
    with pytest.raises(DataError, match="--split-ratio 1.0"):
        random_splits(300, 1, 1.0, 0)
    with pytest.raises(DataError, match="--folds 0"):
        random_splits(300, 0, 0.8, 0)


def test_tokenise_and_pad_dynamically(glue_dir):
    tokenizer = AutoTokenizer.from_pretrained(default_model())
    task = get_task("stsb")
    ds = tokenize(sample_examples(load_split(task, "train", glue_dir), 8, 1), task, tokenizer, max_length=16)
    batch = next(iter(make_loader(ds, tokenizer, batch_size=4, shuffle=True, seed=1)))
    assert type(batch) is dict
    assert batch["input_ids"].shape[1] <= 16 and batch["labels"].dtype.is_floating_point
    assert batch["input_ids"].shape[1] == batch["attention_mask"].sum(1).max()


def test_metrics_in_points_with_the_papers_headline():
    labels, preds = np.array([0, 1, 1, 0, 1, 1]), np.array([0, 1, 0, 0, 1, 1])
    cola = compute_metrics(get_task("cola"), preds, labels)
    assert cola["score"] == cola["mcc"] == pytest.approx(100 * (1 * 3 * 2 - 1 * 0) / np.sqrt(3 * 4 * 2 * 3))
    mrpc = compute_metrics(get_task("mrpc"), preds, labels)
    assert mrpc["score"] == mrpc["f1"] == pytest.approx(100 * 6 / 7)
    assert mrpc["accuracy"] == pytest.approx(100 * 5 / 6)
    rte = compute_metrics(get_task("rte"), preds, labels)
    assert rte["score"] == rte["accuracy"] and set(rte) == {"accuracy", "macro-f1", "mcc", "f1", "score"}
    assert rte["macro-f1"] == pytest.approx(100 * (4 / 5 + 6 / 7) / 2)  # F1 of class 0, of class 1
    scores, gold = np.array([0.1, 2.0, 3.5, 1.0]), np.array([0.0, 2.5, 5.0, 1.5])
    stsb = compute_metrics(get_task("stsb"), scores, gold)
    assert stsb["pearson"] == pytest.approx(100 * pearsonr(scores, gold)[0])
    assert stsb["score"] == stsb["spearman"] == pytest.approx(100 * spearmanr(scores, gold)[0])


def test_the_best_one_class_prediction():
    labels = np.array([0, 1, 1, 0, 1, 1])
    assert constant_prediction_score(get_task("mrpc"), labels) == (pytest.approx(100 * 2 * 4 / 10), "equivalent")  # F1
    assert constant_prediction_score(get_task("rte"), 1 - labels) == (pytest.approx(100 * 4 / 6), "entailment")
    assert constant_prediction_score(get_task("cola"), labels)[0] == 0.0  # MCC of a constant
    assert constant_prediction_score(get_task("stsb"), np.array([0.5, 4.0, 2.0])) == (0.0, None)


def test_without_a_folder_tasks_come_from_the_hub(monkeypatch):
    """The online path, with ``datasets.load_dataset`` replaced by a stand-in of the hub's parquet."""
    import datasets
    from datasets import Dataset

    asked = []

    def fake_load_dataset(path, name, split):
        asked.append((path, name, split))
        return Dataset.from_dict({"premise": ["p"], "hypothesis": ["h"], "label": [2], "idx": [0]})

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    monkeypatch.delenv("GLUE_DIR", raising=False)
    ds = load_split(get_task("mnli"), "dev")
    assert asked == [("nyu-mll/glue", "mnli", "validation_matched")]
    assert ds.column_names == ["text_a", "text_b", "label"] and ds[0] == {"text_a": "p", "text_b": "h", "label": 2}


@pytest.mark.slow  # the datasets library takes tens of seconds to give up offline
def test_a_glue_task_without_a_folder_offline_is_one_line(tmp_path, monkeypatch, capsys):
    from tests.conftest import run_script

    monkeypatch.delenv("GLUE_DIR", raising=False)
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    code, err = run_script("finetune.py", ["--task", "stsb", "--output-dir", str(tmp_path / "o")], monkeypatch, capsys)
    assert code == 2 and "--task stsb: no --data-dir or $GLUE_DIR, and the hub did not give nyu-mll/glue" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
