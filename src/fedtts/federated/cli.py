"""`fedtts fl ...`: list, pull and roll back global tuner versions (registry on disk)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from fedtts.engine.assets import registry_dir
from fedtts.federated.audit_cli import add_parser as add_audit_parser
from fedtts.federated.cli_fl import register_fl_runs
from fedtts.federated.versions import VersionError, VersionRegistry

__all__ = ["register"]


def _registry(args: argparse.Namespace):
    return VersionRegistry(Path(args.registry) if args.registry else registry_dir())


def _cmd_models(args: argparse.Namespace) -> int:
    reg = _registry(args)
    try:
        cur = reg.current()
        rows = reg.list()
    except VersionError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if not rows:
        print(f"no model versions in {reg.root}")
        return 0
    print(f"registry {reg.root}: * = current (what cloning uses), status = the release gate's verdict")
    for v in rows:
        eps = "-" if v.epsilon is None else f"{v.epsilon:.3f}"
        mark = "*" if v.version == cur else " "
        metrics = {k: x for k, x in v.metrics.items() if k not in _VERBOSE_METRICS}
        print(
            f"{mark} v{v.version} {v.status} parent={v.parent} sha256={v.sha256[:12]} eps={eps} metrics={metrics}"
        )
        if v.reason:
            print(f"      why: {v.reason}")
    return 0


# long or repeated in `why:` (per-speaker scores, the gate's figures)
_VERBOSE_METRICS = ("scores", "gate_detail", "gate_reason", "reject_reasons")


def _cmd_pull(args: argparse.Namespace) -> int:
    try:
        out = _registry(args).pull(Path(args.out), args.version)
    except VersionError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(out)
    return 0


def _cmd_rollback(args: argparse.Namespace) -> int:
    try:
        mv = _registry(args).rollback(args.version, force=args.force)
    except VersionError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"current version is now v{mv.version}")
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "fl", help="federated learning: simulate/deploy tuner training, model versions, dictionary sync"
    )
    p.add_argument("--registry", help="model registry folder (default: data_dir()/federated/models)")
    sub = p.add_subparsers(dest="fl_cmd")
    m = sub.add_parser("models", help="list global tuner versions, which is current and the gate's verdicts")
    m.set_defaults(func=_cmd_models)
    pl = sub.add_parser("pull", help="copy a verified version file")
    pl.add_argument("out")
    pl.add_argument("--version", type=int, default=None)
    pl.set_defaults(func=_cmd_pull)
    rb = sub.add_parser("rollback", help="make an earlier version current")
    rb.add_argument("version", type=int)
    rb.add_argument("--force", action="store_true", help="also a version the release gate rejected")
    rb.set_defaults(func=_cmd_rollback)
    _register_dict_sync(sub)
    _register_audit(sub)

    register_fl_runs(sub)


def _cmd_dict_sync(args: argparse.Namespace) -> int:
    from fedtts.federated.dictsync_app import cmd_dict_sync

    return cmd_dict_sync(args)


def _register_dict_sync(sub) -> None:
    """`fedtts fl dict-sync`: federated pronunciation dictionary (docs/federated_dictionary.md)."""
    d = sub.add_parser(
        "dict-sync", help="promote dictionary entries held by >= k devices (SecAgg+, DP, k-threshold)"
    )
    d.add_argument("devices", nargs="*", help="device folders, each holding G2P_replace_dict.jsonl")
    d.add_argument("--devices-root", help="folder whose sub-folders are the devices")
    d.add_argument("--k", type=int, default=5, help="devices needed to promote an entry (default 5)")
    d.add_argument("--max-entries", type=int, default=16, help="entries one device contributes per sync")
    d.add_argument("--noise-multiplier", type=float, default=1.0, help="noise std / L2 sensitivity")
    d.add_argument("--noise", choices=("distributed", "central"), default="distributed")
    d.add_argument(
        "--min-clients", type=int, default=None, help="devices the noise is split over (default all)"
    )
    d.add_argument("--delta", type=float, default=1e-6)
    d.add_argument("--gate-sigmas", type=float, default=1.0, help="reveal if noisy count >= k - this * sigma")
    d.add_argument("--buckets", type=int, default=2**14)
    d.add_argument("--hashes", type=int, default=2)
    d.add_argument("--kdf-log2-n", type=int, default=14, help="scrypt cost per entry (2^N)")
    d.add_argument("--out", help="output folder (default data_dir()/federated/dictionary)")
    d.add_argument(
        "--merge-into", metavar="JSONL", help="also write <JSONL>.merged.jsonl (local entries win)"
    )
    d.add_argument("--verbose", action="store_true", help="Flower debug logs")
    d.set_defaults(func=_cmd_dict_sync)


def _register_audit(sub) -> None:
    """`fedtts fl audit`: curious-server attack on real tuner updates (docs/federated.md, Privacy audit)."""
    add_audit_parser(sub)
