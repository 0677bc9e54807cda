"""An SSML subset: a text that starts with ``<speak>`` is parsed as XML into spans the pipeline renders.

Why here, in the front end: every door (CLI ``say``, batch, the HTTP API, the Gradio UI) ends in
``Frontend.analyze`` (previews, phonemes) or ``Synthesizer.stream`` (audio), and both call
:func:`parse_ssml`; nothing above them needs to know about SSML.

What the markup becomes:

- text-level tags are rewritten into text the front end already reads: ``<say-as>`` through the
  normaliser's own rules (zh and en), ``<sub>`` as its alias, ``<phoneme>`` as the validated inline
  override ``[word](pron)``, ``<lang>`` as text normalised with that language's rules;
- tags that change how the engine is driven split the text into :class:`Span` s: ``<prosody>``
  (speed per engine call, a pitch shift of the voice's style pack, a gain), ``<voice>`` (another
  voice, resolved by the caller), ``<break>``/``<p>`` (silence after a span).

The parser is expat driven by handlers (a stack, no recursion), so deep nesting cannot overflow;
DTDs are refused (no entity declarations, hence no entity expansion bombs) and positions come from
expat's own line/column. Malformed markup is a :class:`SsmlError` (a ``TextError``: CLI exit 2,
HTTP 400, a failed batch line) naming line and column; unknown or unsupported tags are notes.
"""

from __future__ import annotations

import math
import re
import xml.parsers.expat as expat
from dataclasses import dataclass, field, replace

from .errors import OverrideError, TextError
from .normalize import (
    _DIG,
    _MONTHS,
    _en_num,
    _en_year,
    _norm_en,
    _norm_zh,
    _ordinal,
    _zh_int,
    _zh_num,
    en_int,
    fullwidth_to_half,
    is_zh,
)
from .overrides import PronunciationError, check_pronunciation, find_overrides
from .screen import Note

__all__ = [
    "BREAK_STRENGTHS",
    "MAX_BREAK_S",
    "MAX_DEPTH",
    "PARAGRAPH_PAUSE",
    "SsmlDocument",
    "SsmlError",
    "Span",
    "is_ssml",
    "natural_pause",
    "parse_ssml",
    "say_as",
]

MAX_DEPTH = 100  # deeper nesting is refused (no real document needs it; 10 000 levels is an attack)
MAX_BREAK_S = 10.0  # a longer <break> is cut to this (as Amazon Polly does), with a note
PARAGRAPH_PAUSE = 0.7  # silence after </p> (a sentence gets the front end's 0.35 s)
SENT_PAUSE, CLAUSE_PAUSE = 0.35, 0.15  # the front end's pauses (core.py), for a span's last sentence
BREAK_STRENGTHS = {"none": 0.0, "x-weak": 0.1, "weak": 0.2, "medium": 0.4, "strong": 0.7, "x-strong": 1.2}
RATES = {"x-slow": 0.5, "slow": 0.75, "medium": 1.0, "default": 1.0, "fast": 1.25, "x-fast": 1.75}
PITCHES = {"x-low": -4.0, "low": -2.0, "medium": 0.0, "default": 0.0, "high": 2.0, "x-high": 4.0}
VOLUMES = {
    "silent": -math.inf,
    "x-soft": -12.0,
    "soft": -6.0,
    "medium": 0.0,
    "default": 0.0,
    "loud": 4.0,
    "x-loud": 8.0,
}
INTERPRET_AS = (
    "characters",
    "spell-out",
    "digits",
    "cardinal",
    "number",
    "ordinal",
    "date",
    "time",
    "telephone",
)
_SSML_START = re.compile(r"^\s*(?:<\?xml[^>]*\?>\s*)?<speak[\s>/]")
_DOCTYPE = re.compile(r"^\s*(?:<\?xml[^>]*\?>\s*)?<!DOCTYPE\b", re.I)
_SENT_END = "。！？!?…；;."
_CLAUSE_END = "，,、：:"
_ZH_LANGS = ("zh", "cmn")
# Kokoro symbols of the English letter names (g2p_en._LETTERS), as IPA overrides: "A" spelled is
# the letter, not the article espeak reads for a lone "A"
_LETTER_IPA = dict(
    zip(
        "abcdefghijklmnopqrstuvwxyz",
        "ˈA bˈi sˈi dˈi ˈi ˈɛf ʤˈi ˈAʧ ˈI ʤˈA kˈA ˈɛl ˈɛm ˈɛn ˈO pˈi kjˈu ˈɑɹ ˈɛs tˈi jˈu vˈi "
        "dˈʌbᵊlju ˈɛks wˈI zˈi".split(),
        strict=True,
    )
)
_ONES = "zero one two three four five six seven eight nine".split()
# tags the subset knows but does not act on: the text inside is read, a note says what was ignored
_UNSUPPORTED = {
    "emphasis": "emphasis is not supported: the text is read without it",
    "audio": "audio is not played: its fallback text is read",
    "mark": "marks are ignored (no events are sent)",
    "w": "word roles are ignored",
    "token": "word roles are ignored",
    "desc": "audio descriptions are ignored",
    "par": "parallel media is not supported: the text is read in order",
    "seq": "media sequences are not supported: the text is read in order",
    "meta": "metadata is ignored",
    "metadata": "metadata is ignored",
    "lexicon": "external lexicons are not loaded (use the pronunciation dictionary)",
}


