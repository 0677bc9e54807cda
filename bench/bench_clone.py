"""One-pass cloning time per reference on 2 cores: clip → cleaned reference → voice pack.

    python bench/bench_clone.py [--methods tuner,bank,nearest] [--limit 12] [--json out.json]

Times the whole path a user waits for before synthesis starts (decode + VAD + loudness, GE2E
embedding, prosody, tuner/bank/nearest), per dev prompt clip (en + zh), after one warm-up clone
so model loading is not counted. Prints median / p90 / max seconds per method.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--methods", default="tuner,bank,nearest")
    ap.add_argument("--limit", type=int, default=0, help="at most N clips (0 = all dev prompts)")
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)

    from fedtts.voice import ReferenceError, load_reference, resolve_reference

    shared = Path(os.environ.get("FEDTTS_SHARED", Path(__file__).resolve().parents[1].parent / "shared"))
    dev = shared / "data" / "dev"
    rows = [json.loads(x) for x in (dev / "manifest.jsonl").read_text().splitlines() if x.strip()]
    clips = [str(dev / r["path"]) for r in rows if r["role"] == "prompt"]
    usable = []
    for c in clips:
        try:
            load_reference(c)
            usable.append(c)
        except ReferenceError as e:
            print(f"skipped: {e}", file=sys.stderr)
    clips = usable[: args.limit or None]
    if not clips:
        print(f"no prompt clips in {dev}", file=sys.stderr)
        return 2
    report = {}
    print(f"{'method':<10}{'clips':>6}{'median s':>10}{'p90 s':>8}{'max s':>8}")
    for method in args.methods.split(","):
        resolve_reference(load_reference(clips[0]), method=method)  # warm-up: loads models, caches
        times = []
        for c in clips:
            t0 = time.perf_counter()
            resolve_reference(load_reference(c), method=method)
            times.append(time.perf_counter() - t0)
        times.sort()
        row = {
            "clips": len(times),
            "median_s": statistics.median(times),
            "p90_s": times[int(0.9 * (len(times) - 1))],
            "max_s": times[-1],
        }
        report[method] = row
        print(
            f"{method:<10}{row['clips']:>6}{row['median_s']:>10.3f}{row['p90_s']:>8.3f}{row['max_s']:>8.3f}"
        )
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
