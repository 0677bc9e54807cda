"""The ``fedtts`` command: every command group assembled here, in one parser, under one error convention.

Each group module (``speak``, ``voice``, ``train``, ``evaluate``, ``fl``, ``serve``, ``wyoming``,
``detect``) has a ``register(sub)`` that adds its sub-commands; handlers are thin over library calls.
Optional extras (torch for training, flwr for federation, gradio/fastapi for the servers) are imported
inside the handlers that need them, so ``fedtts say`` and ``fedtts --help`` load none of them.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from collections.abc import Callable

from fedtts.app.cli import detect, evaluate, fl, serve, speak, train, voice, wyoming
from fedtts.app.cli.errors import Terminated, exit_code, fail

__all__ = ["GROUPS", "build_parser", "main"]

# Sub-command groups in the order ``fedtts --help`` lists them.
GROUPS: tuple[Callable[[argparse._SubParsersAction], None], ...] = (
    speak.register,
    voice.register,
    train.register,
    evaluate.register,
    fl.register,
    serve.register,
    wyoming.register,
    detect.register,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fedtts", description="Privacy-first voice-cloning TTS for Mandarin and English, on CPU."
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log details and show tracebacks")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for register in GROUPS:
        register(sub)
    return parser


def _on_sigterm(signum, frame) -> None:
    raise Terminated()


def main(argv: list[str] | None = None) -> int:
    """Run one ``fedtts`` command; the exit status (0 ok, 1 failure, 2 bad input or usage)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    verbose = "-v" in argv or "--verbose" in argv
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    in_main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _on_sigterm) if in_main else None
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        if not getattr(args, "func", None):
            parser.print_help(sys.stderr)
            return 2
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Terminated:
        print("terminated (SIGTERM); partial output removed", file=sys.stderr)
        return 128 + signal.SIGTERM
    except BrokenPipeError:
        return 1
    except Exception as e:
        return fail(*exit_code(e), verbose)
    finally:
        if in_main:
            signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)