class SsmlError(TextError):
    """SSML the subset refuses (malformed XML, a DTD, a bad attribute, nesting too deep, an unknown
    voice): the whole text is refused, naming line and column. ``fatal``: never skipped like an
    unspeakable paragraph."""

    fatal = True

    def __init__(self, message: str, line: int | None = None, column: int | None = None):
        where = f"line {line}, column {column}: " if line is not None else ""
        super().__init__(f"SSML {where}{message}")
        self.line, self.column = line, column


@dataclass
class Span:
    """A run of text rendered with one voice and prosody. ``text`` is front-end input (inline
    overrides included); ``break_s`` is explicit silence after it (None: none given), ``min_pause_s``
    the structural minimum (a paragraph end); positions are 1-based, where the span starts."""

    text: str
    voice: str | None = None
    rate: float = 1.0
    pitch_st: float = 0.0
    volume_db: float = 0.0
    break_s: float | None = None
    min_pause_s: float = 0.0
    line: int = 1
    column: int = 1
    voice_line: int = 0
    voice_column: int = 0

    def pause_after(self, speed: float = 1.0, last: bool = False) -> float | None:
        """Silence after this span: an explicit break as given (absolute seconds), else the
        paragraph minimum or the sentence/clause pause of its last character (at ``speed``);
        None at the end of the document without an explicit break (the pipeline's own tail)."""
        if self.break_s is not None:
            return self.break_s
        if last:
            return None
        return max(self.min_pause_s, natural_pause(self.text) / max(speed, 1e-6))


@dataclass
class SsmlDocument:
    spans: list[Span] = field(default_factory=list)
    lead_s: float = 0.0  # explicit breaks before the first word
    notes: list[Note] = field(default_factory=list)


def is_ssml(text: str) -> bool:
    """True for a text whose first markup (after white space and an XML declaration) is ``<speak``."""
    text = str(text or "")
    # a DTD before <speak> is SSML too, so that it is refused (entity bombs) rather than read aloud
    return bool(_SSML_START.match(text) or (_DOCTYPE.match(text) and "<speak" in text))


def natural_pause(text: str) -> float:
    """The front end's pause after ``text``: a sentence end, a clause end, or none (a word gap)."""
    t = str(text).rstrip(" \"'”’」）)")
    last = t[-1:] if t else ""
    if last in _SENT_END:
        return SENT_PAUSE
    if last in _CLAUSE_END:
        return CLAUSE_PAUSE
    return 0.0


# ----------------------------------------------------------------------------------- attributes


def _number(s: str) -> float:
    v = float(s)
    if not math.isfinite(v):
        raise ValueError(s)
    return v


def _percent(v: str) -> float | None:
    """``50%`` → 0.5 (of normal), ``+20%``/``-20%`` → 1.2/0.8 (a change); None when not a percentage."""
    m = re.fullmatch(r"([+-]?)(\d+(?:\.\d*)?|\.\d+)\s*%", v)
    if not m:
        return None
    p = _number(m.group(2)) / 100.0
    return p if not m.group(1) else 1.0 + (p if m.group(1) == "+" else -p)


def parse_rate(value: str) -> float:
    """``x-slow``…``x-fast``, ``50%`` (of normal), ``+20%``/``-20%`` (a change), ``1.5`` (a factor)."""
    v = value.strip().lower()
    if v in RATES:
        return RATES[v]
    r = _percent(v)
    if r is None:
        r = _number(v) if re.fullmatch(r"\d+(?:\.\d*)?|\.\d+", v) else -1.0
    if not r > 0:
        raise ValueError(
            "a rate is x-slow, slow, medium, fast, x-fast, a percentage (50%, +20%) or a factor (1.5)"
        )
    return r


