"""The front end's errors, apart so that ``core`` and ``ssml`` (which ``core`` calls) both import them."""

from __future__ import annotations

__all__ = ["OverrideError", "TextError"]


class TextError(ValueError):
    """Text that cannot be spoken (empty, only unsupported script/symbols, an invalid override)."""


class OverrideError(TextError):
    """An inline override or dictionary entry the model cannot say: the whole text is refused (a
    caller that skips unspeakable paragraphs must not skip this one: ``fatal``)."""

    fatal = True
