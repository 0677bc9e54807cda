"""Compare the PyTorch rebuild with onnxruntime: durations, F0, energy, log-mel.

The ONNX only outputs audio, so an augmented copy of it (built once, cached next to the assembled
model) also exposes the predictor's rounded durations and F0 / energy curves as graph outputs.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fedtts.engine.assets import MODEL_SHA256, model_path

__all__ = ["OnnxReference", "ParityReport", "augmented_model_path", "onnx_reference", "log_mel", "compare"]

# Intermediate tensors of the export, found by reading the graph (see docs/torch_model.md).
PROBES = {
    "durations": "/encoder/Clip_output_0",
    "raw_durations": "/encoder/predictor/ReduceSum_output_0",
    "f0": "/encoder/Squeeze_output_0",
    "energy": "/encoder/Squeeze_1_output_0",
}


def augmented_model_path() -> Path:
    """ONNX copy whose outputs also include :data:`PROBES` (cached, keyed by the model hash)."""
    import onnx

    out = model_path().parent / f"kokoro-82m-int8-probes-{MODEL_SHA256[:12]}.onnx"
    if out.is_file():
        return out
    model = onnx.load(str(model_path()))
    for name in PROBES.values():
        model.graph.output.append(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
    tmp = out.with_name(out.name + ".tmp")
    onnx.save(model, str(tmp))
    tmp.replace(out)
    return out


@functools.lru_cache(maxsize=1)
def _session(threads: int = 2):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    return ort.InferenceSession(
        str(augmented_model_path()), sess_options=opts, providers=["CPUExecutionProvider"]
    )


@dataclass
class OnnxReference:
    audio: np.ndarray
    durations: np.ndarray  # [N+2] int
    raw_durations: np.ndarray
    f0: np.ndarray
    energy: np.ndarray


def onnx_reference(tokens: list[int], style: np.ndarray, speed: float = 1.0) -> OnnxReference:
    """Run the int8 ONNX and return audio plus its intermediate curves."""
    sess = _session()
    feed = {
        "tokens": np.array([[0, *tokens, 0]], dtype=np.int64),
        "style": np.asarray(style, dtype=np.float32).reshape(1, 256),
        "speed": np.array([speed], dtype=np.float32),
    }
    names = ["audio", *PROBES.values()]
    audio, dur, raw, f0, en = sess.run(names, feed)
    return OnnxReference(
        audio=np.asarray(audio, np.float32).reshape(-1),
        durations=np.asarray(dur).reshape(-1).astype(np.int64),
        raw_durations=np.asarray(raw, np.float32).reshape(-1),
        f0=np.asarray(f0, np.float32).reshape(-1),
        energy=np.asarray(en, np.float32).reshape(-1),
    )


@functools.lru_cache(maxsize=4)
def _mel_basis(sr: int, n_fft: int, n_mels: int) -> np.ndarray:
    """Slaney-style triangular mel filters (HTK mel scale), no librosa needed."""
    fmax = sr / 2

    def hz2mel(f):
        return 2595.0 * np.log10(1.0 + np.asarray(f) / 700.0)

    def mel2hz(m):
        return 700.0 * (10 ** (np.asarray(m) / 2595.0) - 1.0)

    pts = mel2hz(np.linspace(hz2mel(0.0), hz2mel(fmax), n_mels + 2))
    freqs = np.linspace(0, fmax, n_fft // 2 + 1)
    fb = np.zeros((n_mels, freqs.size), np.float32)
    for i in range(n_mels):
        lo, c, hi = pts[i : i + 3]
        fb[i] = np.maximum(0, np.minimum((freqs - lo) / (c - lo), (hi - freqs) / (hi - c)))
    return fb


def log_mel(
    audio: np.ndarray, sr: int = 24000, n_fft: int = 1024, hop: int = 256, n_mels: int = 80
) -> np.ndarray:
    """[frames, n_mels] natural-log mel power spectrogram."""
    x = np.asarray(audio, np.float32).reshape(-1)
    x = np.pad(x, (n_fft // 2, n_fft // 2))
    n = 1 + (len(x) - n_fft) // hop
    idx = np.arange(n_fft)[None] + hop * np.arange(n)[:, None]
    spec = np.abs(np.fft.rfft(x[idx] * np.hanning(n_fft).astype(np.float32), axis=1)) ** 2
    return np.log(spec @ _mel_basis(sr, n_fft, n_mels).T + 1e-6)


@dataclass
class ParityReport:
    duration_equal: float  # fraction of tokens with identical frame counts
    duration_max_diff: int
    f0_corr: float
    energy_corr: float
    logmel_corr: float


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    n = min(len(a), len(b))
    return float(np.corrcoef(np.asarray(a[:n], np.float64), np.asarray(b[:n], np.float64))[0, 1])


def compare(ref: OnnxReference, torch_durations: np.ndarray, aligned) -> ParityReport:
    """``aligned``: the torch result rendered with the ONNX's durations (so curves line up frame by frame)."""
    d_t = np.asarray(torch_durations).reshape(-1)
    diff = np.abs(d_t - ref.durations)
    m_t, m_o = log_mel(aligned.audio.detach().numpy()), log_mel(ref.audio)
    n = min(len(m_t), len(m_o))
    return ParityReport(
        duration_equal=float(np.mean(diff == 0)),
        duration_max_diff=int(diff.max()),
        f0_corr=_corr(aligned.f0.detach().numpy(), ref.f0),
        energy_corr=_corr(aligned.energy.detach().numpy(), ref.energy),
        logmel_corr=_corr(m_t[:n].ravel(), m_o[:n].ravel()),
    )
