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
bank (public model only; ``fedtts train spectrum``), because a render would cost a second.
Bands the reference does not carry (e.g. above 8 kHz in a 16 kHz recording) are not cut: the
curve holds its last carried value there, so a band-limited clip does not band-limit the clone.
"""

from __future__ import annotations

import functools
import logging
from importlib import resources
from pathlib import Path

import numpy as np

from fedtts.voice.profile import Voice
from fedtts.voice.reference import Reference

__all__ = [
    "N_BANDS",
    "MAX_GAIN_DB",
    "ltas_db",
    "match_curve",
    "RenderSpectrum",
    "render_spectrum",
    "fit_render_spectrum",
    "spectral_match",
    "SPECTRUM_FILE",
]

log = logging.getLogger(__name__)

SR = 24000
N_BANDS = 32
MAX_GAIN_DB = 12.0
CARRIED_DB = 45.0  # a band more than this below the loudest band is not carried by the recording
SPECTRUM_FILE = "render_spectrum_v1.npz"
VERSION = 1


@functools.lru_cache(maxsize=4)
def mel_bands(n_fft: int, sr: int = SR, n_bands: int = N_BANDS) -> np.ndarray:
    """Triangular mel filters [n_bands, n_fft//2 + 1] from 50 Hz to just under Nyquist."""
    from fedtts.eval.metrics import mel_filterbank

    return mel_filterbank(n_bands, n_fft, sr)


def ltas_db(audio: np.ndarray, sr: int = SR) -> np.ndarray:
    """Long-term average spectrum [N_BANDS] (dB): mean log mel-band power over speech frames."""
    x = np.asarray(audio, np.float32)
    if sr != SR:
        import soxr

        x = soxr.resample(x, sr, SR).astype(np.float32)
    from fedtts.eval.metrics import windowed_frames

    fr, level = windowed_frames(x, 1024, 256, "a long-term spectrum (< 43 ms)")
    keep = level > level.max() - 35.0  # speech frames, not pauses
    p = np.abs(np.fft.rfft(fr[keep], axis=1)) ** 2
    return (10 * np.log10(p @ mel_bands(1024).T + 1e-10)).mean(0).astype(np.float32)


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


def fit_render_spectrum(styles: np.ndarray, ltas: np.ndarray, ridge: float = 3.0) -> RenderSpectrum:
    """Fit the map on (style, measured render LTAS) pairs (ridge on centred styles)."""
    x = np.asarray(styles, np.float64)
    y = np.asarray(ltas, np.float64)
    mean = x.mean(0)
    xc = x - mean
    w = np.linalg.solve(xc.T @ xc + ridge * np.eye(x.shape[1]), xc.T @ (y - y.mean(0)))
    return RenderSpectrum(w, y.mean(0), mean)


@functools.lru_cache(maxsize=1)
def render_spectrum() -> RenderSpectrum:
    """The shipped map (``fedtts/data/render_spectrum_v1.npz``)."""
    path = resources.files("fedtts.data") / SPECTRUM_FILE
    if not path.is_file():
        raise FileNotFoundError(f"render spectrum map missing: {path} (run `fedtts train spectrum`)")
    return RenderSpectrum.load(path)


def _style_of(voice: Voice) -> np.ndarray:
    from fedtts.voice.tuner import stock_prior

    _, _, offsets = stock_prior()
    return (voice.pack - offsets).mean(0)


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


def train_render_spectrum(n_styles: int = 120, seed: int = 0, ridge: float = 3.0, progress: bool = True):
    """Render ``n_styles`` style-bank entries and the stock packs on the calibration sentence,
    measure their LTAS, fit the map. Public model and styles only (no recordings)."""
    from tqdm import tqdm

    from fedtts.voice.bank import default_bank
    from fedtts.voice.profile import stock_voice, stock_voice_names
    from fedtts.voice.resolve import render_phonemes
    from fedtts.voice.tuner import style_to_pack

    bank = default_bank()
    pick = np.random.default_rng(seed).permutation(len(bank.styles))[: int(n_styles)]
    voices = [Voice("bank", style_to_pack(bank.styles[i])) for i in pick]
    voices += [stock_voice(n) for n in stock_voice_names()]
    styles, ltas = [], []
    for v in tqdm(voices, desc="render spectrum", disable=not progress):
        styles.append(_style_of(v))
        ltas.append(ltas_db(render_phonemes(v)))
    styles_a, ltas_a = np.stack(styles), np.stack(ltas)
    # held-out check: fit on all but every 5th voice, report the error on those
    test = np.arange(len(voices)) % 5 == 0
    held = fit_render_spectrum(styles_a[~test], ltas_a[~test], ridge)
    err = held.predict(styles_a[test]) - ltas_a[test]
    err -= err.mean(1, keepdims=True)  # curves are level-free
    base = ltas_a[test] - ltas_a[~test].mean(0)
    base -= base.mean(1, keepdims=True)
    stats = {
        "voices": len(voices),
        "heldout_rms_db": float(np.sqrt(np.mean(err**2))),
        "constant_rms_db": float(np.sqrt(np.mean(base**2))),
    }
    return fit_render_spectrum(styles_a, ltas_a, ridge), stats
