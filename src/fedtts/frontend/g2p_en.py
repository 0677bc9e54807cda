"""English G2P: espeak-ng IPA mapped onto Kokoro/misaki symbols (misaki EspeakFallback conventions)."""

from __future__ import annotations

import functools
import math
import re
import shutil
import subprocess

__all__ = ["espeak_ipa", "ipa_to_kokoro", "en_g2p", "en_g2p_units", "pair_words", "ACRONYMS", "SPELLED"]

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
# Capitalised words are read as words (headlines, shouting, corpus transcripts are written in capitals);
# these are spelled letter by letter wherever they appear, even in a shouted sentence, because they are
# never English words or are read as letters by convention (FAQ, IQ: espeak would say "fak", "ik").
# NASA, NATO, UNESCO, SCUBA, LASER are words and are not here.
SPELLED = frozenset(
    "AI API ATM BBC CCTV CEO CFO CIA CNN CPU CTO DIY DNA DVD EU FAQ FBI GPS GPU HTML HTTP HTTPS IBM ID IQ "
    "IRS JSON LCD MIT NBA NFL NHS NYC PC PDF PR QR RNA SMS SQL SUV TTS TV UFO UK UN URL USA USB VIP VPN "
    "WWW XML".split()
)
# English words that, in capitals inside ordinary text, are acronyms ("the US", "IT support", "the WHO"),
# and in a shouted sentence are the words ("TELL US", "IT IS", "WHO IS IT"). AM/PM after a number are
# spelled even when shouted ("AT NINE AM").
AMBIGUOUS = frozenset({"US", "IT", "AM", "PM", "WHO", "LED", "PIN"})
_NUMBER_WORDS = frozenset(
    "one two three four five six seven eight nine ten eleven twelve oh o'clock fifteen thirty forty fifty "
    "twenty".split()
)
# Vowelless capitals that are still read as words: abbreviations espeak expands, interjections.
VOWELLESS_WORDS = frozenset(
    {
        "MR",
        "MRS",
        "DR",
        "ST",
        "HMM",
        "HM",
        "MM",
        "MMM",
        "SHH",
        "SH",
        "PSST",
        "PST",
        "BRR",
        "GRR",
        "TSK",
        "ZZZ",
    }
)


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


def _is_shouted(tokens: list[str]) -> bool:
    """A run written in capitals (≥ 2 words of ≥ 2 letters, ≥ 75 % of them all caps): a headline or a
    corpus transcript, whose capitals say nothing about acronyms."""
    words = [t for t in tokens if len(t) > 1 and t[0].isalpha()]
    caps = sum(t.isupper() for t in words)
    return caps >= 2 and caps >= 0.75 * len(words)


def _caps_reading(tok: str, shouted: bool, after_number: bool = False) -> str | None:
    """How an all-caps token is read: its Kokoro spelling (letters), or None to read it as a word."""
    bare = tok.replace("'", "").replace("’", "")
    if tok in SPELLED or (tok in AMBIGUOUS and not shouted) or (tok in ("AM", "PM") and after_number):
        return _spell(tok)
    if not re.search(r"[AEIOUY]", bare) and bare not in VOWELLESS_WORDS:
        return _spell(tok)  # unpronounceable: NSFW, MP (of MP3), HTTP
    return None


def en_g2p(text: str) -> tuple[str, str]:
    """(readable IPA, Kokoro phonemes) for an English run (``en_g2p_units`` without the units)."""
    readable, kokoro, _ = en_g2p_units(text)
    return readable, kokoro


