"""``fedtts fl models | pull | rollback | dict-sync | audit`` (and ``simulate``/``deploy`` from :mod:`.fl_run`).

The registry commands read the versioned global tuners on disk; Flower (flwr) is imported only by the
handlers that run a federation.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from fedtts.app.cli.errors import CliError
from fedtts.app.cli.fl_run import register_fl_runs
from fedtts.engine.assets import data_dir, registry_dir
from fedtts.federated.audit import SHARED
from fedtts.federated.audit_run import AuditRunConfig, run_real_audit, table_lines
from fedtts.federated.config import FLConfig
from fedtts.federated.dictsync import (
    DICT_FILE,
    SHARED_DICT_FILE,
    DevicePolicy,
    SketchConfig,
    load_device_entries,
    merge_dictionaries,
    report_lines,
)
from fedtts.federated.versions import VersionRegistry
from fedtts.frontend.dictionary import DictionaryError, PronunciationDict
from fedtts.voice.bank import bank_digest

__all__ = ["register"]


def _registry(args: argparse.Namespace):
    return VersionRegistry(Path(args.registry) if args.registry else registry_dir())


def _cmd_models(args: argparse.Namespace) -> int:
    reg = _registry(args)
    cur = reg.current()
    rows = reg.list()
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
    out = _registry(args).pull(Path(args.out), args.version)
    print(out)
    return 0


def _cmd_rollback(args: argparse.Namespace) -> int:
    mv = _registry(args).rollback(args.version, force=args.force)
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
    """One simulated sync over the given device folders (flwr is imported only here)."""
    from fedtts.federated.dictsync_app import simulate

    dirs: list[Path] = [Path(d) for d in args.devices]
    if args.devices_root:
        root = Path(args.devices_root)
        dirs += sorted(p for p in root.iterdir() if (p / DICT_FILE).is_file()) if root.is_dir() else []
    if len(dirs) < 3:
        raise CliError(f"need at least 3 device folders holding {DICT_FILE}, got {len(dirs)}", 2)
    try:
        cfg = SketchConfig(
            k=args.k,
            n_buckets=args.buckets,
            n_hashes=args.hashes,
            max_entries=args.max_entries,
            noise_multiplier=args.noise_multiplier,
            noise=args.noise,
            min_clients=args.min_clients or len(dirs),
            delta=args.delta,
            gate_sigmas=args.gate_sigmas,
            kdf_log2_n=args.kdf_log2_n,
        ).validate()
        truth = [load_device_entries(d) for d in dirs]
    except (ValueError, DictionaryError) as e:
        raise CliError(str(e), 2) from e
    out = Path(args.out) if args.out else None
    if out is None:
        out = data_dir() / "federated" / "dictionary"
    outcome = simulate(dirs, cfg, out, policy=DevicePolicy(min_k=min(cfg.k, 5)), verbose=args.verbose)
    if outcome.report is None:
        raise CliError(str(outcome.error), 1)
    rep = outcome.report
    print("\n".join(report_lines(rep)))
    distinct = {e for t in truth for e in t}
    print(
        f"entries across devices: {len(distinct)} distinct; {len(distinct) - len(rep.promoted)} stayed private "
        f"({rep.tags_below_k} only as k-threshold ciphertexts, the rest never left a device except inside "
        "the noisy SecAgg+ sum)"
    )
    print(f"shared dictionary: {out / SHARED_DICT_FILE}")
    if args.merge_into:
        local_path = Path(args.merge_into)
        local = PronunciationDict.load(local_path) if local_path.is_file() else PronunciationDict()
        merged = merge_dictionaries(local, PronunciationDict.load(out / SHARED_DICT_FILE))
        merged_path = local_path.with_name(local_path.stem + ".merged.jsonl")
        merged.save(merged_path)
        print(f"merged (local entries win): {merged_path}")
    return 0


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


def _seeds(text: str) -> tuple[int, ...]:
    try:
        if "-" in text and "," not in text:  # "0-4"
            lo, hi = (int(x) for x in text.split("-"))
            return tuple(range(lo, hi + 1))
        return tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"--seeds wants '0,1,2' or '0-4', got {text!r}") from None


def _cmd_audit(args: argparse.Namespace) -> int:
    """`fedtts fl audit`: run, print the table, optionally write JSON; 2 on bad input."""
    try:
        cfg = AuditRunConfig(
            clients=args.clients,
            cohort=args.cohort,
            clip=args.clip,
            noise_multiplier=args.noise_multiplier,
            seeds=tuple(args.seeds),
            local_epochs=args.local_epochs,
            method=args.method,
            shared=args.shared,
            manifest=args.manifest or "",
            registry=getattr(args, "registry", None) or "",
        ).validate()
        if not cfg.manifest_path().is_file():
            raise FileNotFoundError(f"training manifest not found: {cfg.manifest_path()} (set FEDTTS_SHARED)")
        if bank_digest() is None:
            raise FileNotFoundError(
                "style bank src/fedtts/data/style_bank_v1.npz is missing: enrollment needs it (fedtts train bank)"
            )
        result = run_real_audit(cfg, progress=not args.no_progress)
    except (ValueError, FileNotFoundError) as e:
        raise CliError(str(e), 2) from e
    print("\n".join(table_lines(result)))
    if args.json:
        out = Path(args.json)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=1))
        print(f"wrote {out}")
    return 0


def _register_audit(sub) -> None:
    """`fedtts fl audit`: curious-server attack on real tuner updates (docs/federated.md, Privacy audit)."""
    d = FLConfig()
    a = sub.add_parser(
        "audit",
        help="privacy audit: can a curious server tell which speaker sent an update (raw, DP, SecAgg+)",
    )
    a.add_argument("--clients", type=int, default=40, help="training speakers taken as clients (default 40)")
    a.add_argument("--cohort", type=int, default=10, help="updates in one SecAgg+ sum (default 10)")
    a.add_argument("--noise-multiplier", type=float, default=d.noise_multiplier, help="DP noise std / clip")
    a.add_argument("--clip", type=float, default=d.clip, help="L2 bound of one update (central DP clip)")
    a.add_argument("--seeds", type=_seeds, default=(0, 1, 2), help="noise/cohort draws, '0,1,2' or '0-4'")
    a.add_argument("--local-epochs", type=int, default=d.local_epochs)
    a.add_argument(
        "--method",
        choices=("bias", "svd"),
        default="bias",
        help="single-update attack (audit.py; default bias)",
    )
    a.add_argument(
        "--shared",
        choices=tuple(SHARED),
        default="federated",
        help="arrays the server receives: the federated subset b_t/w_p/b_p (as deployed) or all of the tuner",
    )
    a.add_argument("--manifest", help="training manifest (default $FEDTTS_SHARED/data/train/manifest.jsonl)")
    a.add_argument("--json", metavar="OUT", help="write the full result as JSON")
    a.add_argument("--no-progress", action="store_true")
    a.set_defaults(func=_cmd_audit)
