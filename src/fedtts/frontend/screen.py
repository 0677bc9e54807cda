"""What the front end leaves out, said out loud: text in scripts the model cannot speak, symbols,
control characters, terminal escape sequences, markup (SSML included). Each is removed before G2P
(so espeak never spells "ARABIC LETTER MEEM" or reads "[31m" as "thirty-one m") and reported as a
`Note` naming what was dropped: a user who hears less than was written should be told.
"""

from __future__ import annotations

import html
import re
import unicodedata
from dataclasses import dataclass, field

__all__ = [
    "LANGUAGES",
    "Note",
    "Notes",
    "script_of",
    "strip_escapes",
    "strip_markup_noted",
    "fold_numbers",
    "screen",
    "SILENT",
]

LANGUAGES = "Mandarin Chinese and English"
# Invisible formatting that carries no sound (zero-width space/joiners, word joiner, BOM, variation
# selectors, soft hyphen): ignored without a note.
SILENT = frozenset("\u200b\u200c\u200d\u2060\ufeff\u00ad" + "".join(chr(c) for c in range(0xFE00, 0xFE10)))
_HAN = re.compile(r"[\u4e00-\u9fff]")
_ESCAPES = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]"  # CSI: colours, cursor moves (\x1b[31m)
    r"|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?"  # OSC: window titles, hyperlinks
    r"|\x1b[@-Z\\-_]"  # two-character escapes
    r"|\^\[\[[0-?]*[ -/]*[@-~]"  # caret notation copied from a terminal (^[[31m)
)
_TAG = re.compile(r"</?([A-Za-z][\w:.-]*)(?:\s[^<>]*)?/?>")
_SSML_TAGS = frozenset(
    "speak break prosody emphasis say-as voice phoneme sub audio mark lang p s w par seq "
    "amazon:effect amazon:domain mstts:express-as".split()
)
_LATIN_FOLD = {
    "ß": "ss",
    "æ": "ae",
    "Æ": "AE",
    "œ": "oe",
    "Œ": "OE",
    "ø": "o",
    "Ø": "O",
    "ł": "l",
    "Ł": "L",
    "đ": "d",
    "Đ": "D",
    "ð": "d",
    "Ð": "D",
    "þ": "th",
    "Þ": "Th",
    "ı": "i",
    "ħ": "h",
    "ŋ": "ng",
    "ſ": "s",
}
# Numbers written as one symbol that read as their digits: ① ⑵ ⒈ Ⅻ 𝟙 (fractions, powers are not)
_NUMBER_FORMS = ("CIRCLED", "PARENTHESIZED", "FULL STOP", "ROMAN NUMERAL", "MATHEMATICAL", "DOUBLE-STRUCK")
_SCRIPT_NAMES = {
    "HIRAGANA": "Japanese (kana)",
    "KATAKANA": "Japanese (kana)",
    "HALFWIDTH": "Japanese (kana)",
    "HANGUL": "Korean (Hangul)",
    "CJK": "rare Chinese characters (outside the common range)",
    "IDEOGRAPHIC": "rare Chinese characters (outside the common range)",
    "MODIFIER": "modifier letters",
}


@dataclass(frozen=True)
class Note:
    """One thing the front end changed or left out: ``kind`` (script, symbol, control, escape,
    markup, ssml, override, reading), a message for the user, and exactly what was dropped."""

    kind: str
    message: str
    dropped: tuple[str, ...] = ()

    def __str__(self) -> str:
        return self.message


@dataclass
class Notes:
    """Collects what one text lost: characters grouped by reason, plus one-off notes."""

    chars: dict[tuple[str, str], list[str]] = field(default_factory=dict)
    extra: list[Note] = field(default_factory=list)

    def drop(self, kind: str, label: str, piece: str) -> None:
        seen = self.chars.setdefault((kind, label), [])
        if piece not in seen:
            seen.append(piece)

    def add(self, note: Note) -> None:
        if note not in self.extra:
            self.extra.append(note)

    def scripts(self) -> list[str]:
        return [label for (kind, label) in self.chars if kind == "script"]

    def build(self) -> list[Note]:
        out = list(self.extra)
        for (kind, label), pieces in self.chars.items():
            shown = ", ".join(_show(p) for p in pieces[:12]) + (" …" if len(pieces) > 12 else "")
            if kind == "script":
                msg = f"dropped text in {label}, which the model cannot speak ({LANGUAGES} only): {shown}"
            elif kind == "reading":
                msg = f"dropped Chinese characters with no known reading: {shown}"
            elif kind == "control":
                msg = f"dropped control/invisible characters: {shown}"
            else:
                msg = f"dropped {label} the model cannot speak: {shown}"
            out.append(Note(kind, msg, tuple(pieces)))
        return out


def _show(piece: str) -> str:
    if len(piece) == 1 and (unicodedata.category(piece)[0] in "CZ" or piece in SILENT):
        return f"U+{ord(piece):04X}"
    return repr(piece)


def script_of(c: str) -> str:
    """A readable script name for a letter/mark: 'Arabic', 'Japanese (kana)', 'Cyrillic' …"""
    name = unicodedata.name(c, "")
    first = name.split(" ", 1)[0] if name else f"U+{ord(c):04X}"
    if first == "HALFWIDTH" and "KATAKANA" not in name:
        first = name.split(" ")[1] if len(name.split(" ")) > 1 else first
    return _SCRIPT_NAMES.get(first, first.title() + " script")


