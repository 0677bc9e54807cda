"""Batch synthesis of a JSONL task file: resumable, one bad line never stops the rest.

Two line schemas are accepted:
  GLM-TTS: ``{"uttid", "prompt_text", "prompt_speech", "syn_text"}``
  simple:  ``{"prompt_audio", "input_text", "output_name"}``
Clip paths are relative to the JSONL's folder. Outputs: ``OUT/<name>.wav`` and ``OUT/text_compare.jsonl``
(one row per task line: status done/skipped/redone/failed/rejected, normalised text and phonemes or the
error), optionally ``OUT.zip``. A task file or option that cannot be used at all raises BatchError
(the CLI's exit 2); a bad line is reported and the rest goes on (exit 1 at the end).
"""

from __future__ import annotations

import json
import os
import sys
import time
import unicodedata
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import soundfile as sf

from fedtts.pipeline.audio_io import atomic_path, write_audio
from fedtts.pipeline.synth import SynthesisOptions, Synthesizer
from fedtts.pipeline.timing import SUBTITLE_FORMATS, write_subtitles

__all__ = [
    "BatchConfig",
    "BatchError",
    "BatchItem",
    "BatchReport",
    "ItemError",
    "incomplete_audio",
    "parse_tasks",
    "run_batch",
    "safe_name",
]

DEFAULT_VOICE = "jf_alpha"
TEXT_COMPARE = "text_compare.jsonl"
_WRITTEN = ("done", "redone", "skipped")  # statuses whose row has an audio file


class BatchError(ValueError):
    """The task file or an option cannot be used at all (missing, a folder, binary, no tasks)."""


class ItemError(ValueError):
    """A task line that cannot be used; says which field and why."""

    def __init__(self, field_name: str | None, message: str):
        super().__init__(f"field '{field_name}': {message}" if field_name else message)
        self.field = field_name
        self.raw: str | None = None  # the task line (start), for the text_compare row of a rejected line


@dataclass
class BatchConfig:
    tasks: Path
    out_dir: Path
    options: SynthesisOptions = field(default_factory=SynthesisOptions)
    voice: str | None = None  # for items without a prompt clip
    overwrite: bool = False
    zip: bool = False
    progress: bool = True
    subtitles: str | None = None  # "srt" | "vtt": one word-timed subtitle file beside each output

    def validate(self) -> BatchConfig:
        self.tasks, self.out_dir = Path(self.tasks), Path(self.out_dir)
        if self.subtitles is not None and self.subtitles not in SUBTITLE_FORMATS:
            raise BatchError(
                f"subtitles must be one of {', '.join(SUBTITLE_FORMATS)}, got {self.subtitles!r}"
            )
        if self.tasks.is_dir():
            raise BatchError(f"task file {self.tasks} is a folder, not a JSONL file")
        if not self.tasks.is_file():
            raise BatchError(f"task file not found: {self.tasks}")
        if self.out_dir.exists() and not self.out_dir.is_dir():
            raise BatchError(f"--out-dir {self.out_dir} exists and is not a folder")
        self.options.validate()
        return self


@dataclass
class BatchItem:
    line: int
    name: str
    text: str
    prompt: Path | None
    prompt_field: str
    prompt_text: str | None
    text_field: str = "syn_text"


@dataclass
class BatchReport:
    total: int = 0
    done: int = 0
    skipped: int = 0
    redone: int = 0  # existing outputs found incomplete and made again (counted in done too)
    failed: list[tuple[int, str]] = field(default_factory=list)  # (line, message)
    audio_s: float = 0.0
    compute_s: float = 0.0
    zip_path: Path | None = None

    @property
    def ok(self) -> bool:
        return not self.failed


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
        text_f, name_f, prompt_f, ptext_f = "syn_text", "uttid", "prompt_speech", "prompt_text"
    elif "input_text" in obj:
        text_f, name_f, prompt_f, ptext_f = "input_text", "output_name", "prompt_audio", "prompt_text"
    else:
        raise ItemError(None, "neither {uttid, syn_text, ...} nor {input_text, output_name, ...}")
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
    for i, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        try:
            item = _item(i, raw, Path(path).resolve().parent)
            if item.name in seen:
                raise ItemError("name", f"output name '{item.name}' already used on line {seen[item.name]}")
            seen[item.name] = i
            out.append(item)
        except ItemError as e:
            e.raw = raw if len(raw) <= 300 else raw[:300] + "…"
            out.append((i, e))
    return out


