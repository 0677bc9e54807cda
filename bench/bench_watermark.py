"""The watermark of cloned speech: detection, robustness, false positives, parity, quality and cost.

    flock /tmp/heavy.lock python bench/bench_watermark.py [--quick] [--out bench/out/watermark]

Clones: the 12 shipped examples (examples/*.jsonl, their prompts) plus every usable dev prompt of
../shared/data/dev (zh twice, en once, with the examples' texts), made with the default clone
method; each is rendered marked and unmarked (24 kHz) and marked at 32 kHz. Rows:

- detection rate (score ≥ 0.5) on the marked clones as made and after each attack: MP3 64/128
  kbit/s, Opus 32 kbit/s (ffmpeg), resampling to 16 kHz, the 32 kHz output, white noise at 20 dB SNR,
  gain ±6 dB (16-bit WAV, clipped), a 3 s excerpt from the middle;
- false positives on every real recording of ../shared/data/dev and train;
- parity with perth's own PerthImplicitWatermarker (torch, its code from the wheel): per-frame bits
  of the decoder on the same input, and the original decoder's bits on audio marked by each;
- quality on the shipped examples, marked vs unmarked: DNSMOS, Whisper CER/WER, speaker similarity
  to the prompt with the independent ASV model (fedtts.eval.asv) — when the [eval] tools exist;
- cost: RTF of cloned synthesis with and without the mark (interleaved), and the seams of chunked
  marking against a whole-file pass.

Writes OUT.json and OUT.txt.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from fedtts.pipeline import SynthesisOptions, Synthesizer
from fedtts.pipeline.watermark import THRESHOLD, Watermarker, detect_file
from fedtts.voice import ReferenceError, load_reference, resolve_reference

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("FEDTTS_SHARED", REPO.parent / "shared"))
EXTRA = {
    "zh": ["今天的会议改到下午四点，请大家准时参加。", "这本书我已经看了三遍，每次都有新的收获。"],
    "en": ["The train to Boston leaves at half past nine from platform four."],
}


def _rows(root: Path) -> list[dict]:
    p = root / "manifest.jsonl"
    return [json.loads(x) for x in p.read_text(encoding="utf-8").splitlines() if x.strip()]


def clone_items(quick: bool) -> list[dict]:
    """(lang, prompt clip, text, source) for every clone to make."""
    items = []
    for lang in ("zh", "en"):
        for line in (REPO / "examples" / f"example_{lang}.jsonl").read_text(encoding="utf-8").splitlines():
            if line.strip():
                t = json.loads(line)
                items.append(
                    {
                        "lang": lang,
                        "clip": str(REPO / "examples" / t["prompt_speech"]),
                        "text": t["syn_text"],
                        "source": "example",
                        "id": t["uttid"],
                    }
                )
    dev = SHARED / "data" / "dev"
    for lang, per in (("zh", 2), ("en", 1)):
        texts = [i["text"] for i in items if i["lang"] == lang and i["source"] == "example"] + EXTRA[lang]
        prompts = [r for r in _rows(dev) if r["role"] == "prompt" and r["lang"] == lang]
        k = 0
        for r in prompts[: 3 if quick else None]:
            for _ in range(per):
                items.append(
                    {
                        "lang": lang,
                        "clip": str(dev / r["path"]),
                        "text": texts[k % len(texts)],
                        "source": "dev",
                        "id": f"{r['utt_id']}_{k}",
                    }
                )
                k += 1
    return items[: 8 if quick else None]


# ------------------------------------------------------------------ attacks


def _ffmpeg(x: np.ndarray, sr: int, args: list[str], suffix: str, tmp: Path) -> Path:
    src = tmp / "in.wav"
    sf.write(src, x, sr, subtype="PCM_16")
    out = tmp / f"out{suffix}"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(src), *args, str(out)], check=True)
    return out


def _wav(x: np.ndarray, sr: int, tmp: Path, name: str) -> Path:
    p = tmp / name
    sf.write(p, np.clip(x, -1, 1), sr, subtype="PCM_16")
    return p


def attacks(x: np.ndarray, sr: int, tmp: Path, rng: np.random.Generator) -> dict[str, Path]:
    power = float(np.mean(x.astype(np.float64) ** 2))
    noise = rng.standard_normal(len(x)) * np.sqrt(power / 10 ** (20 / 10))
    mid, n3 = len(x) // 2, 3 * sr
    excerpt = x[max(0, mid - n3 // 2) : max(0, mid - n3 // 2) + n3]
    return {
        "as made": _wav(x, sr, tmp, "made.wav"),
        "mp3 128k": _ffmpeg(x, sr, ["-c:a", "libmp3lame", "-b:a", "128k"], ".mp3", tmp),
        "mp3 64k": _ffmpeg(x, sr, ["-c:a", "libmp3lame", "-b:a", "64k"], "64.mp3", tmp),
        "opus 32k": _ffmpeg(x, sr, ["-c:a", "libopus", "-b:a", "32k"], ".ogg", tmp),
        "resample 16 kHz": _wav(soxr.resample(x, sr, 16000, quality="HQ"), 16000, tmp, "r16.wav"),
        "noise 20 dB SNR": _wav((x + noise).astype(np.float32), sr, tmp, "noise.wav"),
        "gain +6 dB": _wav(x * 2.0, sr, tmp, "up.wav"),
        "gain -6 dB": _wav(x * 0.5, sr, tmp, "down.wav"),
        "3 s excerpt": _wav(excerpt, sr, tmp, "cut.wav"),
    }


# ------------------------------------------------------------------ parity with perth


def parity(wm: Watermarker, clips: list[np.ndarray]) -> dict:
    """Bits per frame of perth's torch decoder vs ours, and of its decoder on audio each one marked."""
    import torch
    import torch.nn.functional as F

    from fedtts.train.watermark_export import original_watermarker

    orig = original_watermarker()
    net = orig.perth_net

    def torch_frames(x32: np.ndarray) -> tuple[float, np.ndarray, np.ndarray, float]:
        """perth's decoder, unpooled as ours is: (score, frame values, mask, get_watermark)."""
        with torch.no_grad():
            mag, _ = net.ap.signal_to_magphase(torch.from_numpy(x32.astype(np.float32)))
            mag = mag[None]
            s = mag.sum(dim=1)
            mask = (s > s.max(dim=1).values * 0.05).float()[:, None]
            sub = mag[:, : net.decoder.subband]
            t = sub.shape[2]
            branches = [
                (
                    net.decoder.slow_layers,
                    F.interpolate(sub, size=int(t * 1.25), mode="linear", align_corners=True),
                ),
                (net.decoder.normal_layers, sub),
                (
                    net.decoder.fast_layers,
                    F.interpolate(sub, size=int(t * 0.75), mode="linear", align_corners=True),
                ),
            ]
            attn, marks, per = [], [], []
            for layers, inp in branches:
                o = layers(inp)
                m = F.interpolate(mask, size=o.shape[2], mode="nearest")
                attn.append(((o[:, :1] * m).sum(2) / m.sum(2))[0, 0])
                marks.append(((o[:, 1:] * m).sum(2) / m.sum(2))[0, 0])
                per.append(F.interpolate(o[:, 1:], size=t, mode="nearest")[0, 0])
            a = torch.softmax(torch.stack(attn), 0)
            score = float((a * torch.stack(marks)).sum().clamp(0, 1))
            frames = (a[:, None] * torch.stack(per)).sum(0).clamp(0, 1).numpy()
            official = float(orig.get_watermark(x32, 32000, round=False))
        return score, frames, mask[0, 0].numpy(), official

    agree_same, n_same, agree_marked, n_marked = 0, 0, 0, 0
    clip_agree, snrs, score_gap, formula_gap = 0, [], [], []
    for x in clips:
        y_orig = np.asarray(orig.apply_watermark(x, 32000), np.float32)
        y_ours = wm.apply(x, 32000)
        n = min(len(y_orig), len(y_ours))
        for sig in (x, y_ours):  # the decoder: same input, perth's torch vs our ONNX + numpy
            s_t, f_t, m_t, official = torch_frames(sig)
            s_o, f_o, m_o = wm.score_window(sig)
            k = min(len(f_t), len(f_o))
            sel = (m_t[:k] > 0) | (m_o[:k] > 0)
            agree_same += int(((f_t[:k] >= THRESHOLD) == (f_o[:k] >= THRESHOLD))[sel].sum())
            n_same += int(sel.sum())
            score_gap.append(abs(s_t - s_o))
            formula_gap.append(abs(s_t - official))
        # the encoder: perth's decoder reads audio marked by perth and by us, frame by frame
        s1, f1, m1, _ = torch_frames(y_orig[:n])
        s2, f2, m2, _ = torch_frames(y_ours[:n])
        k = min(len(f1), len(f2))
        sel = (m1[:k] > 0) | (m2[:k] > 0)
        agree_marked += int(((f1[:k] >= THRESHOLD) == (f2[:k] >= THRESHOLD))[sel].sum())
        n_marked += int(sel.sum())
        clip_agree += int((s1 >= THRESHOLD) == (s2 >= THRESHOLD))
        d = y_orig[:n].astype(np.float64) - y_ours[:n]
        snrs.append(10 * np.log10(np.sum(y_orig[:n].astype(np.float64) ** 2) / max(np.sum(d**2), 1e-20)))
    return {
        "clips": len(clips),
        "decoder_frame_bit_agreement": agree_same / max(n_same, 1),
        "decoder_frames": n_same,
        "decoder_max_score_diff": float(max(score_gap)),
        "unpooled_formula_vs_get_watermark_max_diff": float(max(formula_gap)),
        "marked_frame_bit_agreement": agree_marked / max(n_marked, 1),
        "marked_frames": n_marked,
        "marked_clip_verdict_agreement": clip_agree / len(clips),
        "marked_audio_snr_db_median": float(np.median(snrs)),
        "marked_audio_snr_db_min": float(np.min(snrs)),
    }


