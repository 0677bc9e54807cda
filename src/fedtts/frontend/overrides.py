"""Pronunciations given by the user (inline ``[词](pinyin/IPA)`` and dictionary entries), checked
against what the model can say: every pinyin syllable must exist with a tone 1–5, every IPA symbol
must be in the Kokoro vocabulary. An invalid one is an error naming the syllable/symbol, because a
silently mangled pronunciation is worse than a refusal.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

from fedtts.engine.assets import load_vocab

from .g2p_en import ipa_to_kokoro
from .g2p_zh import _TONE_MARKS, pinyin_to_kokoro
from .normalize import is_zh

__all__ = [
    "PronunciationError",
    "Override",
    "check_pronunciation",
    "find_overrides",
    "find_unbalanced",
    "pinyin_syllables",
    "model_symbols",
]

# [word](pronunciation): neither part may hold brackets, the pronunciation no newline
_OVERRIDE = re.compile(r"(?<!!)\[([^\[\]\n]+)\]\(([^()\[\]\n]*)\)")
# [word]( with no closing parenthesis: the dangling pronunciation runs up to the next Chinese
# character, sentence end, bracket or the end of the text
_UNBALANCED = re.compile(r"(?<!!)\[([^\[\]\n]+)\]\(([^()\[\]\n\u4e00-\u9fff。！？!?；;]*)")
# a markdown link target, not a pronunciation: URL, path, anchor (IPA may be written /like this/)
_LINK = re.compile(
    r"^\s*(?:[a-z][a-z0-9+.-]*://|www\.|mailto:|#|\.{1,2}/|[^\s/]+/|[^\s]+\.(?:html?|md|pdf|png|jpe?g)\s*$)",
    re.I,
)
_PINYIN_CHARS = re.compile(r"[a-zA-Z0-9üÜ" + "".join(_TONE_MARKS) + r"\s,']+")
_TONE_MARK_CHARS = set(_TONE_MARKS) - {"ü"}


class PronunciationError(ValueError):
    """A pronunciation the model cannot say; the message names the offending syllable or symbol."""


@dataclass(frozen=True)
class Override:
    """One inline override found in a text (0-based ``start``/``end`` in that text)."""

    start: int
    end: int
    word: str
    pronunciation: str
    link: bool = False  # a markdown link [text](target), not a pronunciation

    @property
    def source(self) -> str:
        return f"[{self.word}]({self.pronunciation})"


@functools.lru_cache(maxsize=1)
def pinyin_syllables() -> frozenset[str]:
    """Every toneless pinyin syllable (ü as v) some character is read with, from pypinyin's table."""
    from pypinyin import pinyin_dict

    out: set[str] = set()
    for readings in pinyin_dict.pinyin_dict.values():
        for r in readings.split(","):
            base = "".join(_TONE_MARKS.get(c, c)[0] for c in r)
            if re.fullmatch(r"[a-z]+", base):
                out.add(base)
    return frozenset(out)


@functools.lru_cache(maxsize=1)
def model_symbols() -> frozenset[str]:
    """The phoneme symbols the model has tokens for."""
    return frozenset(load_vocab())


def _syllable(syl: str) -> str:
    """'chóng' / 'chong2' / 'lü4' / 'huar1' → tone3 'chong2'; PronunciationError naming the syllable."""
    tone, buf = "", ""
    for c in syl.lower():
        if c in _TONE_MARKS:
            b, t = _TONE_MARKS[c]
            buf += b
            if t != "0":
                if tone:
                    raise PronunciationError(f"pinyin syllable {syl!r} has two tone marks")
                tone = t
        else:
            buf += c
    buf = buf.replace("'", "")
    m = re.fullmatch(r"([a-z]+)(\d?)", buf)
    if not m:
        raise PronunciationError(f"{syl!r} is not a pinyin syllable")
    base, digit = m.groups()
    if digit and tone:
        raise PronunciationError(f"pinyin syllable {syl!r} has both a tone mark and a tone number")
    known = pinyin_syllables()
    if base not in known and not (base.endswith("r") and base[:-1] in known and base != "r"):
        raise PronunciationError(f"{syl!r} is not a pinyin syllable")
    if digit and digit not in "12345":
        raise PronunciationError(f"pinyin syllable {syl!r}: tone {digit} does not exist (tones are 1–5)")
    return base + (digit or tone or "5")


def _looks_like_pinyin(word: str, pron: str) -> bool:
    """Pinyin for a Chinese word written in Latin letters, or any text with tone marks/numbers."""
    if not _PINYIN_CHARS.fullmatch(pron):
        return False
    return is_zh(word) or any(c.isdigit() or c in _TONE_MARK_CHARS for c in pron)


@functools.lru_cache(maxsize=4096)
def check_pronunciation(word: str, pron: str) -> tuple[str, str, str]:
    """(readable, Kokoro phonemes, lang) for a user pronunciation of ``word``: pinyin when it is
    written as pinyin (always for a Chinese word in Latin letters), else IPA. Raises
    PronunciationError naming the syllable or symbol the model cannot say."""
    pron = str(pron).strip()
    if len(pron) > 2 and pron[0] + pron[-1] in ("//", "[]"):  # IPA written /ˈeɪ/ or [ˈeɪ]
        pron = pron[1:-1].strip()
    if not pron:
        raise PronunciationError("the pronunciation is empty")
    if _looks_like_pinyin(word, pron):
        syllables = [_syllable(s) for s in pron.replace(",", " ").split()]
        kokoro = "".join(pinyin_to_kokoro(s) for s in syllables)
        bad = [s for s in syllables if not pinyin_to_kokoro(s)]
        if bad:
            raise PronunciationError(f"pinyin syllable {bad[0]!r} has no reading in the model")
        return " ".join(syllables), kokoro, "zh"
    kokoro = ipa_to_kokoro(pron)
    symbols = model_symbols()
    for c in kokoro:
        if c.isspace() or c in symbols:
            continue
        token = next((t for t in pron.split() if c in t), None)
        where = f" (in {token!r})" if token and token != c else ""
        hint = " (pinyin needs tone numbers 1–5 or tone marks)" if c.isdigit() else ""
        raise PronunciationError(
            f"symbol {c!r}{where} is not in the model's phoneme set (U+{ord(c):04X}){hint}"
        )
    if not kokoro.strip():
        raise PronunciationError("the pronunciation has no phoneme symbols")
    return pron, kokoro, "en"


def find_overrides(text: str) -> list[Override]:
    """Inline overrides ``[word](pronunciation)`` of a text; markdown links are flagged ``link``
    (images ``![alt](src)`` are not matched: markup stripping removes them)."""
    return [
        Override(m.start(), m.end(), m.group(1), m.group(2), bool(_LINK.match(m.group(2))))
        for m in _OVERRIDE.finditer(text)
    ]


def find_unbalanced(text: str) -> list[Override]:
    """``[word](pronunci…`` whose parenthesis is never closed (``pronunciation`` is the dangling part)."""
    return [
        Override(m.start(), m.end(), m.group(1), m.group(2))
        for m in _UNBALANCED.finditer(text)
        if text[m.end() : m.end() + 1] != ")"
    ]
