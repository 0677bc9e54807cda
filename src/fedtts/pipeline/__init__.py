"""Pipeline: chunked, streaming synthesis (first sentence first), sample rates, audio files."""

from fedtts.pipeline.audio_io import AudioFormatError, encode_audio, write_audio
from fedtts.pipeline.synth import (
    SAMPLE_RATES,
    AudioChunk,
    SynthesisError,
    SynthesisOptions,
    SynthesisResult,
    Synthesizer,
)

__all__ = [
    "SAMPLE_RATES",
    "AudioChunk",
    "AudioFormatError",
    "SynthesisError",
    "SynthesisOptions",
    "SynthesisResult",
    "Synthesizer",
    "encode_audio",
    "write_audio",
]
