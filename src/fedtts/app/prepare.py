"""Assemble and verify every offline asset once (``python -m fedtts.app.prepare``), so the first
synthesis, the tests and CI do not pay for it and a broken install fails here, clearly."""

from __future__ import annotations

import importlib
import sys

from fedtts.engine.assets import (
    AssetError,
    load_stock_packs,
    load_vocab,
    model_path,
    runtime_model_path,
    verify_model,
)
from fedtts.voice.resolve import prepare as prepare_stock_profiles

# Optional preparers of the extras: (module, function). A missing extra is skipped, a broken one fails.
OPTIONAL = [
    ("fedtts.eval.asr", "prepare"),
    ("fedtts.engine.torch_export", "prepare"),  # the onnx-fp32 back end ([train]: needs torch)
    ("fedtts.train.watermark_export", "prepare"),  # the PerTh watermark of clones, torch → ONNX
]


def main() -> int:
    try:
        path = model_path()
        digest = verify_model()
        print(f"[prepare] model  {path} sha256 {digest[:12]}…")
        print(f"[prepare] graph  {runtime_model_path().name} (duration caps, durations output)")
        print(f"[prepare] vocab  {len(load_vocab())} symbols; voices {', '.join(sorted(load_stock_packs()))}")
        print(f"[prepare] stock voice profiles (the nearest method) {prepare_stock_profiles()}")
    except AssetError as e:
        print(f"[prepare] error: {e}", file=sys.stderr)
        return 1
    for module, func in OPTIONAL:
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as e:
            print(f"[prepare] skip {module}: {e}")
            continue
        fn = getattr(mod, func, None)
        if fn is not None:
            print(f"[prepare] {module}.{func}: {fn()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
