"""Shared evaluation measurements (numpy only, except DNSMOS which uses speechmos' ONNX models).

Deliberately independent of ``fedtts.voice.prosody`` (the tuner's feature extractor): a report
should not grade the tuner with the very features it was fitted on. F0 is YIN (cumulative mean
normalised difference, de Cheveigné & Kawahara 2002) on 16 kHz audio with a 10 ms hop.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass

import numpy as np

from fedtts.base.dsp import F0Track, mel_filterbank, resample, windowed_frames, yin_f0
from fedtts.frontend.normalize import normalize

__all__ = [
    "F0Track",
    "ProsodyStats",
    "yin_f0",
    "speech_frames",
    "f0_range_st",
    "count_syllables",
    "speaking_rate",
    "pause_ratio",
    "energy_dynamics_db",
    "prosody_stats",
    "dnsmos",
    "spectral_envelope",
    "spectral_envelope_distance",
    "mfcc_signature",
    "signature_similarity",
    "resample",
]

SR = 16000
HOP_S = 0.01


def _frame_db(x: np.ndarray, sr: int, hop_s: float = HOP_S) -> np.ndarray:
    hop = max(1, int(round(hop_s * sr)))
    n = len(x) // hop
    if n == 0:
        return np.zeros(0, np.float32)
    return (10 * np.log10(np.mean(x[: n * hop].reshape(n, hop) ** 2, axis=1) + 1e-10)).astype(np.float32)


def speech_frames(audio: np.ndarray, sr: int, floor_db: float = 35.0) -> np.ndarray:
    """Boolean 10 ms frames that carry speech: within ``floor_db`` of the loud (p95) level."""
    db = _frame_db(np.asarray(audio, np.float32), sr)
    if db.size == 0:
        return np.zeros(0, bool)
    # 3-frame median smoothing so single clicks/dropouts don't split speech.
    sp = db > (np.percentile(db, 95) - floor_db)
    if sp.size >= 3:
        sp = np.concatenate([[sp[0]], (sp[:-2].astype(int) + sp[1:-1] + sp[2:]) >= 2, [sp[-1]]])
    return sp


def _st(f0: np.ndarray, ref_hz: float = 100.0) -> np.ndarray:
    return 12.0 * np.log2(np.asarray(f0, np.float64) / ref_hz)


def f0_range_st(track: F0Track, lo_pct: float = 10.0, hi_pct: float = 90.0) -> float:
    """F0 range in semitones between two percentiles of voiced frames (0 if < 10 voiced frames)."""
    v = track.voiced_f0()
    if v.size < 10:
        return 0.0
    st = _st(v)
    return float(np.percentile(st, hi_pct) - np.percentile(st, lo_pct))


_WORD = re.compile(r"[A-Za-z']+")
_CJK = re.compile(r"[\u4e00-\u9fff]")


def _en_syllables(word: str) -> int:
    w = word.lower().strip("'")
    if not w:
        return 0
    groups = re.findall(r"[aeiouy]+", w)
    n = len(groups)
    if w.endswith("e") and not w.endswith(("le", "ee", "ye")) and n > 1:
        n -= 1
    return max(1, n)


def count_syllables(text: str) -> int:
    """Syllables in text: one per Chinese character, vowel groups per English word.

    Digits are spelled out first by the fedtts normaliser when it accepts the text.
    """
    t = text
    try:
        t = normalize(text)
    except Exception:  # the normaliser rejects the text: count it raw
        pass
    return len(_CJK.findall(t)) + sum(_en_syllables(w) for w in _WORD.findall(t))


def speaking_rate(audio: np.ndarray, sr: int, text: str | None = None) -> float:
    """Syllables per second of speech (pauses excluded); from text if given, else energy peaks."""
    x = resample(audio, sr, SR)
    sp = speech_frames(x, SR)
    speech_s = float(sp.sum()) * HOP_S
    if speech_s <= 0:
        return 0.0
    if text and text.strip():
        return count_syllables(text) / speech_s
    db = _frame_db(x, SR)
    env = np.convolve(db, np.ones(5) / 5, mode="same")
    thr = np.percentile(db, 95) - 25
    pk = np.flatnonzero((env[1:-1] > env[:-2]) & (env[1:-1] >= env[2:]) & sp[1:-1] & (env[1:-1] > thr)) + 1
    kept, last = 0, -100
    for i in pk:  # nuclei at least 100 ms apart
        if i - last >= 10:
            kept, last = kept + 1, i
    return kept / speech_s


def pause_ratio(audio: np.ndarray, sr: int, min_pause_s: float = 0.1) -> float:
    """Share of time between first and last speech frame spent in pauses ≥ ``min_pause_s``."""
    sp = speech_frames(resample(audio, sr, SR), SR)
    on = np.flatnonzero(sp)
    if on.size < 2:
        return 0.0
    inner = sp[on[0] : on[-1] + 1]
    paused, run = 0, 0
    for v in inner:
        if not v:
            run += 1
        else:
            if run * HOP_S >= min_pause_s:
                paused += run
            run = 0
    return paused / inner.size


def energy_dynamics_db(audio: np.ndarray, sr: int) -> float:
    """Std of the 10 ms frame level (dB) over speech frames: how much loudness varies."""
    x = resample(audio, sr, SR)
    db, sp = _frame_db(x, SR), speech_frames(x, SR)
    return float(np.std(db[sp])) if sp.any() else 0.0


@dataclass
class ProsodyStats:
    f0_median_hz: float
    f0_median_st: float  # semitones re 100 Hz
    f0_range_st: float  # p90 − p10
    f0_std_st: float
    voiced_fraction: float  # voiced frames / speech frames
    rate_syl_s: float
    pause_ratio: float
    energy_std_db: float
    duration_s: float

    def as_dict(self) -> dict[str, float]:
        return {k: round(float(v), 4) for k, v in asdict(self).items()}


def prosody_stats(audio: np.ndarray, sr: int, text: str | None = None) -> ProsodyStats:
    """All prosody measurements of one clip in one call."""
    x = resample(audio, sr, SR)
    tr = yin_f0(x, SR)
    v = tr.voiced_f0()
    sp = speech_frames(x, SR)
    n_sp = max(int(sp.sum()), 1)
    med = float(np.median(v)) if v.size else 0.0
    return ProsodyStats(
        f0_median_hz=med,
        f0_median_st=float(_st(med)) if med > 0 else 0.0,
        f0_range_st=f0_range_st(tr),
        f0_std_st=float(np.std(_st(v))) if v.size >= 10 else 0.0,
        voiced_fraction=min(1.0, float(tr.voiced.sum()) / n_sp),
        rate_syl_s=speaking_rate(x, SR, text),
        pause_ratio=pause_ratio(x, SR),
        energy_std_db=energy_dynamics_db(x, SR),
        duration_s=len(x) / SR,
    )


def dnsmos(audio: np.ndarray, sr: int) -> dict[str, float]:
    """DNSMOS P.835 (speechmos): {'ovrl','sig','bak','p808'} on 16 kHz audio, peak-limited to ±1."""
    from speechmos import dnsmos as _dnsmos

    x = resample(audio, sr, SR).astype(np.float64)
    peak = float(np.max(np.abs(x))) if x.size else 0.0
    if peak > 1.0:
        x = x / peak
    r = _dnsmos.run(x, sr=SR)
    return {
        "ovrl": float(r["ovrl_mos"]),
        "sig": float(r["sig_mos"]),
        "bak": float(r["bak_mos"]),
        "p808": float(r["p808_mos"]),
    }


def spectral_envelope(audio: np.ndarray, sr: int, n_mels: int = 40, n_ceps: int = 24) -> np.ndarray:
    """Long-term average mel-cepstrum (c1..c_n) over speech frames: a level-free timbre summary."""
    fr, db = windowed_frames(resample(audio, sr, SR), 400, 160, "a spectral envelope (< 25 ms)")
    p = np.abs(np.fft.rfft(fr, 512, axis=1)) ** 2
    logmel = np.log(p @ mel_filterbank(n_mels, 512, SR).T + 1e-10)
    keep = db > np.percentile(db, 95) - 30
    avg = logmel[keep].mean(axis=0)
    k = np.arange(n_mels)
    dct = np.cos(np.pi / n_mels * (k[None, :] + 0.5) * np.arange(n_ceps + 1)[:, None])
    return (dct @ avg)[1:].astype(np.float32)


def spectral_envelope_distance(a: np.ndarray, sr_a: int, b: np.ndarray, sr_b: int) -> float:
    """Mel-cepstral distance (dB, MCD formula) between the long-term envelopes of two clips."""
    n_mels = 40
    ca, cb = spectral_envelope(a, sr_a, n_mels), spectral_envelope(b, sr_b, n_mels)
    # natural-log cepstra → dB: 10/ln10 * sqrt(2 * sum diff^2), orthonormal DCT-II scaling
    diff = (ca - cb) * (2.0 / n_mels) ** 0.5
    return float(10.0 / np.log(10) * np.sqrt(2.0 * np.sum(diff**2)))


def mfcc_signature(audio: np.ndarray, sr: int, n_mels: int = 40, n_ceps: int = 19) -> np.ndarray:
    """Mean and std of MFCC 1–19 over speech frames [38]: a classic, non-neural speaker signature.

    Why here: clone reports need a speaker measure that no fedtts component is optimised against
    (the tuner and the bank use GE2E); z-normalised against a background population it separates
    the dev speakers' recordings well (same-speaker pairs above different-speaker pairs in 99.9 %).
    """
    fr, db = windowed_frames(resample(audio, sr, SR), 400, 160, "an MFCC signature (< 25 ms)")
    p = np.abs(np.fft.rfft(fr, 512, axis=1)) ** 2
    logmel = 10 * np.log10(p @ mel_filterbank(n_mels, 512, SR).T + 1e-10)
    keep = db > db.max() - 35
    k = np.arange(n_mels)
    dct = np.cos(np.pi / n_mels * (k[None, :] + 0.5) * np.arange(1, n_ceps + 1)[:, None])
    c = logmel[keep] @ dct.T
    return np.concatenate([c.mean(0), c.std(0)]).astype(np.float32)


def signature_similarity(a: np.ndarray, b: np.ndarray, background: np.ndarray) -> float:
    """Cosine of two signatures after z-normalising with a background population [n, d]."""
    mu, sd = background.mean(0), background.std(0) + 1e-6
    za, zb = (np.asarray(a) - mu) / sd, (np.asarray(b) - mu) / sd
    return float(za @ zb / (np.linalg.norm(za) * np.linalg.norm(zb) + 1e-9))