# ------------------------------------------------------------------ quality


def quality(pairs: list[dict]) -> dict:
    """Marked vs unmarked on the shipped examples, with whatever eval tools are installed."""
    out: dict = {}
    try:
        from fedtts.eval.metrics import dnsmos

        d = [dnsmos(p["marked"], 24000)["ovrl"] - dnsmos(p["plain"], 24000)["ovrl"] for p in pairs]
        out["dnsmos_ovrl_change_mean"] = float(np.mean(d))
        out["dnsmos_ovrl_change_max_abs"] = float(np.max(np.abs(d)))
    except Exception as e:  # noqa: BLE001 - a missing eval tool is reported, not fatal
        out["dnsmos"] = f"skipped: {e}"
    try:
        from fedtts.eval.asr import cer, transcribe, wer

        errs = {"marked": [], "plain": []}
        for p in pairs:
            score = cer if p["lang"] == "zh" else wer
            for k in errs:
                errs[k].append(100 * score(p["text"], transcribe(p[k], 24000, p["lang"])))
        out["whisper_error_plain_pct"] = float(np.mean(errs["plain"]))
        out["whisper_error_marked_pct"] = float(np.mean(errs["marked"]))
        out["whisper_error_change_points"] = out["whisper_error_marked_pct"] - out["whisper_error_plain_pct"]
    except Exception as e:  # noqa: BLE001
        out["whisper"] = f"skipped: {e}"
    try:
        from fedtts.eval.asv import cosine, embed

        d = []
        for p in pairs:
            ref, sr = sf.read(p["clip"], dtype="float32", always_2d=True)
            e_ref = embed(ref.mean(axis=1), sr)
            d.append(cosine(embed(p["marked"], 24000), e_ref) - cosine(embed(p["plain"], 24000), e_ref))
        out["speaker_similarity_change_mean"] = float(np.mean(d))
        out["speaker_similarity_change_max_abs"] = float(np.max(np.abs(d)))
    except Exception as e:  # noqa: BLE001
        out["asv"] = f"skipped: {e}"
    return out


