"""What a synthesis request is and what it yields: options, audio chunks, the whole result.

Apart from ``synth`` so that ``ssml_render`` (which ``synth`` calls for ``<speak>`` texts) can build
the same chunks without importing ``synth`` back.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fedtts.pipeline.timing import WordTiming

__all__ = ["SAMPLE_RATES", "AudioChunk", "SynthesisOptions", "SynthesisResult"]

SAMPLE_RATES = (24000, 32000)


@dataclass
class SynthesisOptions:
    """Per-request settings (the engine/front end configs are per ``Synthesizer``)."""

    sample_rate: int = 24000
    speed: float = 1.0
    seed: int | None = None
    use_phoneme: bool = False  # apply the pronunciation dictionary
    use_cache: bool = False  # front-end disk cache
    watermark: bool = True  # mark a cloned voice's output (PerTh); stock voices are never marked

    def validate(self) -> SynthesisOptions:
        if int(self.sample_rate) not in SAMPLE_RATES:
            raise ValueError(f"sample rate must be 24000 or 32000, got {self.sample_rate}")
        if not 0.25 <= float(self.speed) <= 4.0:
            raise ValueError(f"speed must be between 0.25 and 4, got {self.speed}")
        if self.seed is not None and not 0 <= int(self.seed) < 2**32:
            raise ValueError(f"seed must be between 0 and 2**32-1, got {self.seed}")
        return self


@dataclass
class AudioChunk:
    """One segment's audio (with its trailing pause) as it leaves the pipeline."""

    audio: np.ndarray
    sample_rate: int
    index: int
    text: str
    phonemes: str
    normalized: str = ""
    readable: str = ""
    lang: str = ""
    n_tokens: int = 0
    pause_s: float = 0.0  # silence at the end of ``audio`` (the segment's pause_after)
    compute_s: float = 0.0  # wall time spent producing this chunk
    since_start_s: float = 0.0  # wall time from the request to this chunk being ready
    words: list[WordTiming] = field(default_factory=list)  # seconds from the start of ``audio``

    @property
    def duration_s(self) -> float:
        return len(self.audio) / self.sample_rate


@dataclass
class SynthesisResult:
    audio: np.ndarray
    sample_rate: int
    segments: list[Any] = field(default_factory=list)  # front-end Segments, in order
    chunks: list[AudioChunk] = field(default_factory=list)  # audio emptied: metadata only
    voice: str = ""
    compute_s: float = 0.0
    first_chunk_s: float = 0.0
    words: list[WordTiming] = field(default_factory=list)  # seconds from the start of ``audio``
    tags: dict[str, str] = field(default_factory=dict)  # file tags: a clone's say it is synthetic

    @property
    def duration_s(self) -> float:
        return len(self.audio) / self.sample_rate

    @property
    def rtf(self) -> float:
        return self.compute_s / self.duration_s if self.duration_s else float("inf")

    @property
    def normalized(self) -> str:
        return " ".join(c.normalized for c in self.chunks if c.normalized)

    @property
    def phonemes(self) -> str:
        return " ".join(c.phonemes for c in self.chunks)
