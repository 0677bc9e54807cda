"""Benchmark the tuner federation: per-round client compute time and bytes on the wire, SecAgg+ on vs off.

Runs `fedtts.federated.simulate` (Flower simulation engine, Ray, 1 CPU per client) twice with the
same clients, rounds and central DP, once with SecAgg+ and once with plain aggregation, and prints per
round: clients aggregated, mean client compute (enrollment + local fit; the first round includes the
one-off enrollment), the round's wall time, and bytes server→clients / clients→server (payload bytes of
every message of the round, all SecAgg+ stages included). The second (plain) run reuses the enrollment
cache the first one wrote, so compare its "client s" with the first run's later rounds.

Run: python bench/bench_federated.py [--clients 8] [--rounds 3] [--fraction 0.5] [--json out.json]
Needs the style bank (enrollment) and the shared training speakers. Numbers depend on machine load.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path


def run(secagg: bool, args: argparse.Namespace, work: Path) -> dict:
    from fedtts.federated.config import FLConfig
    from fedtts.federated.simulate import simulate

    name = "secagg" if secagg else "plain"
    cfg = FLConfig(
        num_rounds=args.rounds,
        fraction_fit=args.fraction,
        min_fit_clients=3,
        secagg=secagg,
        dp="central",
        local_epochs=args.local_epochs,
        eval_every=0,
        seed=args.seed,
        registry=str(work / name / "models"),
        out_dir=str(work / name),
        progress=False,
    )
    t0 = time.perf_counter()
    res = simulate(cfg, args.clients)
    return {"mode": name, "wall_s": time.perf_counter() - t0, "rounds": res["rows"]}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--fraction", type=float, default=0.5)
    ap.add_argument("--local-epochs", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", help="write the raw rows here")
    args = ap.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="bench_fl_"))
    os.environ.setdefault("FEDTTS_DATA_DIR", str(work / "device"))  # enrollment caches: one per run dir
    out = [run(True, args, work), run(False, args, work)]
    print(
        f"\n{args.clients} clients, {args.rounds} rounds, fraction {args.fraction}, central DP, 1 CPU/client"
    )
    print(
        f"{'mode':<7} {'round':>5} {'clients':>7} {'client s':>9} {'enroll s':>9} {'round s':>8} "
        f"{'kB down':>9} {'kB up':>9} {'kB up/client':>12}"
    )
    for o in out:
        for r in o["rounds"]:
            ok = max(1, r.get("results", r["clients_ok"]))
            print(
                f"{o['mode']:<7} {r['round']:>5} {r['clients_ok']:>7} {r.get('compute_s', float('nan')):>9.3f} "
                f"{r.get('enroll_s', float('nan')):>9.3f} "
                f"{r['round_s']:>8.2f} {r['bytes_down'] / 1e3:>9.1f} {r['bytes_up'] / 1e3:>9.1f} "
                f"{r['bytes_up'] / 1e3 / ok:>12.1f}"
            )
        print(f"{o['mode']:<7} total wall {o['wall_s']:.1f} s (includes Ray start-up)")
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
