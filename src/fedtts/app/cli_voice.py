"""``fedtts voice …`` (saved voice profiles) and ``fedtts train tuner`` / ``fedtts eval clone``.

``register(subparsers)`` is called by fedtts.app.cli; heavy imports happen inside the handlers so
``fedtts --help`` stays fast.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time

from fedtts.app.cli import SPECTRAL_HELP, match_strength

__all__ = ["register", "main"]


def _err(msg: str) -> int:
    print(f"error: {msg}", file=sys.stderr)
    return 2


def _cmd_add(args: argparse.Namespace) -> int:
    from fedtts.voice import ReferenceError, VoiceError, load_reference, resolve_reference
    from fedtts.voice.store import ProfileStore, validate_name

    if args.clip and args.ref and args.clip != args.ref:
        return _err(f"give the clip once: either CLIP ({args.clip}) or --ref ({args.ref})")
    args.clip = args.clip or args.ref
    if not args.clip:
        return _err("voice add needs the reference clip: `fedtts voice add NAME CLIP` or `--ref CLIP`")
    if not args.consent:
        return _err(
            "cloning a voice needs the speaker's consent: add --consent to confirm that the person "
            f"speaking in {args.clip} agreed to have their voice cloned"
        )
    try:
        validate_name(args.name)
        store = ProfileStore()
        if store.exists(args.name) and not args.force:
            return _err(
                f"voice '{args.name}' already exists; `fedtts voice rm {args.name}` first or use --force"
            )
        t0 = time.perf_counter()
        ref = load_reference(args.clip, text=args.ref_text)
        for w in ref.warnings:
            print(f"warning: {args.clip}: {w}", file=sys.stderr)
        voice = resolve_reference(ref, method=args.method, spectral_match=args.spectral_match)
        if args.refine:
            voice = _refine(voice, ref, args.refine)
        info = store.add(
            args.name, voice, consent=True, reference=ref, keep_clip=args.keep_clip, overwrite=args.force
        )
    except (ReferenceError, VoiceError) as e:
        return _err(str(e))
    dt = time.perf_counter() - t0
    extra = f", base {info.meta['base']}" if "base" in info.meta else ""
    print(
        f"saved voice '{info.name}' ({info.meta['method']}{extra}; {ref.speech_s:.1f} s of speech; "
        f"{dt:.1f} s) in {info.path}"
    )
    return 0


def _refine(voice, ref, steps: int):
    """Gradient-based enrollment through the differentiable model (needs the [train] extra)."""
    from fedtts.voice import VoiceError

    try:
        from fedtts.voice.refine import refine_voice
    except ImportError as e:
        raise VoiceError(f"--refine needs torch (pip install 'fedtts[train]'): {e}") from e
    return refine_voice(voice, ref, steps=steps, progress=True)


def _cmd_list(args: argparse.Namespace) -> int:
    from fedtts.voice import stock_voice_names
    from fedtts.voice.store import ProfileStore

    store = ProfileStore()
    infos = store.list()
    if args.stock:
        for n in stock_voice_names():
            print(f"{n}\tstock")
    if not infos:
        print(f"no saved voices in {store.root}" + ("" if args.stock else " (stock voices: --stock)"))
        return 0
    for i in infos:
        m = i.meta
        clip = "clip kept" if i.has_clip else "clip not kept"
        print(
            f"{i.name}\t{m.get('method', '?')}\t{m.get('created', '?')}\t{m.get('tuner_version', '?')}\t"
            f"sha256:{str(m.get('clip_sha256', ''))[:12]}\t{clip}"
        )
    return 0


def _cmd_rm(args: argparse.Namespace) -> int:
    from fedtts.voice import VoiceError
    from fedtts.voice.store import ProfileStore

    try:
        ProfileStore().remove(args.name)
    except VoiceError as e:
        return _err(str(e))
    print(f"removed voice '{args.name}'")
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from fedtts.voice import VoiceError
    from fedtts.voice.store import ProfileStore

    try:
        out = ProfileStore().export(args.name, args.file)
    except (VoiceError, OSError) as e:
        return _err(str(e))
    print(f"exported voice '{args.name}' to {out}")
    return 0


def _cmd_import(args: argparse.Namespace) -> int:
    from fedtts.voice import VoiceError
    from fedtts.voice.store import ProfileStore

    try:
        info = ProfileStore().import_(args.file, name=args.name, overwrite=args.force)
    except (VoiceError, OSError) as e:
        return _err(str(e))
    print(f"imported voice '{info.name}' from {args.file}")
    return 0


def _cmd_train_tuner(args: argparse.Namespace) -> int:
    from fedtts.train.tuner import main as fit_main

    return fit_main(args)


def _cmd_train_bank(args: argparse.Namespace) -> int:
    from pathlib import Path

    from fedtts.train.bank import BANK_FILE, BankConfig, build_bank

    out = Path(args.out) if args.out else Path(__file__).resolve().parents[1] / "data" / BANK_FILE
    t0 = time.perf_counter()
    bank = build_bank(BankConfig(size=args.size, seed=args.seed, threads=args.threads))
    bank.save(out)
    print(f"saved {len(bank.styles)} styles to {out} ({time.perf_counter() - t0:.0f} s)")
    return 0


def _cmd_eval_clone(args: argparse.Namespace) -> int:
    from fedtts.eval.clone_eval import main as eval_main

    return eval_main(args)


def register(subparsers) -> None:
    """Add ``voice`` (and ``train tuner`` / ``eval clone`` when those groups are free or ours)."""
    p = subparsers.add_parser("voice", help="saved voice profiles: add, list, rm, export, import")
    sub = p.add_subparsers(dest="voice_cmd", required=True)

    a = sub.add_parser("add", help="clone a voice from a reference clip and save it")
    a.add_argument("name", help="profile name (letters, digits, _ . -)")
    a.add_argument(
        "clip", nargs="?", default=None, help="reference audio (WAV, FLAC, MP3, OGG, M4A), 3-30 s of speech"
    )
    # `--ref CLIP` as `say` takes it; spelled out so it is not an ambiguous prefix of --ref-text/--refine
    a.add_argument("--ref", default=None, metavar="CLIP", help="the reference clip (same as CLIP)")
    a.add_argument("--ref-text", "--ref_text", default=None, help="transcript of the clip (optional)")
    a.add_argument("--consent", action="store_true", help="the speaker agreed to have their voice cloned")
    a.add_argument(
        "--refine", type=int, default=0, metavar="N", help="N gradient refinement steps (needs torch)"
    )
    a.add_argument("--spectral-match", type=match_strength, default=1.0, metavar="S", help=SPECTRAL_HELP)
    a.add_argument("--keep-clip", action="store_true", help="also store a copy of the clip")
    a.add_argument("--method", default=None, help="clone method (tuner, nearest); default: best available")
    a.add_argument("--force", action="store_true", help="replace an existing profile")
    a.set_defaults(func=_cmd_add)

    ls = sub.add_parser("list", help="list saved voices")
    ls.add_argument("--stock", action="store_true", help="also list the stock voices")
    ls.set_defaults(func=_cmd_list)

    rm = sub.add_parser("rm", help="delete a saved voice")
    rm.add_argument("name")
    rm.set_defaults(func=_cmd_rm)

    ex = sub.add_parser("export", help="write a saved voice to one file")
    ex.add_argument("name")
    ex.add_argument("file")
    ex.set_defaults(func=_cmd_export)

    im = sub.add_parser("import", help="add a voice from an exported file")
    im.add_argument("file")
    im.add_argument("--name", default=None, help="save under another name")
    im.add_argument("--force", action="store_true", help="replace an existing profile")
    im.set_defaults(func=_cmd_import)

    groups = getattr(subparsers, "choices", {})
    train = groups.get("train") or subparsers.add_parser("train", help="train models")
    _add_sub(train, "tuner", "fit the voice tuner", _train_args, _cmd_train_tuner)
    _add_sub(train, "bank", "render the style bank the tuner and enrollment use", _bank_args, _cmd_train_bank)
    _add_sub(
        train,
        "spectrum",
        "fit the style → render-spectrum map spectral match uses",
        _spectrum_args,
        _cmd_train_spectrum,
    )
    ev = groups.get("eval") or subparsers.add_parser("eval", help="evaluations")
    _add_sub(ev, "clone", "evaluate voice cloning on a manifest", _eval_args, _cmd_eval_clone)
    _add_sub(
        ev,
        "emotion",
        "does emotion transfer move prosody in proportion to α?",
        _emotion_args,
        _cmd_eval_emotion,
    )


def _add_sub(parent: argparse.ArgumentParser, name: str, help_: str, add_args, func) -> None:
    """Add ``name`` under ``parent``'s subcommands, creating the subparser group if needed."""
    action = next((a for a in parent._actions if isinstance(a, argparse._SubParsersAction)), None)
    if action is None:
        action = parent.add_subparsers(dest=f"{parent.prog.split()[-1]}_cmd", required=True)
    if name in action.choices:
        return
    p = action.add_parser(name, help=help_)
    add_args(p)
    p.set_defaults(func=func)


