"""Speaker measures for style inversion: a differentiable Resemblyzer (GE2E) embedding and
independent, non-neural checks (MFCC statistics, spectral envelope, periodicity, pitch).

Resemblyzer's own preprocessing is numpy/librosa; here its 16 kHz, 40-band power mel (25 ms window,
10 ms hop, 1.6 s partials at 1.3 per second, averaged and L2-normalised) is rebuilt in torch so
gradients reach the rendered audio. The network and weights are Resemblyzer's (``pretrained.pt``).
"""

from __future__ import annotations

import functools
import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

__all__ = [
    "GE2E",
    "load_audio",
    "resample",
    "mfcc_stats",
    "mfcc_similarity",
    "ltas",
    "pitch_track",
    "periodicity",
]

SR_EMB = 16000


def load_audio(path_or_array, sr: int | None = None, target_sr: int = SR_EMB) -> np.ndarray:
    """Mono float32 at ``target_sr`` from a path or (array, sr)."""
    if isinstance(path_or_array, (str, Path)):
        import soundfile as sf

        audio, sr = sf.read(str(path_or_array), dtype="float32", always_2d=True)
        audio = audio.mean(axis=1)
    else:
        audio = np.asarray(path_or_array, dtype=np.float32).reshape(-1)
        if sr is None:
            raise ValueError("sample rate required for an audio array")
    if sr != target_sr:
        import soxr

        audio = soxr.resample(audio, sr, target_sr).astype(np.float32)
    return audio


def resample(x: torch.Tensor, sr_in: int, sr_out: int) -> torch.Tensor:
    """Differentiable band-limited resampling by FFT truncation/zero-padding (1-D)."""
    if sr_in == sr_out:
        return x
    n = x.shape[-1]
    m = int(round(n * sr_out / sr_in))
    spec = torch.fft.rfft(x)
    k = m // 2 + 1
    if k <= spec.shape[-1]:
        spec = spec[..., :k]
    else:
        spec = F.pad(spec, (0, k - spec.shape[-1]))
    return torch.fft.irfft(spec, n=m) * (m / n)


class GE2E(torch.nn.Module):
    """Resemblyzer's VoiceEncoder with a torch frontend; ``embed(audio16k)`` is differentiable."""

    def __init__(self):
        super().__init__()
        import librosa
        from resemblyzer import VoiceEncoder

        enc = VoiceEncoder(device="cpu", verbose=False)
        enc.eval()
        for p in enc.parameters():
            p.requires_grad_(False)
        self.encoder = enc
        mel = librosa.filters.mel(sr=SR_EMB, n_fft=400, n_mels=40)
        self.register_buffer("mel_basis", torch.from_numpy(mel.astype(np.float32)))
        self.register_buffer("window", torch.hann_window(400, periodic=True))

    def mel(self, audio: torch.Tensor) -> torch.Tensor:
        """[frames, 40] power mel as in ``resemblyzer.audio.wav_to_mel_spectrogram``."""
        spec = torch.stft(
            audio, 400, 160, 400, window=self.window, center=True, pad_mode="constant", return_complex=True
        )
        power = spec.real**2 + spec.imag**2
        return (self.mel_basis @ power).T

    @staticmethod
    def normalize_volume(audio: torch.Tensor, target_dbfs: float = -30.0) -> torch.Tensor:
        """Resemblyzer's volume normalisation (increase only)."""
        rms = torch.sqrt(torch.mean(audio**2) + 1e-12)
        change = target_dbfs - 20 * torch.log10(rms)
        return audio * 10 ** (torch.clamp(change, min=0.0) / 20)

    def embed(self, audio16k: torch.Tensor, normalize_volume: bool = True) -> torch.Tensor:
        """256-d L2-normalised utterance embedding of 16 kHz audio."""
        x = self.normalize_volume(audio16k) if normalize_volume else audio16k
        wav_slices, mel_slices = self.encoder.compute_partial_slices(x.shape[-1], 1.3, 0.75)
        need = wav_slices[-1].stop
        if need >= x.shape[-1]:
            x = F.pad(x, (0, need - x.shape[-1]))
        mel = self.mel(x)
        mels = torch.stack([mel[s] for s in mel_slices])
        partial = self.encoder(mels)
        raw = partial.mean(0)
        return raw / raw.norm()

    def embed_numpy(self, audio16k: np.ndarray, preprocess: bool = True) -> np.ndarray:
        """Embedding of a recording, with Resemblyzer's silence trimming when ``preprocess``."""
        from resemblyzer import preprocess_wav

        wav = preprocess_wav(np.asarray(audio16k, np.float32), source_sr=SR_EMB) if preprocess else audio16k
        with torch.no_grad():
            return self.embed(torch.from_numpy(np.ascontiguousarray(wav, dtype=np.float32))).numpy()


