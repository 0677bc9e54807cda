"""Numpy emulation of `fedtts fl simulate` rounds, to choose settings before the (slow) real runs.

Why: a real SecAgg+ simulation of 50 clients takes 3–7 minutes, of 207 clients about half an hour;
this emulation takes seconds plus the final evaluation. It uses the same pieces as the real run — the
device's cached enrollment, the ClientApp's `local_fit` on the 64-coordinate exchange, fixed clipping
to C, Gaussian noise of std z·C/m on the average of the m survivors, FedAvgM on the server, client
sampling and mid-round dropout — but no Flower, no SecAgg+ masking and no accountant. The score is
the server's own `evaluate_tuner` (15 held-back dev speakers, tuner + spectral match).

    python bench/fl_emulate.py --clients 207 --seeds 0,1,2            # central DP, as in the bench
    python bench/fl_emulate.py --clients 207 --seeds 0,1,2 --no-dp --server-lr 1 --server-momentum 0

Writes bench/out/fl_emulate/<name>.json (the settings, and start/end scores per seed).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from fedtts.federated.config import FLConfig


def load_devices(n: int, refine: int) -> list:
    """Each simulated device's enrollment (None when it has no usable clip), enrolled if not cached."""
    from fedtts.federated.client_app import LocalData, enroll_cached
    from fedtts.federated.data import partition_clips

    out = []
    for pid in range(n):
        label, clips = partition_clips(pid)
        try:
            feats, style, _ = enroll_cached(clips, refine)
        except ValueError:
            out.append(None)
            continue
        out.append(LocalData(label, feats, style))
    return out


def emulate(devices: list, args: argparse.Namespace, seed: int) -> list[np.ndarray]:
    """The global coordinates after `args.rounds` rounds."""
    from fedtts.federated.client_app import local_fit
    from fedtts.federated.model import federated_arrays, load_start_model

    start = load_start_model("")
    rng = np.random.default_rng(seed)
    glob = federated_arrays(start, start)
    vel = [np.zeros_like(a) for a in glob]
    fit_cfg = FLConfig(local_epochs=args.local_epochs, lr=args.lr, seed=seed).fit_instructions(0, "")
    for _ in range(args.rounds):
        cohort = rng.choice(len(devices), size=max(1, round(args.fraction * len(devices))), replace=False)
        updates = []
        for c in cohort:
            if rng.random() < args.dropout or devices[c] is None:  # dropped mid-round, or cannot train
                continue
            new, _ = local_fit(glob, devices[c], fit_cfg, start=start)
            delta = [n - g for n, g in zip(new, glob, strict=True)]
            if args.dp:
                norm = float(np.sqrt(sum(float((d**2).sum()) for d in delta)))
                delta = [d * min(1.0, args.clip / max(norm, 1e-12)) for d in delta]
            updates.append(delta)
        if not updates:
            continue
        m = len(updates)
        avg = [sum(u[i] for u in updates) / m for i in range(len(glob))]
        if args.dp:
            avg = [a + rng.normal(0.0, args.noise_multiplier * args.clip / m, a.shape) for a in avg]
        vel = [args.server_momentum * v + a for v, a in zip(vel, avg, strict=True)]
        glob = [g + args.server_lr * v for g, v in zip(glob, vel, strict=True)]
    return glob


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--fraction", type=float, default=0.2)
    ap.add_argument("--dropout", type=float, default=0.1)
    ap.add_argument("--no-dp", dest="dp", action="store_false")
    ap.add_argument("--noise-multiplier", type=float, default=1.0)
    ap.add_argument("--clip", type=float, default=0.3)
    ap.add_argument("--lr", type=float, default=0.01)
    ap.add_argument("--local-epochs", type=int, default=5)
    ap.add_argument("--server-lr", type=float, default=2.0)
    ap.add_argument("--server-momentum", type=float, default=0.5)
    ap.add_argument("--enroll-refine", type=int, default=0)
    ap.add_argument("--name", default="", help="output file name (default: from the settings)")
    ap.add_argument("--out", default=str(Path(__file__).parent / "out" / "fl_emulate"))
    args = ap.parse_args()

    from fedtts.eval.clone_eval import evaluate_tuner
    from fedtts.federated.model import load_start_model, merge_federated

    devices = load_devices(args.clients, args.enroll_refine)
    start = load_start_model("")
    base = evaluate_tuner(start)
    runs = []
    for seed in [int(s) for s in args.seeds.split(",")]:
        t0 = time.perf_counter()
        end = evaluate_tuner(merge_federated(start, emulate(devices, args, seed)))
        runs.append({"seed": seed, "end": end, "wall_s": round(time.perf_counter() - t0, 1)})
        gain = {k: round(end[k] - base[k], 4) for k in ("similarity", "ge2e_norm")}
        print(
            f"seed {seed}: MFCC {end['similarity']:.3f} ({gain['similarity']:+.3f})"
            f"  ge2e_norm {end['ge2e_norm']:.3f} ({gain['ge2e_norm']:+.3f})",
            flush=True,
        )
    gains = {k: np.array([r["end"][k] - base[k] for r in runs]) for k in ("similarity", "ge2e_norm")}
    summary = {
        k: {"gain_mean": float(g.mean()), "gain_std": float(g.std(ddof=1)) if len(g) > 1 else 0.0}
        for k, g in gains.items()
    }
    for k, s in summary.items():
        print(f"{k}: gain {s['gain_mean']:+.3f} ± {s['gain_std']:.3f} over {len(runs)} seeds")
    name = args.name or (
        f"n{args.clients}_{'dp' if args.dp else 'plain'}_c{args.clip}_lr{args.server_lr}_m{args.server_momentum}"
        f"_r{args.rounds}"
    )
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    doc = {
        "settings": vars(args),
        "devices_usable": sum(d is not None for d in devices),
        "start": base,
        "runs": runs,
        "summary": summary,
    }
    (out / f"{name}.json").write_text(json.dumps(doc, indent=1))
    print("wrote", out / f"{name}.json")


if __name__ == "__main__":
    main()