def _train_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--manifest", default=None, help="training manifest (default ../shared/data/train)")
    p.add_argument(
        "--synthetic-only",
        action="store_true",
        help="fit on the style bank alone (the federated start model)",
    )
    p.add_argument(
        "--out", default=None, help="weights file (default: the shipped src/fedtts/data/tuner_v*.npz)"
    )
    p.add_argument("--plots", default="bench/out/tuner", help="directory for curves and logs")
    p.add_argument("--epochs", type=int, default=80)
    p.add_argument("--lr", type=float, default=5e-4)
    p.add_argument("--l2", type=float, default=0.3)
    p.add_argument("--seed", type=int, default=0)


def _bank_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--size", type=int, default=400, help="styles to render")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument(
        "--out", default=None, help="bank file (default: the shipped src/fedtts/data/style_bank_v1.npz)"
    )


def _cmd_eval_emotion(args: argparse.Namespace) -> int:
    from fedtts.eval.emotion_eval import main as emotion_main

    return emotion_main(args)


def _emotion_args(p: argparse.ArgumentParser) -> None:
    from fedtts.eval.emotion_eval import add_args

    add_args(p)


def _eval_args(p: argparse.ArgumentParser) -> None:
    from fedtts.eval.clone_eval import add_args

    add_args(p)