@functools.lru_cache(maxsize=1)
def ge2e() -> GE2E:
    return GE2E()


# ------------------------------------------------------------------------- independent measures
def _speech_frames(
    audio16k: np.ndarray, hop: int = 160, win: int = 400, floor_db: float = 35.0
) -> np.ndarray:
    x = np.pad(audio16k, (win // 2, win // 2))
    n = 1 + (len(x) - win) // hop
    frames = x[np.arange(win)[None] + hop * np.arange(n)[:, None]]
    e = 10 * np.log10(np.mean(frames**2, axis=1) + 1e-10)
    return e > e.max() - floor_db


def mfcc_stats(audio16k: np.ndarray) -> np.ndarray:
    """Mean and std of MFCC 1–19 over speech frames (a classic, non-neural speaker signature)."""
    import librosa

    m = librosa.feature.mfcc(y=audio16k, sr=SR_EMB, n_mfcc=20, n_fft=400, hop_length=160, n_mels=40)[1:]
    mask = _speech_frames(audio16k)[: m.shape[1]]
    m = m[:, : len(mask)][:, mask] if mask.any() else m
    return np.concatenate([m.mean(1), m.std(1)]).astype(np.float32)


def mfcc_similarity(a: np.ndarray, b: np.ndarray, background: np.ndarray) -> float:
    """Cosine of MFCC statistics after z-normalising with a background population [n, 38]."""
    mu, sd = background.mean(0), background.std(0) + 1e-6
    za, zb = (a - mu) / sd, (b - mu) / sd
    return float(za @ zb / (np.linalg.norm(za) * np.linalg.norm(zb) + 1e-9))


def ltas(audio16k: np.ndarray) -> np.ndarray:
    """Level-normalised long-term average log spectrum in 40 mel bands (dB), speech frames only."""
    import librosa

    mel = librosa.feature.melspectrogram(y=audio16k, sr=SR_EMB, n_fft=400, hop_length=160, n_mels=40)
    mask = _speech_frames(audio16k)[: mel.shape[1]]
    db = 10 * np.log10(mel[:, : len(mask)][:, mask].mean(1) + 1e-10)
    return db - db.mean()


def pitch_track(audio: np.ndarray, sr: int) -> tuple[np.ndarray, float]:
    """(F0 Hz of voiced frames, voiced fraction of speech frames) from pYIN."""
    import librosa

    x = load_audio(audio, sr, 16000)
    f0, voiced, _ = librosa.pyin(x, fmin=60, fmax=500, sr=16000, frame_length=1024, hop_length=320)
    speech = _speech_frames(x, hop=320, win=1024)[: len(f0)]
    voiced = voiced[: len(speech)]
    frac = float(voiced[speech].mean()) if speech.any() else 0.0
    return f0[voiced & ~np.isnan(f0)], frac


def periodicity(audio: torch.Tensor, f0: torch.Tensor, hop: int = 300, sr: int = 24000) -> torch.Tensor:
    """Mean normalised autocorrelation at the F0 lag over voiced hops (differentiable in audio).

    ``f0`` is the model's F0 curve (one value per ``hop`` samples); higher means more periodic.
    """
    f0 = f0.detach()
    n = min(f0.shape[0], audio.shape[0] // hop)
    voiced = (f0[:n] > 60).nonzero().flatten()
    if voiced.numel() == 0:
        return audio.new_zeros(())
    win = 2 * hop
    lag = torch.round(sr / f0[voiced]).long()
    start = voiced * hop
    ok = start + win + lag < audio.shape[0]
    start, lag = start[ok], lag[ok]
    if start.numel() == 0:
        return audio.new_zeros(())
    idx = start[:, None] + torch.arange(win)[None]
    a, b = audio[idx], audio[idx + lag[:, None]]
    r = (a * b).sum(1) / torch.sqrt((a * a).sum(1) * (b * b).sum(1) + 1e-8)
    return r.mean()


def log_f0_stats(f0_hz: np.ndarray | torch.Tensor) -> tuple[float, float]:
    x = np.asarray(f0_hz, np.float64)
    x = np.log(x[x > 0])
    return (float(x.mean()), float(x.std())) if x.size else (math.log(150.0), 0.2)
