"""The command line's one error convention.

A handler raises :class:`CliError` (or lets a library error from :data:`USAGE_ERRORS` or
:data:`FAILURES` escape); :func:`fedtts.app.cli.main.main` prints one ``error: …`` line and exits 2 for
bad input or usage, 1 for a failure. ``--verbose`` adds the traceback. A handler that has exit codes
of its own meaning (``fedtts detect``: 0 marked, 1 not, 2 unreadable) returns them.
"""

from __future__ import annotations

import sys
import traceback

from fedtts.engine.assets import AssetError
from fedtts.federated.versions import VersionError
from fedtts.frontend import DictionaryError, TextError
from fedtts.pipeline.audio_io import AudioFormatError
from fedtts.pipeline.book import BookError
from fedtts.pipeline.synth import SynthesisError
from fedtts.pipeline.tasks import BatchError
from fedtts.pipeline.watermark import UnreadableAudio
from fedtts.voice import ReferenceError, VoiceError

__all__ = ["CliError", "Terminated", "USAGE_ERRORS", "FAILURES", "exit_code", "fail"]

# Library errors that mean the user's input or options are wrong (exit 2) ...
USAGE_ERRORS: tuple[type[Exception], ...] = (
    TextError,
    DictionaryError,
    VoiceError,
    ReferenceError,
    SynthesisError,
    AudioFormatError,
    BookError,
    BatchError,
    UnreadableAudio,
    VersionError,
)
# ... and those that mean something failed on this machine (exit 1).
FAILURES: tuple[type[Exception], ...] = (AssetError, OSError, RuntimeError)


class CliError(Exception):
    """An expected failure: message for the user and the exit code (2 usage/input, 1 failure)."""

    def __init__(self, message: str, code: int = 1):
        super().__init__(message)
        self.code = code


class Terminated(BaseException):
    """SIGTERM, raised in the main thread so it unwinds like Ctrl-C: partial ``.part`` files go away."""


def exit_code(e: Exception) -> tuple[str, int]:
    """The message and exit code an escaped exception gets."""
    if isinstance(e, CliError):
        return str(e), e.code
    if isinstance(e, USAGE_ERRORS):
        return str(e), 2
    if isinstance(e, FAILURES):
        return str(e), 1
    return f"unexpected {type(e).__name__}: {e} (run with --verbose for details)", 1


def fail(msg: str, code: int, verbose: bool) -> int:
    """Print ``error: msg`` (and the traceback with --verbose); the exit code."""
    if verbose:
        traceback.print_exc()
    print(f"error: {msg}", file=sys.stderr)
    return code
