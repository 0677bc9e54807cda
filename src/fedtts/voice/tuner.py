"""Voice tuner: reference → 256-d Kokoro style in one pass (numpy, no torch at inference).

Features = GE2E speaker embedding (256, numpy encoder) ++ measured prosody (F0 level and range in
semitones, voiced fraction, rate, energy dynamics, pause ratio; standardised). The model is linear
in two halves, so it can be trained centrally (:mod:`fedtts.train.tuner`) or federated (Flower
averages the same weight list):

    timbre  (0–127)   = b_t + W_t · ê
    prosody (128–255) = b_p + W_p · p̂ + W_c · ê        (W_c: the learned correction)

ê and p̂ are the standardised embedding / prosody (fixed statistics shipped with the weights).
The style is finally clamped to ``clamp`` prior standard deviations around the stock-pack mean so
an unusual reference cannot push Kokoro into noise. Weights: ``fedtts/data/tuner_v*.npz``; their
format (:class:`TunerWeights`) and the stock prior live in :mod:`fedtts.base.tuner_weights`, so the
federated layer can build them without importing this module.

Which weights cloning uses (:func:`default_tuner`): ``$FEDTTS_TUNER`` (a weights file), else the
current version of the federated registry (:func:`fedtts.engine.assets.registry_dir`, so ``fedtts fl rollback``
changes it), else the shipped ``tuner_v2.npz``. A broken installed version logs a warning and falls
back to the shipped weights.
"""

from __future__ import annotations

import functools
import json
import logging
import os
from pathlib import Path

import numpy as np

from fedtts.base.tuner_weights import (
    N_EMB,
    N_FEATURES,
    N_PROSODY,
    TUNER_VERSION,
    WEIGHTS_FILE,
    TunerWeights,
    shipped_weights_path,
    stock_prior,
    style_to_pack,
    weights_from_version,
)
from fedtts.base.versions import VersionRegistry
from fedtts.engine.assets import registry_dir
from fedtts.voice.profile import Voice
from fedtts.voice.prosody import measure_prosody
from fedtts.voice.reference import Reference
from fedtts.voice.speaker import embed

__all__ = [
    "VoiceTuner",
    "TunerWeights",
    "TUNER_VERSION",
    "N_EMB",
    "N_PROSODY",
    "N_FEATURES",
    "default_tuner",
    "tuner_available",
    "tuner_voice",
    "stock_prior",
    "style_to_pack",
]

log = logging.getLogger(__name__)


def _weights_path() -> Path:
    """The shipped weights (the fallback of :func:`default_tuner`)."""
    return shipped_weights_path()


