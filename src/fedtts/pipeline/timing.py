"""Word timestamps from the model's own durations, and subtitles (SRT, WebVTT) made from them.

The runtime graph returns how many frames (``FRAME_SAMPLES`` samples at 24 kHz) each phoneme token
lasts, pads included. A segment's ``units`` (front end: a word, a group of words espeak ran together,
or a Chinese character) are found in its phoneme string; a piece's tokens map to those units, so each
unit's start is the first frame of its first token, minus the silence the pipeline trimmed. Times are
in seconds, so they hold at any speed (the durations already include it) and at 24 or 32 kHz.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fedtts.engine.onnx_engine import SAMPLE_RATE

__all__ = [
    "FRAME_SAMPLES",
    "ONSET_LEAD_S",
    "SUBTITLE_FORMATS",
    "WordTiming",
    "Timeline",
    "piece_words",
    "subtitle_cues",
    "subtitle_format",
    "to_srt",
    "to_vtt",
    "unit_ranges",
    "write_subtitles",
]

FRAME_SAMPLES = 600  # audio samples (24 kHz) per duration frame of the Kokoro decoder
SUBTITLE_FORMATS = ("srt", "vtt")
CUE_MAX_CHARS = 42  # a subtitle line people can read at a glance (broadcast guidelines: 37–42)
CUE_MAX_S = 6.0
CUE_GAP_S = 0.6  # a pause this long (or a sentence end) starts a new cue
# A phoneme is heard before its first duration frame (the decoder's convolutions look ahead): on
# isolated words after silence (20 en + 11 zh, jf_alpha and jm_kumo) the acoustic onset at −40 dB
# came 25–52 ms (median per voice and language) before the token's first frame. Boundaries move this
# much earlier. Calibrated on signal onsets, not on the ASR that the benchmark compares against.
ONSET_LEAD_S = 0.04
_PUNCT = ",.!?;:…—"
_SENTENCE_END = tuple(".!?…")
_ZH_PUNCT = str.maketrans({",": "，", ".": "。", "!": "！", "?": "？", ";": "；", ":": "："})


@dataclass(frozen=True)
class WordTiming:
    """One word (English) or word of characters (Mandarin, with each character in ``chars``)."""

    text: str
    start_s: float
    end_s: float
    chars: tuple[WordTiming, ...] = ()
    punct: str = ""  # the punctuation read after the word (",", "."...): subtitles show it

    def shifted(self, dt: float) -> WordTiming:
        return WordTiming(
            self.text,
            round(self.start_s + dt, 3),
            round(self.end_s + dt, 3),
            tuple(c.shifted(dt) for c in self.chars),
            self.punct,
        )

    def as_dict(self) -> dict:
        """Kokoro-FastAPI's captioned-speech shape (``word``, ``start_time``, ``end_time``)."""
        d: dict = {"word": self.text, "start_time": self.start_s, "end_time": self.end_s}
        if self.chars:
            d["characters"] = [c.as_dict() for c in self.chars]
        return d


def _squash(ph: str) -> str:
    return re.sub(r"\s+", " ", ph).strip()


def unit_ranges(phonemes: str, units: Sequence[tuple[str, str, bool]]) -> list[tuple[int, int] | None]:
    """Character range of each unit's phonemes in the segment's ``phonemes`` (None: not found)."""
    out: list[tuple[int, int] | None] = []
    cursor = 0
    for _, ph, _ in units:
        ph = _squash(ph)
        at = phonemes.find(ph, cursor) if ph else -1
        if at < 0:
            out.append(None)
            continue
        out.append((at, at + len(ph)))
        cursor = at + len(ph)
    return out


def piece_words(
    units: Sequence[tuple[str, str, bool]],
    ranges: Sequence[tuple[int, int] | None],
    phonemes: str,
    piece: str,
    piece_at: int,
    vocab: dict,
    frames: np.ndarray,
    trim_start: int,
    n_samples: int,
) -> list[WordTiming]:
    """Word timings of one rendered piece, in seconds from the start of its (trimmed) audio.

    ``piece`` starts at character ``piece_at`` of the segment's ``phonemes`` (a cut may have added a
    comma at its end, which is not the text's); ``frames`` are the graph's
    frames per token, both pads included; ``trim_start`` samples were cut from the front."""
    starts: list[int] = []  # per character of the piece: its token's first sample, -1 if no token
    ends: list[int] = []
    edges = np.concatenate([[0], np.cumsum(np.asarray(frames, dtype=np.int64))]) * FRAME_SAMPLES
    edges -= int(ONSET_LEAD_S * SAMPLE_RATE)
    tok = 1  # frames[0] is the leading pad
    for ch in piece:
        if ch in vocab and tok < len(frames) - 1:
            starts.append(int(edges[tok]) - trim_start)
            ends.append(int(edges[tok + 1]) - trim_start)
            tok += 1
        else:
            starts.append(-1)
            ends.append(-1)

    def clip(x: int) -> float:
        return round(min(max(x, 0), n_samples) / SAMPLE_RATE, 3)

    timed: list[tuple[str, float, float, bool, str]] = []
    for (text, _, joins), rng in zip(units, ranges, strict=True):
        if rng is None or not text:
            continue
        a, b = rng[0] - piece_at, rng[1] - piece_at
        if a < 0 or a >= len(piece):  # the unit starts in another piece
            continue
        idx = [k for k in range(a, min(b, len(piece))) if starts[k] >= 0]
        if not idx:
            continue
        punct = re.match(f"[{_PUNCT}]*", phonemes[rng[1] :]).group(0)
        timed.append((text, clip(starts[idx[0]]), clip(ends[idx[-1]]), joins, punct))
    return _words(timed)


