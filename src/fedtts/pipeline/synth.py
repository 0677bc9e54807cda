"""Text → audio chunk by chunk: front end segments → engine calls → faded, paused, resampled audio.

``Synthesizer.stream`` is the primitive; ``synthesize`` is its concatenation rendered sentence by
sentence (``fast_start=False``): cutting a sentence short costs intelligibility (Whisper error on dev
sentences 7.0 % whole vs 10.4 % cut), which only a listener waiting for the first sound should pay.
``stream(..., fast_start=False)`` gives exactly the samples of ``synthesize``. Two things make a live
stream start at once and never stall:

- *growing chunks* (``fast_start``): the first chunk is a short phrase (a clause, else the first few words of the
  first sentence, ``FIRST_CHUNK_TOKENS``); each later chunk may be at most ``CHUNK_GROWTH`` times the
  tokens already rendered, so every chunk is computed in less time than the audio before it plays
  (compute ≈ RTF × duration), until chunks are whole sentences;
- *render-ahead*: ``stream`` renders on a background worker into a bounded queue
  (``AHEAD_CHUNKS``), so the next chunk is made while the listener hears the current one. A
  consumer that stops reading (closed connection, Ctrl-C) stops the worker.
"""

from __future__ import annotations

import dataclasses
import gc
import logging
import queue
import random
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import numpy as np

from fedtts.engine.onnx_engine import MAX_TOKENS, SAMPLE_RATE, EngineConfig, KokoroEngine
from fedtts.frontend import Frontend, FrontendConfig, TextError
from fedtts.frontend.ssml import is_ssml
from fedtts.pipeline.chunks import SAMPLE_RATES, AudioChunk, SynthesisOptions, SynthesisResult
from fedtts.pipeline.equalizer import equalize
from fedtts.pipeline.ssml_render import render_ssml
from fedtts.pipeline.timing import Timeline, WordTiming, piece_words, unit_ranges
from fedtts.pipeline.watermark import clone_marker, output_tags

__all__ = [
    "SAMPLE_RATES",
    "AudioChunk",
    "SynthesisError",
    "SynthesisOptions",
    "SynthesisResult",
    "Synthesizer",
    "collect",
    "split_phonemes",
]

log = logging.getLogger(__name__)

_PARAGRAPH = re.compile(r"\n\s*\n")
FADE_S = 0.005  # short raised-cosine fades at every chunk edge: joins never click
TAIL_PAUSE_S = 0.05  # silence kept after the last segment
FIRST_CHUNK_TOKENS = 24  # ~1.5 s of speech: what the listener waits for before the first sound
CHUNK_GROWTH = 1.5  # a chunk may have at most this many times the tokens rendered before it
MIN_PIECE_TOKENS = 8  # never cut off a stub shorter than this (it would sound clipped)
CLAUSE_CUT_PAUSE_S = 0.15  # pause after a cut at a comma/colon (the front end's clause pause)
WORD_CUT_PAUSE_S = 0.05  # pause after a cut between two words (a breath, not a stop)
# A phrase without a clause end is cut between words only when it is longer than this: in a short
# sentence the cut costs intelligibility (Whisper heard "jumps, over" as "I'm sober") and saves little.
WORD_CUT_MIN_TOKENS = 64
MIN_CUT_WORD_TOKENS = 4  # cut only after a word this long: not after "the", "to", 的 (a phrase goes on)
AHEAD_CHUNKS = 2  # chunks rendered ahead of the consumer (bounded: memory stays flat)
# Kokoro renders ~0.27 s of silence before and ~0.65 s after every call (the pad tokens' durations);
# it is trimmed so joins sound like the pauses the pipeline chooses, and the first sound comes sooner.
TRIM_FLOOR_DB = 50.0  # frames this far below the chunk's loudest frame count as silence
TRIM_KEEP_S = (0.04, 0.08)  # margin kept before the first / after the last sounding frame
_CLAUSE_END = tuple(",;:—…、")


class SynthesisError(ValueError):
    """The text produced nothing the model can speak (empty, only unsupported symbols...)."""


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


