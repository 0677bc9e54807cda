"""Audiobooks: a .txt/.md/.epub file → one audio file and one subtitle file per chapter, then one
M4B (or MP3) with chapter marks.

Why it is shaped like this: a book is hours of audio, so nothing holds more than one chunk of it in
memory (each chapter is streamed into its file, the M4B is joined by ffmpeg from those files), and
a run that is killed loses at most the chapter it was on: each chapter is written to a hidden
``.part`` file and renamed when finished, and ``book.json`` records what is finished (with a hash
of the chapter's text and options, so an edited chapter is made again and an unchanged one is not).
"""

from __future__ import annotations

import hashlib
import html.parser
import json
import re
import shutil
import subprocess
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf

from fedtts.pipeline.audio_io import atomic_path
from fedtts.pipeline.synth import SynthesisOptions, Synthesizer
from fedtts.pipeline.timing import SUBTITLE_FORMATS, Timeline, write_subtitles
from fedtts.pipeline.watermark import output_tags

__all__ = [
    "BOOK_FORMATS",
    "BookConfig",
    "BookError",
    "BookReport",
    "Chapter",
    "read_book",
    "render_book",
    "size_warning",
]

BOOK_FORMATS = ("m4b", "mp3", "none")
MAX_PART_CHARS = 20_000  # a longer chapter is cut into parts at paragraph ends (the unit of resume)
LARGE_BOOK_CHARS = 500_000  # beyond this the user is told how long it is before hours of rendering
CHARS_PER_AUDIO_S = 11.0  # mixed zh/en at speed 1 (bench_book: 10 909 characters → 16.7 min)
STATE_FILE = "book.json"
STATE_VERSION = 1
_TXT_HEADING = re.compile(
    r"^\s*(?:(?:chapter|part|book|prologue|epilogue)\b[^\n]{0,60}"
    r"|第[0-9０-９零〇一二三四五六七八九十百千两]+[章回节卷部][^\n]{0,30}"
    r"|序[章言]|尾声|楔子)\s*$",
    re.IGNORECASE,
)
_MD_HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")


class BookError(ValueError):
    """A book that cannot be read (names the file and what is wrong)."""


@dataclass(frozen=True)
class Chapter:
    title: str
    text: str


# ------------------------------------------------------------------------------------ reading
def size_warning(chapters: list[Chapter]) -> str | None:
    """A warning for a very long book (how much audio it makes, and that it can be stopped and
    resumed), else None: the render goes on either way, chapter by chapter."""
    chars = sum(len(c.text) for c in chapters)
    if chars <= LARGE_BOOK_CHARS:
        return None
    hours = chars / CHARS_PER_AUDIO_S / 3600
    return (
        f"{chars:,} characters in {len(chapters)} chapters make about {hours:.0f} hours of audio; "
        "rendering takes a while: stop it at any time and run the same command again to go on "
        "(finished chapters are kept)"
    )


def read_book(path: str | Path) -> list[Chapter]:
    """Chapters of a .txt, .md or .epub file, in reading order, cut into parts of at most
    ``MAX_PART_CHARS`` characters."""
    path = Path(path)
    if not path.is_file():
        raise BookError(f"{path}: no such file" if not path.exists() else f"{path}: not a file")
    kind = path.suffix.lower()
    if kind == ".epub":
        chapters = _read_epub(path)
    elif kind in (".txt", ".md", ".markdown", ".text"):
        raw = path.read_bytes()
        if b"\0" in raw[:65536]:
            raise BookError(f"{path}: binary data (NUL bytes), not a text file")
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError as e:
            raise BookError(f"{path}: not UTF-8 text (byte {e.start}: {e.reason})") from None
        text = text.replace("\r\n", "\n").replace("\r", "\n")
        chapters = _split_md(text, path.stem) if kind in (".md", ".markdown") else _split_txt(text, path.stem)
    else:
        raise BookError(f"{path}: unsupported book format {kind or '(no suffix)'!r}; use .txt, .md or .epub")
    chapters = [c for c in chapters if _speakable(c.text)]
    if not chapters:
        raise BookError(f"{path}: the book has no text to speak")
    return [part for c in chapters for part in _parts(c)]


def _speakable(text: str) -> bool:
    return bool(re.search(r"[A-Za-z0-9\u3400-\u9fff]", text))


def _split_txt(text: str, stem: str) -> list[Chapter]:
    chapters: list[Chapter] = []
    title, buf = stem, []
    for line in text.split("\n"):
        if _TXT_HEADING.match(line) and len(line.strip()) <= 80:
            if "".join(buf).strip():
                chapters.append(Chapter(title, "\n".join(buf).strip()))
            title, buf = line.strip(), []
        else:
            buf.append(line)
    if "".join(buf).strip() or not chapters:
        chapters.append(Chapter(title, "\n".join(buf).strip()))
    return chapters


