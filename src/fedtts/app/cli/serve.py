"""``fedtts ui`` (Gradio web UI) and ``fedtts serve`` (HTTP API); both bind 127.0.0.1 by default.

Gradio, FastAPI and uvicorn are imported inside the handlers so ``fedtts --help`` stays fast.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import sys
from pathlib import Path

from fedtts.app.cli.errors import CliError
from fedtts.app.outputs import parse_duration
from fedtts.app.service import ServiceConfig, TTSService

__all__ = ["register", "service_config_from_args", "is_loopback"]

LOOPBACK = ("127.0.0.1", "localhost", "::1")


def _common(p: argparse.ArgumentParser, port: int, max_chars: int) -> None:
    p.add_argument(
        "--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)"
    )
    p.add_argument("--port", type=int, default=port, help=f"port (default {port})")
    p.add_argument("--output-dir", default="outputs", help="where results are saved and served from")
    p.add_argument("--max-upload-mb", type=float, default=20.0, help="largest upload in MB (default 20)")
    p.add_argument("--max-chars", type=int, default=max_chars, help=f"longest text (default {max_chars})")
    p.add_argument("--max-concurrent", type=int, default=1, help="synthesis jobs at once (default 1)")
    p.add_argument("--queue-size", type=int, default=16, help="jobs that may wait; more get 503 (default 16)")
    p.add_argument("--timeout", type=float, default=300.0, help="seconds per request incl. queueing")
    p.add_argument("--threads", type=int, default=2, help="onnxruntime threads per job (default 2)")
    p.add_argument("--dict", default=None, metavar="JSONL", help="pronunciation dictionary to use and edit")
    p.add_argument("--no-warmup", action="store_true", help="load the model on first request, not at start")
    p.add_argument(
        "--max-output-mb",
        type=float,
        default=2048.0,
        help="cap of the output folder: the oldest results go first beyond it (default 2048; 0 = no cap)",
    )
    p.add_argument(
        "--max-output-age",
        default="0",
        metavar="D",
        help="delete results older than D (7d, 12h, 30m; default 0 = keep); `fedtts outputs clean` by hand",
    )


def service_config_from_args(args: argparse.Namespace):
    try:
        max_age = parse_duration(args.max_output_age)
    except ValueError as e:
        raise ValueError(f"--max-output-age: {e}") from e
    if not args.max_output_mb >= 0:
        raise ValueError(f"--max-output-mb must be >= 0, got {args.max_output_mb}")
    return ServiceConfig(
        max_output_bytes=int(args.max_output_mb * 1024 * 1024) or None,
        max_output_age_s=max_age or None,
        output_dir=Path(args.output_dir),
        max_chars=args.max_chars,
        max_upload_bytes=int(args.max_upload_mb * 1024 * 1024),
        max_concurrent=args.max_concurrent,
        queue_size=args.queue_size,
        timeout_s=args.timeout,
        threads=args.threads,
        dict_path=Path(args.dict) if args.dict else None,
        api_key=os.environ.get("FEDTTS_API_KEY") or None,
    ).validate()


def is_loopback(host: str) -> bool:
    """127.0.0.0/8, ::1 and localhost: only this machine can connect."""
    if host in LOOPBACK:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _checked_config(args: argparse.Namespace) -> ServiceConfig:
    """The service config the options ask for; a usage error names the option that is wrong."""
    if not 0 <= args.port <= 65535:
        raise CliError(f"--port must be 0-65535, got {args.port}", 2)
    try:
        return service_config_from_args(args)
    except ValueError as e:
        raise CliError(str(e), 2) from e


def cmd_serve(args: argparse.Namespace) -> int:
    cfg = _checked_config(args)
    if not is_loopback(args.host) and not cfg.api_key:
        if not args.no_auth:
            raise CliError(
                f"--host {args.host} reaches beyond this machine and no API key is set: set "
                "FEDTTS_API_KEY (clients send 'Authorization: Bearer <key>'), or pass --no-auth to serve "
                "openly on purpose",
                2,
            )
        print(
            f"warning: serving on {args.host} without an API key (--no-auth): anyone who can reach it "
            "can use it",
            file=sys.stderr,
        )
    import uvicorn

    from fedtts.app.server import create_app

    service = TTSService(cfg)
    if not args.no_warmup:
        service.warm_up()
    app = create_app(service)
    auth = "Bearer key required" if cfg.api_key else "no API key"
    print(
        f"fedtts API on http://{args.host}:{args.port} (docs at /docs; {auth})", file=sys.stderr, flush=True
    )
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", timeout_keep_alive=5)
    return 0


def cmd_ui(args: argparse.Namespace) -> int:
    cfg = _checked_config(args)
    from fedtts.app.web import launch

    if not is_loopback(args.host):
        print(f"warning: the web UI on {args.host} is reachable from other machines", file=sys.stderr)
    launch(cfg, host=args.host, port=args.port, warmup=not args.no_warmup)
    return 0


def register(subparsers) -> None:
    """Add ``ui`` and ``serve`` to the ``fedtts`` command line."""
    p = subparsers.add_parser("ui", help="web UI (Gradio): synthesis, dictionary, batch, voices, system")
    _common(p, 7860, 20000)
    p.set_defaults(func=cmd_ui)

    p = subparsers.add_parser("serve", help="HTTP API (OpenAI-compatible /v1/audio/speech; docs at /docs)")
    _common(p, 8000, 4096)
    p.add_argument(
        "--no-auth",
        action="store_true",
        help="allow a non-loopback --host without FEDTTS_API_KEY (anyone who reaches it can use it)",
    )
    p.set_defaults(func=cmd_serve)
