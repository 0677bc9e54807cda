"""Text → audio chunk by chunk: front end segments → engine calls → faded, paused, resampled audio.

``Synthesizer.stream`` is the primitive (first sentence first, so playback can start early);
``synthesize`` is just its concatenation, so streamed and whole-file output are identical.
"""

from __future__ import annotations

import dataclasses
import gc
import logging
import random
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fedtts.engine.onnx_engine import MAX_TOKENS, SAMPLE_RATE
from fedtts.pipeline.equalizer import equalize

__all__ = [
    "SAMPLE_RATES",
    "AudioChunk",
    "SynthesisError",
    "SynthesisOptions",
    "SynthesisResult",
    "Synthesizer",
    "split_phonemes",
]

log = logging.getLogger(__name__)

SAMPLE_RATES = (24000, 32000)
_PARAGRAPH = re.compile(r"\n\s*\n")
FADE_S = 0.005  # short raised-cosine fades at every chunk edge: joins never click
TAIL_PAUSE_S = 0.05  # silence kept after the last segment


class SynthesisError(ValueError):
    """The text produced nothing the model can speak (empty, only unsupported symbols...)."""


@dataclass
class SynthesisOptions:
    """Per-request settings (the engine/front end configs are per ``Synthesizer``)."""

    sample_rate: int = 24000
    speed: float = 1.0
    seed: int | None = None
    use_phoneme: bool = False  # apply the pronunciation dictionary
    use_cache: bool = False  # front-end disk cache

    def validate(self) -> SynthesisOptions:
        if int(self.sample_rate) not in SAMPLE_RATES:
            raise ValueError(f"sample rate must be 24000 or 32000, got {self.sample_rate}")
        if not 0.25 <= float(self.speed) <= 4.0:
            raise ValueError(f"speed must be between 0.25 and 4, got {self.speed}")
        if self.seed is not None and not 0 <= int(self.seed) < 2**32:
            raise ValueError(f"seed must be between 0 and 2**32-1, got {self.seed}")
        return self


@dataclass
class AudioChunk:
    """One segment's audio (with its trailing pause) as it leaves the pipeline."""

    audio: np.ndarray
    sample_rate: int
    index: int
    text: str
    phonemes: str
    normalized: str = ""
    readable: str = ""
    lang: str = ""
    n_tokens: int = 0
    pause_s: float = 0.0  # silence at the end of ``audio`` (the segment's pause_after)
    compute_s: float = 0.0  # wall time spent producing this chunk
    since_start_s: float = 0.0  # wall time from the request to this chunk being ready

    @property
    def duration_s(self) -> float:
        return len(self.audio) / self.sample_rate


@dataclass
class SynthesisResult:
    audio: np.ndarray
    sample_rate: int
    segments: list[Any] = field(default_factory=list)  # front-end Segments, in order
    chunks: list[AudioChunk] = field(default_factory=list)  # audio emptied: metadata only
    voice: str = ""
    compute_s: float = 0.0
    first_chunk_s: float = 0.0

    @property
    def duration_s(self) -> float:
        return len(self.audio) / self.sample_rate

    @property
    def rtf(self) -> float:
        return self.compute_s / self.duration_s if self.duration_s else float("inf")

    @property
    def normalized(self) -> str:
        return " ".join(c.normalized for c in self.chunks if c.normalized)

    @property
    def phonemes(self) -> str:
        return " ".join(c.phonemes for c in self.chunks)


def split_phonemes(phonemes: str, tokenize, limit: int = MAX_TOKENS) -> list[str]:
    """Split a phoneme string that would exceed ``limit`` tokens at word gaps (hard cut as last resort).

    The front end already keeps segments under the limit; this is the safety net.
    """
    if len(tokenize(phonemes)) <= limit:
        return [phonemes]
    pieces: list[str] = []
    cur = ""
    for word in phonemes.split(" "):
        cand = f"{cur} {word}" if cur else word
        if len(tokenize(cand)) <= limit:
            cur = cand
            continue
        if cur:
            pieces.append(cur)
        while len(tokenize(word)) > limit:
            pieces.append(word[:limit])
            word = word[limit:]
        cur = word
    if cur:
        pieces.append(cur)
    return pieces


