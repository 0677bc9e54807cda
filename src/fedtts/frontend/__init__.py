"""fedtts.frontend: text → normalised segments with pinyin/IPA and Kokoro phonemes."""

from .core import (
    FRONTEND_VERSION,
    MAX_TOKENS,
    Frontend,
    FrontendConfig,
    Note,
    OverrideError,
    Segment,
    TextError,
    format_analysis,
)
from .dictionary import DictionaryError, PronunciationDict

__all__ = [
    "FRONTEND_VERSION",
    "MAX_TOKENS",
    "Frontend",
    "FrontendConfig",
    "Segment",
    "TextError",
    "OverrideError",
    "Note",
    "format_analysis",
    "DictionaryError",
    "PronunciationDict",
]
