"""`fedtts fl ...`: list, pull and roll back global tuner versions (registry on disk)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

__all__ = ["register"]


def _registry(args: argparse.Namespace):
    from fedtts.engine.assets import data_dir
    from fedtts.federated.versions import VersionRegistry

    return VersionRegistry(Path(args.registry) if args.registry else data_dir() / "federated" / "models")


def _cmd_models(args: argparse.Namespace) -> int:
    reg = _registry(args)
    cur = reg.current()
    rows = reg.list()
    if not rows:
        print(f"no model versions in {reg.root}")
        return 0
    for v in rows:
        eps = "-" if v.epsilon is None else f"{v.epsilon:.3f}"
        mark = "*" if v.version == cur else " "
        print(f"{mark} v{v.version} parent={v.parent} sha256={v.sha256[:12]} eps={eps} metrics={v.metrics}")
    return 0


def _cmd_pull(args: argparse.Namespace) -> int:
    from fedtts.federated.versions import VersionError

    try:
        out = _registry(args).pull(Path(args.out), args.version)
    except VersionError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(out)
    return 0


def _cmd_rollback(args: argparse.Namespace) -> int:
    from fedtts.federated.versions import VersionError

    try:
        mv = _registry(args).rollback(args.version)
    except VersionError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"current version is now v{mv.version}")
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "fl", help="federated learning: model versions (simulate/deploy: not yet built)"
    )
    p.add_argument("--registry", help="model registry folder (default: data_dir()/federated/models)")
    sub = p.add_subparsers(dest="fl_cmd")
    m = sub.add_parser("models", help="list global tuner versions")
    m.set_defaults(func=_cmd_models)
    pl = sub.add_parser("pull", help="copy a verified version file")
    pl.add_argument("out")
    pl.add_argument("--version", type=int, default=None)
    pl.set_defaults(func=_cmd_pull)
    rb = sub.add_parser("rollback", help="make an earlier version current")
    rb.add_argument("version", type=int)
    rb.set_defaults(func=_cmd_rollback)