def _words(timed: list[tuple[str, float, float, bool, str]]) -> list[WordTiming]:
    """Units → words: characters that continue a word are grouped under it; a unit of several
    English words (espeak ran them together) is shared out by their letters."""
    out: list[WordTiming] = []
    chars: list[WordTiming] = []
    for text, t0, t1, joins, punct in timed:
        if joins and chars:
            chars.append(WordTiming(text, t0, t1, punct=punct))
            continue
        if chars:
            out.append(_cjk_word(chars))
            chars = []
        if _is_cjk(text):
            chars = [WordTiming(text, t0, t1, punct=punct)]
            continue
        parts = text.split()
        if len(parts) <= 1:
            out.append(WordTiming(text, t0, t1, punct=punct))
            continue
        weights = np.array([max(1, sum(c.isalnum() for c in p)) for p in parts], dtype=np.float64)
        cuts = t0 + (t1 - t0) * np.concatenate([[0.0], np.cumsum(weights) / weights.sum()])
        out.extend(
            WordTiming(
                p,
                round(float(cuts[k]), 3),
                round(float(cuts[k + 1]), 3),
                punct="" if k < len(parts) - 1 else punct,
            )
            for k, p in enumerate(parts)
        )
    if chars:
        out.append(_cjk_word(chars))
    return out


def _is_cjk(text: str) -> bool:
    return bool(text) and all("\u3400" <= c <= "\u9fff" or "\uf900" <= c <= "\ufaff" for c in text)


def _cjk_word(chars: list[WordTiming]) -> WordTiming:
    text = "".join(c.text for c in chars)
    return WordTiming(text, chars[0].start_s, chars[-1].end_s, tuple(chars), chars[-1].punct)


# ---------------------------------------------------------------------------- subtitles
@dataclass(frozen=True)
class Cue:
    start_s: float
    end_s: float
    text: str


def subtitle_cues(words: Iterable[WordTiming]) -> list[Cue]:
    """Words grouped into readable cues: at most ``CUE_MAX_CHARS`` characters and ``CUE_MAX_S``
    seconds, a new cue after a sentence end or a pause of ``CUE_GAP_S``."""
    cues: list[Cue] = []
    cur: list[WordTiming] = []

    def text_of(ws: list[WordTiming]) -> str:
        out = ""
        for w in ws:
            zh = _is_cjk(w.text)
            sep = "" if not out or (zh and (_is_cjk(out[-1]) or out[-1] in "，。！？；：")) else " "
            out += sep + w.text + (w.punct.translate(_ZH_PUNCT) if zh else w.punct)
        return out.rstrip("，,;；:：—")

    for w in words:
        if cur:
            gap = w.start_s - cur[-1].end_s
            longer = len(text_of([*cur, w])) > CUE_MAX_CHARS or w.end_s - cur[0].start_s > CUE_MAX_S
            if gap >= CUE_GAP_S or longer or cur[-1].punct.endswith(_SENTENCE_END):
                cues.append(Cue(cur[0].start_s, cur[-1].end_s, text_of(cur)))
                cur = []
        cur.append(w)
    if cur:
        cues.append(Cue(cur[0].start_s, cur[-1].end_s, text_of(cur)))
    return cues


def _stamp(t: float, sep: str) -> str:
    ms = int(round(max(t, 0.0) * 1000))
    h, ms = divmod(ms, 3_600_000)
    m, ms = divmod(ms, 60_000)
    s, ms = divmod(ms, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}{sep}{ms:03d}"


def to_srt(words: Iterable[WordTiming]) -> str:
    blocks = [
        f"{i}\n{_stamp(c.start_s, ',')} --> {_stamp(c.end_s, ',')}\n{c.text}\n"
        for i, c in enumerate(subtitle_cues(words), 1)
    ]
    return "\n".join(blocks)


def to_vtt(words: Iterable[WordTiming]) -> str:
    blocks = [
        f"{_stamp(c.start_s, '.')} --> {_stamp(c.end_s, '.')}\n{c.text}\n" for c in subtitle_cues(words)
    ]
    return "WEBVTT\n\n" + "\n".join(blocks)


def subtitle_format(path: str | Path) -> str:
    """``srt`` or ``vtt`` from a file name; a ValueError naming the file otherwise."""
    fmt = Path(path).suffix.lower().lstrip(".")
    if fmt not in SUBTITLE_FORMATS:
        raise ValueError(f"{path}: subtitles must be .srt or .vtt, got {Path(path).suffix or 'no suffix'!r}")
    return fmt


def write_subtitles(path: str | Path, words: Iterable[WordTiming]) -> Path:
    """Write ``words`` as SRT or WebVTT (by suffix), atomically."""
    path = Path(path)
    text = to_srt(words) if subtitle_format(path) == "srt" else to_vtt(words)
    tmp = path.with_name(f".{path.name}.part")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
    return path


class Timeline:
    """Word timings of a stream of chunks counted from its start, gathered as the chunks come."""

    def __init__(self) -> None:
        self.words: list[WordTiming] = []
        self._samples = 0

    def add(self, chunk) -> None:
        """``chunk``: an ``AudioChunk`` (its ``words`` count from its own start)."""
        at = self._samples / chunk.sample_rate
        self.words.extend(w.shifted(at) for w in chunk.words)
        self._samples += len(chunk.audio)