class VoiceTuner:
    """featurize(reference) → features; predict(features) → style [256]; voice(reference) → Voice."""

    clamp = 3.0  # prior standard deviations

    def __init__(self, weights: TunerWeights | None = None):
        self.weights = weights or TunerWeights.load(_weights_path())

    @property
    def version(self) -> str:
        return self.weights.version

    # ---------------------------------------------------------------- features
    @staticmethod
    def featurize(reference: Reference) -> np.ndarray:
        """[262] = GE2E embedding (256) ++ prosody (6), raw (standardised inside predict)."""
        e = embed(reference.audio, reference.sample_rate)
        p = measure_prosody(reference.audio, reference.sample_rate).as_array()
        return np.concatenate([e, p]).astype(np.float32)

    @staticmethod
    def featurize_audio(audio: np.ndarray, sr: int) -> np.ndarray:
        return np.concatenate([embed(audio, sr), measure_prosody(audio, sr).as_array()]).astype(np.float32)

    def normalise(self, features: np.ndarray) -> np.ndarray:
        w = self.weights
        return ((np.asarray(features, np.float32) - w.feat_mean) / w.feat_std).astype(np.float32)

    # ---------------------------------------------------------------- model
    def predict(self, features: np.ndarray) -> np.ndarray:
        """Style(s) [256] (or [n, 256] for [n, 262] features)."""
        x = self.normalise(features)
        single = x.ndim == 1
        x = np.atleast_2d(x)
        e, p = x[:, :N_EMB], x[:, N_EMB:]
        w = self.weights
        timbre = e @ w.w_t.T + w.b_t
        prosody = p @ w.w_p.T + e @ w.w_c.T + w.b_p
        style = np.concatenate([timbre, prosody], axis=1)
        mean, std, _ = stock_prior()
        style = np.clip(style, mean - self.clamp * std, mean + self.clamp * std).astype(np.float32)
        return style[0] if single else style

    def pack(self, style: np.ndarray) -> np.ndarray:
        return style_to_pack(style)

    def voice(self, reference: Reference, name: str = "clone") -> Voice:
        style = self.predict(self.featurize(reference))
        return Voice(
            name=name,
            pack=self.pack(style),
            meta={"kind": "clone", "method": "tuner", "tuner_version": self.version},
        )

    # ---------------------------------------------------------------- federated exchange
    def get_weights(self) -> list[np.ndarray]:
        """Trainable arrays in a fixed order: w_t, b_t, w_p, w_c, b_p."""
        return [np.asarray(getattr(self.weights, k), np.float32).copy() for k in TunerWeights.TRAINABLE]

    def set_weights(self, arrays: list[np.ndarray]) -> None:
        if len(arrays) != len(TunerWeights.TRAINABLE):
            raise ValueError(f"expected {len(TunerWeights.TRAINABLE)} arrays, got {len(arrays)}")
        for k, a in zip(TunerWeights.TRAINABLE, arrays, strict=True):
            cur = getattr(self.weights, k)
            a = np.asarray(a, np.float32)
            if a.shape != cur.shape or not np.all(np.isfinite(a)):
                raise ValueError(f"tuner weight {k}: expected finite {cur.shape}, got {a.shape}")
            setattr(self.weights, k, a.copy())

    def info(self) -> dict:
        try:
            return json.loads(self.weights.info)
        except ValueError:
            return {}


def _installed_source() -> tuple[str, str, int]:
    """(kind, path, stamp) of the weights cloning should use; the stamp changes when they do."""
    env = os.environ.get("FEDTTS_TUNER")
    if env:
        p = Path(env)
        return "env", str(p), p.stat().st_mtime_ns if p.is_file() else -1
    index = registry_dir() / "index.json"
    if index.is_file():
        return "registry", str(index.parent), index.stat().st_mtime_ns
    return "shipped", str(_weights_path()), 0


def _load_installed(kind: str, path: str) -> TunerWeights | None:
    """Weights of $FEDTTS_TUNER or the registry's current version (None: no current version)."""
    if kind == "env":
        return TunerWeights.load(Path(path))
    reg = VersionRegistry(Path(path))
    if reg.current() is None:
        return None
    mv, arrays = reg.load()
    w = weights_from_version(arrays)
    if not str(w.version).startswith("fl-"):
        w.version = f"fl-v{mv.version}"
    return w


@functools.lru_cache(maxsize=2)
def _tuner_for(source: tuple[str, str, int]) -> VoiceTuner:
    kind, path, _ = source
    if kind != "shipped":
        try:
            w = _load_installed(kind, path)
            if w is not None:
                log.info("voice tuner: using %s weights %s (%s)", kind, w.version, path)
                return VoiceTuner(w)
        except Exception as e:  # noqa: BLE001 - any broken install must not break cloning
            log.warning(
                "voice tuner: %s weights at %s unusable (%s); using shipped %s", kind, path, e, WEIGHTS_FILE
            )
    log.info("voice tuner: using shipped %s", WEIGHTS_FILE)
    return VoiceTuner()


def tuner_available() -> bool:
    return _weights_path().is_file() or _installed_source()[0] != "shipped"


def default_tuner() -> VoiceTuner:
    """The tuner cloning uses: $FEDTTS_TUNER, else the federated registry's current version, else shipped."""
    return _tuner_for(_installed_source())


default_tuner.cache_clear = _tuner_for.cache_clear  # type: ignore[attr-defined]


def tuner_voice(ref: Reference) -> Voice:
    """The "tuner" cloning method (:data:`fedtts.voice.resolve.METHODS`): one pass of the installed tuner."""
    tuner = default_tuner()
    v = tuner.voice(ref)
    log.info("tuner %s cloned %s", tuner.version, ref.label)
    return v
