"""Pronunciation dictionary (JSONL): grapheme → pinyin (zh) or IPA (en); longest match wins.

Every entry is checked when it is loaded or added (pinyin syllables and tones exist, IPA symbols are
in the model's vocabulary), so a typo is an error naming the line, not a mangled reading later."""

from __future__ import annotations

import json
import re
from pathlib import Path

from .overrides import PronunciationError, check_pronunciation

__all__ = ["DictionaryError", "PronunciationDict"]

_GLM = re.compile(r"<\|([A-Z]+)(\d?)\|>")


def _w(c: str) -> bool:
    return c.isascii() and c.isalnum()


class DictionaryError(ValueError):
    """A dictionary line is invalid (message names file, line and reason)."""


def _glm_to_pinyin(s: str) -> str:
    parts = _GLM.findall(s)
    if not parts:
        raise ValueError(f"not a GLM-TTS phoneme string: {s!r}")
    out, cur = [], ""
    for sym, tone in parts:
        cur += sym.lower()
        if tone:
            out.append(cur + tone)
            cur = ""
    if cur:
        out.append(cur + "5")
    return " ".join(out)


class PronunciationDict:
    """grapheme → phoneme string; load/add/remove/save."""

    def __init__(self, entries: dict[str, str] | None = None):
        self.entries: dict[str, str] = dict(entries or {})

    @classmethod
    def load(cls, path: Path | str) -> PronunciationDict:
        path = Path(path)
        if not path.is_file():
            raise DictionaryError(f"{path}: dictionary file not found")
        d = cls()
        try:
            # newlines only: str.splitlines also cuts at U+0085/U+2028, so line numbers would not match
            lines = [x.rstrip("\r") for x in path.read_text(encoding="utf-8-sig").split("\n")]
        except UnicodeDecodeError as e:
            raise DictionaryError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None
        for no, line in enumerate(lines, 1):
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise DictionaryError(f"{path}:{no}: invalid JSON ({e.msg})") from None
            if not isinstance(obj, dict):
                raise DictionaryError(f"{path}:{no}: expected a JSON object")
            field = "phoneme"
            if "grapheme" in obj or "phoneme" in obj:
                g, p = obj.get("grapheme"), obj.get("phoneme")
            elif len(obj) == 1:
                g, p = next(iter(obj.items()))
                field = g
                try:
                    p = _glm_to_pinyin(str(p))
                except ValueError as e:
                    raise DictionaryError(f"{path}:{no}: {e}") from None
            else:
                raise DictionaryError(f"{path}:{no}: needs 'grapheme' and 'phoneme' fields")
            if not isinstance(g, str) or not g.strip():
                raise DictionaryError(f"{path}:{no}: field 'grapheme' is missing or empty")
            if not isinstance(p, str) or not p.strip():
                raise DictionaryError(f"{path}:{no}: field 'phoneme' is missing or empty")
            try:
                check_pronunciation(g.strip(), p.strip())
            except PronunciationError as e:
                raise DictionaryError(f"{path}:{no}: field {field!r} ({p.strip()!r}): {e}") from None
            d.entries[g.strip()] = p.strip()
        return d

    def add(self, grapheme: str, phoneme: str) -> None:
        """Add (or replace) an entry; DictionaryError if the model cannot say the pronunciation."""
        if not grapheme.strip() or not phoneme.strip():
            raise DictionaryError("grapheme and phoneme must be non-empty")
        try:
            check_pronunciation(grapheme.strip(), phoneme.strip())
        except PronunciationError as e:
            raise DictionaryError(f"{grapheme.strip()!r} ({phoneme.strip()!r}): {e}") from None
        self.entries[grapheme.strip()] = phoneme.strip()

    def remove(self, grapheme: str) -> None:
        self.entries.pop(grapheme, None)

    def save(self, path: Path | str) -> None:
        lines = [
            json.dumps({"grapheme": g, "phoneme": p}, ensure_ascii=False) for g, p in self.entries.items()
        ]
        Path(path).write_text("\n".join(lines) + "\n", encoding="utf-8")

    def content_key(self) -> str:
        return json.dumps(sorted(self.entries.items()), ensure_ascii=False)

    def find(self, text: str) -> list[tuple[int, int, str]]:
        """Non-overlapping (start, end, phoneme) matches, longest first at each position."""
        if not self.entries:
            return []
        keys = sorted(self.entries, key=len, reverse=True)
        out, i = [], 0
        while i < len(text):
            for k in keys:
                if text.startswith(k, i):
                    ascii_k = k.isascii()
                    if ascii_k and (
                        (i > 0 and _w(text[i - 1])) or (i + len(k) < len(text) and _w(text[i + len(k)]))
                    ):
                        continue
                    out.append((i, i + len(k), self.entries[k]))
                    i += len(k)
                    break
            else:
                i += 1
        return out