def parse_pitch(value: str) -> float | None:
    """Semitones: ``x-low``…``x-high``, ``+2st``, ``-10%``/``90%``; None for Hz (needs the voice's F0)."""
    v = value.strip().lower()
    if v in PITCHES:
        return PITCHES[v]
    m = re.fullmatch(r"([+-]?\d+(?:\.\d*)?)\s*st", v)
    if m:
        return _number(m.group(1))
    ratio = _percent(v)
    if ratio is not None:
        if ratio <= 0:
            raise ValueError("a pitch percentage must leave a positive pitch")
        return 12.0 * math.log2(ratio)
    if re.fullmatch(r"[+-]?\d+(?:\.\d*)?\s*hz", v):
        return None
    raise ValueError("a pitch is x-low, low, medium, high, x-high, semitones (+2st) or a percentage (+10%)")


def parse_volume(value: str) -> float:
    """dB: ``silent``, ``x-soft``…``x-loud``, ``+6dB``/``-3dB``, ``+50%``/``50%`` of the amplitude."""
    v = value.strip().lower()
    if v in VOLUMES:
        return VOLUMES[v]
    m = re.fullmatch(r"([+-]?\d+(?:\.\d*)?)\s*db", v)
    if m:
        return _number(m.group(1))
    ratio = _percent(v)
    if ratio is not None:
        return 20.0 * math.log10(ratio) if ratio > 0 else -math.inf
    raise ValueError(
        "a volume is silent, x-soft, soft, medium, loud, x-loud, decibels (+6dB) or a percentage"
    )