def _split_md(text: str, stem: str) -> list[Chapter]:
    """Chapters at the highest heading level that occurs more than once (else the highest)."""
    text = re.sub(r"^(```|~~~).*?^\1[^\n]*$", "", text, flags=re.M | re.S)  # code is not read aloud
    lines = text.split("\n")
    levels = [len(m.group(1)) for line in lines if (m := _MD_HEADING.match(line))]
    if not levels:
        return [Chapter(stem, text.strip())]
    level = min((lv for lv in set(levels) if levels.count(lv) > 1), default=min(levels))
    chapters: list[Chapter] = []
    title, buf = stem, []
    for line in lines:
        m = _MD_HEADING.match(line)
        if m and len(m.group(1)) == level:
            if "".join(buf).strip():
                chapters.append(Chapter(title, "\n".join(buf).strip()))
            title, buf = m.group(2).strip(), [m.group(2).strip() + "."]
        else:
            if m and len(m.group(1)) < level:  # the book's title names the opening part
                title = m.group(2).strip()
            buf.append(m.group(2) + "." if m else line)  # other headings are read as lines
    if "".join(buf).strip():
        chapters.append(Chapter(title, "\n".join(buf).strip()))
    return chapters


class _HtmlText(html.parser.HTMLParser):
    """Text of an XHTML document: block elements end lines, scripts and styles are skipped."""

    _BLOCK = {"p", "div", "br", "li", "h1", "h2", "h3", "h4", "h5", "h6", "tr", "blockquote", "section"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []
        self.heading: str | None = None
        self._skip = 0
        self._in_h = False
        self._h: list[str] = []

    def handle_starttag(self, tag, attrs) -> None:
        if tag in ("script", "style", "head"):
            self._skip += 1
        if tag in self._BLOCK:
            self.out.append("\n")
        if tag in ("h1", "h2", "h3") and self.heading is None:
            self._in_h = True

    def handle_endtag(self, tag) -> None:
        if tag in ("script", "style", "head"):
            self._skip = max(0, self._skip - 1)
        if tag in self._BLOCK:
            self.out.append("\n")
        if tag in ("h1", "h2", "h3") and self._in_h:
            self._in_h = False
            self.heading = " ".join("".join(self._h).split()) or None
            self.out.append(".")

    def handle_data(self, data) -> None:
        if not self._skip:
            self.out.append(data)
            if self._in_h:
                self._h.append(data)


def _read_epub(path: Path) -> list[Chapter]:
    try:
        import ebooklib
        from ebooklib import epub
    except ImportError as e:  # pragma: no cover - depends on the install
        raise BookError(f"{path}: reading EPUB needs the ebooklib package (pip install ebooklib)") from e
    if not zipfile.is_zipfile(path):
        raise BookError(f"{path}: not an EPUB (not a ZIP archive)")
    try:
        book = epub.read_epub(str(path), options={"ignore_ncx": True})
    except Exception as e:  # noqa: BLE001 - ebooklib raises many kinds; all mean "not an EPUB"
        raise BookError(f"{path}: not a readable EPUB ({type(e).__name__}: {str(e)[:200]})") from None
    chapters = []
    for idref, *_ in book.spine:
        item = book.get_item_with_id(idref)
        if item is None or item.get_type() != ebooklib.ITEM_DOCUMENT:
            continue
        if "nav" in (getattr(item, "properties", None) or []) or isinstance(item, epub.EpubNav):
            continue  # the table of contents is not read aloud
        parser = _HtmlText()
        try:
            parser.feed(item.get_content().decode("utf-8", errors="replace"))
        except Exception as e:  # noqa: BLE001 - malformed markup in one item: say which
            raise BookError(f"{path}: {item.get_name()}: unreadable XHTML ({e})") from None
        text = re.sub(r"[ \t]+", " ", "".join(parser.out))
        text = re.sub(r"\n\s*\n+", "\n\n", text).strip()
        title = parser.heading or Path(item.get_name()).stem
        chapters.append(Chapter(title, text))
    return chapters


def _parts(ch: Chapter) -> list[Chapter]:
    if len(ch.text) <= MAX_PART_CHARS:
        return [ch]
    parts, buf, n = [], [], 0
    for para in re.split(r"(?<=\n)\s*\n|(?<=[。！？.!?])\s*\n", ch.text):
        while len(para) > MAX_PART_CHARS:  # one huge paragraph: cut at a sentence end
            cut = max(para.rfind(p, 0, MAX_PART_CHARS) for p in "。！？.!?")
            cut = cut + 1 if cut > MAX_PART_CHARS // 2 else MAX_PART_CHARS
            parts.append(para[:cut])
            para = para[cut:]
        if n + len(para) > MAX_PART_CHARS and buf:
            parts.append("\n".join(buf))
            buf, n = [], 0
        buf.append(para)
        n += len(para) + 1  # and the newline that joins it
    if buf:
        parts.append("\n".join(buf))
    return [Chapter(ch.title if i == 0 else f"{ch.title} ({i + 1})", t) for i, t in enumerate(parts)]


# ------------------------------------------------------------------------------------ rendering
@dataclass
class BookConfig:
    """What to make of a book, and where."""

    book: Path
    out_dir: Path
    voice: object = None  # a resolved Voice (the CLI resolves names, profiles and blends)
    options: SynthesisOptions = field(default_factory=SynthesisOptions)
    book_format: str = "m4b"
    subtitles: str | None = "srt"
    bitrate: str = "64k"

    def validate(self) -> BookConfig:
        self.book, self.out_dir = Path(self.book), Path(self.out_dir)
        if self.book_format not in BOOK_FORMATS:
            raise BookError(f"format must be one of {', '.join(BOOK_FORMATS)}, got {self.book_format!r}")
        if self.subtitles is not None and self.subtitles not in SUBTITLE_FORMATS:
            raise BookError(f"subtitles must be one of {', '.join(SUBTITLE_FORMATS)}, got {self.subtitles!r}")
        if self.out_dir.exists() and not self.out_dir.is_dir():
            raise BookError(f"--out-dir {self.out_dir} is a file, not a folder")
        if self.book_format != "none" and shutil.which("ffmpeg") is None:
            raise BookError(f"making a {self.book_format} needs ffmpeg on PATH (or use --format none)")
        self.options = self.options.validate()
        return self


@dataclass
class BookReport:
    chapters: int = 0
    done: int = 0
    skipped: int = 0
    audio_s: float = 0.0
    compute_s: float = 0.0
    book_file: Path | None = None
    files: list[str] = field(default_factory=list)


def _chapter_key(ch: Chapter, cfg: BookConfig) -> str:
    o = cfg.options
    spec = json.dumps(
        [ch.title, ch.text, str(getattr(cfg.voice, "name", "")), o.sample_rate, o.speed, o.use_phoneme],
        ensure_ascii=False,
    )
    style = np.asarray(getattr(cfg.voice, "pack", np.zeros(0)), np.float32).tobytes()
    return hashlib.sha256(spec.encode("utf-8") + style).hexdigest()[:16]


def _load_state(out_dir: Path) -> dict:
    try:
        state = json.loads((out_dir / STATE_FILE).read_text(encoding="utf-8"))
        return state if state.get("version") == STATE_VERSION else {}
    except (OSError, ValueError):
        return {}


def _save_state(out_dir: Path, state: dict) -> None:
    with atomic_path(out_dir / STATE_FILE) as tmp:
        tmp.write_text(json.dumps(state, ensure_ascii=False, indent=1), encoding="utf-8")


def _finished(path: Path, seconds: float) -> bool:
    """The chapter file exists and has the length that was recorded when it was finished."""
    try:
        return abs(sf.info(str(path)).duration - seconds) < 0.05
    except (OSError, RuntimeError, sf.LibsndfileError):
        return False


def render_book(
    cfg: BookConfig,
    synth: Synthesizer,
    progress: Callable[[int, int, str], None] | None = None,
    say: Callable[[str], None] = print,
) -> BookReport:
    """Render every chapter not already finished, then the M4B/MP3. ``progress(done_chars,
    total_chars, title)`` is called as audio is made (a progress bar with an ETA hangs on it)."""
    chapters = read_book(cfg.book)
    cfg.out_dir.mkdir(parents=True, exist_ok=True)
    state = _load_state(cfg.out_dir)
    done_state: dict = state.get("chapters", {})
    total = sum(len(c.text) for c in chapters)
    report = BookReport(chapters=len(chapters))
    rows, done_chars = [], 0
    width = max(3, len(str(len(chapters))))
    for i, ch in enumerate(chapters, 1):
        stem = f"{i:0{width}d}"
        audio_path = cfg.out_dir / f"{stem}.flac"
        subs = cfg.out_dir / f"{stem}.{cfg.subtitles}" if cfg.subtitles else None
        key = _chapter_key(ch, cfg)
        prev = done_state.get(stem)
        if (
            prev
            and prev.get("key") == key
            and _finished(audio_path, prev["seconds"])
            and (subs is None or subs.is_file())
        ):
            report.skipped += 1
            rows.append(prev)
            done_chars += len(ch.text)
            if progress:
                progress(done_chars, total, ch.title)
            continue
        t0 = time.perf_counter()
        timeline = Timeline()
        seen = [done_chars]
        with atomic_path(audio_path) as tmp:
            with sf.SoundFile(tmp, "w", cfg.options.sample_rate, 1, format="FLAC", subtype="PCM_16") as f:
                for key, value in output_tags(cfg.voice, cfg.options.watermark).items():  # a clone's
                    setattr(f, key, value)
                last_text = None
                for chunk in synth.stream(ch.text, cfg.voice, cfg.options, fast_start=False):
                    f.write(np.clip(chunk.audio, -1, 1))
                    timeline.add(chunk)
                    if progress and chunk.text != last_text:
                        seen[0] = min(seen[0] + len(chunk.text), done_chars + len(ch.text))
                        progress(seen[0], total, ch.title)
                        last_text = chunk.text
        seconds = sf.info(str(audio_path)).duration
        if subs is not None:
            write_subtitles(subs, timeline.words)
        row = {
            "title": ch.title,
            "key": key,
            "audio": audio_path.name,
            "subtitles": subs.name if subs else None,
            "seconds": round(seconds, 3),
            "chars": len(ch.text),
        }
        done_state[stem] = row
        rows.append(row)
        _save_state(cfg.out_dir, {"version": STATE_VERSION, "book": cfg.book.name, "chapters": done_state})
        report.done += 1
        report.audio_s += seconds
        report.compute_s += time.perf_counter() - t0
        done_chars += len(ch.text)
        if progress:
            progress(done_chars, total, ch.title)
    report.files = [r["audio"] for r in rows]
    if cfg.book_format != "none":
        report.book_file = _join(cfg, rows, state.get("joined"), say)
        state = _load_state(cfg.out_dir) or {"version": STATE_VERSION, "chapters": done_state}
        state["joined"] = _joined_key(rows, cfg)
        _save_state(cfg.out_dir, state)
    return report


def _joined_key(rows: list[dict], cfg: BookConfig) -> str:
    return hashlib.sha256(
        json.dumps([[r["key"], r["title"]] for r in rows] + [cfg.book_format, cfg.bitrate]).encode()
    ).hexdigest()[:16]


def _join(cfg: BookConfig, rows: list[dict], joined: str | None, say: Callable[[str], None]) -> Path:
    """One M4B (AAC) or MP3 of all chapters with a chapter mark each (ffmpeg, streamed)."""
    target = cfg.out_dir / f"{cfg.book.stem}.{cfg.book_format}"
    if joined == _joined_key(rows, cfg) and target.is_file():
        return target
    meta = [";FFMETADATA1", f"title={_meta_escape(cfg.book.stem)}", "genre=Audiobook"]
    t = 0
    for r in rows:
        end = t + int(round(r["seconds"] * 1000))
        meta += [
            "[CHAPTER]",
            "TIMEBASE=1/1000",
            f"START={t}",
            f"END={end}",
            f"title={_meta_escape(r['title'])}",
        ]
        t = end
    lst = cfg.out_dir / ".book_files.txt"
    mfile = cfg.out_dir / ".book_meta.txt"
    lst.write_text("".join(f"file '{r['audio']}'\n" for r in rows), encoding="utf-8")
    mfile.write_text("\n".join(meta) + "\n", encoding="utf-8")
    codec = (
        ["-c:a", "aac", "-b:a", cfg.bitrate, "-movflags", "+faststart", "-f", "ipod"]
        if cfg.book_format == "m4b"
        else ["-c:a", "libmp3lame", "-b:a", cfg.bitrate, "-id3v2_version", "3", "-f", "mp3"]
    )
    say(f"book: joining {len(rows)} chapters into {target.name} (ffmpeg)")
    try:
        with atomic_path(target) as tmp:
            cmd = [
                "ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-y",
                "-f", "concat", "-safe", "0", "-i", lst.name, "-i", mfile.name,
                "-map", "0:a", "-map_metadata", "1", "-map_chapters", "1", *codec, str(tmp.resolve()),
            ]  # fmt: skip
            r = subprocess.run(cmd, cwd=cfg.out_dir, capture_output=True, text=True)
            if r.returncode != 0:
                raise BookError(f"ffmpeg could not make {target.name}: {r.stderr.strip()[-400:]}")
    finally:
        for p in (lst, mfile):
            p.unlink(missing_ok=True)
    return target


def _meta_escape(s: str) -> str:
    return re.sub(r"([=;#\\\n])", r"\\\1", s)
