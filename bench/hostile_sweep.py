"""Hostile/odd inputs against the real CLI and HTTP API (issue 18): exit code, message, leftovers.

Each CLI case runs ``python -m fedtts.app.cli …`` as a real subprocess in its own fresh folder; the
HTTP cases go to one real ``fedtts serve`` on a free loopback port. Per input it records the exit
code (or HTTP status), whether stderr (or the JSON error) names the problem, whether a traceback or a
server path leaked, and which files were left in the case's folder. Prints a table and writes JSON.

    python bench/hostile_sweep.py                      # everything (minutes of CPU: not in CI)
    python bench/hostile_sweep.py --only fl,http --json bench/out/hostile_sweep.json
    python bench/hostile_sweep.py --limit 3            # a quick smoke run
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("FEDTTS_SHARED", REPO.parent / "shared"))
LONG_EN = " ".join(f"This is sentence number {i} of a long text." for i in range(40))


@dataclass
class Case:
    """One hostile input: what to run, which exit codes are right, what the message must name."""

    group: str
    name: str
    argv: list[str] = field(default_factory=list)
    ok_codes: tuple[int, ...] = (2,)
    needle: str = ""  # stderr must contain this (case-insensitive)
    files: dict[str, str | bytes] = field(default_factory=dict)  # set-up files in the case folder
    kind: str = "cli"  # cli | sigterm | http
    body: object = None  # http: JSON body (or bytes)
    must_not_exist: tuple[str, ...] = ()  # paths (relative) the command must not create
    allowed: tuple[str, ...] = ()  # paths (relative, with what is under them) a failing run may write
    stdout_not: tuple[str, ...] = ()  # a silent wrong result: stdout must not contain these
    stdout_has: tuple[str, ...] = ()  # … and must contain these
    check: Callable[[Path], str | None] | None = None  # case folder → what is wrong afterwards, or None
    script: str = ""  # cli: run this repository script instead of ``-m fedtts.app.cli``
    method: str = "POST"  # http
    path: str = "/v1/audio/speech"  # http
    upload: dict[str, tuple[str, bytes]] = field(default_factory=dict)  # http: multipart files
    form: dict[str, str] = field(default_factory=dict)  # http: multipart fields
    api: str = ""  # ui: the Gradio endpoint; body = its argument list


@dataclass
class Result:
    group: str
    name: str
    code: int | None
    expected: list[int]
    names_problem: bool
    traceback: bool
    leak: bool
    leftovers: list[str]
    message: str
    wrong_output: str = ""  # stdout/after-check problem: a wrong result even when the exit code is right
    ok: bool = False


def _clip() -> str | None:
    man = SHARED / "data" / "dev" / "manifest.jsonl"
    if not man.is_file():
        return None
    for line in man.read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        if row.get("role") == "prompt" and row.get("duration_s", 0) >= 4:
            return str(SHARED / "data" / "dev" / row["path"])
    return None


def cases() -> list[Case]:
    clip = _clip()
    bad_dict = '{"grapheme": "银行", "phoneme": "zz9 qq"}\n'
    star = '{"grapheme": "AI", "phoneme": "ˈeɪ ★"}\n'
    c = [
        Case(
            "say",
            "override-bad-pinyin",
            ["say", "我要去[重庆](xyzq9 blah)", "--out", "o.wav"],
            needle="xyzq9",
        ),
        Case("say", "override-unbalanced", ["say", "我要去[重庆](chóng", "--out", "o.wav"], (0, 2), "chóng"),
        Case("say", "arabic-only", ["say", "مرحبا بالعالم", "--out", "o.wav"], needle="arabic"),
        Case("say", "kana-only", ["say", "こんにちは", "--out", "o.wav"], needle="japanese"),
        Case("say", "mixed-arabic", ["say", "你好 مرحبا hello", "--out", "o.wav"], (0,), "arabic"),
        Case("say", "ansi-escape", ["say", "hello \x1b[31mred", "--out", "o.wav"], (0,), "escape"),
        Case(
            "say",
            "dict-without-phoneme",
            ["say", "银行", "--dict", "d.jsonl", "--out", "o.wav"],
            (0, 2),
            "--dict",
            files={"d.jsonl": bad_dict},
        ),
        # SSML is read when a text starts with <speak>; markup elsewhere is dropped with a warning
        Case(
            "say",
            "ssml",
            ["say", "<speak>hello</speak>", "--out", "o.wav"],
            (0,),
            check=_check_audio("o.wav"),
        ),
        Case("say", "markup-mid-text", ["say", "hello <b>bold</b> world", "--out", "o.wav"], (0,), "<b>"),
        Case("say", "out-is-folder", ["say", "hello", "--out", "."], needle="folder"),
        Case("say", "out-no-suffix", ["say", "hello", "--out", "speech"], needle="suffix"),
        Case("say", "out-bad-suffix", ["say", "hello", "--out", "x.txt"], needle=".txt"),
        Case("say", "empty", ["say", "   ", "--out", "o.wav"], needle="empty"),
        Case(
            "say",
            "voice-path",
            ["say", "hi", "--voice", "../../etc/passwd", "--out", "o.wav"],
            needle="voice",
        ),
        Case(
            "say",
            "ref-not-audio",
            ["say", "hi", "--ref", "/etc/passwd", "--out", "o.wav"],
            needle="/etc/passwd",
        ),
        Case("say", "speed", ["say", "hi", "--speed", "9", "--out", "o.wav"], needle="speed"),
        Case(
            "say",
            "stream-sigterm",
            ["say", LONG_EN, "--stream", "--out", "long.wav"],
            (143,),
            "terminated",
            kind="sigterm",
        ),
        Case("phonemize", "override-bad-pinyin", ["phonemize", "我要去[重庆](xyzq9 blah)"], needle="xyzq9"),
        Case(
            "phonemize",
            "dict-bad-pinyin",
            ["phonemize", "银行", "--phoneme", "--dict", "d.jsonl"],
            needle="zz9",
            files={"d.jsonl": bad_dict},
        ),
        Case(
            "phonemize",
            "dict-bad-ipa",
            ["phonemize", "AI", "--phoneme", "--dict", "d.jsonl"],
            needle="★",
            files={"d.jsonl": star},
        ),
        Case("batch", "missing-tasks", ["batch", "none.jsonl", "--out-dir", "out"], needle="none.jsonl"),
        Case(
            "batch",
            "out-dir-is-file",
            ["batch", "t.jsonl", "--out-dir", "f"],
            needle="f",
            files={"t.jsonl": '{"input_text": "hi", "output_name": "a"}\n', "f": "x"},
        ),
        Case(
            "batch",
            "binary-jsonl",
            ["batch", "t.jsonl", "--out-dir", "out"],
            needle="t.jsonl",
            files={"t.jsonl": b"\x00\xff\xfe\x80" * 64},
        ),
        Case(
            "batch",
            "newline-name",
            ["batch", "t.jsonl", "--out-dir", "out"],
            (1,),
            "control",
            files={"t.jsonl": json.dumps({"input_text": "hi", "output_name": "a\nb"}) + "\n"},
            allowed=("out",),  # the report text_compare.jsonl
            check=_check_rows(1),
        ),
        Case("voice", "add-no-consent", ["voice", "add", "x", clip or "clip.wav"], needle="consent"),
        Case("voice", "rm-missing", ["voice", "rm", "no_such_voice"], needle="no_such_voice"),
        Case("voice", "import-not-a-voice", ["voice", "import", "/etc/passwd"], needle="/etc/passwd"),
        Case(
            "fl",
            "simulate-0-clients",
            ["fl", "simulate", "--clients", "0", "--out", "sim"],
            needle="--clients",
            must_not_exist=("sim",),
        ),
        Case("fl", "report-not-metrics", ["fl", "report", "/etc/passwd"], needle="/etc/passwd"),
        Case(
            "fl",
            "pull-no-registry",
            ["fl", "--registry", "reg", "pull", "v.npz"],
            needle="registry",
            must_not_exist=("reg", "v.npz"),
        ),
        Case(
            "fl",
            "rollback-no-registry",
            ["fl", "--registry", "reg", "rollback", "3"],
            needle="registry",
            must_not_exist=("reg",),
        ),
        Case(
            "outputs", "bad-duration", ["outputs", "clean", "--older-than", "a week"], needle="--older-than"
        ),
        Case("serve", "open-0.0.0.0", ["serve", "--host", "0.0.0.0", "--port", "1"], needle="--no-auth"),
    ]
    c += frontend_batch_cases()
    c += more_cases()
    if clip:
        c.append(
            Case("voice", "add-with-ref", ["voice", "add", "sweep_ref", "--ref", clip, "--consent"], (0,))
        )
    garbage = base64.b64encode(b"RIFF\x00\x00garbage" * 40).decode()
    for name, body, needle in [
        ("malformed-json", b'{"input": "hi",', "malformed"),
        ("array-body", [1, 2], "object"),
        ("nan-number", b'{"input": "hi", "speed": NaN}', "speed"),
        ("huge-number", {"input": "hi", "seed": 10**40}, "seed"),
        ("wrong-type", {"input": 42}, "input"),
        ("unknown-field", {"input": "hi", "colour": "red"}, "colour"),
        ("voice-path", {"input": "hi", "voice": "../../etc/passwd"}, "voice"),
        ("too-long", {"input": "x" * 100000}, "input"),
        ("garbage-reference", {"input": "hi", "reference_audio": garbage}, "reference_audio"),
        ("bidi-text", {"input": "\u202e\u0000", "response_format": "wav"}, "input"),
    ]:
        c.append(Case("http", name, kind="http", body=body, ok_codes=(400, 413, 422), needle=needle))
    return c


def _wav(seconds: float = 0.5) -> bytes:
    import io

    import numpy as np
    import soundfile as sf

    buf = io.BytesIO()
    sf.write(buf, np.zeros(int(24000 * seconds), dtype=np.float32), 24000, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def _rows(work: Path, out: str = "out") -> list[dict]:
    p = work / out / "text_compare.jsonl"
    if not p.is_file():
        return []
    return [json.loads(x) for x in p.read_text(encoding="utf-8").splitlines() if x.strip()]


def _check_resumed(work: Path) -> str | None:
    from fedtts.app.batch import incomplete_audio

    for n in ("a", "b"):
        why = incomplete_audio(work / "out" / f"{n}.wav")
        if why:
            return f"out/{n}.wav still incomplete after resume: {why}"
    statuses = [r.get("status") for r in _rows(work)]
    return None if statuses == ["redone", "redone", "skipped"] else f"text_compare statuses {statuses}"


def _check_rows(n: int) -> Callable[[Path], str | None]:
    def check(work: Path) -> str | None:
        rows = _rows(work)
        lines = [r.get("line") for r in rows]
        if lines != list(range(1, n + 1)):
            return f"text_compare.jsonl has rows for lines {lines}, expected 1..{n}"
        bad = [r["line"] for r in rows if r.get("status") in ("rejected", "failed") and not r.get("error")]
        return f"rows without error: {bad}" if bad else None

    return check


def frontend_batch_cases() -> list[Case]:
    """The issue's front-end, dictionary and batch inputs beyond the first sweep: each also checks the
    output (stdout or files), so a wrong result with exit 0 is caught."""
    task = lambda **kw: json.dumps(kw, ensure_ascii=False) + "\n"  # noqa: E731
    good_dict = '{"grapheme": "银行", "phoneme": "yin2 xing2"}\n'
    bad_dict = '{"grapheme": "银行", "phoneme": "zz9 qq"}\n'
    full = _wav()
    return [
        Case(
            "phonemize",
            "override-unbalanced",
            ["phonemize", "我要去[重庆](chóng"],
            (0,),
            "unbalanced",
            stdout_not=("ˈ",),  # no English (letter-by-letter) reading
        ),
        Case("phonemize", "override-bad-ipa", ["phonemize", "[AI](ˈeɪ ★)"], needle="★"),
        Case("phonemize", "override-bad-tone", ["phonemize", "[好](hao7)"], needle="tone 7"),
        Case(
            "phonemize",
            "mixed-arabic",
            ["phonemize", "你好 مرحبا hello"],
            (0,),
            "arabic",
            stdout_not=("ɹəbɪk",),
        ),
        Case(
            "phonemize",
            "mixed-kana",
            ["phonemize", "你好こんにちは", "--detail"],
            (0,),
            "japanese",
            stdout_has=("ni2 hao3",),
        ),
        Case(
            "phonemize",
            "ansi-escape",
            ["phonemize", "hello \x1b[31mred\x1b[0m"],
            (0,),
            "escape",
            stdout_not=("θˈɜɹTi",),  # "thirty-one"
        ),
        Case(
            "phonemize",
            "ansi-escape-zh",
            ["phonemize", "价格\x1b[1;32m是十元", "--detail"],
            (0,),
            "escape",
            stdout_not=("san1 shi2 er4",),
        ),
        Case(
            "phonemize",
            "ssml",
            ["phonemize", "<speak>hello <break time='1s'/></speak>"],
            (0,),
            stdout_has=("həlˈO",),
            stdout_not=("spˈik", "bɹˈAk"),
        ),
        Case("phonemize", "ssml-mid-text", ["phonemize", "hi <speak>hello</speak>"], (0,), "SSML"),
        Case("phonemize", "symbol", ["phonemize", "hello ★ world"], (0,), "★"),
        Case(
            "phonemize", "arabic-only", ["phonemize", "مرحبا بالعالم"], needle="Mandarin Chinese and English"
        ),
        Case(
            "phonemize",
            "dict-without-phoneme",
            ["phonemize", "银行", "--dict", "d.jsonl", "--detail"],
            (0,),
            "--dict",
            files={"d.jsonl": good_dict},
            stdout_has=("yin2 xing2",),
        ),
        Case(
            "say",
            "dict-bad-with-phoneme",
            ["say", "银行", "--phoneme", "--dict", "d.jsonl", "--out", "o.wav"],
            needle="zz9",
            files={"d.jsonl": bad_dict},
            must_not_exist=("o.wav",),
        ),
        Case("say", "mixed-kana", ["say", "你好こんにちは", "--out", "o.wav"], (0,), "japanese"),
        Case(
            "batch",
            "dict-bad",
            ["batch", "t.jsonl", "--out-dir", "out", "--dict", "d.jsonl"],
            needle="d.jsonl:1",
            files={"t.jsonl": task(input_text="银行", output_name="a"), "d.jsonl": bad_dict},
            must_not_exist=("out",),
        ),
        Case(
            "batch",
            "bidi-name",
            ["batch", "t.jsonl", "--out-dir", "out"],
            (1,),
            "U+202E",
            files={"t.jsonl": task(input_text="hi", output_name="evil\u202egnp")},
            allowed=("out",),
            check=_check_rows(1),
        ),
        Case(
            "batch",
            "rows-for-rejected",
            ["batch", "t.jsonl", "--out-dir", "out"],
            (1,),
            "t.jsonl:2",
            files={
                "t.jsonl": task(input_text="Hi.", output_name="ok")
                + "{not json\n"
                + task(input_text="Hi.", output_name="a\nb")
                + task(input_text="", output_name="empty")
            },
            allowed=("out",),
            check=_check_rows(4),
        ),
        Case(
            "batch",
            "resume-truncated",
            ["batch", "t.jsonl", "--out-dir", "out"],
            (0,),
            "incomplete",
            files={
                "t.jsonl": task(input_text="Hi.", output_name="a")
                + task(input_text="你好。", output_name="b")
                + task(input_text="Fine.", output_name="c"),
                "out/a.wav": b"",
                "out/b.wav": full[: len(full) // 3],
                "out/c.wav": full,
            },
            check=_check_resumed,
        ),
        Case(
            "batch",
            "tasks-is-folder",
            ["batch", "d", "--out-dir", "out"],
            needle="folder",
            files={"d/x": "x"},
            must_not_exist=("out",),
        ),
        Case(
            "batch",
            "latin1-jsonl",
            ["batch", "t.jsonl", "--out-dir", "out"],
            needle="UTF-8",
            files={"t.jsonl": '{"input_text": "café", "output_name": "a"}\n'.encode("latin-1")},
            must_not_exist=("out",),
        ),
        Case(
            "batch",
            "empty-jsonl",
            ["batch", "t.jsonl", "--out-dir", "out"],
            needle="no task lines",
            files={"t.jsonl": "\n\n"},
            must_not_exist=("out",),
        ),
    ]


def _tone(seconds: float, sr: int = 24000) -> bytes:
    import io

    import numpy as np
    import soundfile as sf

    t = np.arange(int(sr * seconds)) / sr
    buf = io.BytesIO()
    sf.write(buf, (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), sr, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def _zip(members: dict[str, bytes]) -> bytes:
    import io
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for n, b in members.items():
            z.writestr(n, b)
    return buf.getvalue()


def more_cases() -> list[Case]:
    """The rest of the issue's 121 inputs: options out of range, broken files, names that try to
    escape their folder, the GLM-TTS script, books, detection, the other HTTP routes and the UI."""
    clip = _clip()
    clip_bytes = Path(clip).read_bytes() if clip else _tone(4.0)
    task = lambda **kw: json.dumps(kw, ensure_ascii=False) + "\n"  # noqa: E731
    silence, short, fake = _wav(5.0), _tone(0.5), b"this is not audio at all\n" * 20
    ref_files = {"silence.wav": silence, "short.wav": short, "fake.wav": fake}
    say = lambda name, args, ok=(2,), needle="", **kw: Case(  # noqa: E731
        "say", name, ["say", *args], ok, needle, must_not_exist=kw.pop("mne", ("o.wav",)), **kw
    )
    c = [
        say("pitch-range", ["hi", "--pitch", "20", "--out", "o.wav"], needle="pitch"),
        say("expressiveness-0", ["hi", "--expressiveness", "0", "--out", "o.wav"], needle="expressiveness"),
        say(
            "emotion-strength",
            ["hi", "--emotion-strength", "5", "--out", "o.wav"],
            needle="--emotion-strength",
        ),
        say("sample-rate-16k", ["hi", "--sample-rate", "16000", "--out", "o.wav"], needle="--sample-rate"),
        say("threads-0", ["hi", "--threads", "0", "--out", "o.wav"], needle="threads"),
        say("speed-nan", ["hi", "--speed", "nan", "--out", "o.wav"], needle="speed"),
        say("spectral-match-3", ["hi", "--spectral-match", "3", "--out", "o.wav"], needle="--spectral-match"),
        say("backend-unknown", ["hi", "--backend", "cuda", "--out", "o.wav"], needle="--backend"),
        say("blend-unknown", ["hi", "--voice", "nobody:0.7,jf_alpha:0.3", "--out", "o.wav"], needle="nobody"),
        say("blend-negative", ["hi", "--voice", "jf_alpha:-1,jm_kumo:2", "--out", "o.wav"], needle="weight"),
        say("ref-missing", ["hi", "--ref", "missing.wav", "--out", "o.wav"], needle="missing.wav"),
        say(
            "ref-silence", ["hi", "--ref", "silence.wav", "--out", "o.wav"], needle="silent", files=ref_files
        ),
        say("ref-0.5s", ["hi", "--ref", "short.wav", "--out", "o.wav"], needle="speech", files=ref_files),
        say(
            "ref-not-audio", ["hi", "--ref", "fake.wav", "--out", "o.wav"], needle="fake.wav", files=ref_files
        ),
        say("refine-no-ref", ["hi", "--refine", "5", "--out", "o.wav"], needle="--ref"),
        say("emotion-ref-missing", ["hi", "--emotion-ref", "gone.wav", "--out", "o.wav"], needle="gone.wav"),
        say("subtitles-txt", ["hi", "--subtitles", "s.txt", "--out", "o.wav"], needle=".txt"),
        say("max-chars", [LONG_EN, "--max-chars", "50", "--out", "o.wav"], needle="50"),
        say(
            "out-new-dir",
            ["hi", "--out", "no/such/dir/o.wav"],
            (0,),
            mne=(),
            check=_check_audio("no/such/dir/o.wav"),
        ),  # made, as mkdir -p
        say("zero-width-only", ["\u200b\u200b\u2060", "--out", "o.wav"], needle="nothing speakable"),
        say("emoji-only", ["😀😀🎉", "--out", "o.wav"], needle="😀"),
        say("punctuation-only", ["...!!!???", "--out", "o.wav"], needle="nothing"),
        say("stdin-empty", ["-", "--out", "o.wav"], needle="empty"),
        say("ref-text-no-ref", ["hi", "--ref-text", "hello", "--out", "o.wav"], needle="--ref"),
        Case("phonemize", "override-empty", ["phonemize", "我要去[重庆]()"], needle="重庆"),
        Case("phonemize", "override-tone-0", ["phonemize", "[好](hao0)"], needle="tone 0"),
        Case(
            "phonemize",
            "dict-missing",
            ["phonemize", "hi", "--phoneme", "--dict", "gone.jsonl"],
            needle="gone.jsonl",
        ),
        Case(
            "phonemize",
            "dict-not-json",
            ["phonemize", "hi", "--phoneme", "--dict", "d.jsonl"],
            needle="d.jsonl:2",
            files={"d.jsonl": '{"grapheme": "银行", "phoneme": "yin2 hang2"}\n{oops\n'},
        ),
        Case(
            "phonemize",
            "dict-no-phoneme-field",
            ["phonemize", "hi", "--phoneme", "--dict", "d.jsonl"],
            needle="phoneme",
            files={"d.jsonl": '{"grapheme": "银行"}\n'},
        ),
        Case(
            "phonemize",
            "dict-empty-grapheme",
            ["phonemize", "hi", "--phoneme", "--dict", "d.jsonl"],
            needle="grapheme",
            files={"d.jsonl": '{"grapheme": "", "phoneme": "yin2"}\n'},
        ),
        Case(
            "phonemize",
            "fullwidth-digits",
            ["phonemize", "价格１２３元", "--detail"],
            (0,),
            stdout_has=("bai3",),
            stdout_not=("１",),
        ),
        Case(
            "phonemize", "rtl-override", ["phonemize", "\u202ehello"], (0,), "U+202E", stdout_has=("həlˈO",)
        ),
        Case(
            "batch",
            "missing-input-text",
            ["batch", "t.jsonl", "--out-dir", "out"],
            (1,),
            "input_text",
            files={"t.jsonl": task(output_name="a")},
            allowed=("out",),
            check=_check_rows(1),
        ),
        Case(
            "batch",
            "name-dotdot",
            ["batch", "t.jsonl", "--out-dir", "out"],
            (1,),
            "output_name",
            files={"t.jsonl": task(input_text="hi", output_name="../escape")},
            allowed=("out",),
            check=_check_rows(1),
            must_not_exist=("escape.wav",),
        ),
        Case(
            "batch",
            "name-absolute",
            ["batch", "t.jsonl", "--out-dir", "out"],
            (1,),
            "output_name",
            files={"t.jsonl": task(input_text="hi", output_name="/tmp/fedtts-sweep-abs")},
            allowed=("out",),
            check=_check_absent(Path("/tmp/fedtts-sweep-abs.wav")),
        ),
        Case(
            "batch",
            "name-duplicate",
            ["batch", "t.jsonl", "--out-dir", "out"],
            (1,),
            "already used",
            files={
                "t.jsonl": task(input_text="one", output_name="a") + task(input_text="two", output_name="a")
            },
            allowed=("out",),
            check=_check_rows(2),
        ),
        Case(
            "batch",
            "prompt-missing",
            ["batch", "t.jsonl", "--out-dir", "out"],
            (1,),
            "gone.wav",
            files={"t.jsonl": task(input_text="hi", output_name="a", prompt_audio="gone.wav")},
            allowed=("out",),
            check=_check_rows(1),
        ),
        Case(
            "batch",
            "prompt-outside",
            ["batch", "t.jsonl", "--out-dir", "out"],
            (1,),
            "/etc/passwd",
            files={"t.jsonl": task(input_text="hi", output_name="a", prompt_audio="/etc/passwd")},
            allowed=("out",),
            check=_check_rows(1),
        ),
        Case(
            "batch",
            "text-not-string",
            ["batch", "t.jsonl", "--out-dir", "out"],
            (1,),
            "input_text",
            files={"t.jsonl": task(input_text=42, output_name="a")},
            allowed=("out",),
            check=_check_rows(1),
        ),
        Case(
            "batch",
            "line-is-array",
            ["batch", "t.jsonl", "--out-dir", "out"],
            (1,),
            "t.jsonl:1",
            files={"t.jsonl": "[1, 2, 3]\n"},
            allowed=("out",),
            check=_check_rows(1),
        ),
        Case(  # a misspelt prompt field must not silently give a stock voice
            "batch",
            "field-typo",
            ["batch", "t.jsonl", "--out-dir", "out"],
            (0, 1),
            "prompt_audo",
            files={"t.jsonl": task(input_text="hi", output_name="a", prompt_audo="x.wav")},
            allowed=("out",),
        ),
        Case(
            "glmtts",
            "data-missing",
            ["--data=no_such_set", "--exp_name=_x"],
            needle="no_such_set",
            script="glmtts_inference.py",
        ),
        Case(
            "glmtts",
            "exp-name-escape",
            ["--data=example_zh", "--exp_name=/../../../escape", "--output_root=outputs"],
            needle="exp_name",
            script="glmtts_inference.py",
            must_not_exist=("escape", "../escape"),
        ),
        Case(
            "voice",
            "add-bad-name",
            ["voice", "add", "../evil", "--ref", clip or "c.wav", "--consent"],
            needle="name",
        ),
        Case(
            "voice",
            "add-silence",
            ["voice", "add", "quiet", "--ref", "silence.wav", "--consent"],
            needle="silent",
            files=ref_files,
        ),
        Case(
            "voice",
            "export-missing",
            ["voice", "export", "nobody", "x.fedvoice"],
            needle="nobody",
            must_not_exist=("x.fedvoice",),
        ),
        Case("voice", "show-missing", ["voice", "show", "nobody"], needle="nobody"),
        Case("voice", "consent-missing", ["voice", "consent", "nobody", "--name", "Ann"], needle="nobody"),
        Case(
            "voice",
            "import-bad-zip",
            ["voice", "import", "v.zip"],
            needle="v.zip",
            files={"v.zip": _zip({"../../evil.txt": b"x", "profile.json": b"{not json"})},
            must_not_exist=("evil.txt",),
        ),
        Case(
            "fl",
            "simulate-0-rounds",
            ["fl", "simulate", "--rounds", "0", "--out", "sim"],
            needle="--rounds",
            must_not_exist=("sim",),
        ),
        Case(
            "fl",
            "simulate-neg-clip",
            ["fl", "simulate", "--clip", "-1", "--out", "sim"],
            needle="--clip",
            must_not_exist=("sim",),
        ),
        Case("fl", "report-missing", ["fl", "report", "gone.json"], needle="gone.json"),
        Case("detect", "missing", ["detect", "gone.wav"], needle="gone.wav"),
        Case("detect", "not-audio", ["detect", "fake.wav"], needle="fake.wav", files=ref_files),
        Case(
            "book",
            "missing",
            ["book", "gone.txt", "--out-dir", "b"],
            needle="gone.txt",
            must_not_exist=("b",),
        ),
        Case(
            "book",
            "empty",
            ["book", "e.txt", "--out-dir", "b"],
            needle="e.txt",
            files={"e.txt": "\n\n"},
            must_not_exist=("b",),
        ),
        Case(
            "book",
            "pdf",
            ["book", "x.pdf", "--out-dir", "b"],
            needle=".pdf",
            files={"x.pdf": b"%PDF-1.4\n"},
            must_not_exist=("b",),
        ),
        Case(
            "book",
            "epub-garbage",
            ["book", "x.epub", "--out-dir", "b"],
            needle="x.epub",
            files={"x.epub": b"PK\x03\x04garbage"},
            must_not_exist=("b",),
        ),
        Case("outputs", "negative-age", ["outputs", "clean", "--older-than", "-3d"], needle="--older-than"),
        Case("serve", "port-range", ["serve", "--port", "70000"], needle="--port"),
        Case("wyoming", "bad-uri", ["wyoming", "--uri", "http://example.com"], needle="uri"),
    ]
    garbage = base64.b64encode(fake).decode()
    for name, body, needle in [
        ("speed-0", {"input": "hi", "speed": 0}, "speed"),
        ("format-exe", {"input": "hi", "response_format": "exe"}, "response_format"),
        ("rate-16k", {"input": "hi", "sample_rate": 16000}, "sample_rate"),
        ("empty-input", {"input": ""}, "input"),
        ("voice-unknown", {"input": "hi", "voice": "nobody"}, "nobody"),
        ("reference-not-b64", {"input": "hi", "reference_audio": "%%%not base64%%%"}, "reference_audio"),
        (
            "reference-silence",
            {"input": "hi", "reference_audio": base64.b64encode(silence).decode()},
            "silent",
        ),
        ("reference-text", {"input": "hi", "reference_audio": garbage}, "reference_audio"),
        ("emoji-only", {"input": "😀😀"}, "input"),
        ("ssml-broken", {"input": "<speak><prosody rate='x'>hi</speak>"}, "ssml"),
    ]:
        c.append(Case("http", name, kind="http", body=body, ok_codes=(400, 413, 422), needle=needle))
    http = lambda name, method, path, codes, needle, **kw: Case(  # noqa: E731
        "http", name, kind="http", method=method, path=path, ok_codes=codes, needle=needle, **kw
    )
    c += [
        http("output-traversal", "GET", "/v1/outputs/..%2F..%2Fetc%2Fpasswd", (400, 404), "plain names"),
        http("voice-traversal", "GET", "/v1/voices/..%2F..%2Fetc", (400, 404), "voice"),
        http("delete-unknown", "DELETE", "/v1/voices/nobody", (404,), "nobody"),
        http(
            "enroll-no-consent",
            "POST",
            "/v1/voices",
            (400, 422),
            "consent",
            upload={"file": ("c.wav", clip_bytes)},
            form={"name": "sweep"},
        ),
        http(
            "enroll-bad-name",
            "POST",
            "/v1/voices",
            (400, 422),
            "name",
            upload={"file": ("c.wav", clip_bytes)},
            form={"name": "../evil", "consent": "true", "consent_name": "A"},
        ),
        http(
            "enroll-not-audio",
            "POST",
            "/v1/voices",
            (400, 415, 422),
            "audio",
            upload={"file": ("c.wav", fake)},
            form={"name": "sweep2", "consent": "true", "consent_name": "A"},
        ),
        http(
            "detect-not-audio",
            "POST",
            "/v1/audio/detect",
            (400, 415, 422),
            "audio",
            upload={"file": ("x.wav", fake)},
        ),
        http("detect-no-file", "POST", "/v1/audio/detect", (400, 422), "file", form={"x": "y"}),
        http(
            "upload-not-audio",
            "POST",
            "/v1/uploads",
            (400, 415, 422),
            "audio",
            upload={"file": ("x.wav", fake)},
        ),
        http("export-unknown", "GET", "/v1/voices/nobody/export", (404,), "nobody"),
    ]

    def ui(name: str, api: str, args: list, needle: str) -> Case:
        return Case("ui", name, kind="ui", api=api, body=args, ok_codes=(400,), needle=needle)

    c += [
        ui(
            "synth-empty",
            "/run",
            ["", "jf_alpha", None, "", 24000, 0, 1.0, None, 1.0, False, 0.0, 1.0],
            "text",
        ),
        ui(
            "synth-fake-ref",
            "/run",
            ["hi", "jf_alpha", "@fake.wav", "", 24000, 0, 1.0, None, 1.0, False, 0.0, 1.0],
            "audio",
        ),
        ui(
            "synth-speed",
            "/run",
            ["hi", "jf_alpha", None, "", 24000, 0, 9.0, None, 1.0, False, 0.0, 1.0],
            "maximum value",  # the slider's own bound (a browser cannot send 9)
        ),
        ui("enroll-no-consent", "/do_enroll", ["sweep", "@clip", "", False, "", False], "consent"),
        ui("enroll-silence", "/do_enroll", ["sweep", "@silence.wav", "", True, "Ann", False], "silent"),
        ui("dict-bad-phoneme", "/do_add", ["银行", "zz9 qq"], "zz9"),
        # a bad line is a failed item: the job finishes and its report row says why (as `fedtts batch`)
        ui("batch-bad-file", "/run_1", [["@bad.jsonl"], "jf_alpha", 24000, 1.0, False], "malformed JSON"),
        ui("check-not-audio", "/lambda", ["@fake.wav"], "fake.wav: cannot decode"),
    ]
    for case in c:
        if case.name in ("batch-bad-file", "check-not-audio"):
            case.ok_codes = (200,)  # answered in the page (a report, a verdict), not as an error
        if case.kind == "ui":
            case.files = {**ref_files, "bad.jsonl": "{oops\n", "clip.wav": clip_bytes}
    return c


def _check_audio(name: str) -> Callable[[Path], str | None]:
    def check(work: Path) -> str | None:
        from fedtts.app.batch import incomplete_audio

        return incomplete_audio(work / name) or None

    return check


def _check_absent(path: Path) -> Callable[[Path], str | None]:
    def check(work: Path) -> str | None:
        return f"{path} was written" if path.exists() else None

    return check


# ---------------------------------------------------------------------- runners


def _env(data: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "FEDTTS_API_KEY"}
    return {**env, "FEDTTS_DATA_DIR": str(data), "PYTHONUNBUFFERED": "1"}


def _snapshot(d: Path) -> set[str]:
    return {str(p.relative_to(d)) for p in d.rglob("*")}


def run_cli(case: Case, work: Path, timeout: float) -> tuple[int | None, str, str]:
    """(exit code, stderr, stdout)."""
    head = [str(REPO / case.script)] if case.script else ["-m", "fedtts.app.cli"]
    cmd = [sys.executable, *head, *case.argv]
    env = _env(work.parent / "data")
    if case.kind != "sigterm":
        try:
            r = subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            return None, "timeout", ""
        return r.returncode, r.stderr, r.stdout
    proc = subprocess.Popen(
        cmd, cwd=work, env=env, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True
    )
    err = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line:
            break
        err.append(line)
        if line.startswith("chunk 0:"):
            proc.send_signal(signal.SIGTERM)
            break
    try:
        err.append(proc.communicate(timeout=60)[1])
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    return proc.returncode, "".join(err), ""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(tmp: Path) -> tuple[subprocess.Popen, str]:
    import httpx

    port = _free_port()
    cmd = [sys.executable, "-m", "fedtts.app.cli", "serve", "--port", str(port), "--no-warmup"]
    cmd += ["--output-dir", str(tmp / "outputs"), "--max-chars", "600"]
    proc = subprocess.Popen(cmd, env=_env(tmp / "data"), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            if httpx.get(url + "/healthz", timeout=2).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            time.sleep(0.3)
    proc.kill()
    raise RuntimeError("fedtts serve did not start")


def run_http(case: Case, url: str) -> tuple[int | None, str]:
    import httpx

    body = case.body
    if case.upload or case.form:
        kw: dict = {"files": case.upload or None, "data": case.form or None}
    elif body is None:
        kw = {}
    elif isinstance(body, bytes):
        kw = {"content": body, "headers": {"content-type": "application/json"}}
    else:
        kw = {"json": body}
    r = httpx.request(case.method, url + case.path, timeout=120, **kw)
    try:
        return r.status_code, json.dumps(r.json(), ensure_ascii=False)
    except ValueError:
        return r.status_code, f"<{len(r.content)} bytes of {r.headers.get('content-type')}>"


def start_ui(tmp: Path) -> tuple[subprocess.Popen, object]:
    from gradio_client import Client

    port = _free_port()
    cmd = [sys.executable, "-m", "fedtts.app.cli", "ui", "--port", str(port), "--no-warmup"]
    cmd += ["--output-dir", str(tmp / "outputs")]
    proc = subprocess.Popen(cmd, env=_env(tmp / "data"), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(300):
        try:
            return proc, Client(f"http://127.0.0.1:{port}/", verbose=False)
        except Exception:  # noqa: BLE001 - not up yet
            time.sleep(0.5)
    proc.kill()
    raise RuntimeError("fedtts ui did not start")


def run_ui(case: Case, client, work: Path) -> tuple[int, str]:
    """(200 and the result, or 400 and the error the browser would show) through the Gradio client."""
    from gradio_client import handle_file

    def arg(a):
        if isinstance(a, str) and a.startswith("@"):
            return handle_file(str(work / ("clip.wav" if a == "@clip" else a[1:])))
        return [arg(x) for x in a] if isinstance(a, list) else a

    try:
        return 200, str(client.predict(*[arg(a) for a in case.body], api_name=case.api))
    except Exception as e:  # noqa: BLE001 - gradio_client raises AppError / ValueError with the message
        return 400, f"{type(e).__name__}: {e}"


def wrong_output(case: Case, out: str, work: Path | None) -> str:
    """What is wrong with the command's stdout or files (a silent wrong result), or ''."""
    problems = [f"stdout has {x!r}" for x in case.stdout_not if x in out]
    problems += [f"stdout lacks {x!r}" for x in case.stdout_has if x not in out]
    if case.check is not None and work is not None:
        problem = case.check(work)
        if problem:
            problems.append(problem)
    return "; ".join(problems)


