"""``fedtts train tuner | recon-targets | bank | spectrum``: fit the models synthesis ships with.

Training code (:mod:`fedtts.train`, torch) is imported inside the handlers: no other command loads it.
Without ``--out`` each command writes the shipped file in the installed package's data folder.
"""

from __future__ import annotations

import argparse
import json
import time
from importlib import resources
from pathlib import Path

from fedtts.app.cli.errors import CliError
from fedtts.base.tuner_weights import WEIGHTS_FILE
from fedtts.engine.assets import cache_dir, shared_dir
from fedtts.voice.bank import BANK_FILE

__all__ = ["register"]

SYNTHETIC_TUNER_FILE = "tuner_v0_synthetic.npz"  # the federated start model: style-bank targets only


def _shipped(name: str) -> Path:
    """Where the package keeps a shipped model file (``fedtts/data/NAME``)."""
    return Path(str(resources.files("fedtts.data") / name))


def _train_manifest() -> Path:
    return shared_dir() / "data" / "train" / "manifest.jsonl"


def _cmd_tuner(args: argparse.Namespace) -> int:
    """Fit the one-pass tuner; refuses to overwrite the shipped weights with a weaker target."""
    manifest = None if args.synthetic_only else Path(args.manifest or _train_manifest())
    if manifest is not None and not args.recon_targets and not args.out:  # a usage error: said first
        # the shipped tuner learns its timbre from reconstruction targets; bank targets alone would
        # replace it with a weaker model, so that needs an explicit --out
        raise CliError(
            f"the shipped {WEIGHTS_FILE} is trained on reconstruction targets: pass --recon-targets DIR "
            "(fedtts train recon-targets), or --out FILE for a tuner trained on style-bank matches",
            2,
        )
    if manifest is not None and not manifest.is_file():
        raise CliError(f"training manifest not found: {manifest}", 2)
    if args.recon_targets and manifest is None:
        raise CliError("--recon-targets needs real speakers (not --synthetic-only)", 2)
    from fedtts.train.tuner import FitConfig, load_targets, train_tuner

    recon = None
    if args.recon_targets:
        recon = load_targets(Path(args.recon_targets))
        if not recon:
            raise CliError(f"--recon-targets {args.recon_targets}: no fitted styles there", 2)
    out = Path(args.out) if args.out else _shipped(SYNTHETIC_TUNER_FILE if manifest is None else WEIGHTS_FILE)
    cfg = FitConfig(epochs=args.epochs, lr=args.lr, l2=args.l2, seed=args.seed)
    info = train_tuner(manifest, out, Path(args.plots), cfg, cache=cache_dir() / "train", recon_targets=recon)
    print(json.dumps(info, indent=1))
    print(f"saved {out}; curves in {args.plots}")
    return 0


def _cmd_recon_targets(args: argparse.Namespace) -> int:
    """Per training speaker, the style that re-synthesises its clip (resumable; prints the folder)."""
    manifest = Path(args.manifest or _train_manifest())
    if not manifest.is_file():
        raise CliError(f"--manifest: training manifest not found: {manifest}", 2)
    from fedtts.engine.reconstruction import ReconConfig
    from fedtts.train.recon_targets import fit_targets, prompt_rows
    from fedtts.train.tuner import load_targets

    try:
        cfg = ReconConfig(steps=args.steps, time_budget_s=args.budget).validate()
    except ValueError as e:
        raise CliError(str(e), 2) from e
    speakers = args.speakers.split(",") if args.speakers else sorted(prompt_rows(manifest))
    if args.limit and not args.speakers:
        speakers = speakers[: args.limit]
    folder = fit_targets(manifest, cfg, speakers)
    print(f"targets in {folder}: {len(load_targets(folder))}")
    return 0


def _cmd_bank(args: argparse.Namespace) -> int:
    from fedtts.train.bank import BankConfig, build_bank

    out = Path(args.out) if args.out else _shipped(BANK_FILE)
    t0 = time.perf_counter()
    bank = build_bank(BankConfig(size=args.size, seed=args.seed, threads=args.threads))
    bank.save(out)
    print(f"saved {len(bank.styles)} styles to {out} ({time.perf_counter() - t0:.0f} s)")
    return 0


def _cmd_spectrum(args: argparse.Namespace) -> int:
    from fedtts.train.spectrum import SPECTRUM_FILE, train_render_spectrum

    out = Path(args.out) if args.out else _shipped(SPECTRUM_FILE)
    t0 = time.perf_counter()
    spectrum, stats = train_render_spectrum(args.styles, args.seed, args.ridge)
    spectrum.save(out)
    print(
        f"saved the render-spectrum map ({stats['voices']} renders; held-out error "
        f"{stats['heldout_rms_db']:.2f} dB vs {stats['constant_rms_db']:.2f} dB for a constant) to {out} "
        f"({time.perf_counter() - t0:.0f} s)"
    )
    return 0


def register(subparsers) -> None:
    """Add the ``train`` group."""
    train = subparsers.add_parser("train", help="train the models synthesis ships with (needs torch)")
    sub = train.add_subparsers(dest="train_cmd", required=True)

    p = sub.add_parser("tuner", help="fit the voice tuner")
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
        help="learn the timbre from reconstruction-fitted styles (fedtts train recon-targets)",
    )
    p.add_argument("--epochs", type=int, default=80)
    p.add_argument("--lr", type=float, default=5e-4)
    p.add_argument("--l2", type=float, default=0.3)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_cmd_tuner)

    p = sub.add_parser(
        "recon-targets", help="per training speaker, the style that re-synthesises its clip (~1 h)"
    )
    p.add_argument("--manifest", default=None, help="training manifest (default ../shared/data/train)")
    p.add_argument("--limit", type=int, default=0, help="first N speakers (sorted), 0 = all")
    p.add_argument("--speakers", default="", help="comma-separated speaker ids (overrides --limit)")
    p.add_argument("--budget", type=float, default=0.0, help="seconds per fit (0: no limit, reproducible)")
    p.add_argument("--steps", type=int, default=20)
    p.set_defaults(func=_cmd_recon_targets)

    p = sub.add_parser("bank", help="render the style bank the tuner and enrollment use")
    p.add_argument("--size", type=int, default=400, help="styles to render")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument(
        "--out", default=None, help="bank file (default: the shipped src/fedtts/data/style_bank_v1.npz)"
    )
    p.set_defaults(func=_cmd_bank)

    p = sub.add_parser("spectrum", help="fit the style → render-spectrum map spectral match uses")
    p.add_argument("--styles", type=int, default=120, help="style-bank entries to render")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--ridge", type=float, default=3.0)
    p.add_argument(
        "--out", default=None, help="map file (default: the shipped src/fedtts/data/render_spectrum_v1.npz)"
    )
    p.set_defaults(func=_cmd_spectrum)