def incomplete_audio(path: Path) -> str | None:
    """Why an existing output is not a finished audio file (None when it is): empty, not WAV,
    truncated (the RIFF header promises more bytes than the file has), no samples, undecodable."""
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            head = f.read(4096)
    except OSError as e:
        return f"it cannot be read ({e.strerror or e})"
    if size == 0:
        return "it is empty (0 bytes)"
    if path.suffix.lower() == ".wav":
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            return "it is not a WAV file"
        riff = int.from_bytes(head[4:8], "little")
        if riff not in (0, 0xFFFFFFFF) and riff + 8 > size:
            return f"it is truncated ({size} of {riff + 8} bytes)"
        pos, data_end = 12, None
        with open(path, "rb") as f:
            while pos + 8 <= size:
                f.seek(pos)
                chunk = f.read(8)
                n = int.from_bytes(chunk[4:8], "little")
                if chunk[:4] == b"data":
                    data_end = pos + 8 + n
                    break
                pos += 8 + n + (n & 1)
        if data_end is None:
            return "it has no audio data chunk"
        if data_end > size and n not in (0, 0xFFFFFFFF):
            return f"it is truncated ({size} of {data_end} bytes)"
    try:
        info = sf.info(str(path))
    except (RuntimeError, sf.LibsndfileError) as e:
        return f"it cannot be decoded ({e})"
    if info.frames <= 0:
        return "it has no samples"
    return None


def _say(msg: str) -> None:
    from tqdm import tqdm

    tqdm.write(msg, file=sys.stderr)


