"""``fedtts voice …`` (saved voice profiles) and ``fedtts train tuner`` / ``fedtts eval clone``.

``register(subparsers)`` is called by fedtts.app.cli; training code (``fedtts.train``) is imported
inside its handlers, so no other ``fedtts`` command loads it.
"""

from __future__ import annotations

import argparse
import sys
import time

from fedtts.app.cli import SPECTRAL_HELP, match_strength, standalone_main
from fedtts.eval import clone_eval, emotion_eval  # their options are added when the parser is built
from fedtts.voice import ReferenceError, VoiceError, load_reference, resolve_reference, stock_voice_names
from fedtts.voice.refine import refine_voice
from fedtts.voice.store import CONSENT_STATEMENT, ConsentRecord, ProfileStore, consent_status, validate_name

__all__ = ["register", "main"]


def _err(msg: str) -> int:
    print(f"error: {msg}", file=sys.stderr)
    return 2


def _cmd_add(args: argparse.Namespace) -> int:
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
            args.name,
            voice,
            consent=True,
            reference=ref,
            keep_clip=args.keep_clip,
            overwrite=args.force,
            consent_name=args.consent_name or "",
            consent_via="cli",
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


def _cmd_show(args: argparse.Namespace) -> int:
    """A profile's metadata and its consent record (who, what, when, which clip, how)."""
    try:
        meta = ProfileStore().meta(args.name)
    except VoiceError as e:
        return _err(str(e))
    print(f"voice {args.name}")
    for key in (
        "created",
        "imported",
        "method",
        "base",
        "tuner_version",
        "speech_s",
        "clip_sha256",
        "clip_file",
    ):
        if meta.get(key) is not None:
            print(f"  {key}: {meta[key]}")
    status = consent_status(meta)
    rec = ConsentRecord.from_meta(meta)
    print(f"  consent: {status}")
    if rec is not None:
        print(
            f"    who: {rec.name}\n    when: {rec.time}\n    how: {rec.via}\n    clip sha256: {rec.clip_sha256}"
        )
        print(f"    statement: {rec.statement}")
    elif status == "legacy":
        print("    (given with --consent before consent records existed; no details)")
    else:
        print(
            f"    unknown: the voice cannot be used until `fedtts voice consent {args.name} --name 'FULL NAME' --yes`"
        )
    print("  outputs: synthetic, PerTh-watermarked (see `fedtts detect`)")
    return 0


def _cmd_consent(args: argparse.Namespace) -> int:
    """Record the speaker's consent for a profile that has none (e.g. imported without a record)."""
    store = ProfileStore()
    if not store.exists(
        args.name
    ):  # named first: confirming consent for a voice that is not there helps nobody
        return _err(f"no saved voice '{args.name}'; saved voices: {', '.join(store.names()) or 'none'}")
    if not args.yes:
        return _err(
            f'confirm with --yes that {args.who!r} agreed to have their voice cloned: "{CONSENT_STATEMENT}"'
        )
    try:
        rec = store.confirm_consent(args.name, args.who, via="confirmed")
    except VoiceError as e:
        return _err(str(e))
    print(f"recorded consent for voice '{args.name}': {rec.name}, {rec.time}")
    return 0


def _refine(voice, ref, steps: int):
    """Gradient-based enrollment through the differentiable model (needs the [train] extra)."""
    try:
        return refine_voice(voice, ref, steps=steps, progress=True)
    except ImportError as e:  # torch is imported when refining starts
        raise VoiceError(f"--refine needs torch (pip install 'fedtts[train]'): {e}") from e


def _cmd_list(args: argparse.Namespace) -> int:
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
    try:
        ProfileStore().remove(args.name)
    except VoiceError as e:
        return _err(str(e))
    print(f"removed voice '{args.name}'")
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    try:
        out = ProfileStore().export(args.name, args.file)
    except (VoiceError, OSError) as e:
        return _err(str(e))
    print(f"exported voice '{args.name}' to {out}")
    return 0


def _cmd_import(args: argparse.Namespace) -> int:
    try:
        info = ProfileStore().import_(args.file, name=args.name, overwrite=args.force)
    except (VoiceError, OSError) as e:
        return _err(str(e))
    print(f"imported voice '{info.name}' from {args.file}")
    if consent_status(info.meta) == "unknown":
        print(
            f"warning: {args.file} has no consent record: voice '{info.name}' cannot be used until you "
            f"confirm with `fedtts voice consent {info.name} --name 'FULL NAME' --yes`",
            file=sys.stderr,
        )
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
    return clone_eval.main(args)


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
        "--consent-name",
        default=None,
        metavar="WHO",
        help="who agreed (recorded in the profile's consent record)",
    )
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

    sh = sub.add_parser("show", help="a saved voice's details and consent record")
    sh.add_argument("name")
    sh.set_defaults(func=_cmd_show)

    co = sub.add_parser("consent", help="record consent for a voice that has none (e.g. imported)")
    co.add_argument("name")
    co.add_argument("--name", dest="who", required=True, metavar="WHO", help="the person who agreed")
    co.add_argument("--yes", action="store_true", help="confirm the consent statement")
    co.set_defaults(func=_cmd_consent)

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
    p.add_argument(
        "--recon-targets",
        default=None,
        metavar="DIR",
        help="learn the timbre from reconstruction-fitted styles (python -m fedtts.train.recon_targets)",
    )
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
    return emotion_eval.main(args)


def _emotion_args(p: argparse.ArgumentParser) -> None:
    emotion_eval.add_args(p)


def _eval_args(p: argparse.ArgumentParser) -> None:
    clone_eval.add_args(p)


def main(argv: list[str] | None = None) -> int:
    """Standalone entry (``python -m fedtts.app.cli_voice``) for when cli.py has not wired us yet."""
    return standalone_main(register, argv)


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


if __name__ == "__main__":
    sys.exit(main())
