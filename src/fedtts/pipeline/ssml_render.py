"""Rendering an SSML document (``fedtts.frontend.ssml``) span by span through ``Synthesizer._run``.

A span is rendered exactly like a plain text (same chunking, trimming, fades, resampling), with its
own voice (``<voice name>``, resolved by ``Synthesizer.voice_resolver`` or the stock/saved-profile
lookup), speed (``<prosody rate>`` × the request's speed), pitch (``<prosody pitch>`` as the style
pack's measured pitch shift, ``voice.style.adjust_prosody``) and gain (``<prosody volume>``); the
silence after its last chunk is set to the span's break or paragraph pause. Voices are resolved
before any audio is made, so an unknown ``<voice>`` is an error (HTTP 400), not a stream cut short.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from fedtts.frontend import TextError
from fedtts.frontend.ssml import SsmlError, parse_ssml
from fedtts.pipeline.chunks import AudioChunk, SynthesisOptions
from fedtts.voice import resolve_voice_name
from fedtts.voice.style import adjust_prosody, knobs_available

__all__ = ["MAX_PITCH_ST", "render_ssml", "span_voices"]

log = logging.getLogger("fedtts.frontend")  # the logger the CLI already shows for text notes

MAX_PITCH_ST = 6.0  # the pitch knob's calibrated range (voice.style.adjust_prosody)


def span_voices(doc, voice, resolver: Callable[[str], Any] | None = None) -> list[Any]:
    """The voice of every span (the request's voice outside ``<voice>``), pitch-shifted as asked.
    An unknown voice name raises ``SsmlError`` naming it and its position."""
    resolve = resolver or resolve_voice_name
    named: dict[str, Any] = {}
    shifted: dict[tuple[str | None, float], Any] = {}
    warned: set[str] = set()
    out = []
    for span in doc.spans:
        base = voice
        if span.voice is not None:
            if span.voice not in named:
                try:
                    named[span.voice] = resolve(span.voice)
                except (ValueError, LookupError) as e:  # VoiceError, the service's ServiceError
                    raise SsmlError(
                        f"<voice name={span.voice!r}>: {e}", span.voice_line, span.voice_column
                    ) from None
            base = named[span.voice]
        pitch = float(span.pitch_st)
        if pitch:
            if abs(pitch) > MAX_PITCH_ST and "clamp" not in warned:
                warned.add("clamp")
                log.warning(
                    "SSML line %d, column %d: a pitch of %+.1f semitones was limited to ±%g (the calibrated range)",
                    span.line,
                    span.column,
                    pitch,
                    MAX_PITCH_ST,
                )
            pitch = float(np.clip(pitch, -MAX_PITCH_ST, MAX_PITCH_ST))
            key = (span.voice, pitch)
            if key not in shifted:
                shifted[key] = _pitched(base, pitch, warned)
            base = shifted[key]
        out.append(base)
    return out


def _pitched(voice, pitch_st: float, warned: set[str]):
    if not knobs_available() or getattr(voice, "pack", None) is None:
        if "knobs" not in warned:
            warned.add("knobs")
            log.warning(
                "SSML <prosody pitch> is ignored: the pitch calibration (prosody_knobs.npz) is missing"
            )
        return voice
    return adjust_prosody(voice, pitch_st)


def _gain(audio: np.ndarray, volume_db: float) -> np.ndarray:
    if not volume_db:
        return audio
    if math.isinf(volume_db) and volume_db < 0:
        return np.zeros_like(audio)
    return np.clip(audio * np.float32(10.0 ** (volume_db / 20.0)), -1.0, 1.0).astype(np.float32)


def _set_pause(chunk, seconds: float):
    """The chunk with exactly ``seconds`` of trailing silence (its own trailing zeros cut or padded)."""
    sr = chunk.sample_rate
    have = int(round(chunk.pause_s * sr))
    want = int(round(max(seconds, 0.0) * sr))
    audio = chunk.audio
    if want > have:
        audio = np.concatenate([audio, np.zeros(want - have, dtype=np.float32)])
    elif want < have:
        audio = audio[: max(len(audio) - (have - want), 1)]
    return dataclasses.replace(chunk, audio=audio, pause_s=want / sr)


def render_ssml(synth, text: str, voice, options, sink: list | None, fast_start: bool = False) -> Iterator:
    """AudioChunks of an SSML ``text``: spans in order, a leading ``<break>`` as a silent chunk,
    chunk indices and times counted over the whole document."""
    options = (options or SynthesisOptions()).validate()
    t_start = time.perf_counter()
    doc = parse_ssml(text)
    for n in doc.notes:
        log.warning("%s", n.message)
    voices = span_voices(doc, voice, getattr(synth, "voice_resolver", None))
    sr = int(options.sample_rate)
    index = 0
    if doc.lead_s > 0:
        n = int(round(doc.lead_s * sr))
        yield AudioChunk(
            audio=np.zeros(n, dtype=np.float32),
            sample_rate=sr,
            index=0,
            text="",
            phonemes="",
            pause_s=n / sr,
            since_start_s=time.perf_counter() - t_start,
        )
        index += 1
    first_error: Exception | None = None
    spoke = False
    clamped = False
    for i, (span, v) in enumerate(zip(doc.spans, voices, strict=True)):
        want = float(options.speed) * float(span.rate)
        speed = float(np.clip(want, 0.25, 4.0))
        if speed != want and not clamped:
            clamped = True
            log.warning(
                "SSML line %d, column %d: a speaking rate of %.2f× was limited to %.2f× (0.25–4)",
                span.line,
                span.column,
                want,
                speed,
            )
        opts = dataclasses.replace(options, speed=speed)
        pace = float(np.clip(speed * float(getattr(v, "pace", 1.0)), 0.25, 4.0))
        pause = span.pause_after(pace, last=i == len(doc.spans) - 1)
        t_span = time.perf_counter() - t_start
        pending = None
        try:
            for chunk in synth._run(span.text, v, opts, sink, fast_start and index == 0):
                if pending is not None:
                    yield dataclasses.replace(
                        pending, index=index, since_start_s=t_span + pending.since_start_s
                    )
                    index += 1
                pending = dataclasses.replace(chunk, audio=_gain(chunk.audio, span.volume_db))
        except TextError as e:  # a span with nothing speakable (only symbols): the rest is read
            if getattr(e, "fatal", False):
                raise
            log.warning("SSML line %d, column %d: skipped %r: %s", span.line, span.column, span.text[:40], e)
            first_error = first_error or e
        if pending is not None:
            if pause is not None:
                pending = _set_pause(pending, pause)
            yield dataclasses.replace(pending, index=index, since_start_s=t_span + pending.since_start_s)
            index += 1
            spoke = True
    if not spoke:
        raise first_error or TextError("the SSML document has no text to speak")
