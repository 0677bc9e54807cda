"""Signal helpers shared by the engine, voice, pipeline and evaluation layers (numpy; soxr on demand).

Why one module: framing, mel filters, resampling, F0 and the long-term spectrum were written once in
``eval.metrics`` and ``voice.spectral_match`` and then imported from there by the engine and the
pipeline, so lower layers reached up. They sit below all of them now.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

__all__ = [
    "F0Track",
    "LTAS_SR",
    "N_BANDS",
    "ltas_db",
    "mel_bands",
    "mel_filterbank",
    "resample",
    "windowed_frames",
    "yin_f0",
]

YIN_SR = 16000  # YIN runs on 16 kHz audio with a 10 ms hop
HOP_S = 0.01
FMIN, FMAX = 60.0, 500.0
LTAS_SR = 24000  # the long-term spectrum is measured at Kokoro's rate
N_BANDS = 32


def resample(audio: np.ndarray, sr: int, target: int = YIN_SR) -> np.ndarray:
    """Mono float32 at ``target`` Hz (soxr HQ)."""
    x = np.asarray(audio, dtype=np.float32)
    if x.ndim == 2:
        x = x.mean(axis=1 if x.shape[1] <= 8 else 0)
    if sr == target or x.size == 0:
        return x
    import soxr  # only when a rate actually differs: keeps the common path import-light

    return soxr.resample(x, sr, target, quality="HQ").astype(np.float32)


def mel_filterbank(n_mels: int, nfft: int, sr: int) -> np.ndarray:
    """Triangular mel filters [n_mels, nfft // 2 + 1] from 50 Hz to 200 Hz under Nyquist."""

    def hz2mel(f):
        return 2595.0 * np.log10(1.0 + np.asarray(f) / 700.0)

    def mel2hz(m):
        return 700.0 * (10 ** (np.asarray(m) / 2595.0) - 1.0)

    pts = mel2hz(np.linspace(hz2mel(50.0), hz2mel(sr / 2 - 200), n_mels + 2))
    freqs = np.fft.rfftfreq(nfft, 1.0 / sr)
    fb = np.zeros((n_mels, freqs.size))
    for i in range(n_mels):
        lo, c, hi = pts[i], pts[i + 1], pts[i + 2]
        fb[i] = np.clip(np.minimum((freqs - lo) / (c - lo), (hi - freqs) / (hi - c)), 0, None)
    return fb


@functools.lru_cache(maxsize=4)
def mel_bands(n_fft: int, sr: int = LTAS_SR, n_bands: int = N_BANDS) -> np.ndarray:
    """Triangular mel filters [n_bands, n_fft//2 + 1] from 50 Hz to just under Nyquist (cached)."""
    return mel_filterbank(n_bands, n_fft, sr)


def windowed_frames(x: np.ndarray, win: int, hop: int, what: str) -> tuple[np.ndarray, np.ndarray]:
    """Hann-windowed frames [n, win] of ``x`` and their levels (dB); ``what`` names the error."""
    if len(x) < win:
        raise ValueError(f"audio too short for {what}")
    n = 1 + (len(x) - win) // hop
    idx = np.arange(win)[None, :] + hop * np.arange(n)[:, None]
    fr = x[idx] * np.hanning(win)
    return fr, 10 * np.log10(np.mean(fr**2, axis=1) + 1e-10)


def ltas_db(audio: np.ndarray, sr: int = LTAS_SR) -> np.ndarray:
    """Long-term average spectrum [N_BANDS] (dB): mean log mel-band power over speech frames."""
    x = np.asarray(audio, np.float32)
    if sr != LTAS_SR:
        x = resample(x, sr, LTAS_SR)
    fr, level = windowed_frames(x, 1024, 256, "a long-term spectrum (< 43 ms)")
    keep = level > level.max() - 35.0  # speech frames, not pauses
    p = np.abs(np.fft.rfft(fr[keep], axis=1)) ** 2
    return (10 * np.log10(p @ mel_bands(1024).T + 1e-10)).mean(0).astype(np.float32)


@dataclass
class F0Track:
    """F0 in Hz per 10 ms frame (0 where unvoiced) and YIN aperiodicity (lower = more periodic)."""

    f0: np.ndarray
    voiced: np.ndarray
    aperiodicity: np.ndarray
    hop_s: float = HOP_S

    def voiced_f0(self) -> np.ndarray:
        return self.f0[self.voiced]


def yin_f0(
    audio: np.ndarray, sr: int, fmin: float = FMIN, fmax: float = FMAX, threshold: float = 0.2
) -> F0Track:
    """YIN pitch tracker, vectorised with FFT autocorrelation; robust to level, no librosa."""
    x = resample(audio, sr, YIN_SR)
    win = int(YIN_SR / fmin) * 2  # two periods of the lowest F0
    hop = int(HOP_S * YIN_SR)
    if len(x) < win:
        z = np.zeros(0, np.float32)
        return F0Track(z, z.astype(bool), z)
    n = 1 + (len(x) - win) // hop
    idx = np.arange(win)[None, :] + hop * np.arange(n)[:, None]
    fr = x[idx].astype(np.float64)
    fr -= fr.mean(axis=1, keepdims=True)
    w = win // 2  # integration window; lags up to w
    nfft = 1 << int(np.ceil(np.log2(2 * win)))
    spec = np.fft.rfft(fr, nfft, axis=1)
    # r[t, tau] = sum_{j<w} x_j x_{j+tau}: cross-correlation of the first half with the whole frame.
    head = np.fft.rfft(fr[:, :w], nfft, axis=1)
    r = np.fft.irfft(np.conj(head) * spec, nfft, axis=1)[:, : w + 1]
    sq = np.cumsum(fr**2, axis=1)
    sq = np.concatenate([np.zeros((n, 1)), sq], axis=1)
    e0 = sq[:, w][:, None]
    taus = np.arange(w + 1)
    e_tau = sq[:, taus + w] - sq[:, taus]
    d = e0 + e_tau - 2 * r
    d[:, 0] = 0.0
    cum = np.cumsum(d[:, 1:], axis=1) / np.arange(1, w + 1)
    cmnd = np.ones_like(d)
    cmnd[:, 1:] = d[:, 1:] / np.maximum(cum, 1e-12)
    lo, hi = max(2, int(YIN_SR / fmax)), min(w - 1, int(YIN_SR / fmin))
    seg = cmnd[:, lo : hi + 1]
    below = seg < threshold
    # first dip under the threshold, then walk to its local minimum; else global minimum
    first = np.where(below.any(axis=1), below.argmax(axis=1), seg.argmin(axis=1))
    lag = first.copy()
    for _ in range(hi - lo):
        nxt = np.minimum(lag + 1, seg.shape[1] - 1)
        move = seg[np.arange(n), nxt] < seg[np.arange(n), lag]
        if not move.any():
            break
        lag = np.where(move, nxt, lag)
    ap = seg[np.arange(n), lag]
    li = np.clip(lag, 1, seg.shape[1] - 2)
    a, b, c = seg[np.arange(n), li - 1], seg[np.arange(n), li], seg[np.arange(n), li + 1]
    den = a - 2 * b + c
    delta = np.where(np.abs(den) > 1e-12, 0.5 * (a - c) / den, 0.0)
    period = lo + li + np.clip(delta, -1, 1)
    f0 = YIN_SR / period
    # frame level (centre 10 ms) for voicing: periodic and not silence
    db = 10 * np.log10(np.mean(fr[:, w - hop // 2 : w + hop // 2] ** 2, axis=1) + 1e-10)
    loud = db > (np.percentile(db, 95) - 35) if n else db.astype(bool)
    voiced = (ap < max(threshold * 1.75, 0.35)) & loud & (f0 >= fmin) & (f0 <= fmax)
    f0 = np.where(voiced, f0, 0.0)
    return F0Track(f0.astype(np.float32), voiced, ap.astype(np.float32))