def strip_escapes(text: str, notes: Notes) -> str:
    """Terminal escape sequences (colour codes pasted from a terminal) removed, with a note."""
    found = _ESCAPES.findall(text)
    if not found:
        return text
    uniq = list(dict.fromkeys(found))
    notes.add(
        Note(
            "escape",
            f"removed {len(found)} terminal escape sequence(s): {', '.join(repr(s) for s in uniq[:6])}",
            tuple(uniq),
        )
    )
    return _ESCAPES.sub("", text)


def strip_markup_noted(text: str, notes: Notes) -> str:
    """HTML/SSML tags, markdown emphasis/images/links and emoji-joiners removed, with a note (SSML is
    interpreted only in a text that starts with ``<speak>``, see ``ssml.py``; elsewhere its tags are
    dropped and the text inside is read as plain text)."""
    tags = [m.group(0) for m in _TAG.finditer(text)]
    t = _TAG.sub(" ", text)
    t = html.unescape(t)
    images = re.findall(r"!\[[^\]]*\]\([^)]*\)", t)
    t = re.sub(r"!\[[^\]]*\]\([^)]*\)", " ", t)
    t = re.sub(r"(?<!\])\[([^\]]+)\]\((https?://[^)]*)\)", r"\1", t)
    marks = re.findall(r"[*_`#>]{1,3}", t)
    t = re.sub(r"[*_`#>]{1,3}", "", t)
    ssml = [g for g in tags if _TAG.match(g).group(1).lower() in _SSML_TAGS]
    if ssml:
        shown = ", ".join(dict.fromkeys(ssml[:8]))
        notes.add(
            Note(
                "ssml",
                f"SSML is not supported in the middle of a text (a text that starts with <speak> is read as "
                f"SSML): removed the tags {shown} and read the text inside as plain text",
                tuple(dict.fromkeys(tags)),
            )
        )
    elif tags:
        notes.add(Note("markup", f"removed markup tags: {', '.join(dict.fromkeys(tags[:8]))}", tuple(tags)))
    rest = list(dict.fromkeys(images + marks))
    if rest:
        notes.add(Note("markup", f"removed markdown: {', '.join(repr(x) for x in rest[:8])}", tuple(rest)))
    return t


def fold_numbers(text: str) -> str:
    """① → 1, Ⅻ → XII, 𝟙 → 1 (read as the number), before normalisation spells numbers out."""
    out = []
    for c in text:
        if c == "〇":  # ideographic zero, read as 零
            c = "零"
        elif ord(c) > 0x2000 and unicodedata.category(c) in ("No", "Nl", "Nd", "Lu", "Ll"):
            name = unicodedata.name(c, "")
            if any(k in name for k in _NUMBER_FORMS):
                folded = unicodedata.normalize("NFKC", c).strip("().")
                if folded.isascii() and folded.isalnum():
                    c = folded
        out.append(c)
    return "".join(out)


def _fold_latin(c: str) -> str | None:
    """é → e, ß → ss (espeak's English voice would name the letter: 'e acute'); None if not Latin."""
    if c in _LATIN_FOLD:
        return _LATIN_FOLD[c]
    if not unicodedata.name(c, "").startswith("LATIN"):
        return None
    base = "".join(x for x in unicodedata.normalize("NFKD", c) if not unicodedata.combining(x))
    return base if base.isascii() and base.isalpha() else None


def screen(text: str, notes: Notes) -> str:
    """Normalised text → only what G2P can read: Chinese characters, ASCII letters and digits,
    punctuation, white space. Accented Latin letters are folded to ASCII; everything else is dropped
    and noted (a foreign-script run becomes a word gap)."""
    out: list[str] = []
    run: list[str] = []
    run_script = ""

    def flush_run() -> None:
        nonlocal run_script
        if run:
            notes.drop("script", run_script, "".join(run))
            run.clear()
            out.append(" ")
        run_script = ""

    for c in text:
        if c in SILENT:
            continue
        cat = unicodedata.category(c)
        if cat[0] == "M" and run:  # a combining mark inside a foreign-script run
            run.append(c)
            continue
        if (c.isascii() and c.isalnum()) or _HAN.match(c) or c.isspace() or cat[0] == "P" or cat == "Nd":
            flush_run()
            out.append(c)
            continue
        if cat[0] == "L":
            folded = _fold_latin(c)
            if folded is not None:
                flush_run()
                out.append(folded)
                continue
            if unicodedata.name(c, "").startswith("LATIN"):  # ə, ʃ: IPA letters, not English text
                flush_run()
                out.append(" ")
                notes.drop("symbol", "letters with no English reading", c)
                continue
            label = script_of(c)
            if run and label != run_script:
                flush_run()
            run_script = label
            run.append(c)
            continue
        flush_run()
        out.append(" ")  # a word gap: 'a\x00b' must not become the word 'ab'
        if cat[0] == "C":
            notes.drop("control", "control", c)
        elif cat[0] == "M":
            notes.drop("symbol", "combining marks", c)
        else:
            notes.drop("symbol", "symbols", c)
    flush_run()
    return "".join(out)
