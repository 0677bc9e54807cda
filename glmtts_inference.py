"""GLM-TTS-compatible entry point: ``python glmtts_inference.py --data=example_zh --exp_name=_test``.

Reads ``examples/<data>.jsonl`` (GLM-TTS schema) and writes ``outputs/pretrain<exp_name>/<data>/<uttid>.wav``
plus ``text_compare.jsonl``, through fedtts's batch runner (resumable; ``--overwrite`` redoes items).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--data", default="example_zh", help="examples/<data>.jsonl, or a path to a JSONL file")
    p.add_argument(
        "--exp_name", "--exp-name", default="", help="outputs go to outputs/pretrain<exp_name>/<data>"
    )
    p.add_argument("--phoneme", "--use_phoneme", "--use-phoneme", dest="phoneme", action="store_true")
    p.add_argument("--use_cache", "--use-cache", dest="use_cache", action="store_true")
    p.add_argument("--sample_rate", "--sample-rate", type=int, default=24000, choices=(24000, 32000))
    p.add_argument("--speed", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--voice", default=None, help="voice for lines without a prompt clip")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--overwrite", action="store_true")
    p.add_argument("--output_root", "--output-root", default=str(ROOT / "outputs"))
    args = p.parse_args(argv)

    from fedtts.app.batch import BatchConfig, BatchError, run_batch
    from fedtts.app.cli.errors import CliError
    from fedtts.app.cli.options import make_synthesizer, options_from_args

    data = Path(args.data)
    tasks = data if data.suffix == ".jsonl" and data.is_file() else ROOT / "examples" / f"{args.data}.jsonl"
    if not tasks.is_file():
        print(f"error: --data {args.data}: task file not found: {tasks}", file=sys.stderr)
        return 2
    if (
        any(c in args.exp_name for c in "/\\")
        or ".." in args.exp_name
        or any(ord(c) < 32 for c in args.exp_name)
    ):
        print(
            f"error: --exp_name {args.exp_name!r}: a name suffix only (no '/', '\\', '..' or control "
            "characters): outputs go to <output_root>/pretrain<exp_name>/<data>",
            file=sys.stderr,
        )
        return 2
    out_dir = Path(args.output_root) / f"pretrain{args.exp_name}" / tasks.stem
    try:
        options = options_from_args(args)
        cfg = BatchConfig(
            tasks=tasks, out_dir=out_dir, options=options, voice=args.voice, overwrite=args.overwrite
        )
        report = run_batch(
            cfg, synthesizer=make_synthesizer(argparse.Namespace(threads=args.threads, dict=None))
        )
    except CliError as e:
        print(f"error: {e}", file=sys.stderr)
        return e.code
    except BatchError as e:  # the task file itself is unusable: an input error, like `fedtts batch`
        print(f"error: {e}", file=sys.stderr)
        return 2
    except (ValueError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0 if report.ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
