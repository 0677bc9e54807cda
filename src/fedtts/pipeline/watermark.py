"""Resemble's PerTh implicit watermark, torch-free: mark cloned speech, and tell marked audio apart.

A voice copied from a few seconds of someone's speech can be misused, so every output made with a
cloned voice carries an inaudible mark that ``fedtts detect`` (and any PerTh detector) finds. PerTh
(``resemble-perth``, MIT; the mark Chatterbox and NeuTTS use) changes the log-magnitudes of the
0–2 kHz band by a learnt residual and keeps the phase. Its two small conv nets were exported to ONNX
at set-up (:mod:`fedtts.train.watermark_export`); the spectrograms around them are numpy here.

- Marking runs at the output's own rate when it is 16/24/32/48 kHz: a 64 ms Hann window with a
  10 ms hop there has the same 15.625 Hz bins as PerthNet's 2048/320 at 32 kHz, so no resampling
  round trip touches the audio; everything above 2 kHz is left bit for bit (the change is added).
- :class:`ChunkMarker` marks a stream chunk by chunk with the previous chunk's samples as left
  context, so frames across a join see what a whole-file pass sees.
- Detection resamples to 32 kHz and runs the decoder on windows of at most ``WINDOW_S`` (a two-hour
  file is streamed from disk, memory stays flat), pooling as PerthNet does.
"""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from fedtts import __version__
from fedtts.engine.assets import cache_dir
from fedtts.voice.profile import is_clone

__all__ = [
    "ChunkMarker",
    "clone_marker",
    "is_clone",
    "output_tags",
    "Detection",
    "UnreadableAudio",
    "WatermarkError",
    "Watermarker",
    "detect_file",
    "get_watermarker",
    "watermark_available",
    "watermark_dir",
]

log = logging.getLogger(__name__)

PERTH_SR = 32000  # PerthNet's rate; n_fft 2048, hop 320 there
SUBBAND = 128  # bins below 2 kHz: round(1025 * 2000 / 16000)
MIN_LEVEL_DB = -180.0  # 20·log10(1e-9), PerthNet's magnitude floor
SPAN_DB = 195.0  # -MIN_LEVEL_DB + 15 dB headroom: the normalisation of log-magnitudes
MASK_SHARE = 0.05  # frames whose summed log-magnitude is below 5 % of the loudest are left alone
CONTEXT_S = 0.25  # left context per chunk: half a window (32 ms) + the convs' reach (±15 frames)
BLOCK_S = 20.0  # long arrays are marked in blocks of this (with context on both sides)
WINDOW_S = 10.0  # detection pools over windows of at most this (memory per window ~50 MB)
THRESHOLD = 0.5  # PerthNet's decision: round(score)
MIN_SOUND_S = 0.5  # less sounding audio than this cannot be judged
ENCODER_FILE = "perth_encoder.onnx"
DECODER_FILE = "perth_decoder.onnx"
META_FILE = "perth.json"
_RATES = (16000, 24000, 32000, 48000)  # rates with integer 64 ms windows and 10 ms hops


class WatermarkError(RuntimeError):
    """The watermark model is missing or broken (set-up was not run)."""


class UnreadableAudio(ValueError):
    """A file to check cannot be decoded (missing, corrupt, no audio)."""


def watermark_dir() -> Path:
    return cache_dir() / "watermark"


def watermark_available() -> bool:
    d = watermark_dir()
    return all((d / f).is_file() for f in (ENCODER_FILE, DECODER_FILE, META_FILE))


@dataclass
class Detection:
    """One file's verdict: ``score`` is PerthNet's pooled output (0 = unmarked, 1 = marked)."""

    path: str
    marked: bool
    score: float
    confidence: float  # how sure the verdict is: score when marked, 1 - score when not
    frame_share: float  # share of sounding 10 ms frames whose own output says "marked"
    sounding_s: float
    duration_s: float
    note: str = ""

    def to_dict(self) -> dict:
        d = asdict(self)
        for k in ("score", "confidence", "frame_share", "sounding_s", "duration_s"):
            d[k] = round(float(d[k]), 4)
        return d


# ------------------------------------------------------------------ spectrogram (numpy, torch.stft's)


def _params(sr: int) -> tuple[int, int, float]:
    """(n_fft, hop, magnitude scale to 32 kHz terms) for a marking rate."""
    n_fft = sr * 64 // 1000
    return n_fft, sr // 100, 2048.0 / n_fft


