"""Batch synthesis of a JSONL task file: resumable, one bad line never stops the rest.

Two line schemas are accepted:
  GLM-TTS: ``{"uttid", "prompt_text", "prompt_speech", "syn_text"}``
  simple:  ``{"prompt_audio", "input_text", "output_name"}``
Clip paths are relative to the JSONL's folder (lines are read by ``fedtts.pipeline.tasks``). Outputs: ``OUT/<name>.wav`` and ``OUT/text_compare.jsonl``
(one row per task line: status done/skipped/redone/failed/rejected, normalised text and phonemes or the
error), optionally ``OUT.zip``. A task file or option that cannot be used at all raises BatchError
(the CLI's exit 2); a bad line is reported and the rest goes on (exit 1 at the end).
"""

from __future__ import annotations

import json
import sys
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import soundfile as sf

from fedtts.pipeline.audio_io import atomic_path, write_audio
from fedtts.pipeline.runtime import Runtime
from fedtts.pipeline.synth import SynthesisOptions, Synthesizer
from fedtts.pipeline.tasks import BatchError, BatchItem, ItemError, parse_tasks, safe_name
from fedtts.pipeline.timing import SUBTITLE_FORMATS, write_subtitles
from fedtts.voice import (
    DEFAULT_VOICE,
    ReferenceError,
    VoiceError,
    load_reference,
    resolve_reference,
    resolve_voice_name,
)

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

TEXT_COMPARE = "text_compare.jsonl"
_WRITTEN = ("done", "redone", "skipped")  # statuses whose row has an audio file


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

    cfg = cfg.validate()
    synth = synthesizer or Runtime().synthesizer()
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
                voices[key] = resolve_reference(ref, engine=synth.engine)
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
                    write_audio(wav, res.audio, res.sample_rate, tags=res.tags)
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
