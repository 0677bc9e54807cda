"""The voice tuner's weights: file format, stock prior, and the arrays a version file holds.

Why here, below ``voice`` and ``federated``: cloning (``voice.tuner``) loads the weights the
federated registry installed, and federated training (``federated.model``) builds and saves them. With
the format in either of the two, each imported the other; both import it from here now. numpy only,
plus the stock packs (``engine.assets``, a leaf) for the prior.

The model itself (features → style) is described in :mod:`fedtts.voice.tuner`.
"""

from __future__ import annotations

import functools
import importlib.resources as resources
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fedtts.engine.assets import load_stock_packs

__all__ = [
    "FROZEN_EXTRA",
    "N_EMB",
    "N_FEATURES",
    "N_PROSODY",
    "TUNER_VERSION",
    "WEIGHTS_FILE",
    "TunerWeights",
    "pack_to_style",
    "shipped_weights_path",
    "stock_prior",
    "style_to_pack",
    "version_named",
    "weights_from_version",
]

N_EMB = 256
N_PROSODY = 6
N_FEATURES = N_EMB + N_PROSODY
WEIGHTS_FILE = "tuner_v2.npz"
TUNER_VERSION = "tuner-v2-recon"  # replaced by the version recorded in the weights file when loaded
FROZEN_EXTRA = ("feat_mean", "feat_std")  # saved with the maps, never trained


def shipped_weights_path() -> Path:
    """The tuner weights shipped in the wheel (``fedtts/data/tuner_v2.npz``)."""
    return Path(str(resources.files("fedtts.data") / WEIGHTS_FILE))


@functools.lru_cache(maxsize=1)
def stock_prior() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(mean [256], std [256], row_offsets [510, 256]) over the stock packs (rows 10–250)."""
    packs = np.stack(list(load_stock_packs().values())).astype(np.float32)
    sample = packs[:, 10:250].reshape(-1, 256)
    mean = sample.mean(0)
    std = sample.std(0) + 1e-4
    return mean, std, (packs.mean(0) - mean).astype(np.float32)


def style_to_pack(style: np.ndarray) -> np.ndarray:
    """[510, 256]: a length-independent style plus the stock packs' average dependence on input length."""
    _, _, offsets = stock_prior()
    return (np.asarray(style, np.float32)[None] + offsets).astype(np.float32)


def pack_to_style(pack: np.ndarray) -> np.ndarray:
    """The length-independent style [256] of a pack (inverse of :func:`style_to_pack` on average)."""
    _, _, offsets = stock_prior()
    return (pack - offsets).mean(0)


@dataclass
class TunerWeights:
    """Trainable parameters (the list federated learning exchanges) + fixed normalisation stats."""

    w_t: np.ndarray  # [128, 256]
    b_t: np.ndarray  # [128]
    w_p: np.ndarray  # [128, 6]
    w_c: np.ndarray  # [128, 256]
    b_p: np.ndarray  # [128]
    feat_mean: np.ndarray  # [262]
    feat_std: np.ndarray  # [262]
    version: str = TUNER_VERSION
    info: str = "{}"  # JSON: how the weights were fitted

    TRAINABLE = ("w_t", "b_t", "w_p", "w_c", "b_p")
    # What federated rounds train: the biases and the prosody map, exchanged as 64 coordinates in a
    # public subspace (fedtts.federated.model). The two 128×256 embedding maps stay as trained
    # centrally: with ~10 devices per round, DP noise on 66 k weights would drown any signal.
    FEDERATED = ("b_t", "w_p", "b_p")

    @classmethod
    def init(cls, feat_mean=None, feat_std=None) -> TunerWeights:
        """Zero maps and the stock-pack mean as bias: predicts the average stock voice."""
        mean, _, _ = stock_prior()
        return cls(
            w_t=np.zeros((128, N_EMB), np.float32),
            b_t=mean[:128].copy(),
            w_p=np.zeros((128, N_PROSODY), np.float32),
            w_c=np.zeros((128, N_EMB), np.float32),
            b_p=mean[128:].copy(),
            feat_mean=np.zeros(N_FEATURES, np.float32) if feat_mean is None else feat_mean,
            feat_std=np.ones(N_FEATURES, np.float32) if feat_std is None else feat_std,
            version="tuner-init",
        )

    def save(self, path: Path) -> Path:
        arrays = {
            k: np.asarray(getattr(self, k), np.float32) for k in (*self.TRAINABLE, "feat_mean", "feat_std")
        }
        np.savez_compressed(path, version=np.array(self.version), info=np.array(self.info), **arrays)
        return path

    @classmethod
    def load(cls, path: Path) -> TunerWeights:
        with np.load(path, allow_pickle=False) as z:
            kw = {k: z[k].astype(np.float32) for k in (*cls.TRAINABLE, "feat_mean", "feat_std")}
            return cls(**kw, version=str(z["version"]), info=str(z["info"]))


def version_named(w: TunerWeights) -> dict[str, np.ndarray]:
    """A version file's content: the same keys `TunerWeights.save` writes (so `TunerWeights.load` reads it)."""
    out = {k: np.asarray(getattr(w, k), np.float32) for k in (*TunerWeights.TRAINABLE, *FROZEN_EXTRA)}
    out["version"] = np.array(str(w.version))
    out["info"] = np.array(str(w.info))
    return out


def weights_from_version(arrays, version: str | None = None) -> TunerWeights:
    """TunerWeights from a registry version: named arrays (current format) or 7 positional (older runs)."""
    keys = (*TunerWeights.TRAINABLE, *FROZEN_EXTRA)
    if isinstance(arrays, dict):
        missing = [k for k in keys if k not in arrays]
        if missing:
            raise ValueError(f"version file lacks {missing}")
        w = TunerWeights(
            **{k: np.asarray(arrays[k], np.float32) for k in keys},
            version=str(arrays.get("version", "fl")),
            info=str(arrays.get("info", "{}")),
        )
    else:
        if len(arrays) != 7:
            raise ValueError(f"version file has {len(arrays)} arrays, expected 7 (5 maps + feature stats)")
        w = TunerWeights(*[np.asarray(a, np.float32) for a in arrays])
    if version is not None:
        w.version = version
    return w
