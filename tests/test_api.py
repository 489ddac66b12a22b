"""The PEFT-style Python API (agwm.get_mixup_model, MixupModel) in a Hugging Face Trainer, as the
README shows it: W trains, the loaded alphas stay fixed, and the saved and merged models compute
the trained model's function."""

import torch
from datasets import Dataset
from transformers import AutoModelForSequenceClassification, AutoTokenizer, Trainer, TrainingArguments

import agwm
from agwm.mixup import MixupLinear, save_alphas


def tiny(tiny_model_dir):
    return AutoModelForSequenceClassification.from_pretrained(tiny_model_dir, num_labels=2)


def test_a_trainer_trains_w_with_the_loaded_alphas_fixed(tiny_model_dir, tmp_path):
    searched = agwm.get_mixup_model(tiny(tiny_model_dir), agwm.MixupConfig(init_mean=0.7, init_std=0.1), seed=1)
    searched.save_alphas(str(tmp_path / "search"))  # as a search writes them

    model = agwm.get_mixup_model(tiny(tiny_model_dir), agwm.MixupConfig())
    model.load_alphas(str(tmp_path / "search" / "alphas.safetensors"))
    layer = next(m for m in model.modules() if isinstance(m, MixupLinear))
    alphas_before = layer.A.detach().clone()
    w_before = layer.weight.detach().clone()

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    texts = ["a good film", "a bad film", "great fun", "dull and long"] * 4
    train = Dataset.from_dict({"text": texts, "label": [1, 0, 1, 0] * 4}).map(
        lambda b: tokenizer(b["text"], padding="max_length", max_length=8, truncation=True), batched=True)
    args = TrainingArguments(output_dir=str(tmp_path / "trainer"), per_device_train_batch_size=4, num_train_epochs=1,
                             learning_rate=1e-2, report_to=[], save_strategy="no", use_cpu=True)
    Trainer(model=model, args=args, train_dataset=train).train()

    assert torch.equal(layer.A, alphas_before)  # the searched alphas are kept as loaded
    assert not torch.equal(layer.weight, w_before)  # W trained
    assert torch.allclose(layer.A, searched.base_model.get_submodule(
        next(n for n, m in searched.base_model.named_modules() if isinstance(m, MixupLinear))).A)

    model.eval()
    batch = tokenizer(["a good film"], return_tensors="pt")
    expected = model(**batch).logits
    model.save_pretrained(str(tmp_path / "unmerged"))
    restored = agwm.MixupModel.from_pretrained(str(tmp_path / "unmerged")).eval()
    assert torch.equal(restored(**batch).logits, expected)  # exact: every tensor as saved
    merged = model.merge_and_unload().eval()
    assert not any(isinstance(m, MixupLinear) for m in merged.modules())
    assert torch.allclose(merged(**batch).logits, expected, atol=1e-6)
    merged.save_pretrained(str(tmp_path / "merged"))  # a stock Hugging Face folder
    plain = AutoModelForSequenceClassification.from_pretrained(str(tmp_path / "merged")).eval()
    assert torch.allclose(plain(**batch).logits, expected, atol=1e-6)


def test_alphas_of_another_model_are_refused(tiny_model_dir, tmp_path):
    model = agwm.get_mixup_model(tiny(tiny_model_dir), agwm.MixupConfig(target_modules=["query"]))
    save_alphas(agwm.get_mixup_model(tiny(tiny_model_dir)).base_model, str(tmp_path))
    try:
        model.load_alphas(str(tmp_path / "alphas.safetensors"))
    except ValueError as error:
        assert "does not fit this model" in str(error)
    else:
        raise AssertionError("alphas of other layers were loaded")


def test_a_trainer_saves_checkpoints_resumes_and_keeps_a_mixup_model_exactly(tiny_model_dir, tmp_path):
    """Trainer.save_model and its checkpoints go through MixupModel.save_pretrained (a PreTrainedModel);
    resume_from_checkpoint continues the same run; from_pretrained restores the head class."""
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    texts = ["a good film", "a bad film", "great fun", "dull and long"] * 4
    train = Dataset.from_dict({"text": texts, "label": [1, 0, 1, 0] * 4}).map(
        lambda b: tokenizer(b["text"], padding="max_length", max_length=8, truncation=True), batched=True)

    def trainer(model, out):
        args = TrainingArguments(output_dir=str(out), per_device_train_batch_size=4, max_steps=4, learning_rate=1e-2,
                                 report_to=[], save_strategy="steps", save_steps=2, use_cpu=True, seed=3)
        return Trainer(model=model, args=args, train_dataset=train)

    first = trainer(agwm.get_mixup_model(tiny(tiny_model_dir), agwm.MixupConfig(), seed=1), tmp_path / "a")
    first.train()
    first.save_model(str(tmp_path / "saved"))
    batch = tokenizer(["a good film", "dull"], return_tensors="pt", padding=True)
    expected = first.model.eval()(**batch).logits

    saved = sorted(p.name for p in (tmp_path / "saved").iterdir())
    assert {"config.json", "alphas.json", "model.safetensors"} <= set(saved)
    restored = agwm.MixupModel.from_pretrained(str(tmp_path / "saved")).eval()
    assert type(restored.base_model).__name__ == "BertForSequenceClassification"
    assert torch.equal(restored(**batch).logits, expected)
    assert torch.equal(agwm.MixupModel.from_pretrained(str(tmp_path / "a" / "checkpoint-4")).eval()(**batch).logits,
                       expected)

    again = trainer(agwm.get_mixup_model(tiny(tiny_model_dir), agwm.MixupConfig(), seed=1), tmp_path / "b")
    again.train(resume_from_checkpoint=str(tmp_path / "a" / "checkpoint-2"))
    assert torch.allclose(again.model.eval()(**batch).logits, expected, atol=1e-6)


def test_the_readme_snippet_runs_offline_with_the_shipped_model(tmp_path):
    """README's "Your own training loop", with the default model from agwm.default_model()."""
    from transformers import AutoModelForSequenceClassification

    base = AutoModelForSequenceClassification.from_pretrained(agwm.default_model(), num_labels=1)
    model = agwm.get_mixup_model(base, agwm.MixupConfig())
    model.save_pretrained(str(tmp_path / "mixup"))
    assert agwm.MixupModel.from_pretrained(str(tmp_path / "mixup")).config.num_labels == 1


def test_a_model_with_mixup_layers_is_refused_a_second_time(tiny_model_dir):
    model = agwm.get_mixup_model(tiny(tiny_model_dir))
    for again in (model, model.base_model):
        try:
            agwm.get_mixup_model(again)
        except ValueError as error:
            assert "already has mixup layers" in str(error)
        else:
            raise AssertionError("mixup layers were nested")


def test_from_pretrained_on_a_folder_it_did_not_write_names_what_is_missing(tiny_model_dir, tmp_path):
    try:
        agwm.MixupModel.from_pretrained(tiny_model_dir)  # a stock model folder: no alphas.json
    except ValueError as error:
        assert "is not a folder MixupModel.save_pretrained wrote: no alphas.json" in str(error)
    else:
        raise AssertionError("a folder without alphas.json was read as a mixup model")