def main(argv: list[str] | None = None) -> int:
    """Standalone entry (``python -m fedtts.app.cli_voice``) for when cli.py has not wired us yet."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    parser = argparse.ArgumentParser(prog="fedtts")
    register(parser.add_subparsers(dest="cmd", required=True))
    args = parser.parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())


def _spectrum_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--styles", type=int, default=120, help="style-bank entries to render")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--ridge", type=float, default=3.0)
    p.add_argument(
        "--out", default=None, help="map file (default: the shipped src/fedtts/data/render_spectrum_v1.npz)"
    )


def _cmd_train_spectrum(args: argparse.Namespace) -> int:
    from pathlib import Path

    from fedtts.train.spectrum import SPECTRUM_FILE, train_render_spectrum

    out = Path(args.out) if args.out else Path(__file__).resolve().parents[1] / "data" / SPECTRUM_FILE
    t0 = time.perf_counter()
    spectrum, stats = train_render_spectrum(args.styles, args.seed, args.ridge)
    spectrum.save(out)
    print(
        f"saved the render-spectrum map ({stats['voices']} renders; held-out error "
        f"{stats['heldout_rms_db']:.2f} dB vs {stats['constant_rms_db']:.2f} dB for a constant) to {out} "
        f"({time.perf_counter() - t0:.0f} s)"
    )
    return 0
