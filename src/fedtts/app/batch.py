"""Batch synthesis of a JSONL task file: resumable, one bad line never stops the rest.

Two line schemas are accepted:
  GLM-TTS: ``{"uttid", "prompt_text", "prompt_speech", "syn_text"}``
  simple:  ``{"prompt_audio", "input_text", "output_name"}``
Clip paths are relative to the JSONL's folder. Outputs: ``OUT/<name>.wav`` and ``OUT/text_compare.jsonl``
(normalised text and phonemes per item), optionally ``OUT.zip``.
"""

from __future__ import annotations

import json
import os
import sys
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fedtts.pipeline.audio_io import atomic_path, write_audio
from fedtts.pipeline.synth import SynthesisOptions, Synthesizer

__all__ = ["BatchConfig", "BatchItem", "BatchReport", "ItemError", "parse_tasks", "run_batch", "safe_name"]

DEFAULT_VOICE = "jf_alpha"
TEXT_COMPARE = "text_compare.jsonl"


class ItemError(ValueError):
    """A task line that cannot be used; says which field and why."""

    def __init__(self, field_name: str | None, message: str):
        super().__init__(f"field '{field_name}': {message}" if field_name else message)
        self.field = field_name


@dataclass
class BatchConfig:
    tasks: Path
    out_dir: Path
    options: SynthesisOptions = field(default_factory=SynthesisOptions)
    voice: str | None = None  # for items without a prompt clip
    overwrite: bool = False
    zip: bool = False
    progress: bool = True

    def validate(self) -> BatchConfig:
        self.tasks, self.out_dir = Path(self.tasks), Path(self.out_dir)
        if not self.tasks.is_file():
            raise FileNotFoundError(f"task file not found: {self.tasks}")
        if self.out_dir.exists() and not self.out_dir.is_dir():
            raise NotADirectoryError(f"--out-dir {self.out_dir} exists and is not a folder")
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
    failed: list[tuple[int, str]] = field(default_factory=list)  # (line, message)
    audio_s: float = 0.0
    compute_s: float = 0.0
    zip_path: Path | None = None

    @property
    def ok(self) -> bool:
        return not self.failed


def safe_name(name: Any, field_name: str) -> str:
    """An output name that stays inside the output folder (no folders, '..', absolute paths)."""
    if not isinstance(name, str) or not name.strip():
        raise ItemError(field_name, "must be a non-empty string")
    name = name.strip()
    if name.lower().endswith(".wav"):
        name = name[:-4]
    bad = (
        os.path.isabs(name)
        or "/" in name
        or "\\" in name
        or name.startswith(".")
        or "\x00" in name
        or len(name) > 200
        or not name
    )
    if bad:
        raise ItemError(field_name, f"{name!r} is not a plain file name (no folders, '..' or absolute paths)")
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
        lines = Path(path).read_text(encoding="utf-8-sig").splitlines()
    except UnicodeDecodeError as e:
        raise ValueError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from e
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
            out.append((i, e))
    return out


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
                fail(*entry)
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
            try:
                if wav.exists() and not cfg.overwrite:
                    segs = synth.analyze(item.text, opts)
                    row.update(_text_fields(segs), status="skipped")
                    report.skipped += 1
                else:
                    voice = voice_for(item)
                    t0 = time.perf_counter()
                    res = synth.synthesize(item.text, voice, opts)
                    write_audio(wav, res.audio, res.sample_rate)
                    report.compute_s += time.perf_counter() - t0
                    report.audio_s += res.duration_s
                    row.update(_text_fields(res.segments), status="done", voice=voice.name)
                    row["duration_s"] = round(res.duration_s, 3)
                    report.done += 1
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
        report.zip_path = _zip(cfg.out_dir, [e["wav"] for e in entries if e.get("status") != "failed"])
    rtf = report.compute_s / report.audio_s if report.audio_s else 0.0
    print(
        f"batch: {report.done} done, {report.skipped} skipped (already there), {len(report.failed)} failed "
        f"of {report.total}; {report.audio_s:.1f} s audio, RTF {rtf:.2f}; outputs in {cfg.out_dir}"
        + (f"; zip {report.zip_path}" if report.zip_path else ""),
        file=sys.stderr,
    )
    return report


def _text_fields(segments: list[Any]) -> dict[str, str]:
    def join(attr: str) -> str:
        return " ".join(str(getattr(s, attr, "") or "") for s in segments).strip()

    return {"normalized": join("normalized"), "readable": join("readable"), "phonemes": join("phonemes")}


def _write_jsonl(path: Path, rows: list[dict]) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "w", encoding="utf-8") as f:
            for r in rows:
                f.write(json.dumps(r, ensure_ascii=False) + "\n")


def _zip(out_dir: Path, wavs: list[str]) -> Path:
    target = out_dir.parent / f"{out_dir.name}.zip"
    with atomic_path(target) as tmp:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as z:
            for name in [*wavs, TEXT_COMPARE]:
                p = out_dir / name
                if p.is_file():
                    z.write(p, arcname=f"{out_dir.name}/{name}")
    return target
