"""``fedtts wyoming``: the Wyoming protocol server for Home Assistant (docs/wyoming.md).

The server module (``wyoming``, the model) is imported inside the handler so ``fedtts --help`` stays fast.
"""

from __future__ import annotations

import argparse
import sys
from urllib.parse import urlparse

from fedtts.app.cli.errors import CliError
from fedtts.app.cli.serve import is_loopback
from fedtts.app.errors import ServiceError

__all__ = ["register", "cmd_wyoming", "config_from_args"]

DEFAULT_URI = "tcp://127.0.0.1:10200"


def config_from_args(args: argparse.Namespace):
    from fedtts.app.wyoming_server import WyomingConfig

    return WyomingConfig(
        uri=args.uri,
        voice=args.voice,
        sample_rate=args.sample_rate,
        speed=args.speed,
        use_phoneme=bool(args.phoneme),
        max_chars=args.max_chars,
        samples_per_chunk=args.samples_per_chunk,
        max_concurrent=args.max_concurrent,
        queue_size=args.queue_size,
        timeout_s=args.timeout,
        threads=args.threads,
        dict_path=args.dict,
        warmup=not args.no_warmup,
    ).validate()


def cmd_wyoming(args: argparse.Namespace) -> int:
    from fedtts.app.wyoming_server import serve

    try:
        cfg = config_from_args(args)
    except ValueError as e:
        raise CliError(str(e), 2) from e
    uri = urlparse(cfg.uri)
    if uri.scheme == "tcp" and not is_loopback(uri.hostname or ""):
        print(
            f"warning: {cfg.uri} is reachable from other machines and the Wyoming protocol has no "
            "authentication: anyone who can reach it can use it (keep it on your home network)",
            file=sys.stderr,
        )
    try:
        return serve(cfg)
    except ServiceError as e:  # e.g. --voice names no stock or saved voice
        raise CliError(f"--voice: {e}", 2) from e


def register(subparsers) -> None:
    """Add ``wyoming`` to the ``fedtts`` command line."""
    p = subparsers.add_parser(
        "wyoming", help=f"Wyoming protocol TTS server for Home Assistant (default {DEFAULT_URI})"
    )
    p.add_argument(
        "--uri", default=DEFAULT_URI, help=f"tcp://HOST:PORT, unix://PATH or stdio:// (default {DEFAULT_URI})"
    )
    p.add_argument("--voice", default="jf_alpha", help="voice when a request names none (default jf_alpha)")
    p.add_argument("--sample-rate", type=int, default=24000, choices=(24000, 32000))
    p.add_argument("--speed", type=float, default=1.0, help="speaking rate, 0.25–4 (default 1)")
    p.add_argument("--phoneme", action="store_true", help="apply the pronunciation dictionary")
    p.add_argument("--dict", default=None, metavar="JSONL", help="pronunciation dictionary file")
    p.add_argument(
        "--max-chars", type=int, default=4096, help="longest text per request or stream (default 4096)"
    )
    p.add_argument(
        "--samples-per-chunk",
        type=int,
        default=1024,
        help="audio samples per audio-chunk event (default 1024)",
    )
    p.add_argument("--max-concurrent", type=int, default=1, help="synthesis jobs at once (default 1)")
    p.add_argument("--queue-size", type=int, default=16, help="jobs that may wait for a slot (default 16)")
    p.add_argument("--timeout", type=float, default=300.0, help="seconds per request incl. queueing")
    p.add_argument("--threads", type=int, default=2, help="onnxruntime threads (default 2)")
    p.add_argument("--no-warmup", action="store_true", help="load the model on first request, not at start")
    p.set_defaults(func=cmd_wyoming)
