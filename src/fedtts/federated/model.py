"""What a federated round exchanges and what a version file holds (numpy only, no Flower import).

Why: only `TunerWeights.FEDERATED` (b_t, w_p, b_p: 1 024 numbers) is trained across devices, so the
messages — and with them clipping, DP noise, SecAgg+ masking and bytes — carry just those arrays. The
frozen rest (w_t, w_c and the feature statistics) is the run's *start model*, which server and clients
each load themselves and identify by `frozen_digest`; a client refuses a start model whose digest
differs from the server's. A registry version is always a complete tuner file (`TunerWeights.load`
reads it), so `fedtts fl pull` gives something inference can install.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.resources as resources
import logging
from dataclasses import replace
from pathlib import Path

import numpy as np

__all__ = [
    "StartModelMismatch",
    "shipped_start_path",
    "start_model_path",
    "load_start_model",
    "frozen_digest",
    "federated_arrays",
    "merge_federated",
    "version_named",
    "weights_from_version",
]

log = logging.getLogger(__name__)

FROZEN_EXTRA = ("feat_mean", "feat_std")


class StartModelMismatch(ValueError):
    """The client's start model is not the one the server federates (frozen arrays differ)."""


def shipped_start_path() -> Path:
    return Path(str(resources.files("fedtts.data") / "tuner_v0_synthetic.npz"))


def start_model_path(init_model: str = "") -> Path | None:
    """`init_model` if given, else the shipped synthetic-data tuner (None when neither exists)."""
    if init_model:
        return Path(init_model)
    p = shipped_start_path()
    return p if p.is_file() else None


@functools.lru_cache(maxsize=4)
def _load_cached(path: str, mtime_ns: int):
    from fedtts.voice.tuner import TunerWeights

    return TunerWeights.load(Path(path))


def load_start_model(init_model: str = ""):
    """The start model's TunerWeights (`TunerWeights.init()` when no file exists at all)."""
    from fedtts.voice.tuner import TunerWeights

    p = start_model_path(init_model)
    if p is None:
        log.warning("tuner_v0_synthetic.npz not shipped: starting from TunerWeights.init()")
        return TunerWeights.init()
    w = _load_cached(str(p.resolve()), p.stat().st_mtime_ns)
    return replace(w)  # a copy: callers may replace arrays


def frozen_digest(w) -> str:
    """sha256 of what stays fixed in a federation: the non-federated maps and the feature statistics."""
    from fedtts.voice.tuner import TunerWeights

    h = hashlib.sha256()
    for k in (*[k for k in TunerWeights.TRAINABLE if k not in TunerWeights.FEDERATED], *FROZEN_EXTRA):
        a = np.ascontiguousarray(getattr(w, k), np.float32)
        h.update(f"{k}{a.shape}".encode())
        h.update(a.tobytes())
    for _k, (c, sc) in sorted(_whitening().items()):  # the exchange units (stock-pack prior) must agree too
        h.update(np.ascontiguousarray(c, np.float32).tobytes() + np.ascontiguousarray(sc, np.float32).tobytes())
    return h.hexdigest()


def _whitening() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """(centre, scale) per FEDERATED array: style dims in stock-prior standard deviations.

    The tuner's loss measures style error in prior std; exchanging the arrays in the same units makes
    the clip bound and the isotropic DP noise cost every style dimension alike (in raw units the noise
    hurts the low-variance dims up to ~12x more), and keeps values well inside SecAgg+'s ±range.
    """
    from fedtts.voice.tuner import stock_prior

    mean, std, _ = stock_prior()
    mean, std = np.asarray(mean, np.float32), np.asarray(std, np.float32)
    return {
        "b_t": (mean[:128], std[:128]),
        "w_p": (np.zeros((128, 1), np.float32), std[128:, None]),
        "b_p": (mean[128:], std[128:]),
    }


def federated_arrays(w) -> list[np.ndarray]:
    """The arrays a round exchanges, in `TunerWeights.FEDERATED` order, whitened: (a − centre) / std."""
    from fedtts.voice.tuner import TunerWeights

    wh = _whitening()
    return [
        ((np.asarray(getattr(w, k), np.float32) - wh[k][0]) / wh[k][1]).astype(np.float32)
        for k in TunerWeights.FEDERATED
    ]


def merge_federated(frozen, arrays: list[np.ndarray], version: str | None = None):
    """Full TunerWeights: `frozen`'s maps and statistics with the (whitened) federated `arrays` installed."""
    from fedtts.voice.tuner import TunerWeights

    wh = _whitening()
    if len(arrays) != len(TunerWeights.FEDERATED):
        raise ValueError(f"expected {len(TunerWeights.FEDERATED)} federated arrays, got {len(arrays)}")
    new = {}
    for k, a in zip(TunerWeights.FEDERATED, arrays, strict=True):
        a = np.asarray(a, np.float32)
        if a.shape != np.shape(getattr(frozen, k)):
            raise ValueError(f"{k}: expected shape {np.shape(getattr(frozen, k))}, got {a.shape}")
        new[k] = (a * wh[k][1] + wh[k][0]).astype(np.float32)
    out = replace(frozen, **new)
    if version is not None:
        out.version = version
    return out


def version_named(w) -> dict[str, np.ndarray]:
    """A version file's content: the same keys `TunerWeights.save` writes (so `TunerWeights.load` reads it)."""
    from fedtts.voice.tuner import TunerWeights

    out = {k: np.asarray(getattr(w, k), np.float32) for k in (*TunerWeights.TRAINABLE, *FROZEN_EXTRA)}
    out["version"] = np.array(str(w.version))
    out["info"] = np.array(str(w.info))
    return out


def weights_from_version(arrays, version: str | None = None):
    """TunerWeights from a registry version: named arrays (current format) or 7 positional (older runs)."""
    from fedtts.voice.tuner import TunerWeights

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
