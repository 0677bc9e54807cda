"""Reference audio → voice profile; stock packs, blends and saved profiles."""

from fedtts.voice.profile import (
    PROSODY,
    TIMBRE,
    Voice,
    VoiceError,
    blend,
    parse_voice_spec,
    stock_voice,
    stock_voice_names,
)

__all__ = [
    "PROSODY",
    "TIMBRE",
    "Voice",
    "VoiceError",
    "blend",
    "parse_voice_spec",
    "stock_voice",
    "stock_voice_names",
]