def quality_only(out: Path) -> int:
    """The shipped examples marked and unmarked again, scored, merged into an existing report."""
    synth = Synthesizer()
    pairs = []
    for it in [i for i in clone_items(False) if i["source"] == "example"]:
        voice = resolve_reference(load_reference(it["clip"]))
        marked = synth.synthesize(it["text"], voice, SynthesisOptions()).audio
        plain = synth.synthesize(it["text"], voice, SynthesisOptions(watermark=False)).audio
        pairs.append({**it, "marked": marked, "plain": plain})
    report = json.loads(out.with_suffix(".json").read_text(encoding="utf-8"))
    report["quality"] = quality(pairs)
    out.with_suffix(".json").write_text(json.dumps(report, indent=1, ensure_ascii=False), encoding="utf-8")
    lines = out.with_suffix(".txt").read_text(encoding="utf-8").splitlines()
    keep = [x for x in lines if not x.startswith(("dnsmos", "whisper", "speaker_similarity"))]
    keep += [f"{k}: {v:.4f}" if isinstance(v, float) else f"{k}: {v}" for k, v in report["quality"].items()]
    out.with_suffix(".txt").write_text("\n".join(keep) + "\n", encoding="utf-8")
    print("\n".join(keep))
    return 0


# ------------------------------------------------------------------ main


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="8 clones, 3 prompts a language, 40 real files")
    ap.add_argument("--out", default=str(REPO / "bench" / "out" / "watermark"))
    ap.add_argument("--no-parity", action="store_true")
    ap.add_argument("--quality-only", action="store_true", help="redo the quality rows into OUT.json")
    args = ap.parse_args(argv)
    if args.quality_only:
        return quality_only(Path(args.out))
    if shutil.which("ffmpeg") is None:
        print("ffmpeg is needed for the codec attacks", file=sys.stderr)
        return 2
    rng = np.random.default_rng(0)
    wm = Watermarker(threads=2)
    synth = Synthesizer()
    items = clone_items(args.quick)
    report: dict = {"clones": {}, "attacks": {}, "config": {"threshold": THRESHOLD, "quick": args.quick}}
    marked_opts = SynthesisOptions()
    plain_opts = SynthesisOptions(watermark=False)
    opts32 = SynthesisOptions(sample_rate=32000)
    # warm-up (model load) outside the timings
    v0 = resolve_reference(load_reference(items[0]["clip"]))
    synth.synthesize("你好。", v0, marked_opts)
    rows, pairs, t_marked, t_plain, audio_s, seams = [], [], 0.0, 0.0, 0.0, []
    with tempfile.TemporaryDirectory() as td:
        tmp = Path(td)
        for i, it in enumerate(items):
            try:
                voice = resolve_reference(load_reference(it["clip"]))
            except ReferenceError as e:
                print(f"skip {it['clip']}: {e}", file=sys.stderr)
                continue
            order = (True, False) if i % 2 == 0 else (False, True)  # interleaved: fair to both
            res = {}
            for marked in order:
                t0 = time.perf_counter()
                r = synth.synthesize(it["text"], voice, marked_opts if marked else plain_opts)
                dt = time.perf_counter() - t0
                res[marked] = r
                if marked:
                    t_marked += dt
                else:
                    t_plain += dt
            audio_s += res[True].duration_s
            marked, plain = res[True].audio, res[False].audio
            whole = wm.apply(plain, 24000)  # the same audio marked in one pass: the chunk seams' cost
            d = marked.astype(np.float64) - whole
            seams.append(float(np.max(np.abs(d))))
            r32 = synth.synthesize(it["text"], voice, opts32).audio
            row = {
                "id": it["id"],
                "lang": it["lang"],
                "source": it["source"],
                "seconds": res[True].duration_s,
            }
            shares: dict[str, float] = {}
            for name, path in attacks(marked, 24000, tmp, rng).items():
                det = detect_file(path, wm)
                row[name] = det.score
                shares[name] = det.frame_share
            extra = (
                ("32 kHz output", _wav(r32, 32000, tmp, "o32.wav")),
                ("unmarked clone", _wav(plain, 24000, tmp, "p.wav")),
            )
            for name, path in extra:
                det = detect_file(path, wm)
                row[name], shares[name] = det.score, det.frame_share
            row["frame_share"] = shares
            rows.append(row)
            if it["source"] == "example":
                pairs.append({**it, "marked": marked, "plain": plain})
            print(
                f"[{i + 1}/{len(items)}] {it['id']}: "
                + ", ".join(
                    f"{k} {v:.2f}" for k, v in row.items() if isinstance(v, float) and k != "seconds"
                ),
                flush=True,
            )
        names = [k for k in rows[0] if k not in ("id", "lang", "source", "seconds", "frame_share")]
        for name in names:
            hits = [r[name] >= THRESHOLD for r in rows]
            report["attacks"][name] = {
                "rate": float(np.mean(hits)),
                "zh": float(np.mean([h for h, r in zip(hits, rows, strict=True) if r["lang"] == "zh"])),
                "en": float(np.mean([h for h, r in zip(hits, rows, strict=True) if r["lang"] == "en"])),
                "median_score": float(np.median([r[name] for r in rows])),
                "rate_at_0.3": float(np.mean([r[name] >= 0.3 for r in rows])),
                "rate_score_and_frames": float(
                    np.mean([r[name] >= THRESHOLD and r["frame_share"][name] >= 0.5 for r in rows])
                ),
            }
        report["clones"] = {
            "n": len(rows),
            "zh": sum(r["lang"] == "zh" for r in rows),
            "en": sum(r["lang"] == "en" for r in rows),
            "audio_s": audio_s,
            "rows": rows,
        }
        report["cost"] = {
            "rtf_plain": t_plain / audio_s,
            "rtf_marked": t_marked / audio_s,
            "rtf_rise_pct": 100 * (t_marked / t_plain - 1),
            "chunked_vs_whole_file_max_abs_diff": float(max(seams)),
        }
        # the marker's own time, isolated from the machine's noise: one pass over all marked audio
        allaudio = [p["plain"] for p in pairs] or [res[False].audio]
        t0 = time.perf_counter()
        for x in allaudio:
            wm.apply(x, 24000)
        report["cost"]["marker_rtf"] = (time.perf_counter() - t0) / (sum(len(x) for x in allaudio) / 24000)

    # false positives on real recordings
    real = []
    for root in (SHARED / "data" / "dev", SHARED / "data" / "train"):
        real += [root / r["path"] for r in _rows(root)]
    real = real[: 40 if args.quick else None]
    fp, fp2, scores, t0 = 0, 0, [], time.perf_counter()
    for p in real:
        d = detect_file(p, wm)
        scores.append(d.score)
        fp += int(d.marked)
        fp2 += int(d.marked and d.frame_share >= 0.5)
        if d.score >= 0.3:
            print(f"real recording scoring {d.score:.3f} (frames {d.frame_share:.2f}): {p}", flush=True)
    report["false_positives"] = {
        "files": len(real),
        "marked": fp,
        "rate": fp / max(len(real), 1),
        "max_score": float(max(scores)),
        "p99_score": float(np.percentile(scores, 99)),
        "rate_at_0.3": float(np.mean(np.asarray(scores) >= 0.3)),
        "rate_score_and_frames": fp2 / max(len(real), 1),
        "seconds_per_file": (time.perf_counter() - t0) / max(len(real), 1),
    }
    print(f"false positives: {fp}/{len(real)}", flush=True)

    if not args.no_parity:
        dev = SHARED / "data" / "dev"
        clips = []
        for r in _rows(dev)[: 6 if args.quick else 20]:
            x, sr = sf.read(dev / r["path"], dtype="float32", always_2d=True)
            clips.append(soxr.resample(x.mean(axis=1), sr, 32000, quality="HQ").astype(np.float32))
        for p in pairs[: 3 if args.quick else 12]:  # and clones (unmarked), at 32 kHz
            clips.append(soxr.resample(p["plain"], 24000, 32000, quality="HQ").astype(np.float32))
        report["parity"] = parity(wm, clips)
        print(f"parity: {report['parity']}", flush=True)
    report["quality"] = quality(pairs)

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(report, indent=1, ensure_ascii=False), encoding="utf-8")
    lines = [
        f"watermark bench: {report['clones']['n']} marked clones ({report['clones']['zh']} zh, "
        f"{report['clones']['en']} en), threshold {THRESHOLD}",
        f"{'condition':<20}{'detected':>9}{'zh':>7}{'en':>7}{'median score':>14}{'at 0.3':>8}",
    ]
    for name, a in report["attacks"].items():
        lines.append(
            f"{name:<20}{a['rate']:>9.3f}{a['zh']:>7.3f}{a['en']:>7.3f}{a['median_score']:>14.3f}{a['rate_at_0.3']:>8.3f}"
        )
    f = report["false_positives"]
    lines.append(
        f"false positives: {f['marked']}/{f['files']} real recordings ({100 * f['rate']:.2f} %), max score "
        f"{f['max_score']:.3f}; at 0.3: {100 * f['rate_at_0.3']:.2f} %; score and frames >= 0.5: "
        f"{100 * f['rate_score_and_frames']:.2f} %"
    )
    rule = ", ".join(f"{k} {a['rate_score_and_frames']:.3f}" for k, a in report["attacks"].items())
    lines.append(f"rate under 'score and frames >= 0.5': {rule}")
    c = report["cost"]
    lines.append(
        f"RTF plain {c['rtf_plain']:.3f}, marked {c['rtf_marked']:.3f} ({c['rtf_rise_pct']:+.1f} %); marker alone RTF "
        f"{c['marker_rtf']:.4f}; chunked vs whole-file max |diff| {c['chunked_vs_whole_file_max_abs_diff']:.2e}"
    )
    for k, v in {**report.get("parity", {}), **report["quality"]}.items():
        lines.append(f"{k}: {v:.4f}" if isinstance(v, float) else f"{k}: {v}")
    out.with_suffix(".txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