def _fade(audio: np.ndarray, sr: int) -> np.ndarray:
    n = min(int(FADE_S * sr), len(audio) // 2)
    if n <= 1:
        return audio
    ramp = (0.5 - 0.5 * np.cos(np.linspace(0.0, np.pi, n))).astype(np.float32)
    audio = audio.copy()
    audio[:n] *= ramp
    audio[-n:] *= ramp[::-1]
    return audio


class Synthesizer:
    """Reusable text-to-speech: the ONNX session and front ends are created on first use and kept."""

    def __init__(self, engine_config=None, frontend_config=None, engine=None, frontend=None):
        self.engine_config = engine_config
        self.frontend_config = frontend_config
        self._engine = engine
        self._frontend_override = frontend  # tests/other callers may inject a front end
        self._frontends: dict[tuple[bool, bool], Any] = {}
        self._lock = threading.Lock()

    # ------------------------------------------------------------ lazy parts
    @property
    def engine(self):
        with self._lock:
            if self._engine is None:
                from fedtts.engine.onnx_engine import EngineConfig, KokoroEngine

                t0 = time.perf_counter()
                self._engine = KokoroEngine(self.engine_config or EngineConfig())
                log.info("model loaded in %.2f s", time.perf_counter() - t0)
            return self._engine

    def frontend(self, options: SynthesisOptions | None = None):
        """The front end for these options (dictionary on/off, cache on/off), created once."""
        if self._frontend_override is not None:
            return self._frontend_override
        options = options or SynthesisOptions()
        key = (bool(options.use_phoneme), bool(options.use_cache))
        with self._lock:
            fe = self._frontends.get(key)
            if fe is None:
                try:
                    from fedtts.frontend import Frontend, FrontendConfig
                except ImportError as e:
                    raise RuntimeError(f"the text front end (fedtts.frontend) cannot be imported: {e}") from e

                base = self.frontend_config or FrontendConfig()
                cfg = dataclasses.replace(base, use_dict=key[0], use_cache=key[1]).validate()
                fe = self._frontends[key] = Frontend(cfg)
            return fe

    def unload(self) -> None:
        """Free the onnxruntime session (reloaded on next use)."""
        with self._lock:
            self._engine = None
            self._frontends.clear()
        gc.collect()

    # ------------------------------------------------------------ synthesis
    def analyze(self, text: str, options: SynthesisOptions | None = None) -> list[Any]:
        """Front-end segments for ``text`` (raises the front end's TextError on empty text)."""
        if text is None or not str(text).strip():
            raise _text_error("text is empty")
        return list(self.frontend(options).analyze(str(text)))

    def stream(self, text: str, voice, options: SynthesisOptions | None = None) -> Iterator[AudioChunk]:
        """Yield audio segment by segment, first sentence first."""
        return self._run(text, voice, options, None)

    def _run(self, text: str, voice, options, sink: list | None) -> Iterator[AudioChunk]:
        options = (options or SynthesisOptions()).validate()
        t_start = time.perf_counter()
        if options.seed is not None:
            np.random.seed(int(options.seed))
            random.seed(int(options.seed))
        if text is None or not str(text).strip():
            raise _text_error("text is empty")
        engine = self.engine
        sr = int(options.sample_rate)
        # the request's speed times the voice's own pace (a cloned or emotion-transferred rate)
        speed = float(np.clip(float(options.speed) * float(getattr(voice, "pace", 1.0)), 0.25, 4.0))
        eq = getattr(voice, "eq_db", None)  # a clone's spectral-match curve
        index = 0
        for seg, seg_is_last in self._segments(str(text), options, sink):
            phonemes = str(getattr(seg, "phonemes", "") or "").strip()
            pieces = split_phonemes(phonemes, engine.tokenize) if phonemes else []
            for j, piece in enumerate(pieces):
                t0 = time.perf_counter()
                tokens = engine.tokenize(piece)
                if not tokens:
                    continue
                audio = engine.infer(tokens, voice.style_for(len(tokens)), speed)
                if eq is not None:
                    audio = equalize(audio, eq, SAMPLE_RATE)
                audio = _fade(audio, SAMPLE_RATE)
                last_piece = j == len(pieces) - 1
                pause = float(getattr(seg, "pause_after", 0.0) or 0.0) if last_piece else 0.05
                if seg_is_last and last_piece:
                    pause = min(pause, TAIL_PAUSE_S)
                n_pause = int(round(max(pause, 0.0) / speed * SAMPLE_RATE))
                total = len(audio) + n_pause
                n_pause += (-total) % 3  # 24k→32k is exactly 4/3 when the length is a multiple of 3
                audio = np.concatenate([audio, np.zeros(n_pause, dtype=np.float32)])
                if sr != SAMPLE_RATE:
                    import soxr

                    audio = soxr.resample(audio, SAMPLE_RATE, sr, quality="HQ").astype(np.float32)
                now = time.perf_counter()
                yield AudioChunk(
                    audio=audio,
                    sample_rate=sr,
                    index=index,
                    text=str(getattr(seg, "text", "")),
                    phonemes=piece,
                    normalized=str(getattr(seg, "normalized", "")),
                    readable=str(getattr(seg, "readable", "")),
                    lang=str(getattr(seg, "lang", "")),
                    n_tokens=len(tokens),
                    pause_s=n_pause / SAMPLE_RATE,
                    compute_s=now - t0,
                    since_start_s=now - t_start,
                )
                index += 1
        if index == 0:
            raise _text_error(f"nothing to speak in {_preview(text)}: no phonemes the model knows")

    def _segments(
        self, text: str, options: SynthesisOptions, sink: list | None
    ) -> Iterator[tuple[Any, bool]]:
        """Segments paragraph by paragraph (blank-line separated), so a long text starts speaking
        after its first paragraph is analysed; yields (segment, is_last_overall)."""
        paragraphs = [p for p in _PARAGRAPH.split(text) if p.strip()] or [text]
        first_error: Exception | None = None
        pending = None
        for para in paragraphs:
            try:
                segs = self.analyze(para, options)
            except ValueError as e:  # e.g. a paragraph of only unsupported symbols
                if len(paragraphs) == 1:
                    raise
                first_error = first_error or e
                log.warning("skipped a paragraph: %s", e)
                continue
            if sink is not None:
                sink.extend(segs)
            for seg in segs:
                if pending is not None:
                    yield pending, False
                pending = seg
        if pending is None:
            raise first_error or _text_error(f"nothing to speak in {_preview(text)}")
        yield pending, True

    def synthesize(self, text: str, voice, options: SynthesisOptions | None = None) -> SynthesisResult:
        """Whole utterance: the concatenation of ``stream``."""
        options = (options or SynthesisOptions()).validate()
        t0 = time.perf_counter()
        audios: list[np.ndarray] = []
        chunks: list[AudioChunk] = []
        segments: list[Any] = []
        for chunk in self._run(text, voice, options, segments):
            audios.append(chunk.audio)
            chunks.append(dataclasses.replace(chunk, audio=np.zeros(0, dtype=np.float32)))
        return SynthesisResult(
            audio=np.concatenate(audios).astype(np.float32),
            sample_rate=int(options.sample_rate),
            segments=segments,
            chunks=chunks,
            voice=str(getattr(voice, "name", "")),
            compute_s=time.perf_counter() - t0,
            first_chunk_s=chunks[0].since_start_s if chunks else 0.0,
        )


def _preview(text: str, n: int = 40) -> str:
    t = str(text or "")
    return repr(t if len(t) <= n else t[:n] + "…")


def _text_error(msg: str) -> Exception:
    """The front end's TextError when it exists (one exception type for callers), else ours."""
    try:
        from fedtts.frontend import TextError

        return TextError(msg)
    except ImportError:
        return SynthesisError(msg)
