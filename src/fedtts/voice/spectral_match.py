"""Spectral match: give a clone its reference's long-term spectrum (a per-voice equaliser curve).

Why: the style vector moves Kokoro's timbre only as far as the decoder lets it, so every render
keeps much of the decoder's own long-term average spectrum (LTAS). The speaker's LTAS, the shape of
their voice's spectrum averaged over their speech (vocal tract length, voice quality, and the
microphone they were recorded with), is a classic speaker trait. A smooth curve in 32 mel
bands that moves the clone's LTAS onto the reference's, measured once when the voice is made and
applied to every chunk (:mod:`fedtts.pipeline.equalizer`), closes much of that gap. On the English
dev speakers it raised the independent, normalised MFCC similarity of tuner clones from 0.27 to
0.56, while a curve toward a *different* speaker's clip (0.24) or toward an average real spectrum
(0.29) did not (docs/clone.md).

The clone's own LTAS is predicted from its style by a ridge map fitted on renders of the style
bank (public model only; ``fedtts train spectrum``, :mod:`fedtts.train.spectrum`), because a render would cost a second.
Bands the reference does not carry (e.g. above 8 kHz in a 16 kHz recording) are not cut: the
curve holds its last carried value there, so a band-limited clip does not band-limit the clone.
"""

from __future__ import annotations

import functools
import logging
from importlib import resources
from pathlib import Path

import numpy as np

from fedtts.base.dsp import N_BANDS, ltas_db
from fedtts.base.tuner_weights import pack_to_style
from fedtts.voice.profile import Voice
from fedtts.voice.reference import Reference

__all__ = [
    "N_BANDS",
    "MAX_GAIN_DB",
    "ltas_db",
    "match_curve",
    "RenderSpectrum",
    "render_spectrum",
    "spectral_match",
    "SPECTRUM_FILE",
]

log = logging.getLogger(__name__)

MAX_GAIN_DB = 12.0
CARRIED_DB = 45.0  # a band more than this below the loudest band is not carried by the recording
SPECTRUM_FILE = "render_spectrum_v1.npz"
VERSION = 1


def match_curve(
    ref_ltas: np.ndarray, voice_ltas: np.ndarray, strength: float = 1.0, max_gain_db: float = MAX_GAIN_DB
) -> np.ndarray:
    """Gains [N_BANDS] (dB) taking ``voice_ltas``'s shape toward ``ref_ltas``'s by ``strength``.

    Only the shape is matched (levels are removed), and the result keeps the voice's loudness."""
    ref_ltas, voice_ltas = np.asarray(ref_ltas, np.float64), np.asarray(voice_ltas, np.float64)
    carried = ref_ltas > ref_ltas.max() - CARRIED_DB
    last = int(np.flatnonzero(carried).max())
    g = ref_ltas - voice_ltas
    g -= g[: last + 1].mean()
    g = np.clip(float(strength) * g, -max_gain_db, max_gain_db)
    g[last + 1 :] = g[last]  # hold above the reference's bandwidth: never band-limit the clone
    # power-neutral on the voice's own spectrum: the curve changes colour, not loudness
    p = 10.0 ** (voice_ltas / 10.0)
    g -= 10.0 * np.log10((p * 10.0 ** (g / 10.0)).sum() / p.sum())
    return np.clip(g, -max_gain_db, max_gain_db).astype(np.float32)


class RenderSpectrum:
    """Ridge map from a length-independent style [256] to the LTAS [N_BANDS] of its renders."""

    def __init__(self, w: np.ndarray, b: np.ndarray, mean: np.ndarray):
        self.w, self.b, self.mean = (np.asarray(a, np.float32) for a in (w, b, mean))

    def predict(self, style: np.ndarray) -> np.ndarray:
        return (np.asarray(style, np.float32) - self.mean) @ self.w + self.b

    def save(self, path: Path) -> Path:
        np.savez_compressed(path, w=self.w, b=self.b, mean=self.mean, version=np.array(VERSION))
        return path

    @classmethod
    def load(cls, path) -> RenderSpectrum:
        with np.load(path, allow_pickle=False) as z:
            return cls(z["w"], z["b"], z["mean"])


@functools.lru_cache(maxsize=1)
def render_spectrum() -> RenderSpectrum:
    """The shipped map (``fedtts/data/render_spectrum_v1.npz``)."""
    path = resources.files("fedtts.data") / SPECTRUM_FILE
    if not path.is_file():
        raise FileNotFoundError(f"render spectrum map missing: {path} (run `fedtts train spectrum`)")
    return RenderSpectrum.load(path)


def _style_of(voice: Voice) -> np.ndarray:
    return pack_to_style(voice.pack)


def spectral_match(voice: Voice, ref: Reference, strength: float = 1.0) -> Voice:
    """A copy of ``voice`` whose renders are equalised toward ``ref``'s long-term spectrum.

    ``strength`` 0 removes the curve, 1 matches fully. The curve is stored in the voice's meta
    (``eq_db``), so profiles, exports and blends keep it; the pack itself is unchanged.
    """
    strength = float(strength)
    if not np.isfinite(strength) or not 0.0 <= strength <= 1.5:
        raise ValueError(f"spectral-match strength must be in [0, 1.5], got {strength}")
    meta = {k: v for k, v in voice.meta.items() if k not in ("eq_db", "eq_strength")}
    if strength > 0:
        curve = match_curve(
            ltas_db(ref.audio, ref.sample_rate), render_spectrum().predict(_style_of(voice)), strength
        )
        meta.update(eq_db=[round(float(g), 2) for g in curve], eq_strength=strength)
    return Voice(name=voice.name, pack=voice.pack.copy(), meta=meta)