def cut_phrase(phonemes: str, budget: int, count) -> tuple[str, str, float] | None:
    """Cut ``phonemes`` into (head, tail, pause after head) with the head at most ``budget`` tokens.

    The latest clause end (comma, colon, ...) that fits wins; else the latest gap after a word of at
    least ``MIN_CUT_WORD_TOKENS`` (a comma is added there). None when the whole fits, or no cut
    leaves both sides at least ``MIN_PIECE_TOKENS`` long.
    """
    total = count(phonemes)
    if total <= budget:
        return None
    words = phonemes.split(" ")
    best: dict[bool, int] = {}  # is_clause → number of words in the head
    for i in range(1, len(words)):
        head = count(" ".join(words[:i]))
        if head > budget:
            break
        if head < MIN_PIECE_TOKENS or total - head < MIN_PIECE_TOKENS:
            continue
        last = words[i - 1]
        if last.endswith(_CLAUSE_END):
            best[True] = i
        elif count(last) >= MIN_CUT_WORD_TOKENS:
            best[False] = i
    if not best:
        return None
    if True in best:
        i = best[True]
        return " ".join(words[:i]), " ".join(words[i:]), CLAUSE_CUT_PAUSE_S
    if total < WORD_CUT_MIN_TOKENS:
        return None
    i = best[False]
    # a comma ends the phrase: without it Kokoro drags the last sound out as if the text stopped
    return " ".join(words[:i]) + ",", " ".join(words[i:]), WORD_CUT_PAUSE_S


def _chunk_budget(rendered_tokens: int) -> int:
    """Tokens the next chunk may have: short at first, growing with what is already rendered."""
    if rendered_tokens == 0:
        return FIRST_CHUNK_TOKENS
    return min(MAX_TOKENS, max(FIRST_CHUNK_TOKENS, int(CHUNK_GROWTH * rendered_tokens)))


class _Failed:
    """An exception raised on the render-ahead worker, carried to the consumer."""

    def __init__(self, exc: BaseException):
        self.exc = exc


_DONE = object()


def render_ahead(chunks: Iterator[AudioChunk], depth: int = AHEAD_CHUNKS) -> Iterator[AudioChunk]:
    """Iterate ``chunks`` on a worker thread, at most ``depth`` ahead of the consumer.

    The worker starts on the first ``next()``; errors reach the consumer where they happened in the
    order; closing this generator (or abandoning it) stops the worker after its current chunk.
    """
    q: queue.Queue = queue.Queue(maxsize=max(1, int(depth)))
    stop = threading.Event()

    def put(item) -> bool:
        while not stop.is_set():
            try:
                q.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def work() -> None:
        try:
            for chunk in chunks:
                if not put(chunk):
                    return
            put(_DONE)
        except BaseException as e:  # noqa: BLE001 - every failure belongs to the consumer
            put(_Failed(e))
        finally:
            chunks.close()

    worker = threading.Thread(target=work, name="fedtts-render-ahead", daemon=True)
    worker.start()
    try:
        while True:
            item = q.get()
            if item is _DONE:
                return
            if isinstance(item, _Failed):
                raise item.exc
            yield item
    finally:
        stop.set()
        while True:  # drop what was rendered ahead: its memory goes with it
            try:
                q.get_nowait()
            except queue.Empty:
                break
        worker.join(timeout=60)


def trim_silence(audio: np.ndarray, sr: int = SAMPLE_RATE) -> np.ndarray:
    """Cut the model's leading and trailing silence, keeping short margins (soft onsets, decays)."""
    start, end = trim_bounds(audio, sr)
    return audio[start:end]


