"""GE2E speaker embedding (Resemblyzer's encoder) in plain numpy, so cloning runs without torch.

The weights are Resemblyzer 0.1.4's ``pretrained.pt`` (Apache-2.0, (c) Resemble AI), converted once
by :func:`export_weights` to ``fedtts/data/ge2e.npz`` (float16 LSTM/linear weights, plus the 40-band
librosa mel basis so librosa is not needed at run time). The front end mirrors Resemblyzer's:
16 kHz, 25 ms Hann window, 10 ms hop, power mel, partials of 160 frames at 1.3 per second,
embeddings averaged and L2-normalised. It matches ``resemblyzer.VoiceEncoder`` to ~1e-3 cosine.
"""

from __future__ import annotations

import functools
import importlib.resources as resources
from pathlib import Path

import numpy as np

__all__ = ["SpeakerEncoder", "speaker_encoder", "embed", "cosine", "WEIGHTS_FILE"]

SR = 16000
N_FFT = 400
HOP = 160
PARTIAL = 160
WEIGHTS_FILE = "ge2e.npz"


def _weights_path() -> Path:
    return Path(str(resources.files("fedtts.data") / WEIGHTS_FILE))


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))


class SpeakerEncoder:
    """3-layer LSTM(40→256) + linear + ReLU, batched over partial utterances."""

    def __init__(self, path: Path | None = None):
        with np.load(path or _weights_path()) as z:
            self.mel_basis = z["mel_basis"].astype(np.float32)  # [40, 201]
            self.layers = [
                (
                    z[f"w_ih{i}"].astype(np.float32).T.copy(),
                    z[f"w_hh{i}"].astype(np.float32).T.copy(),
                    (z[f"b_ih{i}"] + z[f"b_hh{i}"]).astype(np.float32),
                )
                for i in range(3)
            ]
            self.lin_w = z["lin_w"].astype(np.float32).T.copy()
            self.lin_b = z["lin_b"].astype(np.float32)
        self.window = (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(N_FFT) / N_FFT)).astype(np.float32)

    def mel(self, wav16: np.ndarray) -> np.ndarray:
        """librosa.feature.melspectrogram(sr=16000, n_fft=400, hop=160, n_mels=40), frames × 40."""
        x = np.pad(wav16.astype(np.float32), (N_FFT // 2, N_FFT // 2), mode="constant")
        n = 1 + (len(x) - N_FFT) // HOP
        idx = np.arange(N_FFT)[None, :] + HOP * np.arange(n)[:, None]
        spec = np.abs(np.fft.rfft(x[idx] * self.window, axis=1)) ** 2
        return (spec.astype(np.float32) @ self.mel_basis.T).astype(np.float32)

    def forward(self, mels: np.ndarray) -> np.ndarray:
        """[batch, frames, 40] → L2-normalised [batch, 256]."""
        # Small matmuls in a loop: multi-threaded BLAS spin-waits on a busy machine (8 s vs 0.1 s).
        try:
            from threadpoolctl import threadpool_limits
        except ImportError:  # pragma: no cover
            return self._forward(mels)
        with threadpool_limits(limits=1, user_api="blas"):
            return self._forward(mels)

    def _forward(self, mels: np.ndarray) -> np.ndarray:
        h_seq = mels.astype(np.float32)
        b, t, _ = h_seq.shape
        for w_ih, w_hh, bias in self.layers:
            hid = w_hh.shape[0]
            xs = (h_seq.reshape(b * t, -1) @ w_ih + bias).reshape(b, t, -1)  # gates i, f, g, o
            h = np.zeros((b, hid), np.float32)
            c = np.zeros((b, hid), np.float32)
            out = np.empty((b, t, hid), np.float32)
            for k in range(t):
                g = xs[:, k] + h @ w_hh
                i_, f_, g_, o_ = np.split(g, 4, axis=1)
                c = _sigmoid(f_) * c + _sigmoid(i_) * np.tanh(g_)
                h = _sigmoid(o_) * np.tanh(c)
                out[:, k] = h
            h_seq = out
        e = np.maximum(h_seq[:, -1] @ self.lin_w + self.lin_b, 0.0)
        return e / np.maximum(np.linalg.norm(e, axis=1, keepdims=True), 1e-9)

    def embed(self, audio: np.ndarray, sr: int, rate: float = 1.3, min_coverage: float = 0.75) -> np.ndarray:
        """Utterance embedding (256-d, unit norm) of mono ``audio`` at ``sr``."""
        wav = np.asarray(audio, dtype=np.float32)
        if sr != SR:
            import soxr

            wav = soxr.resample(wav, sr, SR).astype(np.float32)
        # Resemblyzer's normalize_volume(-30 dBFS, increase only).
        rms = float(np.sqrt(np.mean(wav**2))) if len(wav) else 0.0
        if rms > 0:
            gain_db = -30.0 - 20 * np.log10(rms)
            if gain_db > 0:
                wav = wav * (10 ** (gain_db / 20))
        n_frames = int(np.ceil((len(wav) + 1) / HOP))
        step = int(np.round((SR / rate) / HOP))
        starts = list(range(0, max(1, n_frames - PARTIAL + step + 1), step))
        last = starts[-1] * HOP
        coverage = (len(wav) - last) / (PARTIAL * HOP)
        if coverage < min_coverage and len(starts) > 1:
            starts = starts[:-1]
        need = (starts[-1] + PARTIAL) * HOP
        if need >= len(wav):
            wav = np.pad(wav, (0, need - len(wav)))
        mel = self.mel(wav)
        mels = np.stack([mel[s : s + PARTIAL] for s in starts])
        e = self.forward(mels).mean(axis=0)
        return (e / np.linalg.norm(e)).astype(np.float32)


@functools.lru_cache(maxsize=1)
def speaker_encoder() -> SpeakerEncoder:
    return SpeakerEncoder()


def embed(audio: np.ndarray, sr: int) -> np.ndarray:
    return speaker_encoder().embed(audio, sr)


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-12))


def export_weights(out: Path | None = None) -> Path:
    """Convert Resemblyzer's pretrained.pt (needs torch, resemblyzer, librosa) to the shipped npz."""
    import librosa
    import resemblyzer
    import torch

    pt = Path(resemblyzer.__file__).parent / "pretrained.pt"
    state = torch.load(pt, map_location="cpu")["model_state"]
    arrays = {"mel_basis": librosa.filters.mel(sr=SR, n_fft=N_FFT, n_mels=40).astype(np.float32)}
    for i in range(3):
        for k in ("w_ih", "w_hh", "b_ih", "b_hh"):
            arrays[f"{k}{i}"] = (
                state[f"lstm.{'weight' if k[0] == 'w' else 'bias'}_{k[2:]}_l{i}"].numpy().astype(np.float16)
            )
    arrays["lin_w"] = state["linear.weight"].numpy().astype(np.float16)
    arrays["lin_b"] = state["linear.bias"].numpy().astype(np.float16)
    out = out or _weights_path()
    np.savez_compressed(out, **arrays)
    return out


if __name__ == "__main__":
    print(export_weights())