def run_batch(cfg: BatchConfig, synthesizer: Synthesizer | None = None) -> BatchReport:
    """Synthesise every line; failures are reported with their line number and the batch goes on."""
    from tqdm import tqdm

    from fedtts.voice import ReferenceError, VoiceError, load_reference, resolve_reference, resolve_voice_name

    cfg = cfg.validate()
    synth = synthesizer or Synthesizer()
    opts = cfg.options
    items = parse_tasks(cfg.tasks)
    cfg.out_dir.mkdir(parents=True, exist_ok=True)
    report = BatchReport(total=len(items))
    entries: list[dict] = []
    voices: dict[str, Any] = {}
    default_voice = None

    def fail(line: int, err: Exception) -> None:
        msg = f"{cfg.tasks}:{line}: {err}"
        report.failed.append((line, str(err)))
        _say(f"error: {msg}")

    def voice_for(item: BatchItem):
        nonlocal default_voice
        if item.prompt is None:
            if default_voice is None:
                default_voice = resolve_voice_name(cfg.voice or DEFAULT_VOICE)
            return default_voice
        key = str(item.prompt)
        if key not in voices:
            if not item.prompt.is_file():
                raise ItemError(item.prompt_field, f"reference clip not found: {item.prompt}")
            try:
                ref = load_reference(item.prompt, text=item.prompt_text)
                voices[key] = resolve_reference(ref)
            except (ReferenceError, VoiceError) as e:
                raise ItemError(item.prompt_field, str(e)) from e
            v = voices[key]
            _say(f"voice for {item.prompt.name}: {v.name} ({v.meta.get('method', 'resolver')})")
        return voices[key]

    bar = tqdm(items, desc="batch", unit="item", file=sys.stderr, disable=None if cfg.progress else True)
    try:
        for entry in bar:
            if isinstance(entry, tuple):
                line, err = entry
                fail(line, err)
                entries.append({"line": line, "uttid": None, "status": "rejected", "error": str(err)})
                if err.raw is not None:
                    entries[-1]["task"] = err.raw
                continue
            item = entry
            wav = cfg.out_dir / f"{item.name}.wav"
            row: dict[str, Any] = {
                "uttid": item.name,
                "line": item.line,
                "syn_text": item.text,
                "prompt": str(item.prompt) if item.prompt else None,
                "wav": wav.name,
            }
            subs = cfg.out_dir / f"{item.name}.{cfg.subtitles}" if cfg.subtitles else None
            if subs is not None:
                row["subtitles"] = subs.name
            try:
                broken = incomplete_audio(wav) if wav.exists() and not cfg.overwrite else None
                if not broken and subs is not None and wav.exists() and not subs.is_file():
                    broken = f"no {subs.name}"
                if broken:
                    _say(f"{cfg.tasks}:{item.line}: existing {wav} is incomplete ({broken}): making it again")
                if wav.exists() and not cfg.overwrite and not broken:
                    segs = synth.analyze(item.text, opts)
                    row.update(_text_fields(segs), status="skipped")
                    report.skipped += 1
                else:
                    voice = voice_for(item)
                    t0 = time.perf_counter()
                    res = synth.synthesize(item.text, voice, opts)
                    if subs is not None:  # before the audio: an output that exists is a finished item
                        write_subtitles(subs, res.words)
                    write_audio(wav, res.audio, res.sample_rate)
                    report.compute_s += time.perf_counter() - t0
                    report.audio_s += res.duration_s
                    row.update(_text_fields(res.segments), status="redone" if broken else "done")
                    row.update(voice=voice.name, duration_s=round(res.duration_s, 3))
                    if broken:
                        row["redone_because"] = broken
                    report.done += 1
                    report.redone += bool(broken)
            except ItemError as e:
                fail(item.line, e)
                row.update(status="failed", error=str(e))
            except (ValueError, OSError) as e:
                fail(item.line, ItemError(item.text_field, str(e)))
                row.update(status="failed", error=str(e))
            entries.append(row)
    finally:
        bar.close()
        _write_jsonl(cfg.out_dir / TEXT_COMPARE, entries)
    if cfg.zip:
        written = [e for e in entries if e.get("status") in _WRITTEN]
        report.zip_path = _zip(cfg.out_dir, [n for e in written for n in (e["wav"], e.get("subtitles")) if n])
    rtf = report.compute_s / report.audio_s if report.audio_s else 0.0
    print(
        f"batch: {report.done} done"
        + (f" ({report.redone} redone: incomplete)" if report.redone else "")
        + f", {report.skipped} skipped (already there), {len(report.failed)} failed "
        f"of {report.total}; {report.audio_s:.1f} s audio, RTF {rtf:.2f}; outputs in {cfg.out_dir}"
        + (f"; zip {report.zip_path}" if report.zip_path else ""),
        file=sys.stderr,
    )
    return report


def _text_fields(segments: list[Any]) -> dict[str, str]:
    def join(attr: str) -> str:
        return " ".join(str(getattr(s, attr, "") or "") for s in segments).strip()

    return {"normalized": join("normalized"), "readable": join("readable"), "phonemes": join("phonemes")}


# valid raw in JSON, but line breaks to str.splitlines() and many editors: escaped so a row is a line
_LINE_BREAKS = str.maketrans({"\u2028": "\\u2028", "\u2029": "\\u2029", "\x85": "\\u0085"})


def _write_jsonl(path: Path, rows: list[dict]) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "w", encoding="utf-8") as f:
            for r in rows:
                f.write(json.dumps(r, ensure_ascii=False).translate(_LINE_BREAKS) + "\n")


def _zip(out_dir: Path, wavs: list[str]) -> Path:
    target = out_dir.parent / f"{out_dir.name}.zip"
    with atomic_path(target) as tmp:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as z:
            for name in [*wavs, TEXT_COMPARE]:
                p = out_dir / name
                if p.is_file():
                    z.write(p, arcname=f"{out_dir.name}/{name}")
    return target
