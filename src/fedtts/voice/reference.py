"""Reference clip ingestion: decode, mono, 24 kHz, VAD trim, loudness-normalise, quality checks.

A reference is the few seconds of someone's voice a clone is made from. Everything that can go
wrong with it (not audio, too short, silent, clipped, noisy, music) is caught here and reported
with the measured figure, so the user can fix the clip instead of getting a bad voice silently.

VAD: silero-vad's ONNX model (shipped in the ``silero-vad`` wheel) run on onnxruntime when the
wheel is installed — without importing the package, which would import torch — else an
energy-based VAD. Plain synthesis never needs torch.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import logging
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

__all__ = [
    "Reference",
    "ReferenceError",
    "load_reference",
    "reference_from_array",
    "MAX_FILE_BYTES",
    "MIN_SPEECH_S",
    "SHORT_SPEECH_S",
    "WARN_SPEECH_S",
    "MAX_SPEECH_S",
]

log = logging.getLogger(__name__)

SAMPLE_RATE = 24000
MAX_FILE_BYTES = 50 * 1024 * 1024
MAX_DECODE_S = 20 * 60  # read at most the first 20 minutes
MIN_SPEECH_S = 1.0  # below this a clip carries too little of a voice to clone: refused
SHORT_SPEECH_S = 2.0  # 1-2 s: cloned, with a warning that the match will be rough
WARN_SPEECH_S = 3.0  # 2-3 s: cloned, with a milder warning
MAX_SPEECH_S = 30.0
HOP_S = 0.032  # VAD frame: 512 samples at 16 kHz
KEEP_PAUSE_S = 0.3  # pauses longer than LONG_PAUSE_S are shortened to this
LONG_PAUSE_S = 0.6
PAD_S = 0.1  # kept around each speech region
TARGET_RMS_DBFS = -20.0
PEAK_DBFS = -1.0


class ReferenceError(ValueError):
    """The reference clip cannot be used; the message names the file and the problem."""


@dataclass
class Reference:
    """A cleaned reference clip, ready for speaker embedding and prosody measurement."""

    audio: np.ndarray  # float32 mono, SAMPLE_RATE, trimmed and loudness-normalised
    sample_rate: int
    path: Path | None
    sha256: str
    duration_s: float  # of ``audio``
    speech_s: float  # VAD speech time inside ``audio``
    warnings: list[str] = field(default_factory=list)
    text: str | None = None
    metrics: dict[str, float] = field(default_factory=dict)  # snr_db, clipped_fraction, ...

    @property
    def label(self) -> str:
        return str(self.path) if self.path else f"<audio {self.sha256[:12]}>"


# ---------------------------------------------------------------- decoding


def _decode_soundfile(path: Path) -> tuple[np.ndarray, int]:
    import soundfile as sf

    with sf.SoundFile(str(path)) as f:
        sr = int(f.samplerate)
        frames = min(f.frames, int(MAX_DECODE_S * sr)) if f.frames > 0 else -1
        audio = f.read(frames=frames, dtype="float32", always_2d=True)
    return audio, sr


def _decode_ffmpeg(path: Path) -> tuple[np.ndarray, int]:
    exe = shutil.which("ffmpeg")
    if not exe:
        raise RuntimeError("ffmpeg is not installed (apt-get install ffmpeg)")
    cmd = [exe, "-v", "error", "-nostdin", "-i", str(path), "-t", str(MAX_DECODE_S)]
    cmd += ["-vn", "-f", "f32le", "-ac", "1", "-ar", str(SAMPLE_RATE), "pipe:1"]
    proc = subprocess.run(cmd, capture_output=True, timeout=120)
    if proc.returncode != 0:
        msg = proc.stderr.decode("utf-8", "replace").strip().splitlines()
        raise RuntimeError(msg[-1] if msg else f"ffmpeg exit code {proc.returncode}")
    audio = np.frombuffer(proc.stdout, dtype="<f4").astype(np.float32)
    if audio.size == 0:
        raise RuntimeError("ffmpeg decoded no audio samples")
    return audio[:, None], SAMPLE_RATE


def unreadable_audio(path: str | Path) -> str | None:
    """Why ``path`` is not audio fedtts can decode (None when it is), from its header or one second."""
    import soundfile as sf

    try:
        if sf.info(str(path)).frames != 0:
            return None
    except Exception:  # noqa: BLE001 - not for libsndfile: ask ffmpeg below
        pass
    exe = shutil.which("ffmpeg")
    if not exe:
        return "not WAV/FLAC/OGG, and ffmpeg (for MP3/M4A) is not installed"
    cmd = [
        exe,
        "-v",
        "error",
        "-nostdin",
        "-i",
        str(path),
        "-t",
        "1",
        "-vn",
        "-f",
        "f32le",
        "-ac",
        "1",
        "pipe:1",
    ]
    proc = subprocess.run(cmd, capture_output=True, timeout=60)
    return None if proc.returncode == 0 and proc.stdout else "not a readable audio file"


def _decode(path: Path) -> tuple[np.ndarray, int]:
    """[frames, channels] float32 and the sample rate; soundfile first, ffmpeg for MP3/M4A/etc."""
    try:
        return _decode_soundfile(path)
    except Exception as e_sf:  # libsndfile cannot read it: try ffmpeg
        try:
            return _decode_ffmpeg(path)
        except Exception as e_ff:
            raise ReferenceError(
                f"{path}: not a readable audio file (soundfile: {e_sf}; ffmpeg: {e_ff}). "
                "Use WAV, FLAC, MP3, OGG or M4A."
            ) from None


# ---------------------------------------------------------------- VAD


@functools.lru_cache(maxsize=1)
def _silero_session():
    """The silero-vad ONNX model from the installed wheel, or None (the package is not imported)."""
    try:
        spec = importlib.util.find_spec("silero_vad")
        if spec is None or not spec.submodule_search_locations:
            return None
        onnx_path = Path(list(spec.submodule_search_locations)[0]) / "data" / "silero_vad.onnx"
        if not onnx_path.is_file():
            return None
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        return ort.InferenceSession(str(onnx_path), sess_options=opts, providers=["CPUExecutionProvider"])
    except Exception as e:  # pragma: no cover - falls back to the energy VAD
        log.info("silero-vad ONNX unavailable (%s); using the energy VAD", e)
        return None


def _silero_probs(audio24: np.ndarray) -> np.ndarray:
    import soxr

    sess = _silero_session()
    x = soxr.resample(audio24, SAMPLE_RATE, 16000).astype(np.float32)
    n = len(x) // 512
    probs = np.zeros(n, np.float32)
    state = np.zeros((2, 1, 128), np.float32)
    context = np.zeros((1, 64), np.float32)
    sr = np.array(16000, dtype=np.int64)
    for i in range(n):
        chunk = x[None, i * 512 : (i + 1) * 512]
        inp = np.concatenate([context, chunk], axis=1)
        out, state = sess.run(None, {"input": inp, "state": state, "sr": sr})
        probs[i] = out[0, 0]
        context = inp[:, -64:]
    return probs


def _frame_db(audio24: np.ndarray) -> np.ndarray:
    hop = int(HOP_S * SAMPLE_RATE)
    n = len(audio24) // hop
    if n == 0:
        return np.zeros(0, np.float32)
    frames = audio24[: n * hop].reshape(n, hop).astype(np.float64)
    return (10 * np.log10(np.mean(frames**2, axis=1) + 1e-12)).astype(np.float32)


def _energy_probs(db: np.ndarray) -> np.ndarray:
    """Speech where a frame is well above the noise floor and not far below the loudest part."""
    if db.size == 0:
        return db
    floor = np.percentile(db, 10)
    loud = np.percentile(db, 95)
    thr = max(floor + 10.0, loud - 35.0, -60.0)
    return (db > thr).astype(np.float32)


def _smooth(mask: np.ndarray, fill_s: float = 0.2, min_s: float = 0.1) -> np.ndarray:
    """Fill short gaps, drop isolated blips."""
    m = mask.copy()
    fill, short = int(round(fill_s / HOP_S)), int(round(min_s / HOP_S))
    for value, limit in ((False, fill), (True, short)):
        runs = _runs(m)
        for start, end, v in runs:
            if v == value and end - start <= limit and start > 0 and end < len(m):
                m[start:end] = not value
    return m


def _runs(mask: np.ndarray) -> list[tuple[int, int, bool]]:
    if mask.size == 0:
        return []
    edges = np.flatnonzero(np.diff(mask.astype(np.int8))) + 1
    bounds = np.concatenate([[0], edges, [len(mask)]])
    return [(int(a), int(b), bool(mask[a])) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]


# ---------------------------------------------------------------- measurements


def _stationarity(audio24: np.ndarray, mask: np.ndarray) -> float:
    """Median spectral correlation between frames 64 ms apart over active frames.

    Speech spectra change every few tens of ms (phones); sustained musical notes and hums do not,
    so a high value flags music or tonal noise.
    """
    hop = int(HOP_S * SAMPLE_RATE)
    n = min(len(mask), len(audio24) // hop)
    if n < 4:
        return 0.0
    frames = audio24[: n * hop].reshape(n, hop) * np.hanning(hop)
    spec = np.log(np.abs(np.fft.rfft(frames, axis=1))[:, 3:128] + 1e-6)
    spec -= spec.mean(axis=1, keepdims=True)
    spec /= np.linalg.norm(spec, axis=1, keepdims=True) + 1e-9
    corr = np.sum(spec[:-2] * spec[2:], axis=1)
    active = mask[:n][:-2] & mask[:n][2:]
    return float(np.median(corr[active])) if active.any() else 0.0


def _best_window(mask: np.ndarray, db: np.ndarray, clipped: np.ndarray, length: int) -> int:
    """Start frame of the ``length``-frame window with most speech, least clipping, loudest SNR."""
    if len(mask) <= length:
        return 0
    score = mask.astype(np.float64) - 5.0 * clipped.astype(np.float64)
    csum = np.concatenate([[0.0], np.cumsum(score)])
    totals = csum[length:] - csum[:-length]
    return int(np.argmax(totals))


# ---------------------------------------------------------------- main entry points


def load_reference(path: str | Path, text: str | None = None) -> Reference:
    """Read and clean a reference clip; raises :class:`ReferenceError` naming the file and problem."""
    p = Path(path).expanduser()
    if not p.exists():
        raise ReferenceError(f"{p}: reference file not found")
    if not p.is_file():
        raise ReferenceError(f"{p}: not a file")
    size = p.stat().st_size
    if size == 0:
        raise ReferenceError(f"{p}: file is empty")
    if size > MAX_FILE_BYTES:
        raise ReferenceError(
            f"{p}: file is {size / 1e6:.1f} MB, over the {MAX_FILE_BYTES / 1e6:.0f} MB limit; "
            "a reference needs only 3-30 s of speech"
        )
    sha = hashlib.sha256(p.read_bytes()).hexdigest()
    audio, sr = _decode(p)
    return reference_from_array(audio, sr, path=p, text=text, sha256=sha)


def reference_from_array(
    audio: np.ndarray,
    sr: int,
    path: Path | None = None,
    text: str | None = None,
    sha256: str | None = None,
) -> Reference:
    """Clean an in-memory clip (``[n]`` or ``[n, channels]``) like :func:`load_reference` does."""
    import soxr

    x = np.asarray(audio, dtype=np.float32)
    if sha256 is None:
        sha256 = hashlib.sha256(x.tobytes()).hexdigest()
    label = str(path) if path else f"<audio {sha256[:12]}>"
    if x.ndim == 2:
        x = x.mean(axis=1) if x.shape[1] <= 16 else x.mean(axis=0)
    if x.ndim != 1 or x.size == 0:
        raise ReferenceError(f"{label}: no audio samples")
    if not np.all(np.isfinite(x)):
        raise ReferenceError(f"{label}: audio contains NaN or infinite samples (corrupt file)")
    if sr <= 0:
        raise ReferenceError(f"{label}: invalid sample rate {sr}")
    warnings: list[str] = []
    raw_s = len(x) / sr
    if raw_s >= MAX_DECODE_S - 1e-3:
        warnings.append(f"only the first {MAX_DECODE_S / 60:.0f} minutes were read")
    peak = float(np.max(np.abs(x)))
    if peak < 1e-4:
        raise ReferenceError(
            f"{label}: the clip is silent (peak level {20 * np.log10(peak + 1e-12):.0f} dBFS over {raw_s:.1f} s)"
        )
    # Clipping: runs of samples stuck at the extreme of the recorded range.
    clip_level = 0.999 * peak if peak >= 0.98 else np.inf
    clipped_samples = np.abs(x) >= clip_level
    clipped_fraction = float(np.mean(clipped_samples)) if np.isfinite(clip_level) else 0.0
    if sr != SAMPLE_RATE:
        x = soxr.resample(x, sr, SAMPLE_RATE).astype(np.float32)
    x = x - float(np.mean(x))  # DC offset

    db = _frame_db(x)
    hop = int(HOP_S * SAMPLE_RATE)
    sess = _silero_session()
    probs = _silero_probs(x) if sess is not None else _energy_probs(db)
    n = min(len(probs), len(db))
    probs, db = probs[:n], db[:n]
    vad_name = "silero" if sess is not None else "energy"
    # Silero may miss quiet speech onsets; the energy VAD alone lets through music/noise.
    mask = _smooth(probs > 0.5)
    speech_raw_s = float(mask.sum() * HOP_S)
    floor = float(np.percentile(db, 10)) if n else -120.0
    speech_level = float(np.median(db[mask])) if mask.any() else float(np.percentile(db, 90)) if n else -120.0
    snr_db = speech_level - floor
    loud = db > max(floor + 10.0, float(np.percentile(db, 95)) - 30.0) if n else db.astype(bool)
    nonspeech_loud = float(np.mean(~mask[loud])) if loud.any() else 0.0
    stationarity = _stationarity(x, loud)
    metrics = {
        "input_duration_s": raw_s,
        "input_sample_rate": float(sr),
        "speech_raw_s": speech_raw_s,
        "snr_db": snr_db,
        "clipped_fraction": clipped_fraction,
        "nonspeech_loud_fraction": nonspeech_loud,
        "stationarity": stationarity,
        "peak_dbfs": 20 * np.log10(peak),
    }
    if speech_raw_s < MIN_SPEECH_S:
        hint = ""
        if nonspeech_loud > 0.5 and loud.mean() > 0.3:
            hint = f"; {nonspeech_loud:.0%} of the loud part is not speech (noise or music?)"
        elif snr_db < 6:
            hint = f"; the level hardly varies (estimated SNR {snr_db:.1f} dB): noise or silence?"
        raise ReferenceError(
            f"{label}: only {speech_raw_s:.1f} s of speech found in {raw_s:.1f} s of audio "
            f"({vad_name} VAD); at least {MIN_SPEECH_S:.0f} s of speech is needed (3-10 s for a close "
            f"match){hint}"
        )

    # Keep speech regions (padded), shorten long pauses between them.
    pad = int(round(PAD_S / HOP_S))
    keep_pause = int(round(KEEP_PAUSE_S / HOP_S))
    long_pause = int(round(LONG_PAUSE_S / HOP_S))
    keep = np.zeros(n, bool)
    runs = _runs(mask)
    for i, (a, b, v) in enumerate(runs):
        if v:
            keep[max(0, a - pad) : min(n, b + pad)] = True
        elif 0 < i < len(runs) - 1:
            if b - a <= long_pause:
                keep[a:b] = True
            else:
                keep[a : a + keep_pause // 2] = True
                keep[b - keep_pause // 2 : b] = True
    frame_idx = np.flatnonzero(keep)
    kept_mask = mask[frame_idx]
    kept_db = db[frame_idx]
    clipped_frames = np.zeros(n, bool)
    if clipped_fraction > 0:
        cs = clipped_samples
        if sr != SAMPLE_RATE:  # map raw-rate clip flags onto 24 kHz frames
            pos = (np.flatnonzero(cs) * SAMPLE_RATE / sr / hop).astype(int)
        else:
            pos = np.flatnonzero(cs) // hop
        clipped_frames[np.clip(pos, 0, n - 1)] = True
    kept_clip = clipped_frames[frame_idx]
    max_frames = int(MAX_SPEECH_S / HOP_S)
    if len(frame_idx) > max_frames:
        start = _best_window(kept_mask, kept_db, kept_clip, max_frames)
        frame_idx = frame_idx[start : start + max_frames]
        kept_mask = kept_mask[start : start + max_frames]
        t0 = frame_idx[0] * HOP_S
        warnings.append(
            f"clip has {speech_raw_s:.0f} s of speech; used the best {MAX_SPEECH_S:.0f} s "
            f"(from {t0:.1f} s into the cleaned audio)"
        )
    # Contiguous frame runs → sample segments joined with 5 ms cross-fade-free concatenation.
    segments = []
    breaks = np.flatnonzero(np.diff(frame_idx) != 1) + 1
    for chunk in np.split(frame_idx, breaks):
        segments.append(x[chunk[0] * hop : (chunk[-1] + 1) * hop])
    y = np.concatenate(segments).astype(np.float32)
    fade = min(len(y) // 4, int(0.01 * SAMPLE_RATE))
    if fade > 0:
        ramp = np.linspace(0, 1, fade, dtype=np.float32)
        y[:fade] *= ramp
        y[-fade:] *= ramp[::-1]
    speech_s = float(kept_mask.sum() * HOP_S)

    # Loudness: speech-frame RMS to TARGET_RMS_DBFS, peak limited.
    sp = np.flatnonzero(kept_mask)
    frames = y[: (len(y) // hop) * hop].reshape(-1, hop)
    sp = sp[sp < len(frames)]
    rms = float(np.sqrt(np.mean(frames[sp] ** 2))) if sp.size else float(np.sqrt(np.mean(y**2)))
    gain = 10 ** (TARGET_RMS_DBFS / 20) / max(rms, 1e-9)
    peak_after = float(np.max(np.abs(y))) * gain
    limit = 10 ** (PEAK_DBFS / 20)
    if peak_after > limit:
        gain *= limit / peak_after
    y = (y * gain).astype(np.float32)

    if speech_s < SHORT_SPEECH_S:
        warnings.append(
            f"only {speech_s:.1f} s of speech (under {SHORT_SPEECH_S:.0f} s): the clone will be a rough "
            "match, with less of the speaker's timbre and pitch than from 3-10 s; record a longer clip "
            "for a closer voice"
        )
    elif speech_s < WARN_SPEECH_S:
        warnings.append(f"only {speech_s:.1f} s of speech; 3-10 s give a closer voice match")
    if clipped_fraction > 0.001:
        warnings.append(f"clipping: {clipped_fraction:.2%} of samples are at full scale")
    if snr_db < 15.0:
        warnings.append(f"heavy background noise: estimated SNR {snr_db:.1f} dB (under 15 dB)")
    if vad_name == "silero" and nonspeech_loud > 0.35 and loud.mean() > 0.2:
        warnings.append(f"{nonspeech_loud:.0%} of the loud part of the clip is not speech (music or noise?)")
    elif stationarity > 0.9:
        warnings.append(f"sustained tones (spectral stationarity {stationarity:.2f} > 0.90): music or a hum?")
    if peak < 0.01:
        warnings.append(f"very quiet recording (peak {20 * np.log10(peak):.0f} dBFS)")
    for w in warnings:
        log.warning("reference %s: %s", label, w)
    metrics["speech_s"] = speech_s
    return Reference(
        audio=y,
        sample_rate=SAMPLE_RATE,
        path=path,
        sha256=sha256,
        duration_s=len(y) / SAMPLE_RATE,
        speech_s=speech_s,
        warnings=warnings,
        text=text.strip() if text and text.strip() else None,
        metrics={k: float(v) for k, v in metrics.items()},
    )
