"""Memory and progress of `fedtts book` on a long mixed Mandarin/English book.

    python bench/bench_book.py [--chars 100000] [--seconds 600] [--json bench/out/book.json]

Writes a book of --chars characters (chapters of ~1 500 characters alternating Mandarin and English
sentences), runs the real `fedtts book` on it in a subprocess and samples its resident memory (VmRSS)
every second; after --seconds (a full 100 000-character book is hours of audio and takes well over
an hour on 2 cores) the run is stopped with SIGTERM and started again, to show that finished chapters
are not made again. Prints peak RSS, RSS at the quarters of the run (flat = no growth with the
length rendered), chapters finished, and the resume line.
"""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

EN = [
    "The river ran quietly past the old mill, and nobody in the village remembered when it last flooded.",
    "She kept a notebook of every train that passed, with the time written to the minute.",
    "On the third day the letters stopped, and the house grew very still.",
    "Dr. Lee paid $12.50 for the map on May 3rd, 2021, and never used it.",
]
ZH = [
    "那天下午，雨下得很大，街上几乎没有人。",
    "他把信放在桌子上，转身走出了房间。",
    "重庆的银行今天下午三点关门，请提前十五分钟到。",
    "我们在山顶等了两个小时，终于看到了日出。",
]


def make_book(path: Path, chars: int) -> None:
    out, n, ch = [], 0, 1
    i = 0
    while n < chars:
        out.append(f"\nChapter {ch}\n" if ch % 2 else f"\n第{ch}章\n")
        body = 0
        while body < 1500 and n < chars:
            s = (ZH if i % 2 else EN)[i % 4]
            out.append(s + ("\n" if i % 5 == 4 else " "))
            body += len(s)
            n += len(s)
            i += 1
        ch += 1
    path.write_text("".join(out), encoding="utf-8")


def _rss_kb(pid: int) -> tuple[int, int]:
    try:
        fields = dict(
            line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line
        )
        return int(fields["VmRSS"].split()[0]), int(fields["VmHWM"].split()[0])
    except (OSError, KeyError, ValueError):
        return 0, 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--chars", type=int, default=100_000)
    ap.add_argument("--seconds", type=float, default=600)
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="fedtts-book-"))
    book, out = tmp / "book.txt", tmp / "out"
    make_book(book, args.chars)
    cmd = [
        sys.executable,
        "-m",
        "fedtts.app.cli",
        "book",
        str(book),
        "--out-dir",
        str(out),
        "--format",
        "m4b",
    ]
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    samples: list[tuple[float, int]] = []
    peak = 0
    while proc.poll() is None and time.monotonic() - t0 < args.seconds:
        rss, hwm = _rss_kb(proc.pid)
        peak = max(peak, hwm)
        samples.append((time.monotonic() - t0, rss))
        time.sleep(1.0)
    finished_first = proc.poll() is not None
    if not finished_first:
        proc.send_signal(signal.SIGTERM)
    code = proc.wait(120)
    err = proc.stderr.read() if proc.stderr else ""
    state_file = out / "book.json"
    state = json.loads(state_file.read_text(encoding="utf-8")) if state_file.is_file() else {}
    done = state.get("chapters", {})
    audio_s = sum(r["seconds"] for r in done.values())
    chars_done = sum(r["chars"] for r in done.values())
    quarters = [
        samples[min(len(samples) - 1, int(q * (len(samples) - 1)))][1] // 1024 for q in (0.25, 0.5, 0.75, 1.0)
    ]
    print(
        f"book: {args.chars} characters, {len(list(out.glob('*.flac')))} chapter files after {samples[-1][0]:.0f} s"
    )
    print(f"first run: exit {code} ({'finished' if finished_first else 'stopped with SIGTERM'})")
    print(f"rendered: {len(done)} chapters, {chars_done} characters, {audio_s / 60:.1f} min of audio")
    print(f"peak RSS {peak / 1024:.0f} MB; RSS at 25/50/75/100 % of the run: {quarters} MB")
    resume = ""
    if not finished_first:
        t1 = time.monotonic()
        p2 = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        line = ""
        while p2.poll() is None and time.monotonic() - t1 < 60:
            time.sleep(1.0)
        p2.send_signal(signal.SIGTERM)
        p2.wait(120)
        state2 = json.loads(state_file.read_text(encoding="utf-8")) if state_file.is_file() else {}
        now = state2.get("chapters", {})
        kept = all(now.get(k, {}).get("key") == v["key"] for k, v in done.items())
        line = f"second run (60 s): {len(now)} chapters finished, earlier ones kept: {kept}"
        resume = line
        print(line)
    if "Traceback" in err:
        print(err[-2000:])
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                dict(
                    chars=args.chars,
                    seconds=args.seconds,
                    chapters_done=len(done),
                    chars_done=chars_done,
                    audio_min=round(audio_s / 60, 2),
                    peak_rss_mb=round(peak / 1024),
                    rss_quarters_mb=quarters,
                    resume=resume,
                ),
                indent=1,
            ),
            encoding="utf-8",
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
