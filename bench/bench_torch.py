"""Benchmark the PyTorch Kokoro rebuild (2 threads) and compare inference back ends.

Prints two tables:
1. PyTorch forward and forward+backward (w.r.t. the 256-d style) time and peak memory (RSS of a
   fresh process, so the figure includes the model) for ~3 s and ~10 s of speech.
2. Inference RTF (seconds of compute per second of audio) and Whisper error of the int8 ONNX, a
   dequantised fp32 ONNX exported from the PyTorch model, and PyTorch itself.

Run: python bench/bench_torch.py [--repeats 2] [--skip-backends] [--skip-grad]
Numbers depend on machine load; run on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

TEXTS = {
    "3s": "The quick brown fox jumps over the lazy dog.",
    "10s": (
        "It was a bright cold day in April, and the clocks were striking thirteen. "
        "Winston slipped quickly through the glass doors, though not quickly enough to prevent "
        "a swirl of gritty dust from entering along with him."
    ),
}
ZH = ("今天天气很好，我们去银行吧。", "ʨi→ntʰjɛ→ntʰjɛ→nʨʰi↘ xə↓n xau↓, wo↓mən ʨʰy↘ i↗nxa↗ŋ pa.")
VOICE = "jf_alpha"


def espeak(text: str) -> str:
    out = subprocess.run(
        ["espeak-ng", "--ipa", "-q", "-v", "en-us", text], capture_output=True, text=True, check=True
    )
    return " ".join(out.stdout.split())


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def child(mode: str, key: str, repeats: int) -> None:
    """One measurement in a fresh process so the peak RSS belongs to it alone."""
    import torch

    from fedtts.engine.torch_model import load_torch_model
    from fedtts.voice.profile import stock_voice

    torch.set_num_threads(2)
    model = load_torch_model()
    ids = model.tokenize(espeak(TEXTS[key]))
    base = torch.from_numpy(stock_voice(VOICE).style_for(len(ids)).copy())
    rss_loaded = peak_rss_mb()
    times, seconds = [], 0.0
    for i in range(repeats + 1):  # first run is warm-up
        t = time.perf_counter()
        if mode == "fwd":
            with torch.no_grad():
                out = model.forward(ids, base)
        else:
            style = base.clone().requires_grad_(True)
            out = model.forward(ids, style)
            out.audio.pow(2).mean().backward()
            assert style.grad is not None
        if i:
            times.append(time.perf_counter() - t)
        seconds = out.audio.shape[0] / 24000
    print(
        json.dumps(
            {"time": min(times), "audio_s": seconds, "rss_loaded": rss_loaded, "rss_peak": peak_rss_mb()}
        )
    )


def run_child(mode: str, key: str, repeats: int) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--child", mode, key, "--repeats", str(repeats)],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def backends(repeats: int) -> None:
    import numpy as np
    import onnxruntime as ort
    import torch

    from fedtts.engine import EngineConfig, KokoroEngine
    from fedtts.engine.torch_export import export_fp32_onnx
    from fedtts.engine.torch_model import load_torch_model
    from fedtts.eval.torch_asr import error_rate, transcribe
    from fedtts.voice.profile import stock_voice

    torch.set_num_threads(2)
    model = load_torch_model()
    int8 = KokoroEngine(EngineConfig(threads=2))
    opts = ort.SessionOptions()
    opts.intra_op_num_threads, opts.inter_op_num_threads, opts.log_severity_level = 2, 1, 3
    t = time.perf_counter()
    fp32 = ort.InferenceSession(str(export_fp32_onnx(model)), opts, providers=["CPUExecutionProvider"])
    print(f"fp32 ONNX ready in {time.perf_counter() - t:.1f} s (exported once, cached)")

    def run_fp32(ids, style):
        feed = {"tokens": np.array([[0, *ids, 0]]), "style": style[None], "speed": np.ones(1, np.float32)}
        return fp32.run(None, feed)[0]

    def run_torch(ids, style):
        with torch.no_grad():
            return model.forward(ids, torch.from_numpy(style)).numpy_audio()

    cases = [(k, "en", TEXTS[k], espeak(TEXTS[k])) for k in TEXTS] + [("zh", "zh", *ZH)]
    print(f"\n{'back end':<12}{'input':<6}{'audio s':>9}{'RTF':>8}{'ASR err':>9}   transcript")
    for name, fn in (("int8 ONNX", int8.infer), ("fp32 ONNX", run_fp32), ("PyTorch", run_torch)):
        for key, lang, text, ph in cases:
            ids = int8.tokenize(ph)
            style = stock_voice(VOICE).style_for(len(ids)).copy()
            fn(ids, style)  # warm-up
            best = float("inf")
            for _ in range(repeats):
                t = time.perf_counter()
                audio = np.asarray(fn(ids, style)).reshape(-1)
                best = min(best, time.perf_counter() - t)
            secs = audio.shape[0] / 24000
            hyp = transcribe(audio, 24000, lang)
            err = error_rate(text, hyp, lang)
            print(f"{name:<12}{key:<6}{secs:>9.2f}{best / secs:>8.3f}{err:>9.3f}   {hyp[:60]}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--child", nargs=2, metavar=("MODE", "KEY"), help=argparse.SUPPRESS)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--skip-grad", action="store_true", help="skip the forward/backward table")
    ap.add_argument("--skip-backends", action="store_true", help="skip the back-end comparison")
    args = ap.parse_args()
    if args.child:
        child(args.child[0], args.child[1], args.repeats)
        return 0
    if not args.skip_grad:
        print(f"PyTorch Kokoro, 2 threads, voice {VOICE}, best of {args.repeats} after warm-up")
        print(
            f"{'input':<6}{'audio s':>9}{'forward s':>11}{'fwd RTF':>9}{'fwd+bwd s':>11}{'RSS model MB':>14}"
            f"{'peak fwd MB':>13}{'peak f+b MB':>13}"
        )
        for key in TEXTS:
            f = run_child("fwd", key, args.repeats)
            b = run_child("bwd", key, args.repeats)
            print(
                f"{key:<6}{f['audio_s']:>9.2f}{f['time']:>11.2f}{f['time'] / f['audio_s']:>9.3f}{b['time']:>11.2f}"
                f"{f['rss_loaded']:>14.0f}{f['rss_peak']:>13.0f}{b['rss_peak']:>13.0f}"
            )
    if not args.skip_backends:
        backends(args.repeats)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