def judge(case: Case, code: int | None, err: str, leftovers: list[str], wrong: str = "") -> Result:
    # server paths in what a client sees; a UI result's file components carry served paths by design
    shown_error = case.kind == "http" or (case.kind == "ui" and (code or 0) >= 400)
    leak = shown_error and any(x in err for x in ("/tmp/", "fedtts-uploads", "soundfile:", "ffmpeg:"))
    names = case.needle.lower() in err.lower() if case.needle else True
    res = Result(
        case.group,
        case.name,
        code,
        list(case.ok_codes),
        names,
        "Traceback" in err,
        leak,
        leftovers,
        err.strip().splitlines()[-1][:200] if err.strip() else "",
        wrong,
    )
    res.ok = (
        code in case.ok_codes and names and not res.traceback and not leak and not leftovers and not wrong
    )
    return res


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--only", default="", help="comma-separated groups (say, phonemize, batch, voice, fl, http…)"
    )
    ap.add_argument("--limit", type=int, default=0, help="run only the first N cases")
    ap.add_argument("--timeout", type=float, default=300.0, help="seconds per CLI case")
    ap.add_argument("--json", default="bench/out/hostile_sweep.json", help="where to write the results")
    args = ap.parse_args(argv)
    todo = cases()
    if args.only:
        groups = set(args.only.split(","))
        todo = [c for c in todo if c.group in groups]
    if args.limit:
        todo = todo[: args.limit]
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="fedtts-sweep-") as tmp:
        root = Path(tmp)
        server, url = (None, "")
        ui_proc, ui_client = (None, None)
        try:
            for i, case in enumerate(todo):
                work = root / f"{i:03d}_{case.group}_{case.name}"
                work.mkdir(parents=True)
                for rel, content in case.files.items():
                    p = work / rel
                    p.parent.mkdir(parents=True, exist_ok=True)
                    p.write_bytes(content) if isinstance(content, bytes) else p.write_text(
                        content, encoding="utf-8"
                    )
                before = _snapshot(work)
                if case.kind == "http":
                    if server is None:
                        server, url = start_server(root / "server")
                    code, err = run_http(case, url)
                    wrong = ""
                    left = (
                        sorted(_snapshot(root / "server" / "outputs"))
                        if (root / "server" / "outputs").exists()
                        else []
                    )
                elif case.kind == "ui":
                    if ui_proc is None:
                        ui_proc, ui_client = start_ui(root / "ui")
                    outs = root / "ui" / "outputs"
                    seen = _snapshot(outs) if outs.exists() else set()
                    code, err = run_ui(case, ui_client, work)
                    wrong = ""
                    # a refused input leaves nothing; a finished job's report is its product
                    left = sorted(_snapshot(outs) - seen) if code >= 400 and outs.exists() else []
                else:
                    code, err, out = run_cli(case, work, args.timeout)
                    new = sorted(_snapshot(work) - before)
                    allowed = [n for n in new if any(n == a or n.startswith(a + "/") for a in case.allowed)]
                    left = [
                        n
                        for n in new
                        if Path(n).name.startswith(".") or (code != 0 and n and n not in allowed)
                    ]
                    left += [p for p in case.must_not_exist if (work / p).exists() and p not in left]
                    wrong = wrong_output(case, out, work)
                results.append(judge(case, code, err, left, wrong))
                r = results[-1]
                print(
                    f"{'ok ' if r.ok else 'BAD'} {r.group:9} {r.name:22} code={r.code} {r.message[:90]}",
                    flush=True,
                )
        finally:
            for proc in (server, ui_proc):
                if proc is not None:
                    proc.terminate()
                    proc.wait(20)
    print()
    print(
        f"{'group':9} {'input':22} {'code':>5} {'expected':>10} {'names':>5} {'tb':>3} {'leak':>4} leftovers"
    )
    for r in results:
        exp = "/".join(map(str, r.expected))
        print(
            f"{r.group:9} {r.name:22} {r.code!s:>5} {exp:>10} {'yes' if r.names_problem else 'NO':>5} "
            f"{'YES' if r.traceback else '-':>3} {'YES' if r.leak else '-':>4} {','.join(r.leftovers) or '-'}"
        )
    bad = [r for r in results if not r.ok]
    for r in bad:
        if r.wrong_output:
            print(f"  {r.group} {r.name}: {r.wrong_output}")
    silent = [r for r in results if r.code == 0 and (r.wrong_output or not r.names_problem)]
    print(
        f"\n{len(results) - len(bad)}/{len(results)} inputs handled as expected; "
        f"silent wrong results (exit 0, wrong output or no warning): {len(silent)}; "
        f"leftovers: {sum(bool(r.leftovers) for r in results)}; "
        f"wrong exit code: {sum(r.code not in r.expected for r in results)}; "
        f"message not naming the problem: {sum(not r.names_problem for r in results)}; "
        f"tracebacks: {sum(r.traceback for r in results)}"
    )
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps([asdict(r) for r in results], ensure_ascii=False, indent=1), encoding="utf-8")
    print(f"results: {out}")
    return 0 if not bad else 1


if __name__ == "__main__":
    raise SystemExit(main())
