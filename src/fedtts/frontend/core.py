"""Frontend: text → normalised sentence/clause segments with pinyin/IPA and Kokoro phonemes."""

from __future__ import annotations

import dataclasses
import logging
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from fedtts.engine.assets import load_vocab

from .cache import cache_get, cache_put, default_cache_dir, key_for
from .dictionary import PronunciationDict
from .errors import OverrideError, TextError
from .g2p_en import en_g2p_units
from .g2p_zh import pinyin_to_kokoro, zh_pinyin
from .normalize import is_zh, normalize
from .overrides import PronunciationError, check_pronunciation, find_overrides, find_unbalanced
from .screen import LANGUAGES, Note, Notes, fold_numbers, screen, strip_escapes, strip_markup_noted
from .ssml import is_ssml, parse_ssml

__all__ = [
    "FRONTEND_VERSION",
    "FrontendConfig",
    "Segment",
    "Frontend",
    "TextError",
    "format_analysis",
    "MAX_TOKENS",
    "Note",
    "OverrideError",
]

log = logging.getLogger("fedtts.frontend")

FRONTEND_VERSION = "3"
MAX_TOKENS = 510
SENT_PAUSE, CLAUSE_PAUSE = 0.35, 0.15
# validated inline overrides stand in the text as one private-use character each while it is split
# into sentences and clauses (so a pronunciation is never cut); the user's own such characters are
# dropped first
_PH_BASE, _PH_MAX = 0xE000, 0x1900
_ABBR_END = re.compile(r"(?:\b(?:Dr|Mr|Mrs|Ms|St|Prof|Jr|vs|etc|e\.g|i\.e)|\b[A-Z])\.$")
_SENT_END = "。！？!?…；;\n"
_CLAUSE = "，,、：:"
_PUNCT_MAP = {
    "，": ",",
    "、": ",",
    "。": ".",
    "！": "!",
    "？": "?",
    "：": ":",
    "；": ";",
    "…": "…",
    ",": ",",
    ".": ".",
    "!": "!",
    "?": "?",
    ":": ":",
    ";": ";",
}


@dataclass(frozen=True)
class _Forced:
    """A validated inline override: the word, its source ``[word](pron)`` and its reading."""

    word: str
    source: str
    readable: str
    phonemes: str
    lang: str


@dataclass(frozen=True)
class FrontendConfig:
    dict_path: Path | None = None
    use_dict: bool = False
    use_cache: bool = False
    cache_dir: Path | None = None

    def validate(self) -> FrontendConfig:
        if self.dict_path is not None and not Path(self.dict_path).is_file():
            raise ValueError(f"dict_path: dictionary file not found: {self.dict_path}")
        return self


@dataclass
class Segment:
    text: str
    normalized: str
    lang: str
    phonemes: str
    readable: str
    pause_after: float
    # what word timestamps name, in order: (text, its phonemes, continues the previous word?), e.g.
    # ("of the", "ʌvðə", False) or the characters of 银行 ("银", …, False), ("行", …, True)
    units: tuple[tuple[str, str, bool], ...] = ()


def default_dict_path() -> Path:
    """The project's pronunciation dictionary (``configs/G2P_replace_dict.jsonl`` in the repository)."""
    return Path(__file__).resolve().parents[3] / "configs" / "G2P_replace_dict.jsonl"


def _default_dict_path() -> Path | None:
    p = default_dict_path()
    return p if p.is_file() else None


_vocab: dict | None = None


def count_tokens(ph: str) -> int:
    global _vocab
    if _vocab is None:
        _vocab = load_vocab()
    return sum(1 for c in ph if c in _vocab)


def _split_sentences(text: str) -> list[tuple[str, float]]:
    """Split at sentence ends, then clauses; (piece, pause_after)."""
    out: list[tuple[str, float]] = []
    buf = ""
    for i, c in enumerate(text):
        buf += c
        nxt = text[i + 1 : i + 2]
        if c in _SENT_END or (c == "." and (not nxt or nxt.isspace()) and not _ABBR_END.search(buf)):
            out.append((buf, SENT_PAUSE))
            buf = ""
    if buf.strip():
        out.append((buf, SENT_PAUSE))
    # merge 'Dr.'-style false splits is handled by normalisation (abbreviations expanded first)
    return [(s.strip(), p) for s, p in out if s.strip()]


