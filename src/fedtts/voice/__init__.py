"""Reference audio → voice profile; stock packs, blends and saved profiles."""

from fedtts.voice.profile import (
    DEFAULT_VOICE,
    PROSODY,
    TIMBRE,
    Voice,
    VoiceError,
    blend,
    parse_voice_spec,
    stock_voice,
    stock_voice_names,
)
from fedtts.voice.reference import Reference, ReferenceError, load_reference, reference_from_array
from fedtts.voice.resolve import METHODS, resolve_reference, resolve_voice_name, resolvers

__all__ = [
    "DEFAULT_VOICE",
    "METHODS",
    "PROSODY",
    "TIMBRE",
    "Reference",
    "ReferenceError",
    "Voice",
    "VoiceError",
    "blend",
    "load_reference",
    "parse_voice_spec",
    "reference_from_array",
    "resolve_reference",
    "resolve_voice_name",
    "resolvers",
    "stock_voice",
    "stock_voice_names",
]
