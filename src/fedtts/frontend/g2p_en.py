"""English G2P: espeak-ng IPA mapped onto Kokoro/misaki symbols (misaki EspeakFallback conventions)."""

from __future__ import annotations

import functools
import re
import shutil
import subprocess

__all__ = ["espeak_ipa", "ipa_to_kokoro", "en_g2p", "ACRONYMS"]

E2M = sorted(
    {
        "ʔˌn\u0329": "ʔn",
        "ʔn\u0329": "ʔn",
        "a^ɪ": "I",
        "a^ʊ": "W",
        "d^ʒ": "ʤ",
        "e^ɪ": "A",
        "e": "A",
        "t^ʃ": "ʧ",
        "ɔ^ɪ": "Y",
        "ə^l": "ᵊl",
        "ʲo": "jo",
        "ʲə": "jə",
        "ʲ": "",
        "ɚ": "əɹ",
        "r": "ɹ",
        "x": "k",
        "ç": "k",
        "ɐ": "ə",
        "ɬ": "l",
        "\u0303": "",
        "aɪ": "I",
        "aʊ": "W",
        "dʒ": "ʤ",
        "eɪ": "A",
        "tʃ": "ʧ",
        "ɔɪ": "Y",
        "oʊ": "O",
    }.items(),
    key=lambda kv: -len(kv[0]),
)

_LETTERS = dict(
    zip(
        "abcdefghijklmnopqrstuvwxyz",
        "ˈA bˈi sˈi dˈi ˈi ˈɛf ʤˈi ˈAʧ ˈI ʤˈA kˈA ˈɛl ˈɛm ˈɛn ˈO pˈi kjˈu ˈɑɹ ˈɛs tˈi jˈu vˈi dˈʌbᵊlju ˈɛks wˈI zˈi".split(),
        strict=False,
    )
)
ACRONYMS = {"TTS": "tˈi tˈi ˈɛs", "GPU": "ʤˈi pˈi jˈu", "CPU": "sˈi pˈi jˈu", "USA": "jˈu ˈɛs ˈA"}


def ipa_to_kokoro(ps: str) -> str:
    """espeak IPA (with ^ ties or none) → Kokoro symbols, as misaki's EspeakFallback (American)."""
    for old, new in E2M:
        ps = ps.replace(old, new)
    ps = re.sub(r"(\S)\u0329", r"ᵊ\1", ps).replace(chr(809), "")
    ps = ps.replace("o^ʊ", "O").replace("ɜːɹ", "ɜɹ").replace("ɜː", "ɜɹ").replace("ɪə", "iə").replace("ː", "")
    ps = ps.replace("o", "ɔ").replace("ɾ", "T").replace("ʔ", "t")
    return ps.replace("^", "")


@functools.lru_cache(maxsize=4096)
def espeak_ipa(text: str) -> str:
    """Raw espeak-ng IPA for English text (one process per run; lines joined by spaces)."""
    exe = shutil.which("espeak-ng")
    if not exe:
        raise RuntimeError("espeak-ng is not installed (apt-get install espeak-ng)")
    r = subprocess.run(
        [exe, "-q", "--ipa", "--tie=^", "-v", "en-us"], input=text, capture_output=True, text=True, check=True
    )
    return " ".join(line.strip() for line in r.stdout.splitlines() if line.strip())


def _spell(word: str) -> str:
    return " ".join(_LETTERS[c] for c in word.lower() if c in _LETTERS)


def en_g2p(text: str) -> tuple[str, str]:
    """(readable IPA, Kokoro phonemes) for an English run; acronyms (all caps, ≤5) spelled."""
    parts: list[str] = []
    for tok in re.findall(r"[A-Za-z][A-Za-z'’]*|[^\sA-Za-z]+", text):
        if tok in ACRONYMS:
            parts.append("\0" + ACRONYMS[tok])
        elif tok.isupper() and 1 < len(tok) <= 5 and tok.isalpha():
            parts.append("\0" + _spell(tok))
        else:
            parts.append(tok)
    # group plain words so espeak is called once per run of plain text
    readable, kokoro, buf = [], [], []

    def flush():
        if buf:
            chunk = " ".join(buf)
            core = re.sub(r"[^\w'’ -]", " ", chunk).strip()
            if core:
                ipa = espeak_ipa(core)
                readable.append(ipa.replace("^", ""))
                kokoro.append(ipa_to_kokoro(ipa))
            buf.clear()

    for p in parts:
        if p.startswith("\0"):
            flush()
            readable.append(p[1:])
            kokoro.append(p[1:])
        else:
            buf.append(p)
    flush()
    return " ".join(readable), " ".join(kokoro)
