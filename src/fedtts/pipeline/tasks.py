"""Batch task files: a JSONL file read into task items, each bad line an error naming its field.

Two line schemas are accepted:
  GLM-TTS: ``{"uttid", "prompt_text", "prompt_speech", "syn_text"}``
  simple:  ``{"prompt_audio", "input_text", "output_name"}``
Clip paths are relative to the JSONL's folder. Here, below the apps, so that batch synthesis
(``fedtts.app.batch``), the UI and the speaking evaluation (``fedtts.eval.speak_eval``) read task
files one way. A file that cannot be used at all raises ``BatchError``; a bad line becomes
``(line number, ItemError)`` and the rest is read.
"""

from __future__ import annotations

import difflib
import json
import logging
import os
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["BatchError", "BatchItem", "ItemError", "parse_tasks", "safe_name", "FIELDS"]

log = logging.getLogger(__name__)

FIELDS = {
    "glm": ("syn_text", "uttid", "prompt_speech", "prompt_text"),
    "simple": ("input_text", "output_name", "prompt_audio", "prompt_text"),
}
"""The fields each line schema reads (text, name, prompt clip, its transcript); others are ignored,
with a warning."""


class BatchError(ValueError):
    """The task file or an option cannot be used at all (missing, a folder, binary, no tasks)."""


class ItemError(ValueError):
    """A task line that cannot be used; says which field and why."""

    def __init__(self, field_name: str | None, message: str):
        super().__init__(f"field '{field_name}': {message}" if field_name else message)
        self.field = field_name
        self.raw: str | None = None  # the task line (start), for the text_compare row of a rejected line


@dataclass
class BatchItem:
    line: int
    name: str
    text: str
    prompt: Path | None
    prompt_field: str
    prompt_text: str | None
    text_field: str = "syn_text"


def safe_name(name: Any, field_name: str) -> str:
    """An output name that stays inside the output folder (no folders, '..', absolute paths) and is
    printable (a newline or a bidi override in a file name breaks listings and scripts)."""
    if not isinstance(name, str) or not name.strip():
        raise ItemError(field_name, "must be a non-empty string")
    ctrl = next(
        (c for c in name if unicodedata.category(c) in ("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp")), None
    )
    if ctrl is not None:
        kind = (
            "control" if unicodedata.category(ctrl) in ("Cc", "Cf", "Zl", "Zp") else "unassigned/private-use"
        )
        raise ItemError(
            field_name, f"{name!r} contains the {kind} character U+{ord(ctrl):04X}: names must be printable"
        )
    name = name.strip()
    if name.lower().endswith(".wav"):
        name = name[:-4]
    bad = (
        os.path.isabs(name)
        or "/" in name
        or "\\" in name
        or name.startswith(".")
        or "\x00" in name
        or not name
    )
    if bad:
        raise ItemError(field_name, f"{name!r} is not a plain file name (no folders, '..' or absolute paths)")
    if len(name) > 200 or len(name.encode("utf-8")) > 240:  # file systems allow 255 bytes with '.wav'
        raise ItemError(field_name, f"{name[:40]!r}… is too long for a file name (200 characters, 240 bytes)")
    return name


def _item(line_no: int, raw: str, base: Path) -> BatchItem:
    try:
        obj = json.loads(raw)
    except json.JSONDecodeError as e:
        raise ItemError(None, f"malformed JSON ({e.msg} at column {e.colno})") from e
    if not isinstance(obj, dict):
        raise ItemError(None, f"expected a JSON object, got {type(obj).__name__}")
    if "syn_text" in obj or "uttid" in obj:
        text_f, name_f, prompt_f, ptext_f = FIELDS["glm"]
    elif "input_text" in obj:
        text_f, name_f, prompt_f, ptext_f = FIELDS["simple"]
    else:
        raise ItemError(None, "neither {uttid, syn_text, ...} nor {input_text, output_name, ...}")
    known = (text_f, name_f, prompt_f, ptext_f)
    for key in obj:
        # a misspelt field would be ignored and give a wrong result (a stock voice instead of the clone)
        near = difflib.get_close_matches(str(key), known, n=1, cutoff=0.8) if key not in known else []
        if near and near[0] not in obj:
            raise ItemError(
                str(key), f"unknown field: did you mean '{near[0]}'? (this line reads {', '.join(known)})"
            )
    text = obj.get(text_f)
    if not isinstance(text, str) or not text.strip():
        raise ItemError(text_f, "missing or empty text")
    if name_f in obj:
        name = safe_name(obj[name_f], name_f)
    elif name_f == "output_name":
        name = f"item_{line_no:05d}"
    else:
        raise ItemError(name_f, "missing")
    prompt = obj.get(prompt_f)
    ppath = None
    if prompt not in (None, ""):
        if not isinstance(prompt, str):
            raise ItemError(prompt_f, "must be a path string")
        ppath = Path(prompt).expanduser()
        if not ppath.is_absolute():
            ppath = base / ppath
    ptext = obj.get(ptext_f)
    return BatchItem(line_no, name, text, ppath, prompt_f, ptext if isinstance(ptext, str) else None, text_f)


def parse_tasks(path: Path) -> list[BatchItem | tuple[int, ItemError]]:
    """Every non-blank line as an item, or (line number, error) for the bad ones."""
    out: list[BatchItem | tuple[int, ItemError]] = []
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise BatchError(f"task file {path} cannot be read: {e.strerror or e}") from e
    if b"\x00" in data:
        raise BatchError(f"{path}: binary data (NUL byte at offset {data.index(0)}), not a JSONL task file")
    try:
        # split at newlines only: str.splitlines would also cut at U+2028 or \x1c inside a JSON string
        lines = [x.rstrip("\r") for x in data.decode("utf-8-sig").split("\n")]
    except UnicodeDecodeError as e:
        raise BatchError(
            f"{path}: not UTF-8 text ({e.reason} at byte {e.start}), not a JSONL task file"
        ) from e
    if not any(x.strip() for x in lines):
        raise BatchError(f"{path}: no task lines (the file is empty)")
    seen: dict[str, int] = {}
    ignored: dict[str, list[int]] = {}
    for i, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        try:
            item = _item(i, raw, Path(path).resolve().parent)
            if item.name in seen:
                raise ItemError("name", f"output name '{item.name}' already used on line {seen[item.name]}")
            seen[item.name] = i
            out.append(item)
            for key in json.loads(raw):
                if key not in FIELDS["glm"] and key not in FIELDS["simple"]:
                    ignored.setdefault(str(key), []).append(i)
        except ItemError as e:
            e.raw = raw if len(raw) <= 300 else raw[:300] + "…"
            out.append((i, e))
    for key, where in ignored.items():
        shown = ", ".join(map(str, where[:5])) + (" …" if len(where) > 5 else "")
        log.warning("%s: ignoring unknown field '%s' (line %s)", path, key, shown)
    return out