def trim_bounds(audio: np.ndarray, sr: int = SAMPLE_RATE) -> tuple[int, int]:
    """(first, end) sample of ``trim_silence``'s cut (word timestamps shift by the first)."""
    hop = sr // 100
    n = len(audio) // hop
    if n < 3:
        return 0, len(audio)
    rms = np.sqrt(np.mean(audio[: n * hop].reshape(n, hop).astype(np.float64) ** 2, axis=1))
    db = 20.0 * np.log10(rms + 1e-10)
    active = np.flatnonzero(db > db.max() - TRIM_FLOOR_DB)
    start = max(0, active[0] * hop - int(TRIM_KEEP_S[0] * sr))
    end = min(len(audio), (active[-1] + 1) * hop + int(TRIM_KEEP_S[1] * sr))
    return int(start), int(end)


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

    def __init__(
        self, engine_config=None, frontend_config=None, engine=None, frontend=None, engine_provider=None
    ):
        """``engine``: a loaded model to use; ``engine_provider``: where to get the model on first use
        (a :class:`fedtts.pipeline.runtime.Runtime` shares its one session this way); with neither,
        the synthesizer loads its own."""
        self.engine_config = engine_config
        self.frontend_config = frontend_config
        self._engine = engine
        self._engine_provider = engine_provider
        self._frontend_override = frontend  # tests/other callers may inject a front end
        self._frontends: dict[tuple[bool, bool], Any] = {}
        self._lock = threading.Lock()
        # name → Voice for SSML <voice name="…"> (None: stock packs and saved profiles)
        self.voice_resolver = None

    # ------------------------------------------------------------ lazy parts
    @property
    def engine(self):
        with self._lock:
            if self._engine is None:
                t0 = time.perf_counter()
                if self._engine_provider is not None:
                    self._engine = self._engine_provider()
                else:
                    self._engine = KokoroEngine(self.engine_config or EngineConfig())
                log.info("model ready in %.2f s", time.perf_counter() - t0)
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

    def stream(
        self, text: str, voice, options: SynthesisOptions | None = None, *, fast_start: bool = True
    ) -> Iterator[AudioChunk]:
        """Yield audio chunk by chunk as it is made, rendered ahead of the consumer on a worker thread:
        a short first phrase, then growing chunks (``fast_start``, for live playback), else whole
        sentences (for files: the samples of ``synthesize``)."""
        return render_ahead(self._run(text, voice, options, None, fast_start))

    def _run(
        self, text: str, voice, options, sink: list | None, fast_start: bool = False
    ) -> Iterator[AudioChunk]:
        if text is not None and is_ssml(str(text)):  # <speak>…: spans rendered through this method
            yield from render_ssml(self, str(text), voice, options, sink, fast_start)
            return
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
        marker = clone_marker(voice, sr, options.watermark)  # None for stock voices
        index = 0
        # tokens rendered so far: the budget of the next chunk grows with it (whole sentences without fast start)
        rendered = [0 if fast_start else MAX_TOKENS]
        for seg, seg_is_last in self._segments(str(text), options, sink):
            phonemes = str(getattr(seg, "phonemes", "") or "").strip()
            units = tuple(getattr(seg, "units", ()) or ())
            ranges = unit_ranges(phonemes, units)
            cursor = 0
            for piece, last_piece, cut_pause in self._pieces(phonemes, engine, rendered):
                t0 = time.perf_counter()
                tokens = engine.tokenize(piece)
                piece_at = phonemes.find(piece.rstrip(","), cursor)  # a cut may add a comma
                cursor = max(cursor, piece_at + 1)
                if not tokens:
                    continue
                rendered[0] += len(tokens)
                raw, frames = engine.infer_timed(tokens, voice.style_for(len(tokens)), speed)
                start, end = trim_bounds(raw)
                audio = raw[start:end]
                words: list[WordTiming] = []
                if frames is not None and piece_at >= 0 and units:
                    words = piece_words(
                        units, ranges, phonemes, piece, piece_at, engine.vocab, frames, start, len(audio)
                    )
                if eq is not None:
                    audio = equalize(audio, eq, SAMPLE_RATE)
                audio = _fade(audio, SAMPLE_RATE)
                pause = float(getattr(seg, "pause_after", 0.0) or 0.0) if last_piece else cut_pause
                if seg_is_last and last_piece:
                    pause = min(pause, TAIL_PAUSE_S)
                n_pause = int(round(max(pause, 0.0) / speed * SAMPLE_RATE))
                total = len(audio) + n_pause
                n_pause += (-total) % 3  # 24k→32k is exactly 4/3 when the length is a multiple of 3
                audio = np.concatenate([audio, np.zeros(n_pause, dtype=np.float32)])
                if sr != SAMPLE_RATE:
                    import soxr

                    audio = soxr.resample(audio, SAMPLE_RATE, sr, quality="HQ").astype(np.float32)
                if marker is not None:
                    audio = marker(audio)
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
                    words=words,
                )
                index += 1
        if index == 0:
            raise _text_error(f"nothing to speak in {_preview(text)}: no phonemes the model knows")

    @staticmethod
    def _pieces(phonemes: str, engine, rendered: list[int]) -> Iterator[tuple[str, bool, float]]:
        """(piece, is the segment's last piece, pause after a cut piece) for one segment: cut to the
        growing chunk budget at clause ends or word gaps, and never over the model's token limit."""
        if not phonemes:
            return

        def count(p: str) -> int:
            return len(engine.tokenize(p))

        rest = phonemes
        while rest:
            cut = cut_phrase(rest, _chunk_budget(rendered[0]), count)
            head, pause = (rest, 0.0) if cut is None else (cut[0], cut[2])
            rest = "" if cut is None else cut[1]
            pieces = split_phonemes(head, engine.tokenize)
            for j, piece in enumerate(pieces):
                last = j == len(pieces) - 1
                yield piece, last and not rest, pause if last else WORD_CUT_PAUSE_S

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
                if len(paragraphs) == 1 or getattr(e, "fatal", False):  # an invalid override: refuse
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

    def synthesize(
        self,
        text: str,
        voice,
        options: SynthesisOptions | None = None,
        on_chunk: Callable[[AudioChunk], None] | None = None,
    ) -> SynthesisResult:
        """Whole utterance, sentence by sentence: ``stream(..., fast_start=False)`` joined (``on_chunk``
        sees each chunk as it is made, e.g. for a progress bar)."""
        options = (options or SynthesisOptions()).validate()
        t0 = time.perf_counter()
        segments: list[Any] = []
        chunks = self._run(text, voice, options, segments)
        if on_chunk is not None:
            chunks = _tapped(chunks, on_chunk)
        result = collect(chunks, int(options.sample_rate), str(getattr(voice, "name", "")), t0)
        result.segments = segments
        result.tags = output_tags(voice, options.watermark)
        return result


