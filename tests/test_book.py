"""Issue 20.4: audiobooks (``fedtts book``): chapters from .txt/.md/.epub, a FLAC and subtitles per
chapter, one M4B/MP3 with chapter marks (checked with ffprobe), resume after a kill, bad books."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest
import soundfile as sf

from fedtts.pipeline.book import MAX_PART_CHARS, BookConfig, BookError, read_book, render_book, size_warning

TXT = """A Small Book
by Nobody

Chapter 1
The morning was quiet. 早上很安静。

Chapter 2: The Door
She opened the door and smiled.

第三章 回家
我们明天回家。We go home tomorrow.
"""


def _write(tmp_path: Path, name: str, text: str) -> Path:
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def _epub(path: Path, chapters: list[tuple[str, str]]) -> Path:
    from ebooklib import epub

    book = epub.EpubBook()
    book.set_identifier("fedtts-test")
    book.set_title("Test book")
    book.set_language("en")
    items = []
    for i, (title, body) in enumerate(chapters, 1):
        c = epub.EpubHtml(title=title, file_name=f"c{i}.xhtml", lang="en")
        c.content = f"<html><body><h1>{title}</h1>{body}<script>var x = 1;</script></body></html>"
        book.add_item(c)
        items.append(c)
    book.toc = items
    book.add_item(epub.EpubNcx())
    book.add_item(epub.EpubNav())
    book.spine = ["nav", *items]
    epub.write_epub(str(path), book)
    return path


def test_txt_chapters_at_english_and_chinese_headings(tmp_path):
    chs = read_book(_write(tmp_path, "b.txt", TXT))
    assert [c.title for c in chs] == ["b", "Chapter 1", "Chapter 2: The Door", "第三章 回家"]
    assert chs[0].text.startswith("A Small Book") and "早上很安静" in chs[1].text
    one = read_book(_write(tmp_path, "plain.txt", "Just one paragraph of text."))
    assert [(c.title, c.text) for c in one] == [("plain", "Just one paragraph of text.")]


def test_markdown_chapters_at_the_repeated_heading_level_code_not_read(tmp_path):
    md = "# Title\n\nIntro.\n\n## One\n\nFirst.\n\n```\nprint(1)\n```\n\n### Detail\n\nMore.\n\n## Two\n\nSecond.\n"
    chs = read_book(_write(tmp_path, "b.md", md))
    assert [c.title for c in chs] == ["Title", "One", "Two"]
    assert "print" not in chs[1].text and "Detail." in chs[1].text


def test_epub_chapters_in_spine_order_without_scripts(tmp_path):
    p = _epub(
        tmp_path / "b.epub", [("Opening", "<p>Hello there.</p>"), ("第二章", "<p>你好。</p><p>再见。</p>")]
    )
    chs = read_book(p)
    assert [c.title for c in chs] == ["Opening", "第二章"]
    assert "Hello there." in chs[0].text and "var x" not in chs[0].text
    assert "你好。" in chs[1].text and "再见。" in chs[1].text


def test_long_chapters_are_cut_into_parts_at_paragraphs(tmp_path):
    para = "This sentence is here to fill the chapter with words. " * 20
    text = "Chapter 1\n" + "\n\n".join([para] * (3 * MAX_PART_CHARS // len(para)))
    chs = read_book(_write(tmp_path, "long.txt", text))
    assert len(chs) >= 3 and all(len(c.text) <= MAX_PART_CHARS for c in chs)
    assert chs[0].title == "Chapter 1" and chs[1].title == "Chapter 1 (2)"


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("missing.txt", None, "no such file"),
        ("x.pdf", b"%PDF-1.4", "unsupported book format '.pdf'"),
        ("bin.txt", b"abc\0def", "binary data"),
        ("latin.txt", "caf\xe9".encode("latin-1"), "not UTF-8"),
        ("empty.txt", b"\n\n  \n", "no text to speak"),
        ("fake.epub", b"not a zip at all", "not an EPUB (not a ZIP archive)"),
        ("zip.epub", "zip", "not a readable EPUB"),
    ],
)
def test_bad_books_name_the_file_and_the_problem(tmp_path, name, content, message):
    p = tmp_path / name
    if content == "zip":
        with zipfile.ZipFile(p, "w") as z:
            z.writestr("hello.txt", "a zip of something else")
    elif content is not None:
        p.write_bytes(content)
    with pytest.raises(BookError) as e:
        read_book(p)
    assert str(p) in str(e.value) and message in str(e.value)


def test_two_million_characters_read_in_bounded_parts_with_a_warning(tmp_path):
    para = "She read the letter twice. 她把信读了两遍，然后放进抽屉。\n\n"
    p = tmp_path / "huge.txt"
    with p.open("w", encoding="utf-8") as f:
        for k in range(40):
            f.write(f"Chapter {k + 1}\n\n" + para * (2_100_000 // 40 // len(para) + 1))
    t0 = time.monotonic()
    chs = read_book(p)
    assert time.monotonic() - t0 < 30
    assert sum(len(c.text) for c in chs) >= 2_000_000 and all(len(c.text) <= MAX_PART_CHARS for c in chs)
    warning = size_warning(chs)
    assert warning and "hours of audio" in warning and "run the same command again" in warning
    assert size_warning(chs[:2]) is None


def test_epub_without_text(tmp_path):
    p = _epub(tmp_path / "blank.epub", [("", "<p>   </p>")])
    with pytest.raises(BookError, match="no text to speak"):
        read_book(p)


@pytest.mark.slow
def test_book_renders_chapters_subtitles_and_an_m4b_with_chapter_marks(tmp_path, engine):
    from fedtts.pipeline import Synthesizer
    from fedtts.voice import stock_voice

    book = _write(tmp_path, "mini.txt", TXT)
    cfg = BookConfig(book=book, out_dir=tmp_path / "out", voice=stock_voice("jf_alpha")).validate()
    seen = []
    report = render_book(cfg, Synthesizer(engine=engine), progress=lambda d, t, title: seen.append((d, t)))
    assert report.done == 4 and report.book_file == tmp_path / "out" / "mini.m4b"
    assert seen[-1][0] == seen[-1][1] and [d for d, _ in seen] == sorted(d for d, _ in seen)
    durs = [sf.info(str(tmp_path / "out" / f"00{i}.flac")).duration for i in range(1, 5)]
    assert all(d > 0.5 for d in durs)
    assert "我们明天回家" in (tmp_path / "out" / "004.srt").read_text(encoding="utf-8")
    probe = subprocess.run(
        ["ffprobe", "-v", "error", "-show_chapters", "-show_format", "-of", "json", str(report.book_file)],
        capture_output=True,
        text=True,
        check=True,
    )
    info = json.loads(probe.stdout)
    titles = [c["tags"]["title"] for c in info["chapters"]]
    assert titles == ["mini", "Chapter 1", "Chapter 2: The Door", "第三章 回家"]
    starts = [float(c["start_time"]) for c in info["chapters"]]
    assert starts[1:] == pytest.approx(list(__import__("itertools").accumulate(durs))[:3], abs=0.05)
    assert float(info["format"]["duration"]) == pytest.approx(sum(durs), abs=0.2)
    again = render_book(cfg, Synthesizer(engine=engine))
    assert again.done == 0 and again.skipped == 4
    # an edited chapter is made again, the others are not
    book.write_text(TXT.replace("smiled", "laughed"), encoding="utf-8")
    edited = render_book(cfg, Synthesizer(engine=engine))
    assert edited.done == 1 and edited.skipped == 3


@pytest.mark.slow
def test_killed_book_resumes_without_redoing_finished_chapters(tmp_path):
    text = "\n\n".join(
        f"Chapter {i}\nThis is chapter number {i}. It has two short sentences." for i in range(1, 5)
    )
    book = _write(tmp_path, "b.txt", text)
    out = tmp_path / "out"
    cmd = [
        sys.executable,
        "-m",
        "fedtts.app.cli",
        "book",
        str(book),
        "--out-dir",
        str(out),
        "--format",
        "none",
    ]
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    state = out / "book.json"
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and proc.poll() is None:
        if state.is_file() and len(json.loads(state.read_text(encoding="utf-8"))["chapters"]) >= 1:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the book finished before it could be killed"
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(60) == 143, proc.stderr.read()
    assert not [p for p in os.listdir(out) if p.endswith(".part")]
    finished = json.loads(state.read_text(encoding="utf-8"))["chapters"]
    assert 1 <= len(finished) < 4
    mtimes = {k: (out / v["audio"]).stat().st_mtime_ns for k, v in finished.items()}
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    assert f"{4 - len(finished)} chapters made, {len(finished)} already there (of 4)" in r.stderr
    assert {k: (out / v["audio"]).stat().st_mtime_ns for k, v in finished.items()} == mtimes
    assert sorted(p.name for p in out.glob("*.flac")) == ["001.flac", "002.flac", "003.flac", "004.flac"]


def test_cli_bad_book_exits_2_and_makes_nothing(tmp_path, capsys):
    from fedtts.app.cli import main

    p = tmp_path / "b.epub"
    p.write_bytes(b"PK\x03\x04 broken")
    assert main(["book", str(p), "--out-dir", str(tmp_path / "out")]) == 2
    assert "not a readable EPUB" in capsys.readouterr().err or not zipfile.is_zipfile(p)
    assert not (tmp_path / "out").exists()
