"""``fedtts detect FILE...``: does a file carry the PerTh watermark every cloned output gets?

One line per file; exit 0 when every file is marked, 1 when one is not, 2 when one cannot be
checked (unreadable, or the watermark model is not built). Nothing is loaded until a file is checked.
"""

from __future__ import annotations

import argparse
import json
import sys

from fedtts.pipeline.watermark import UnreadableAudio, WatermarkError, detect_file, get_watermarker

__all__ = ["cmd_detect", "register"]

MARKED, NOT_MARKED, UNCHECKED = 0, 1, 2


def cmd_detect(args: argparse.Namespace) -> int:
    try:
        wm = get_watermarker()
    except WatermarkError as e:
        print(f"error: {e}", file=sys.stderr)
        return UNCHECKED
    worst = MARKED
    for path in args.files:
        try:
            d = detect_file(path, wm)
        except UnreadableAudio as e:
            print(f"{path}: error: {e}", file=sys.stderr)
            if args.json:
                print(json.dumps({"path": path, "error": str(e)}, ensure_ascii=False))
            worst = max(worst, UNCHECKED)
            continue
        worst = max(worst, MARKED if d.marked else NOT_MARKED)
        if args.json:
            print(json.dumps(d.to_dict(), ensure_ascii=False))
            continue
        verdict = "marked" if d.marked else "not marked"
        line = (
            f"{path}: {verdict} (confidence {d.confidence:.2f}, score {d.score:.2f}; "
            f"{100 * d.frame_share:.0f}% of frames carry the mark; {d.sounding_s:.1f} s of sound "
            f"in {d.duration_s:.1f} s)"
        )
        print(line + (f" — {d.note}" if d.note else ""))
    return worst


def register(sub) -> None:
    p = sub.add_parser(
        "detect",
        help="check audio files for the watermark of cloned speech (exit 0 marked, 1 not, 2 unreadable)",
    )
    p.add_argument("files", nargs="+", metavar="FILE", help="WAV/FLAC/MP3/OGG/M4A (any length: streamed)")
    p.add_argument("--json", action="store_true", help="one JSON object per file on stdout")
    p.set_defaults(func=cmd_detect)