def _tapped(chunks: Iterator[AudioChunk], fn: Callable[[AudioChunk], None]) -> Iterator[AudioChunk]:
    for chunk in chunks:
        fn(chunk)
        yield chunk


def collect(chunks: Iterable[AudioChunk], sample_rate: int, voice: str = "", t0: float | None = None):
    """Chunks → one ``SynthesisResult``: audio joined, chunks kept as metadata, word timestamps
    counted from the start (``t0``: when the request began, for ``compute_s``)."""
    t0 = time.perf_counter() if t0 is None else t0
    audios: list[np.ndarray] = []
    meta: list[AudioChunk] = []
    timeline = Timeline()
    for chunk in chunks:
        audios.append(chunk.audio)
        timeline.add(chunk)
        meta.append(dataclasses.replace(chunk, audio=np.zeros(0, dtype=np.float32)))
    return SynthesisResult(
        audio=np.concatenate(audios).astype(np.float32) if audios else np.zeros(0, np.float32),
        sample_rate=int(sample_rate),
        chunks=meta,
        voice=voice,
        compute_s=time.perf_counter() - t0,
        first_chunk_s=meta[0].since_start_s if meta else 0.0,
        words=timeline.words,
    )


def _preview(text: str, n: int = 40) -> str:
    t = str(text or "")
    return repr(t if len(t) <= n else t[:n] + "…")


def _text_error(msg: str) -> Exception:
    """The front end's TextError: one exception type for callers, whichever part refused the text."""
    return TextError(msg)