def parse_break(time: str | None, strength: str | None) -> float:
    """Seconds of a ``<break>``: ``time`` (``500ms``, ``1.5s``) wins over ``strength``."""
    if time is not None:
        m = re.fullmatch(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*(ms|s)\s*", time.lower())
        if not m:
            raise ValueError(f"break time {time!r}: give milliseconds or seconds, e.g. 500ms or 1.5s")
        return _number(m.group(1)) / (1000.0 if m.group(2) == "ms" else 1.0)
    if strength is None:
        return BREAK_STRENGTHS["medium"]
    s = strength.strip().lower()
    if s not in BREAK_STRENGTHS:
        raise ValueError(f"break strength {strength!r}: one of {', '.join(BREAK_STRENGTHS)}")
    return BREAK_STRENGTHS[s]


def _lang_code(value: str | None) -> str | None:
    """'zh-CN' → 'zh', 'en-US' → 'en'; '' for a language the model does not speak; None if absent."""
    if value is None:
        return None
    base = value.strip().lower().replace("_", "-").split("-")[0]
    if base in _ZH_LANGS:
        return "zh"
    return "en" if base == "en" else ""


# ------------------------------------------------------------------------------------- say-as


def _spell(text: str, lang: str) -> str:
    """Letters by name (validated IPA overrides), digits as words, other characters kept."""
    out = []
    for c in text:
        low = c.lower()
        if low in _LETTER_IPA and c.isascii():
            out.append(f"[{c}]({_LETTER_IPA[low]})")
        elif c.isdigit() and c.isascii():
            out.append(_DIG[int(c)] if lang == "zh" else _ONES[int(c)])
        elif not c.isspace():
            out.append(c)
    return ("" if lang == "zh" else " ").join(out)


def _digits(text: str, lang: str, one: str = "一") -> str:
    out, sep = [], "" if lang == "zh" else " "
    for c in fullwidth_to_half(text):
        if c.isdigit() and c.isascii():
            out.append((one if c == "1" else _DIG[int(c)]) if lang == "zh" else _ONES[int(c)])
        elif not c.isspace():
            out.append(c)
    return sep.join(out)


def _cardinal(text: str, lang: str) -> str | None:
    m = re.fullmatch(r"\s*([+\-−]?)\s*(\d{1,3}(?:,\d{3})+|\d+)(\.\d+)?\s*", fullwidth_to_half(text))
    if not m:
        return None
    sign, whole, frac = m.group(1), m.group(2).replace(",", ""), m.group(3) or ""
    if len(whole) > 15:
        return None
    if lang == "zh":
        words = _zh_num(whole + frac)
        return ("负" if sign in "-−" and sign else "") + words
    words = _en_num(whole + frac)
    return ("minus " if sign in "-−" and sign else "") + words


def _ordinal_reading(text: str, lang: str) -> str | None:
    m = re.fullmatch(r"\s*第?\s*(\d{1,12})\s*(?:st|nd|rd|th|\.|个|名)?\s*", fullwidth_to_half(text), re.I)
    if not m:
        return None
    n = int(m.group(1))
    return "第" + _zh_int(str(n)) if lang == "zh" else _ordinal(n)


def _date(text: str, fmt: str | None, lang: str) -> str | None:
    parts = re.findall(r"\d+", fullwidth_to_half(text))
    if not parts or len(parts) > 3 or any(len(p) > 4 for p in parts):
        return None
    order = (fmt or "").lower().strip()
    if not order:
        if len(parts) == 3:
            order = "ymd" if len(parts[0]) == 4 else "mdy"
        elif len(parts) == 2:
            order = "ym" if len(parts[0]) == 4 else ("my" if len(parts[1]) == 4 else "md")
        else:
            order = "y"
    if len(order) != len(parts) or set(order) - set("ymd") or len(set(order)) != len(order):
        return None
    f = dict(zip(order, (int(p) for p in parts), strict=True))
    if not 1 <= f.get("m", 1) <= 12 or not 1 <= f.get("d", 1) <= 31:
        return None
    if lang == "zh":
        out = ""
        if "y" in f:
            out += "".join(_DIG[int(c)] for c in str(f["y"])) + "年"
        if "m" in f:
            out += _zh_int(str(f["m"])) + "月"
        if "d" in f:
            out += _zh_int(str(f["d"])) + "日"
        return out
    words = []
    if "m" in f:
        words.append(_MONTHS[f["m"] - 1])
    if "d" in f:
        words.append(("the " if "m" not in f else "") + _ordinal(f["d"]))
    head = " ".join(words)
    if "y" in f:
        year = _en_year(f["y"]) if f["y"] >= 1000 else en_int(f["y"])
        return f"{head}, {year}" if head else year
    return head


def _time(text: str, lang: str) -> str | None:
    m = re.fullmatch(
        r"\s*(\d{1,2})(?::(\d{2}))?(?::(\d{2}))?\s*([ap])?\.?\s*(m\.?)?\s*", fullwidth_to_half(text), re.I
    )
    if not m or (m.group(2) is None and m.group(4) is None):
        return None
    h, mi, se = int(m.group(1)), int(m.group(2) or 0), m.group(3)
    half = (m.group(4) or "").lower()
    if h > 24 or mi > 59 or (se is not None and int(se) > 59) or (half and not 1 <= h <= 12):
        return None
    if lang == "zh":
        out = ("上午" if half == "a" else "下午" if half == "p" else "") + _zh_int(str(h)) + "点"
        if mi:
            out += _zh_int(str(mi)) + "分"
        if se is not None and int(se):
            out += _zh_int(str(int(se))) + "秒"
        return out
    out = en_int(h)
    if mi:
        out += " " + (("oh " + _ONES[mi]) if mi < 10 else en_int(mi))
    elif not half:
        out += " o'clock" if h <= 12 else " hundred"
    if se is not None and int(se):
        out += f" and {en_int(int(se))} second" + ("s" if int(se) != 1 else "")
    if half:
        out += f" [{half.upper()}M]({_LETTER_IPA[half]} {_LETTER_IPA['m']})"
    return out


def _telephone(text: str, lang: str) -> str | None:
    t = fullwidth_to_half(text).strip()
    if not re.fullmatch(r"\+?[\d\s().\-]+", t) or not re.search(r"\d", t):
        return None
    plus = t.startswith("+")
    groups = [g for g in re.split(r"[\s().\-]+", t.lstrip("+")) if g]
    if lang == "zh":
        return ("加" if plus else "") + "，".join(_digits(g, "zh", one="幺") for g in groups)
    return ("plus " if plus else "") + ", ".join(_digits(g, "en") for g in groups)


def say_as(text: str, interpret_as: str, lang: str, fmt: str | None = None) -> str | None:
    """How ``<say-as interpret-as=…>`` reads ``text`` in ``lang`` ('zh'/'en'), as front-end input;
    None when the content does not fit the type (it is then read as written, with a note)."""
    kind = interpret_as.strip().lower()
    if kind in ("characters", "spell-out", "verbatim"):
        return _spell(text, lang)
    if kind == "digits":
        return _digits(text, lang)
    if kind in ("cardinal", "number"):
        return _cardinal(text, lang)
    if kind == "ordinal":
        return _ordinal_reading(text, lang)
    if kind == "date":
        return _date(text, fmt, lang)
    if kind == "time":
        return _time(text, lang)
    if kind == "telephone":
        return _telephone(text, lang)
    return None


def force_lang(text: str, lang: str) -> str:
    """Numbers and symbols of ``text`` read with ``lang``'s rules (inline overrides kept as they are):
    the front end picks the rules from the script of the clause, ``<lang>`` decides instead."""
    out, pos = [], 0
    for ov in find_overrides(text):
        out.append(_force_plain(text[pos : ov.start], lang))
        out.append(text[ov.start : ov.end])
        pos = ov.end
    out.append(_force_plain(text[pos:], lang))
    return "".join(out)


def _force_plain(text: str, lang: str) -> str:
    if not text or not re.search(r"[\d%$¥￥€£&+=@~:]", text):
        return text
    t = fullwidth_to_half(text)
    lead = " " if text[:1].isspace() else ""
    tail = " " if text[-1:].isspace() else ""
    return lead + (_norm_zh(t) if lang == "zh" else _norm_en(t)).strip() + tail


# ------------------------------------------------------------------------------------- parser


@dataclass(frozen=True)
class _State:
    voice: str | None = None
    voice_at: tuple[int, int] = (0, 0)
    rate: float = 1.0
    pitch_st: float = 0.0
    volume_db: float = 0.0
    lang: str | None = None  # forced by <lang>
    hint: str | None = None  # xml:lang anywhere else: a hint for <say-as>

    @property
    def key(self) -> tuple:
        return (self.voice, self.rate, self.pitch_st, self.volume_db)


@dataclass
class _Piece:
    kind: str  # "text" (normalised by the front end), "raw" (final), "say-as"
    text: str
    lang: str | None = None
    hint: str | None = None
    interpret: str = ""
    fmt: str | None = None
    where: tuple[int, int] = (0, 0)


@dataclass
class _Capture:
    """A text-level element whose content is collected and rewritten at its end tag."""

    tag: str
    attrs: dict[str, str]
    where: tuple[int, int]
    state: _State
    text: list[str] = field(default_factory=list)


@dataclass
class _Frame:
    tag: str
    state: _State
    capture: _Capture | None = None
    opened_at: tuple[int, int] = (0, 0)


@dataclass
class _OpenSpan:
    pieces: list[_Piece]
    state: _State
    where: tuple[int, int]
    break_s: float | None = None
    min_pause_s: float = 0.0


class _Parser:
    def __init__(self) -> None:
        self.p = expat.ParserCreate()
        self.p.buffer_text = True
        self.p.ordered_attributes = False
        self.p.StartElementHandler = self.start
        self.p.EndElementHandler = self.end
        self.p.CharacterDataHandler = self.chars
        self.p.StartDoctypeDeclHandler = self.doctype
        self.p.EntityDeclHandler = self.entity
        self.stack: list[_Frame] = []
        self.root_seen = False
        self.done: list[_OpenSpan] = []
        self.cur: _OpenSpan | None = None
        self.lead_s = 0.0
        self.notes: list[Note] = []
        self.unknown: dict[str, list] = {}  # tag → [count, first (line, col), message]

    # ------------------------------------------------------------------ helpers
    def at(self) -> tuple[int, int]:
        return self.p.CurrentLineNumber, self.p.CurrentColumnNumber + 1

    def fail(self, message: str, where: tuple[int, int] | None = None) -> SsmlError:
        line, col = where or self.at()
        return SsmlError(message, line, col)

    def note(self, kind: str, message: str, where: tuple[int, int] | None = None) -> None:
        """One note per kind: the first position, and how many more there were."""
        entry = self.unknown.setdefault(kind, [0, where or self.at(), message])
        entry[0] += 1

    @property
    def state(self) -> _State:
        return self.stack[-1].state if self.stack else _State()

    def capture(self) -> _Capture | None:
        for fr in reversed(self.stack):
            if fr.capture is not None:
                return fr.capture
        return None

    def add(self, piece: _Piece, state: _State) -> None:
        if self.cur is not None and self.cur.state.key != state.key:
            self.flush()
        if self.cur is None:
            if not piece.text.strip():
                return  # white space between spans carries nothing
            self.cur = _OpenSpan([], state, self.at())
        self.cur.pieces.append(piece)

    def flush(self) -> None:
        if self.cur is not None and any(p.text.strip() for p in self.cur.pieces):
            self.done.append(self.cur)
        self.cur = None

    def pause(self, seconds: float, explicit: bool) -> None:
        """Silence at this point: explicit breaks add up, structural pauses take the larger."""
        self.flush()
        if not self.done:
            if explicit:
                self.lead_s += seconds
            return
        last = self.done[-1]
        if explicit:
            last.break_s = (last.break_s or 0.0) + seconds
        else:
            last.min_pause_s = max(last.min_pause_s, seconds)

    def end_sentence(self) -> None:
        """A sentence ends here (<s>, <p>): close it with a full stop if its text has none."""
        if self.cur is None:
            return
        tail = "".join(p.text for p in self.cur.pieces).rstrip()
        if tail and tail[-1] not in _SENT_END + _CLAUSE_END:
            self.cur.pieces.append(_Piece("raw", "。" if is_zh(tail[-1]) else ". "))
        elif tail and tail[-1] in _SENT_END and tail[-1].isascii():
            self.cur.pieces.append(_Piece("raw", " "))  # "One.</s><s>Two" is two words

    # ------------------------------------------------------------------ expat handlers
    def doctype(self, name, sysid, pubid, has_internal) -> None:
        raise self.fail(
            "a document type declaration (<!DOCTYPE>) is not allowed: it could declare entities that "
            "expand without limit; use only &amp; &lt; &gt; &quot; &apos; and &#N;"
        )

    def entity(self, *args) -> None:
        raise self.fail("entity declarations are not allowed")

    def start(self, tag: str, attrs: dict[str, str]) -> None:
        where = self.at()
        if len(self.stack) >= MAX_DEPTH:
            raise self.fail(f"tags nested deeper than {MAX_DEPTH} levels (at <{tag}>)", where)
        name = tag.lower()
        parent = self.state
        if not self.root_seen:
            self.root_seen = True
            if name != "speak":
                raise self.fail(f"the document must start with <speak>, not <{tag}>", where)
            hint = _lang_code(attrs.get("xml:lang"))
            if attrs.get("xml:lang") and hint == "":
                self.note("xml:lang", f"language {attrs['xml:lang']!r} is not spoken (Mandarin, English)")
            self.stack.append(_Frame(tag, _State(hint=hint or None), None, where))
            return
        if name == "speak":
            raise self.fail("nested <speak>: a document has one <speak> around all of it", where)
        state = parent
        lang_attr = attrs.get("xml:lang")
        code = _lang_code(lang_attr)
        if lang_attr is not None and code == "":
            self.note(
                "xml:lang", f"language {lang_attr!r} is not spoken: read as detected (Mandarin, English)"
            )
        elif code and name != "lang":
            state = _replace(state, hint=code)
        cap = self.capture()
        if cap is not None:
            self.note(f"in-{cap.tag}", f"tags inside <{cap.tag}> are ignored (their text is kept)", where)
            self.stack.append(_Frame(tag, state, None, where))
            return
        capture = None
        if name in ("say-as", "sub", "phoneme"):
            capture = _Capture(name, dict(attrs), where, state)
        elif name == "break":
            try:
                secs = parse_break(attrs.get("time"), attrs.get("strength"))
            except ValueError as e:
                raise self.fail(f"<break>: {e}", where) from None
            if secs > MAX_BREAK_S:
                self.note("break-long", f"a break of {secs:g} s was cut to {MAX_BREAK_S:g} s", where)
                secs = MAX_BREAK_S
            self.pause(secs, explicit=True)
        elif name == "prosody":
            state = self._prosody(state, attrs, where)
        elif name == "voice":
            vname = (attrs.get("name") or "").strip()
            if vname:
                state = _replace(state, voice=vname, voice_at=where)
            else:
                self.note(
                    "voice",
                    "<voice> without a name is ignored (choosing by gender or age is not supported)",
                    where,
                )
        elif name == "lang":
            if lang_attr is None:
                self.note("lang", "<lang> without xml:lang is ignored", where)
            elif code:
                state = _replace(state, lang=code, hint=code)
        elif name in ("p", "s", "paragraph", "sentence"):
            self.end_sentence()
            if name in ("p", "paragraph"):
                self.pause(PARAGRAPH_PAUSE, explicit=False)
        elif name in _UNSUPPORTED:
            self.note(name, f"<{name}>: {_UNSUPPORTED[name]}", where)
        else:
            self.note(name, f"unknown SSML tag <{tag}>: ignored, its text is read", where)
        self.stack.append(_Frame(tag, state, capture, where))

    def _prosody(self, state: _State, attrs: dict[str, str], where: tuple[int, int]) -> _State:
        try:
            if "rate" in attrs:
                state = _replace(state, rate=state.rate * parse_rate(attrs["rate"]))
            if "pitch" in attrs:
                st = parse_pitch(attrs["pitch"])
                if st is None:
                    self.note(
                        "pitch-hz",
                        "a pitch in Hz is ignored (give semitones, e.g. +2st, or a percentage)",
                        where,
                    )
                else:
                    state = _replace(state, pitch_st=state.pitch_st + st)
            if "volume" in attrs:
                state = _replace(state, volume_db=state.volume_db + parse_volume(attrs["volume"]))
        except ValueError as e:
            raise self.fail(f"<prosody>: {e}", where) from None
        for other in ("contour", "range", "duration"):
            if other in attrs:
                self.note(f"prosody-{other}", f"<prosody {other}=…> is not supported and is ignored", where)
        return state

    def end(self, tag: str) -> None:
        frame = self.stack.pop()
        name = tag.lower()
        if frame.capture is not None:
            self._finish_capture(frame.capture)
        elif name in ("s", "sentence"):
            self.end_sentence()
        elif name in ("p", "paragraph"):
            self.end_sentence()
            self.pause(PARAGRAPH_PAUSE, explicit=False)
        if not self.stack:  # </speak>
            self.flush()

    def chars(self, data: str) -> None:
        if not self.stack:
            return
        cap = self.capture()
        if cap is not None:
            cap.text.append(data)
            return
        st = self.state
        self.add(_Piece("text", re.sub(r"\s+", " ", data), st.lang, st.hint, where=self.at()), st)

    # ------------------------------------------------------------------ text-level elements
    def _finish_capture(self, cap: _Capture) -> None:
        content = re.sub(r"\s+", " ", "".join(cap.text))
        st, a = cap.state, cap.attrs
        if cap.tag == "sub":
            alias = a.get("alias")
            if alias is None:
                self.note("sub", "<sub> without alias: its text is read", cap.where)
                alias = content
            self.add(_Piece("text", f" {alias} " if content[:1] == " " else alias, st.lang, st.hint), st)
        elif cap.tag == "say-as":
            kind = (a.get("interpret-as") or "").strip().lower()
            if kind not in INTERPRET_AS and kind != "verbatim":
                self.note(
                    f"say-as-{kind}",
                    f"<say-as interpret-as={kind!r}> is not supported: read as written",
                    cap.where,
                )
                self.add(_Piece("text", content, st.lang, st.hint), st)
            else:
                self.add(_Piece("say-as", content, st.lang, st.hint, kind, a.get("format"), cap.where), st)
        else:
            self.add(_Piece("raw", self._phoneme(content.strip(), a, cap.where), st.lang, st.hint), st)

    def _phoneme(self, word: str, attrs: dict[str, str], where: tuple[int, int]) -> str:
        """``<phoneme>`` → the inline override ``[word](ph)``, validated here so the error names the tag."""
        alphabet = (attrs.get("alphabet") or "ipa").strip().lower()
        ph = (attrs.get("ph") or "").strip()
        if alphabet not in ("ipa", "x-pinyin", "pinyin", "x-amazon-pinyin"):
            self.note(
                "phoneme-alphabet",
                f"<phoneme alphabet={alphabet!r}> is not supported (ipa, x-pinyin): the text is read",
                where,
            )
            return f" {word} "
        if not ph:
            raise self.fail("<phoneme> needs a ph attribute", where)
        if len(ph) > 2 and ph[0] + ph[-1] in ("//", "[]"):
            ph = ph[1:-1].strip()
        word = word or ph
        bad = next((c for c in word + ph if c in "[]()\n"), None)
        if bad is not None:
            raise self.fail(f"<phoneme>: {bad!r} cannot appear in its text or ph", where)
        try:
            _, _, lang = check_pronunciation(word, ph)
        except PronunciationError as e:
            err = OverrideError(
                f"SSML line {where[0]}, column {where[1]}: <phoneme ph={ph!r}> for {word!r}: {e}"
            )
            raise err from None
        if alphabet != "ipa" and lang != "zh":
            raise self.fail(
                f"<phoneme alphabet={alphabet!r} ph={ph!r}>: not pinyin (syllables with tones 1–5)", where
            )
        return f" [{word}]({ph}) "

    # ------------------------------------------------------------------ result
    def document(self) -> SsmlDocument:
        all_text = "".join(p.text for s in self.done for p in s.pieces)
        doc_lang = "zh" if is_zh(all_text) else "en"
        spans: list[Span] = []
        for s in self.done:
            text = _resolve(s.pieces, doc_lang, self.notes)
            if not re.search(r"[^\W_]", text):  # punctuation only: it belongs to the span before
                if spans:
                    spans[-1].text = (spans[-1].text + text).strip()
                    if s.break_s is not None:
                        spans[-1].break_s = (spans[-1].break_s or 0.0) + s.break_s
                    spans[-1].min_pause_s = max(spans[-1].min_pause_s, s.min_pause_s)
                elif s.break_s:
                    self.lead_s += s.break_s
                continue
            if is_ssml(text):  # literal "<speak" from &lt;speak: never read as a second document
                text = "\u200b" + text  # (zero-width: silent to the front end)
            st = s.state
            spans.append(
                Span(
                    text=text,
                    voice=st.voice,
                    rate=st.rate,
                    pitch_st=st.pitch_st,
                    volume_db=st.volume_db,
                    break_s=s.break_s,
                    min_pause_s=s.min_pause_s,
                    line=s.where[0],
                    column=s.where[1],
                    voice_line=st.voice_at[0],
                    voice_column=st.voice_at[1],
                )
            )
        notes = list(self.notes)
        for kind, (count, (line, col), message) in self.unknown.items():
            more = f" (and {count - 1} more)" if count > 1 else ""
            notes.append(Note("ssml", f"SSML line {line}, column {col}: {message}{more}", (kind,)))
        return SsmlDocument(spans, self.lead_s, notes)


def _replace(state: _State, **kw) -> _State:
    return replace(state, **kw)


def _resolve(pieces: list[_Piece], doc_lang: str, notes: list[Note]) -> str:
    """Pieces → front-end text: forced languages applied, say-as read in the language of its context."""
    out: list[str] = []
    for i, p in enumerate(pieces):
        if p.kind == "raw":
            out.append(p.text)
        elif p.kind == "text":
            out.append(force_lang(p.text, p.lang) if p.lang else p.text)
        else:
            lang = p.lang or _context_lang(pieces, i) or p.hint or doc_lang
            read = say_as(p.text, p.interpret, lang, p.fmt)
            if read is None:
                notes.append(
                    Note(
                        "ssml",
                        f"SSML line {p.where[0]}, column {p.where[1]}: {p.text.strip()!r} is not a "
                        f"{p.interpret} for <say-as>: read as written",
                        (p.text,),
                    )
                )
                read = force_lang(p.text, lang) if p.lang else p.text
            pad_l = " " if p.text[:1] == " " or (lang == "en" and out and out[-1][-1:].isalnum()) else ""
            out.append(pad_l + read + (" " if p.text[-1:] == " " else ""))
    return re.sub(r"\s+", " ", "".join(out)).strip()


def _context_lang(pieces: list[_Piece], i: int) -> str | None:
    """The script of the nearest letter before (else after) piece ``i`` in its span: zh or en."""
    before = "".join(p.text for p in pieces[:i] if p.kind != "say-as")[::-1]
    after = "".join(p.text for p in pieces[i + 1 :] if p.kind != "say-as")
    for text in (before, after):
        for c in re.sub(r"\[[^\]]*\]\([^)]*\)", " ", text):
            if is_zh(c):
                return "zh"
            if c.isascii() and c.isalpha():
                return "en"
    return None


def parse_ssml(text: str) -> SsmlDocument:
    """Parse an SSML text (see the module doc) into spans; raises :class:`SsmlError` with line/column."""
    parser = _Parser()
    text = str(text)
    decl = re.match(r"\s*<\?xml[^>]*\?>", text)
    if decl:  # blanked (positions kept): expat refuses a declaration after white space
        text = re.sub(r"[^\n]", " ", decl.group()) + text[decl.end() :]
    try:
        parser.p.Parse(text, True)
    except expat.ExpatError as e:
        msg = expat.errors.messages.get(e.code, str(e))
        hint = {
            expat.errors.codes[expat.errors.XML_ERROR_UNDEFINED_ENTITY]: " (XML knows only &amp; &lt; &gt; "
            "&quot; &apos; and &#N;; write other characters as they are)",
            expat.errors.codes[
                expat.errors.XML_ERROR_JUNK_AFTER_DOC_ELEMENT
            ]: " (text or tags after </speak>)",
            expat.errors.codes[
                expat.errors.XML_ERROR_TAG_MISMATCH
            ]: " (a tag closed that is not the one open)",
        }.get(e.code, "")
        column = e.offset + 1
        if e.code == expat.errors.codes[expat.errors.XML_ERROR_TAG_MISMATCH]:
            column = max(1, column - 2)  # expat points at the name: show where "</name>" begins
        raise SsmlError(f"malformed markup: {msg}{hint}", e.lineno, column) from None
    except RecursionError:  # not expected (handlers do not recurse); still a clear refusal
        raise SsmlError(f"tags nested too deeply (at most {MAX_DEPTH} levels)") from None
    return parser.document()
