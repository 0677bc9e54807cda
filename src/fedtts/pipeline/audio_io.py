"""Audio files and byte encodings: WAV/FLAC/MP3/OGG-Opus via soundfile, ffmpeg as fallback.

Every file write is atomic (temporary file in the same folder, then ``os.replace``) so a crash never
leaves half a file behind nor clobbers a finished one.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

__all__ = [
    "FORMATS",
    "AudioFormatError",
    "atomic_path",
    "encode_audio",
    "format_for_path",
    "to_int16",
    "write_audio",
]

# fmt -> (soundfile format, subtype)
_SF = {
    "wav": ("WAV", "PCM_16"),
    "flac": ("FLAC", "PCM_16"),
    "mp3": ("MP3", "MPEG_LAYER_III"),
    "opus": ("OGG", "OPUS"),
    "ogg": ("OGG", "OPUS"),
}
FORMATS = ("wav", "flac", "mp3", "opus", "pcm")
_OPUS_RATES = (8000, 12000, 16000, 24000, 48000)


class AudioFormatError(ValueError):
    """An output format or file suffix we cannot write."""


def to_int16(audio: np.ndarray) -> np.ndarray:
    """Float [-1, 1] → s16 with clipping (never wraps around)."""
    x = np.clip(np.asarray(audio, dtype=np.float32).reshape(-1), -1.0, 1.0)
    return np.round(x * 32767.0).astype("<i2")


def format_for_path(path: str | Path) -> str:
    suffix = Path(path).suffix.lower().lstrip(".")
    if suffix in ("wav", "flac", "mp3", "opus", "ogg"):
        return "opus" if suffix == "ogg" else suffix
    raise AudioFormatError(
        f"{path}: unsupported output suffix '.{suffix}'; use .wav, .flac, .mp3 or .opus/.ogg"
    )


def _prepare(audio: np.ndarray, sr: int, fmt: str) -> tuple[np.ndarray, int]:
    audio = np.asarray(audio, dtype=np.float32).reshape(-1)
    if not np.all(np.isfinite(audio)):
        raise ValueError("audio contains NaN or infinity")
    if fmt == "opus" and sr not in _OPUS_RATES:
        import soxr

        audio, sr = soxr.resample(audio, sr, 48000, quality="HQ").astype(np.float32), 48000
    return audio, sr


def _sf_supported(fmt: str) -> bool:
    import soundfile as sf

    major, sub = _SF[fmt]
    return major in sf.available_formats() and sub in sf.available_subtypes(major)


def _ffmpeg_encode(audio: np.ndarray, sr: int, fmt: str) -> bytes:
    exe = shutil.which("ffmpeg")
    if exe is None:
        raise AudioFormatError(f"cannot encode {fmt}: libsndfile lacks it and ffmpeg is not installed")
    codec = {"mp3": ["-f", "mp3", "-b:a", "128k"], "opus": ["-f", "ogg", "-c:a", "libopus", "-b:a", "48k"]}
    cmd = [exe, "-v", "error", "-f", "s16le", "-ar", str(sr), "-ac", "1", "-i", "-", *codec[fmt], "-"]
    proc = subprocess.run(cmd, input=to_int16(audio).tobytes(), capture_output=True, check=False)
    if proc.returncode != 0:
        raise AudioFormatError(
            f"ffmpeg failed to encode {fmt}: {proc.stderr.decode(errors='replace')[-300:]}"
        )
    return proc.stdout


TAGGED = ("wav", "flac")  # formats whose tags (soundfile's names: comment, artist...) we write


def encode_audio(audio: np.ndarray, sr: int, fmt: str = "wav", tags: dict[str, str] | None = None) -> bytes:
    """Encode mono float audio to ``wav|mp3|flac|opus|pcm`` bytes (pcm = raw s16le); ``tags`` go
    into WAV (RIFF INFO) and FLAC (Vorbis comments) files."""
    fmt = fmt.lower()
    if fmt not in FORMATS:
        raise AudioFormatError(f"unsupported audio format '{fmt}'; choose one of {', '.join(FORMATS)}")
    if fmt == "pcm":
        return to_int16(_prepare(audio, sr, fmt)[0]).tobytes()
    audio, sr = _prepare(audio, sr, fmt)
    if _sf_supported(fmt):
        import soundfile as sf

        major, sub = _SF[fmt]
        buf = io.BytesIO()
        with sf.SoundFile(buf, "w", sr, 1, format=major, subtype=sub) as f:
            for key, value in (tags or {}).items() if fmt in TAGGED else ():
                setattr(f, key, value)
            f.write(audio)
        return buf.getvalue()
    return _ffmpeg_encode(audio, sr, fmt)


class atomic_path:
    """Context manager yielding a temporary path next to ``path``; renamed over it only on success."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.tmp: Path | None = None

    def __enter__(self) -> Path:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".part", dir=self.path.parent)
        os.close(fd)
        self.tmp = Path(tmp)
        return self.tmp

    def __exit__(self, exc_type, exc, tb) -> None:
        assert self.tmp is not None
        if exc_type is None:
            os.replace(self.tmp, self.path)
        else:
            self.tmp.unlink(missing_ok=True)


def write_audio(
    path: str | Path, audio: np.ndarray, sr: int, fmt: str | None = None, tags: dict[str, str] | None = None
) -> Path:
    """Write ``audio`` to ``path`` (format from the suffix unless ``fmt``), atomically."""
    path = Path(path)
    fmt = fmt or format_for_path(path)
    data = encode_audio(audio, sr, fmt, tags=tags)
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return path