def _window(n: int) -> np.ndarray:
    return (0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n) / n)).astype(np.float64)  # periodic Hann


def _stft(x: np.ndarray, n_fft: int, hop: int) -> np.ndarray:
    """torch.stft(center=True, pad_mode='reflect', onesided) → [bins, frames] complex."""
    pad = n_fft // 2
    mode = "reflect" if len(x) > pad else "constant"
    xp = np.pad(x.astype(np.float64), pad, mode=mode)
    n = 1 + len(x) // hop
    frames = np.lib.stride_tricks.sliding_window_view(xp, n_fft)[::hop][:n]
    return np.fft.rfft(frames * _window(n_fft), axis=1).T


def _istft(spec: np.ndarray, n_fft: int, hop: int, length: int) -> np.ndarray:
    """torch.istft(center=True): windowed overlap-add divided by the summed squared window."""
    win = _window(n_fft)
    frames = np.fft.irfft(spec.T, n=n_fft, axis=1) * win
    n = frames.shape[0]
    total = n_fft + hop * (n - 1)
    out = np.zeros(total)
    env = np.zeros(total)
    for i in range(n):  # a loop of n adds: cheap next to the FFTs, no [n, total] temporary
        out[i * hop : i * hop + n_fft] += frames[i]
        env[i * hop : i * hop + n_fft] += win**2
    pad = n_fft // 2
    out = out[pad : pad + length]
    env = env[pad : pad + length]
    return np.where(env > 1e-11, out / np.maximum(env, 1e-11), 0.0)


def _normalise(mag: np.ndarray) -> np.ndarray:
    return (20.0 * np.log10(np.maximum(mag, 1e-9)) - MIN_LEVEL_DB) / SPAN_DB


def _frame_mask(norm: np.ndarray) -> np.ndarray:
    """PerthNet's ``magmask``: frames louder than 5 % of the loudest (summed normalised log-mag)."""
    s = norm.sum(axis=0)
    return (s > s.max() * MASK_SHARE).astype(np.float32) if s.size else s.astype(np.float32)


def _lerp(x: np.ndarray, size: int) -> np.ndarray:
    """F.interpolate(mode='linear', align_corners=True) along the last axis."""
    t = x.shape[-1]
    if size == t:
        return x
    pos = np.linspace(0.0, t - 1.0, size) if size > 1 else np.zeros(1)
    lo = np.floor(pos).astype(int)
    hi = np.minimum(lo + 1, t - 1)
    w = (pos - lo).astype(x.dtype)
    return x[..., lo] * (1 - w) + x[..., hi] * w


def _nearest(x: np.ndarray, size: int) -> np.ndarray:
    """F.interpolate(mode='nearest') along the last axis."""
    t = x.shape[-1]
    idx = np.minimum((np.arange(size) * (t / size)).astype(int), t - 1)
    return x[..., idx]


# ------------------------------------------------------------------ the watermarker


