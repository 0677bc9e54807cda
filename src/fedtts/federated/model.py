"""What a federated round exchanges and what a version file holds (numpy only, no Flower import).

Why: only `TunerWeights.FEDERATED` (b_t, w_p, b_p) is trained across devices, and only inside a small
public subspace: each array's change from the start model, in stock-prior standard deviations, is
projected onto the top `SUBSPACE_DIMS` principal directions of the public style bank (timbre half for
b_t, prosody half for w_p and b_p). A round then carries 8 + 48 + 8 = 64 numbers instead of 1 024. The
DP noise is isotropic over what is exchanged, so its norm falls by √16 while the updates keep the
directions in which real voices differ (public-subspace projection of DP updates: the basis comes from
public data, so it costs no privacy). Measured on the acceptance emulation: DP similarity −0.020 with
the 1 024 raw numbers, −0.004 in the subspace; docs/federated.md has the figures.

The frozen rest (w_t, w_c, the feature statistics, and the start model's own FEDERATED arrays, the origin
of the subspace) is the run's *start model*, which server and clients each load themselves and
identify by `frozen_digest`; a client refuses a start model whose digest differs from the server's. A
registry version is always a complete tuner file (`TunerWeights.load` reads it), so `fedtts fl pull`
gives something inference can install.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.resources as resources
import logging
from dataclasses import replace
from pathlib import Path

import numpy as np

from fedtts.base.tuner_weights import (
    FROZEN_EXTRA,
    TunerWeights,
    stock_prior,
    version_named,
    weights_from_version,
)
from fedtts.voice.bank import default_bank

__all__ = [
    "SUBSPACE_DIMS",
    "principal_directions",
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

SUBSPACE_DIMS = 8  # principal directions per style half (bank PCA: 47 % of the bank's variance)


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
    return TunerWeights.load(Path(path))


def load_start_model(init_model: str = ""):
    """The start model's TunerWeights (`TunerWeights.init()` when no file exists at all)."""
    p = start_model_path(init_model)
    if p is None:
        log.warning("tuner_v0_synthetic.npz not shipped: starting from TunerWeights.init()")
        return TunerWeights.init()
    w = _load_cached(str(p.resolve()), p.stat().st_mtime_ns)
    return replace(w)  # a copy: callers may replace arrays


def frozen_digest(w) -> str:
    """sha256 of what stays fixed in a federation: the maps, statistics and exchange subspace of `w`.

    `w` is the start model: its FEDERATED arrays are the origin of the exchanged coordinates, so they
    are part of the digest too (a registry version's digest is checked against the start model's only
    through `same_frozen`).
    """
    h = _frozen_hash(w)
    for k in TunerWeights.FEDERATED:
        h.update(np.ascontiguousarray(getattr(w, k), np.float32).tobytes())
    return h.hexdigest()


def same_frozen(a, b) -> bool:
    """True when `a` and `b` share the maps and statistics that a federation never changes."""
    return _frozen_hash(a).hexdigest() == _frozen_hash(b).hexdigest()


def _frozen_hash(w):
    h = hashlib.sha256()
    for k in (*[k for k in TunerWeights.TRAINABLE if k not in TunerWeights.FEDERATED], *FROZEN_EXTRA):
        a = np.ascontiguousarray(getattr(w, k), np.float32)
        h.update(f"{k}{a.shape}".encode())
        h.update(a.tobytes())
    for k, (basis, scale) in sorted(_subspace().items()):  # the exchange units must agree too
        h.update(k.encode() + np.ascontiguousarray(basis, np.float32).tobytes())
        h.update(np.ascontiguousarray(scale, np.float32).tobytes())
    return h


@functools.lru_cache(maxsize=1)
def _subspace() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """(basis [128, k], scale [128]) per FEDERATED array: the public style bank's top principal
    directions in stock-prior std units (scale = the prior std of the array's style dims).

    Units: the tuner's loss measures style error in prior std, so clip and noise cost every style
    dimension alike; signs are fixed (largest entry positive) so every machine derives the same basis.
    """
    mean, std, _ = stock_prior()
    mean, std = np.asarray(mean, np.float64), np.asarray(std, np.float64)
    z = (np.asarray(default_bank().styles, np.float64) - mean) / std
    out = {}
    for half, sl in (("timbre", slice(0, 128)), ("prosody", slice(128, 256))):
        out[half] = (principal_directions(z[:, sl], SUBSPACE_DIMS), std[sl].astype(np.float32))
    return {"b_t": out["timbre"], "w_p": out["prosody"], "b_p": out["prosody"]}


def principal_directions(x: np.ndarray, k: int) -> np.ndarray:
    """[dims, k]: the top-k principal directions of the rows of ``x``, signs fixed (largest entry
    positive) so every machine derives the same basis from the same public data."""
    x = np.asarray(x, np.float64)
    _, _, vt = np.linalg.svd(x - x.mean(0), full_matrices=False)
    basis = vt[:k].T
    basis *= np.sign(basis[np.abs(basis).argmax(0), np.arange(basis.shape[1])])
    return basis.astype(np.float32)


def federated_arrays(w, start) -> list[np.ndarray]:
    """The arrays a round exchanges, in `TunerWeights.FEDERATED` order: the change of `w` from `start`
    in prior std, projected on the public subspace ([k], [k, 6], [k])."""
    sub = _subspace()
    out = []
    for k in TunerWeights.FEDERATED:
        basis, scale = sub[k]
        d = (np.asarray(getattr(w, k), np.float32) - np.asarray(getattr(start, k), np.float32)).T / scale
        out.append(np.ascontiguousarray((d @ basis).T, np.float32))
    return out


def merge_federated(start, arrays: list[np.ndarray], version: str | None = None):
    """Full TunerWeights: `start`'s maps and statistics, its FEDERATED arrays moved by the exchanged
    coordinates `arrays`."""
    sub = _subspace()
    if len(arrays) != len(TunerWeights.FEDERATED):
        raise ValueError(f"expected {len(TunerWeights.FEDERATED)} federated arrays, got {len(arrays)}")
    new = {}
    for k, a in zip(TunerWeights.FEDERATED, arrays, strict=True):
        basis, scale = sub[k]
        a = np.asarray(a, np.float32)
        want = (SUBSPACE_DIMS, *np.shape(getattr(start, k))[1:])
        if a.shape != want:
            raise ValueError(f"{k}: expected shape {want}, got {a.shape}")
        delta = ((basis @ a).T * scale).T
        new[k] = (np.asarray(getattr(start, k), np.float32) + delta).astype(np.float32)
    out = replace(start, **new)
    if version is not None:
        out.version = version
    return out
