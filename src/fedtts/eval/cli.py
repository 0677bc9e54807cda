"""``fedtts eval speak``: registered into the main CLI (Whisper is loaded only when it transcribes)."""

from __future__ import annotations

import argparse

from fedtts.eval.speak_eval import add_args, run

__all__ = ["register"]


def _cmd_speak(args: argparse.Namespace) -> int:
    return run(args)


def register(subparsers) -> None:
    """Create (or reuse) the ``eval`` group and add ``speak`` to it."""
    groups = getattr(subparsers, "choices", {})
    ev = groups.get("eval") or subparsers.add_parser("eval", help="evaluations (speak, clone, ...)")
    action = next((a for a in ev._actions if isinstance(a, argparse._SubParsersAction)), None)
    if action is None:
        action = ev.add_subparsers(dest="eval_cmd", required=True)
    if "speak" in action.choices:
        return
    p = action.add_parser("speak", help="synthesise the examples, transcribe with Whisper base, CER/WER")
    add_args(p)
    p.set_defaults(func=_cmd_speak)