class Watermarker:
    """The ONNX encoder/decoder, loaded once and shared across threads."""

    def __init__(self, directory: Path | None = None, threads: int = 1):
        d = Path(directory) if directory else watermark_dir()
        if not all((d / f).is_file() for f in (ENCODER_FILE, DECODER_FILE, META_FILE)):
            raise WatermarkError(
                f"the watermark model is not built ({d}); run `python -m fedtts.app.prepare` once "
                "(needs the [train] extra), or pass --no-watermark"
            )
        import onnxruntime as ort  # deferred: `fedtts --help` and the CLI's import stay light

        try:
            self.meta = json.loads((d / META_FILE).read_text(encoding="utf-8"))
            opts = ort.SessionOptions()
            opts.intra_op_num_threads = max(1, int(threads))
            opts.inter_op_num_threads = 1
            prov = ["CPUExecutionProvider"]
            self._enc = ort.InferenceSession(str(d / ENCODER_FILE), opts, providers=prov)
            self._dec = ort.InferenceSession(str(d / DECODER_FILE), opts, providers=prov)
        except Exception as e:  # noqa: BLE001 - a corrupt cache file: say which and how to rebuild
            raise WatermarkError(f"the watermark model in {d} cannot be loaded ({e}); rebuild it") from e

    # ---------------------------------------------------------------- marking
    def _delta_once(self, x: np.ndarray, sr: int) -> np.ndarray:
        """The change the mark makes to ``x`` (same length), in one pass."""
        n_fft, hop, scale = _params(sr)
        spec = _stft(x, n_fft, hop)
        norm = _normalise(np.abs(spec) * scale)
        mask = _frame_mask(norm)
        if not mask.any():
            return np.zeros(len(x))
        sub = norm[None, :SUBBAND].astype(np.float32)
        res = self._enc.run(None, {"sub": sub})[0][0] * mask[None]
        gain = np.power(10.0, res.astype(np.float64) * (SPAN_DB / 20.0)) - 1.0
        delta = np.zeros_like(spec)
        delta[:SUBBAND] = spec[:SUBBAND] * gain
        return _istft(delta, n_fft, hop, len(x))

    def delta(self, x: np.ndarray, sr: int, context: np.ndarray | None = None) -> np.ndarray:
        """The mark's change to ``x``; ``context`` is the audio just before it (a stream's past).

        Long input is cut into blocks, each computed with its neighbours' samples around it.
        """
        if sr not in _RATES:
            raise ValueError(f"watermark: sample rate {sr} is not one of {_RATES}")
        x = np.asarray(x, dtype=np.float64).reshape(-1)
        ctx = np.zeros(0) if context is None else np.asarray(context, np.float64).reshape(-1)
        n_ctx, block = int(CONTEXT_S * sr), int(BLOCK_S * sr)
        full = np.concatenate([ctx[-n_ctx:], x]) if ctx.size else x
        off = len(full) - len(x)
        out = np.zeros(len(x))
        for a in range(0, len(x), block):
            b = min(a + block, len(x))
            lo, hi = max(0, off + a - n_ctx), min(len(full), off + b + n_ctx)
            d = self._delta_once(full[lo:hi], sr)
            out[a:b] = d[off + a - lo : off + b - lo]
        return out

    def apply(self, audio: np.ndarray, sr: int) -> np.ndarray:
        """``audio`` with the mark (float32, same length); other rates go through 32 kHz."""
        x = np.asarray(audio, dtype=np.float32).reshape(-1)
        if x.size == 0:
            return x.copy()
        if sr in _RATES:
            return (x + self.delta(x, sr)).astype(np.float32)
        up = soxr.resample(x, sr, PERTH_SR, quality="HQ")
        d = soxr.resample(self.delta(up, PERTH_SR).astype(np.float32), PERTH_SR, sr, quality="HQ")
        n = min(len(d), len(x))
        out = x.copy()
        out[:n] += d[:n]
        return out

    # ---------------------------------------------------------------- detection
    def score_window(self, x32: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
        """PerthNet's pooled output for 32 kHz audio, plus per-frame outputs and the frame mask."""
        spec = _stft(np.asarray(x32, np.float64), 2048, 320)
        norm = _normalise(np.abs(spec))
        mask = _frame_mask(norm)
        t = norm.shape[1]
        if t < 4 or not mask.any():
            return 0.0, np.zeros(t, np.float32), np.zeros(t, np.float32)
        sub = norm[None, :SUBBAND].astype(np.float32)
        feeds = {"slow": _lerp(sub, int(t * 1.25)), "normal": sub, "fast": _lerp(sub, int(t * 0.75))}
        outs = self._dec.run(None, feeds)
        attn, marks, per_frame = [], [], []
        for o in outs:
            o = o[0].astype(np.float64)  # [2, T_branch]: attention logit, mark
            m = _nearest(mask.astype(np.float64), o.shape[1])
            attn.append((o[0] * m).sum() / m.sum())
            marks.append((o[1] * m).sum() / m.sum())
            per_frame.append(_nearest(o[1], t))  # back on the normal branch's frames
        a = np.exp(np.array(attn) - max(attn))
        a /= a.sum()
        score = float(np.clip(np.dot(a, marks), 0.0, 1.0))
        frames = np.clip(np.tensordot(a, np.stack(per_frame), axes=1), 0.0, 1.0)
        return score, frames.astype(np.float32), mask

    def detect_array(self, audio: np.ndarray, sr: int, path: str = "<audio>") -> Detection:
        """The verdict for an array (any rate); long audio is judged window by window."""
        return _pool(self, _resampled_blocks(iter([np.asarray(audio, np.float32).reshape(-1)]), sr), path)


class ChunkMarker:
    """Marks a stream chunk by chunk: each chunk with the previous raw samples as left context.

    Chunks keep their lengths (word timings and the stream's pacing are untouched); a chunk's last
    frames cannot see the next chunk, which in the synthesis pipeline starts after a silent pause.
    """

    def __init__(self, watermarker: Watermarker, sample_rate: int):
        self.wm = watermarker
        self.sr = int(sample_rate)
        self._ctx = np.zeros(0, np.float32)

    def __call__(self, audio: np.ndarray) -> np.ndarray:
        x = np.asarray(audio, dtype=np.float32).reshape(-1)
        if x.size == 0:
            return x
        out = (x + self.wm.delta(x, self.sr, context=self._ctx)).astype(np.float32)
        keep = int(CONTEXT_S * self.sr)
        self._ctx = np.concatenate([self._ctx, x])[-keep:]
        return out


_LOCK = threading.Lock()
_SHARED: Watermarker | None = None


def get_watermarker() -> Watermarker:
    """The process-wide watermarker (loaded on first use; raises WatermarkError when not built)."""
    global _SHARED
    with _LOCK:
        if _SHARED is None:
            _SHARED = Watermarker()
        return _SHARED


def clone_marker(voice, sample_rate: int, watermark: bool = True) -> ChunkMarker | None:
    """The marker for one request: a clone is marked unless ``watermark`` is off (said loudly);
    stock voices are not marked. Raises WatermarkError when a clone needs a model that is missing."""
    if not is_clone(voice):
        return None
    if not watermark:
        log.warning(
            "voice %r is a clone and its output is NOT watermarked (--no-watermark); the file's "
            "metadata records this",
            getattr(voice, "name", "?"),
        )
        return None
    return ChunkMarker(get_watermarker(), sample_rate)


def output_tags(voice, watermark: bool = True) -> dict[str, str]:
    """WAV/FLAC tags of an output (soundfile names): a clone's say it is synthetic, name the voice
    profile (or the clip's hash) and whether the mark is in it. Stock outputs get none."""
    if not is_clone(voice):
        return {}
    meta = getattr(voice, "meta", None) or {}
    name = str(getattr(voice, "name", "") or "")
    if meta.get("kind") == "profile":
        who = f"voice profile '{name}'"
    elif meta.get("clones"):
        who = f"blend '{name}' of cloned voice(s) {', '.join(map(str, meta['clones']))}"
    elif meta.get("clip_sha256"):
        who = f"voice cloned from a clip (sha256 {str(meta['clip_sha256'])[:16]})"
    else:
        who = f"cloned voice '{name}'"
    mark = "PerTh implicit watermark" if watermark else "NOT watermarked (--no-watermark)"
    return {
        "comment": f"synthetic speech made by fedtts with {who}; {mark}",
        "artist": f"fedtts synthetic voice: {name}"[:200],
        "software": f"fedtts {__version__}",
    }


# ------------------------------------------------------------------ reading files for detection


def _resampled_blocks(blocks: Iterator[np.ndarray], sr: int) -> Iterator[np.ndarray]:
    """Mono float blocks at ``sr`` → at 32 kHz (soxr's streaming resampler: no seams)."""
    if sr == PERTH_SR:
        yield from blocks
        return
    rs = soxr.ResampleStream(sr, PERTH_SR, 1, dtype="float32", quality="HQ")
    for b in blocks:
        y = rs.resample_chunk(np.ascontiguousarray(b, np.float32), last=False)
        if y.size:
            yield y
    y = rs.resample_chunk(np.zeros(0, np.float32), last=True)
    if y.size:
        yield y


def _soundfile_blocks(path: Path) -> tuple[Iterator[np.ndarray], int] | None:
    try:
        f = sf.SoundFile(str(path))
    except Exception:  # noqa: BLE001 - libsndfile cannot read it: ffmpeg may
        return None

    def gen() -> Iterator[np.ndarray]:
        with f:
            while True:
                b = f.read(f.samplerate * 5, dtype="float32", always_2d=True)
                if not len(b):
                    return
                yield b.mean(axis=1)

    return gen(), int(f.samplerate)


def _ffmpeg_blocks(path: Path) -> Iterator[np.ndarray]:
    exe = shutil.which("ffmpeg")
    if exe is None:
        raise UnreadableAudio(
            f"{path}: not a WAV/FLAC/OGG file libsndfile reads, and ffmpeg is not installed"
        )
    cmd = [exe, "-v", "error", "-nostdin", "-i", str(path), "-vn", "-f", "f32le", "-ac", "1", "-ar"]
    proc = subprocess.Popen([*cmd, str(PERTH_SR), "-"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    got = 0
    try:
        while True:
            raw = proc.stdout.read(PERTH_SR * 4 * 5)
            if not raw:
                break
            raw = raw[: len(raw) // 4 * 4]
            got += len(raw)
            yield np.frombuffer(raw, dtype="<f4").copy()
    finally:
        proc.stdout.close()
        err = proc.stderr.read().decode(errors="replace").strip()
        proc.stderr.close()
        code = proc.wait()
    if code != 0 and got == 0:
        last = err.splitlines()[-1] if err else f"ffmpeg exit {code}"
        raise UnreadableAudio(f"{path}: cannot decode ({last})")


def _file_blocks(path: Path) -> Iterator[np.ndarray]:
    """The file's audio as mono 32 kHz float blocks, decoded progressively."""
    if not path.exists():
        raise UnreadableAudio(f"{path}: file not found")
    if path.is_dir():
        raise UnreadableAudio(f"{path}: is a folder, not an audio file")
    compressed = path.suffix.lower() in (".mp3", ".m4a", ".mp4", ".aac")
    sfb = None if compressed and shutil.which("ffmpeg") else _soundfile_blocks(path)  # ffmpeg: quieter
    if sfb is not None:
        yield from _resampled_blocks(sfb[0], sfb[1])
    else:
        yield from _ffmpeg_blocks(path)


def _pool(wm: Watermarker, blocks: Iterator[np.ndarray], path: str) -> Detection:
    """Score windows of ``WINDOW_S`` as they fill, then pool them weighted by sounding frames."""
    win = int(WINDOW_S * PERTH_SR)
    buf: list[np.ndarray] = []
    have = 0
    total = 0
    acc = {"score": 0.0, "frames": 0.0, "sound": 0.0}

    def judge(x: np.ndarray) -> None:
        if len(x) < PERTH_SR // 10 and acc["sound"]:  # a stub at the end of a long file
            return
        score, frames, mask = wm.score_window(x)
        n = float(mask.sum())
        acc["score"] += score * n
        acc["frames"] += float((frames[mask > 0] >= THRESHOLD).sum())
        acc["sound"] += n

    for b in blocks:
        if not np.all(np.isfinite(b)):
            b = np.nan_to_num(b, nan=0.0, posinf=0.0, neginf=0.0)
        total += len(b)
        buf.append(b)
        have += len(b)
        while have >= win:
            x = np.concatenate(buf)
            judge(x[:win])
            rest = x[win:]
            buf, have = ([rest] if rest.size else []), len(rest)
    if buf:
        judge(np.concatenate(buf))
    if total == 0:
        raise UnreadableAudio(f"{path}: contains no audio")
    duration = total / PERTH_SR
    sounding = acc["sound"] * 0.01
    if sounding < MIN_SOUND_S:
        what = "silent" if sounding == 0 else f"only {sounding:.2f} s of sound"
        return Detection(
            path, False, 0.0, 0.0, 0.0, sounding, duration, f"{what}: too little to carry a mark"
        )
    score = acc["score"] / acc["sound"]
    marked = score >= THRESHOLD
    return Detection(
        path=path,
        marked=bool(marked),
        score=score,
        confidence=score if marked else 1.0 - score,
        frame_share=acc["frames"] / acc["sound"],
        sounding_s=sounding,
        duration_s=duration,
    )


def detect_file(path: str | Path, watermarker: Watermarker | None = None) -> Detection:
    """Decode ``path`` progressively (WAV/FLAC/MP3/OGG/M4A...) and judge it; bounded memory."""
    p = Path(path)
    wm = watermarker or get_watermarker()
    try:
        return _pool(wm, _file_blocks(p), str(path))
    except UnreadableAudio:
        raise
    except (OSError, RuntimeError, ValueError) as e:
        raise UnreadableAudio(f"{p}: cannot decode ({e})") from e