def en_g2p_units(text: str) -> tuple[str, str, list[tuple[str, str]]]:
    """(readable IPA, Kokoro phonemes) for an English run. Words in capitals are read as words (in a
    shouted run, lower-cased first so espeak's own caps-acronym rules do not spell "US" or "IT"); known
    acronyms (`ACRONYMS`, `SPELLED`, `AMBIGUOUS` outside shouting) and vowelless words are spelled."""
    tokens = re.findall(r"[A-Za-z][A-Za-z'’]*|[^\sA-Za-z]+", text)
    shouted = _is_shouted(tokens)
    parts: list[str] = []
    prev = ""
    for tok in tokens:
        after_number, prev = prev.lower() in _NUMBER_WORDS or prev.strip().isdigit(), tok
        if tok in ACRONYMS:
            parts.append("\0" + ACRONYMS[tok])
        elif tok.isupper() and len(tok) > 1 and tok[0].isalpha():
            spelled = _caps_reading(tok, shouted, after_number)
            if spelled is not None:
                parts.append("\0" + spelled)
            else:
                parts.append(tok.lower() if shouted else tok)
        else:
            parts.append(tok)
    # group plain words so espeak is called once per run of plain text
    readable, kokoro, buf = [], [], []
    units: list[tuple[str, str]] = []  # (text words, their phonemes): what word timestamps name

    def flush():
        if buf:
            chunk = " ".join(buf)
            core = re.sub(r"[^\w'’ -]", " ", chunk).strip()
            if core:
                ipa = espeak_ipa(core)
                readable.append(ipa.replace("^", ""))
                kokoro.append(ipa_to_kokoro(ipa))
                units.extend(
                    pair_words([w for w in core.split() if any(c.isalnum() for c in w)], kokoro[-1].split())
                )
            buf.clear()

    for p, tok in zip(parts, tokens, strict=True):
        if p.startswith("\0"):
            flush()
            readable.append(p[1:])
            kokoro.append(p[1:])
            units.append((tok, p[1:]))
        else:
            buf.append(p)
    flush()
    return " ".join(readable), " ".join(kokoro), units


_STRESS = str.maketrans("", "", "ˈˌ")
_PHONES_PER_LETTER = 0.85  # English spelling to Kokoro symbols, on average
# (text words, phoneme words) a group may join: espeak runs short words together ("of the" → "ʌvðə")
_GROUPS = ((1, 1), (2, 1), (3, 1), (4, 1), (1, 2), (1, 3))


def pair_words(words: list[str], phons: list[str]) -> list[tuple[str, str]]:
    """Text words matched to espeak's phoneme words, in order: one to one when the counts agree,
    else the monotonic grouping whose lengths fit best (espeak joins unstressed words, and may split
    a hyphenated one). A group of several text words is one unit ("of the", "ʌvðə")."""
    if len(words) == len(phons) or not words or not phons:
        if len(words) == len(phons):
            return list(zip(words, phons, strict=True))
        return [(" ".join(words), " ".join(phons))] if words and phons else []
    letters = [max(1, sum(c.isalpha() for c in w)) for w in words]
    sounds = [max(1, len(p.translate(_STRESS))) for p in phons]
    n, m = len(words), len(phons)
    inf = float("inf")
    cost = [[inf] * (m + 1) for _ in range(n + 1)]
    back: list[list[tuple[int, int] | None]] = [[None] * (m + 1) for _ in range(n + 1)]
    cost[0][0] = 0.0
    for i in range(n + 1):
        for j in range(m + 1):
            if cost[i][j] == inf:
                continue
            for a, b in _GROUPS:
                if i + a > n or j + b > m:
                    continue
                ratio = (sum(sounds[j : j + b]) + 0.5) / (_PHONES_PER_LETTER * sum(letters[i : i + a]) + 0.5)
                c = cost[i][j] + math.log(ratio) ** 2 + 0.3 * (a + b - 2)
                if c < cost[i + a][j + b]:
                    cost[i + a][j + b] = c
                    back[i + a][j + b] = (a, b)
    if cost[n][m] == inf:
        return [(" ".join(words), " ".join(phons))]
    out: list[tuple[str, str]] = []
    i, j = n, m
    while i or j:
        a, b = back[i][j]
        out.append((" ".join(words[i - a : i]), " ".join(phons[j - b : j])))
        i, j = i - a, j - b
    return out[::-1]
