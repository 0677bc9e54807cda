"""``fedtts voice add | list | show | consent | rm | export | import``: saved voice profiles."""

from __future__ import annotations

import argparse
import sys
import time

from fedtts.app.cli.errors import CliError
from fedtts.app.cli.options import SPECTRAL_HELP, match_strength, refine_clone
from fedtts.voice import ReferenceError, VoiceError, load_reference, resolve_reference, stock_voice_names
from fedtts.voice.store import CONSENT_STATEMENT, ConsentRecord, ProfileStore, consent_status, validate_name

__all__ = ["register", "cmd_list"]


def _cmd_add(args: argparse.Namespace) -> int:
    if args.clip and args.ref and args.clip != args.ref:
        raise CliError(f"give the clip once: either CLIP ({args.clip}) or --ref ({args.ref})", 2)
    args.clip = args.clip or args.ref
    if not args.clip:
        raise CliError("voice add needs the reference clip: `fedtts voice add NAME CLIP` or `--ref CLIP`", 2)
    if not args.consent:
        raise CliError(
            "cloning a voice needs the speaker's consent: add --consent to confirm that the person "
            f"speaking in {args.clip} agreed to have their voice cloned",
            2,
        )
    try:
        validate_name(args.name)
        store = ProfileStore()
        if store.exists(args.name) and not args.force:
            raise CliError(
                f"voice '{args.name}' already exists; `fedtts voice rm {args.name}` first or use --force", 2
            )
        t0 = time.perf_counter()
        ref = load_reference(args.clip, text=args.ref_text)
        for w in ref.warnings:
            print(f"warning: {args.clip}: {w}", file=sys.stderr)
        voice = resolve_reference(ref, method=args.method, spectral_match=args.spectral_match)
        if args.refine:
            voice = refine_clone(voice, ref, args.refine)
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
        raise CliError(str(e), 2) from e
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
        raise CliError(str(e), 2) from e
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
        raise CliError(f"no saved voice '{args.name}'; saved voices: {', '.join(store.names()) or 'none'}", 2)
    if not args.yes:
        raise CliError(
            f'confirm with --yes that {args.who!r} agreed to have their voice cloned: "{CONSENT_STATEMENT}"',
            2,
        )
    try:
        rec = store.confirm_consent(args.name, args.who, via="confirmed")
    except VoiceError as e:
        raise CliError(str(e), 2) from e
    print(f"recorded consent for voice '{args.name}': {rec.name}, {rec.time}")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
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
        raise CliError(str(e), 2) from e
    print(f"removed voice '{args.name}'")
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    try:
        out = ProfileStore().export(args.name, args.file)
    except (VoiceError, OSError) as e:
        raise CliError(str(e), 2) from e
    print(f"exported voice '{args.name}' to {out}")
    return 0


def _cmd_import(args: argparse.Namespace) -> int:
    try:
        info = ProfileStore().import_(args.file, name=args.name, overwrite=args.force)
    except (VoiceError, OSError) as e:
        raise CliError(str(e), 2) from e
    print(f"imported voice '{info.name}' from {args.file}")
    if consent_status(info.meta) == "unknown":
        print(
            f"warning: {args.file} has no consent record: voice '{info.name}' cannot be used until you "
            f"confirm with `fedtts voice consent {info.name} --name 'FULL NAME' --yes`",
            file=sys.stderr,
        )
    return 0


def register(subparsers) -> None:
    """Add the ``voice`` group."""
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
    ls.set_defaults(func=cmd_list)

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