def _split_clauses(s: str) -> list[str]:
    parts, buf = [], ""
    for i, c in enumerate(s):
        buf += c
        if c in ",:" and s[i - 1 : i].isdigit() and s[i + 1 : i + 2].isdigit():
            continue
        if c in _CLAUSE:
            parts.append(buf)
            buf = ""
    if buf:
        parts.append(buf)
    return parts


class Frontend:
    """Text analysis; jieba/espeak loaded lazily once per process."""

    def __init__(self, cfg: FrontendConfig | None = None):
        self.cfg = (cfg or FrontendConfig()).validate()
        path = self.cfg.dict_path or _default_dict_path()
        self.dictionary = (
            PronunciationDict.load(path) if (self.cfg.use_dict and path) else PronunciationDict()
        )

    # ---------------------------------------------------------------- public
    def analyze(self, text: str, notes: list[Note] | None = None) -> list[Segment]:
        """Segments of ``text``. What was left out (foreign scripts, symbols, escape codes, markup,
        an unbalanced override) is logged as a warning and appended to ``notes`` when given."""
        if text is None or not str(text).strip():
            raise TextError("text is empty")
        if is_ssml(str(text)):
            return self._analyze_ssml(str(text), notes)
        if self.cfg.use_cache:
            root = Path(self.cfg.cache_dir) if self.cfg.cache_dir else default_cache_dir()
            key = key_for(text, self.dictionary.content_key(), FRONTEND_VERSION)
            hit = cache_get(key, root)
            segs = found = None
            if isinstance(hit, dict):
                try:
                    segs = [
                        Segment(**{**d, "units": tuple(tuple(u) for u in d.get("units", ()))})
                        for d in hit["segments"]
                    ]
                    found = [Note(n["kind"], n["message"], tuple(n["dropped"])) for n in hit["notes"]]
                except (TypeError, KeyError):
                    segs = None
            if segs is None or found is None:
                segs, found = self._analyze(text)
                value = {
                    "segments": [dataclasses.asdict(s) for s in segs],
                    "notes": [dataclasses.asdict(n) for n in found],
                }
                cache_put(key, value, root)
        else:
            segs, found = self._analyze(text)
        for n in found:
            log.warning("%s", n.message)
        if notes is not None:
            notes.extend(found)
        return segs

    def _analyze_ssml(self, text: str, notes: list[Note] | None) -> list[Segment]:
        """Segments of an SSML text (``frontend.ssml``): each span analysed as plain text, the pause
        after its last segment the span's break/paragraph pause. Voice and prosody are the
        pipeline's; here they only shape the spans (previews, phonemes, batch text fields)."""
        doc = parse_ssml(text)
        for n in doc.notes:
            log.warning("%s", n.message)
        if notes is not None:
            notes.extend(doc.notes)
        out: list[Segment] = []
        first_error: TextError | None = None
        for i, span in enumerate(doc.spans):
            try:
                segs = self.analyze(span.text, notes)
            except TextError as e:  # e.g. a span of only unsupported symbols: the others are read
                if getattr(e, "fatal", False):
                    raise
                first_error = first_error or e
                continue
            pause = span.pause_after(span.rate, last=i == len(doc.spans) - 1)
            if pause is not None:
                segs[-1] = dataclasses.replace(segs[-1], pause_after=round(pause, 3))
            out.extend(segs)
        if not out:
            raise first_error or TextError("the SSML document has no text to speak")
        return out

    def phonemize(self, text: str) -> str:
        return " ".join(s.phonemes for s in self.analyze(text))

    def preview(self, text: str) -> str:
        return format_analysis(self.analyze(text))

    # --------------------------------------------------------------- internal
    def _analyze(self, text: str) -> tuple[list[Segment], list[Note]]:
        notes = Notes()
        text, forced = _prepare(str(text), notes)
        segs: list[tuple[Segment, str]] = []
        for sent, pause in _split_sentences(text):
            group: list[tuple[Segment, str]] = []
            for cl in _split_clauses(sent):
                seg = self._segment(cl, CLAUSE_PAUSE, forced, notes)
                if seg is None:
                    continue
                if (
                    group
                    and count_tokens(" ".join(g.phonemes for g, _ in group) + " " + seg.phonemes)
                    > MAX_TOKENS - 10
                ):
                    segs.append(_merge(group, CLAUSE_PAUSE))
                    group = []
                group.append((seg, cl))
            if group:
                segs.append(_merge(group, pause))
        out = [s2 for s in segs for s2 in self._fit(*s, forced, notes)]
        if not out:
            raise TextError(_nothing_to_say(notes))
        return out, notes.build()

    def _fit(self, seg: Segment, raw: str, forced: list[_Forced], notes: Notes) -> list[Segment]:
        """Last resort for over-long clauses: split at spaces/characters."""
        if count_tokens(seg.phonemes) <= MAX_TOKENS:
            return [seg]
        words = re.findall(r"\S+\s*", raw) if " " in raw.strip() else list(raw)
        half = max(1, len(words) // 2)
        out = []
        for part, pause in (("".join(words[:half]), CLAUSE_PAUSE), ("".join(words[half:]), seg.pause_after)):
            s = self._segment(part, pause, forced, notes)
            if s:
                out.extend(self._fit(s, part, forced, notes))
        return out

    def _segment(self, raw: str, pause: float, forced: list[_Forced], notes: Notes) -> Segment | None:
        """One clause: inline overrides, dictionary, zh/en runs → Segment (None if nothing speakable)."""
        pieces: list[tuple[str, _Forced | None]] = []  # (text, inline override or None)
        buf = ""
        for c in raw:
            i = ord(c) - _PH_BASE
            if 0 <= i < len(forced):
                pieces.append((buf, None))
                pieces.append((c, forced[i]))
                buf = ""
            else:
                buf += c
        pieces.append((buf, None))
        norm_parts, read_parts, ph_parts = [], [], []
        units: list[tuple[str, str, bool]] = []
        langs = set()
        for txt, ov in pieces:
            if ov is not None:
                norm_parts.append(ov.word)
                read_parts.append(ov.readable)
                ph_parts.append(ov.phonemes)
                units.append((ov.word, ov.phonemes, False))
                langs.add(ov.lang)
                continue
            if not txt:
                continue
            matches = self.dictionary.find(txt)
            i = 0
            for a, b, ph in matches:
                self._plain(txt[i:a], norm_parts, read_parts, ph_parts, units, langs, notes)
                try:
                    r, p, lang = check_pronunciation(txt[a:b], ph)
                except PronunciationError as e:
                    raise OverrideError(f"dictionary entry {txt[a:b]!r} ({ph!r}): {e}") from None
                norm_parts.append(txt[a:b])
                read_parts.append(r)
                ph_parts.append(p)
                units.append((txt[a:b], p, False))
                langs.add(lang)
                i = b
            self._plain(txt[i:], norm_parts, read_parts, ph_parts, units, langs, notes)
        phon = re.sub(r"\s+", " ", " ".join(p for p in ph_parts if p)).strip()
        phon = re.sub(r" ([,.!?;:…])", r"\1", phon)
        if not re.search(r"[^\s,.!?;:…—\"()]", phon):
            return None
        lang = "mixed" if len(langs) > 1 else (langs.pop() if langs else "en")
        normalized = re.sub(r"\s+", " ", "".join(norm_parts)).strip()
        readable = re.sub(r"\s+", " ", " ".join(r for r in read_parts if r)).strip()
        return Segment(_restore(raw, forced).strip(), normalized, lang, phon, readable, pause, tuple(units))

    def _plain(self, txt: str, norm_parts, read_parts, ph_parts, units, langs, notes: Notes) -> None:
        if not txt:
            return
        t = screen(normalize(txt), notes)
        norm_parts.append(t)
        # runs: Chinese (incl. Chinese punctuation) vs Latin/other
        for run in re.findall(
            r"[\u4e00-\u9fff\u3000-\u303f\uff00-\uffef]+|[^\u4e00-\u9fff\u3000-\u303f\uff00-\uffef]+", t
        ):
            if is_zh(run):
                langs.add("zh")
                rd, ph = [], []
                for ch, py in zh_pinyin(run):
                    if py:
                        rd.append(py)
                        syl = pinyin_to_kokoro(py)
                        ph.append((" " if ch.startswith(" ") else "") + syl)
                        units.append((ch.strip(), syl, not ch.startswith(" ")))
                    elif ch.strip() in _PUNCT_MAP:
                        ch = ch.strip()
                        ph.append(_PUNCT_MAP[ch] + " ")
                        rd.append(_PUNCT_MAP[ch])
                    elif is_zh(ch):
                        notes.drop("reading", "reading", ch.strip())
                read_parts.append(" ".join(rd))
                ph_parts.append("".join(ph))
            elif re.search(r"[A-Za-z]", run):
                langs.add("en")
                r, p, words = en_g2p_units(run)
                units.extend((w, wp, False) for w, wp in words)
                end = run.strip()[-1:] if run.strip() else ""
                read_parts.append(r)
                ph_parts.append(p + (_PUNCT_MAP.get(end, "")))
            else:
                end = run.strip()[-1:] if run.strip() else ""
                if end in _PUNCT_MAP:
                    ph_parts.append(_PUNCT_MAP[end])


def _prepare(text: str, notes: Notes) -> tuple[str, list[_Forced]]:
    """Escape codes out, inline overrides validated and replaced by placeholders, unbalanced ones read
    as plain text, markup stripped, number symbols folded. Raises TextError for an invalid override,
    naming it, its position and the syllable/symbol."""
    text = strip_escapes(text, notes)
    forced: list[_Forced] = []
    out: list[str] = []
    pos = 0
    for ov in find_overrides(text):
        out.append(_drop_private(text[pos : ov.start], notes))
        pos = ov.end
        if ov.link:
            notes.add(
                Note("markup", f"read only the text of the link {ov.source!r}", (f"({ov.pronunciation})",))
            )
            out.append(ov.word)
            continue
        try:
            readable, phonemes, lang = check_pronunciation(ov.word, ov.pronunciation)
        except PronunciationError as e:
            raise OverrideError(
                f"pronunciation override {ov.source!r} at character {ov.start + 1}: {e}"
            ) from None
        if len(forced) >= _PH_MAX:
            raise TextError(f"too many pronunciation overrides in one text (at most {_PH_MAX})")
        forced.append(_Forced(ov.word, ov.source, readable, phonemes, lang))
        out.append(chr(_PH_BASE + len(forced) - 1))
    out.append(_drop_private(text[pos:], notes))
    text = "".join(out)
    for ov in reversed(find_unbalanced(text)):
        dangling = "(" + ov.pronunciation
        notes.add(
            Note(
                "override",
                f"unbalanced pronunciation override '[{_restore(ov.word, forced)}]{dangling}' (no closing "
                f"')'): read {_restore(ov.word, forced)!r} as plain text and dropped {dangling!r}",
                (dangling,),
            )
        )
        text = text[: ov.start] + ov.word + " " + text[ov.end :]
    text = strip_markup_noted(text, notes)
    return fold_numbers(text), forced


def _drop_private(text: str, notes: Notes) -> str:
    """The user's private-use characters (no sound, and our placeholders live there) dropped."""
    if not any(unicodedata.category(c) == "Co" for c in text):
        return text
    for c in text:
        if unicodedata.category(c) == "Co":
            notes.drop("control", "control", c)
    return "".join(c for c in text if unicodedata.category(c) != "Co")


def _restore(raw: str, forced: list[_Forced]) -> str:
    """Placeholders back to the user's ``[word](pron)``."""
    out = []
    for c in raw:
        i = ord(c) - _PH_BASE
        out.append(forced[i].source if 0 <= i < len(forced) else c)
    return "".join(out)


def _nothing_to_say(notes: Notes) -> str:
    scripts = notes.scripts()
    if scripts:
        return (
            f"text has nothing fedtts can speak: it is written in {', '.join(scripts)}, and fedtts speaks "
            f"{LANGUAGES} only"
        )
    found = notes.build()
    if found:
        return "text has nothing speakable: " + "; ".join(n.message for n in found)
    return "text has nothing speakable (only punctuation or white space)"


def _merge(group: list[tuple[Segment, str]], pause: float) -> tuple[Segment, str]:
    """Clauses grouped into one segment, with their raw text (placeholders kept) for re-splitting."""
    raw = "".join(r for _, r in group)
    if len(group) == 1:
        return dataclasses.replace(group[0][0], pause_after=pause), raw
    segs = [g for g, _ in group]
    langs = {g.lang for g in segs}
    seg = Segment(
        "".join(g.text for g in segs),
        "".join(g.normalized for g in segs),
        "mixed" if len(langs) > 1 or "mixed" in langs else langs.pop(),
        " ".join(g.phonemes for g in segs),
        " ".join(g.readable for g in segs),
        pause,
        tuple(u for g in segs for u in g.units),
    )
    return seg, raw


def format_analysis(segments: list[Segment]) -> str:
    """Human-readable dump printed by `fedtts phonemize --detail` and the UI preview."""
    lines = []
    for i, s in enumerate(segments, 1):
        lines += [
            f"{i}. [{s.lang}] {s.normalized}",
            f"   readable: {s.readable}",
            f"   phonemes: {s.phonemes}",
            f"   pause_after: {s.pause_after:.2f} s",
        ]
    return "\n".join(lines)
