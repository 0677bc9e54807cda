"""Refine mode: polish a one-pass clone by gradient inversion through the differentiable Kokoro.

Why: the tuner answers in a second; users who can wait about a minute get a closer match by
optimising the style itself against their clip (``fedtts voice add … --refine N``,
``fedtts say --ref CLIP --refine N``). Needs the ``[train]`` extra (torch).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from fedtts.voice.profile import Voice
from fedtts.voice.reference import Reference

__all__ = ["refine_style", "refine_voice", "REFINE_PHONEMES"]

log = logging.getLogger(__name__)

# Two short, phonetically varied English sentences (espeak-ng en-us IPA); rendered in turn.
REFINE_PHONEMES = (
    "ʃiː sˈɛd ðə wˈɛðɚ wʊd biː nˈaɪs tədˈeɪ.",
    "wiː wˈɔːkt ɐlˈɔŋ ðə ɹˈɪvɚ ʌntˈɪl ðə sˈʌn wɛnt dˈaʊn.",
)


def refine_style(
    start: np.ndarray,
    clips: Sequence[str | Path | tuple[np.ndarray, int]],
    steps: int = 24,
    progress: bool = False,
) -> np.ndarray:
    """Optimised style [256], starting from ``start``; the target is the speaker's clips."""
    from tqdm import tqdm

    from fedtts.engine.inversion import InversionConfig, invert_style
    from fedtts.engine.torch_model import load_torch_model

    model = load_torch_model()
    bar = tqdm(total=int(steps), desc="refine", disable=not progress)

    def _tick(step: int, row: dict) -> None:
        bar.update(1)
        bar.set_postfix(similarity=f"{row['similarity']:.3f}")

    try:
        res = invert_style(
            model,
            list(clips),
            list(REFINE_PHONEMES),
            InversionConfig(steps=int(steps), lr=0.05),
            callback=_tick,
            start_style=start,
        )
    finally:
        bar.close()
    log.info(
        "refine: GE2E similarity %.3f -> %.3f in %d steps (%.0f s)",
        res.similarity_start,
        res.similarity_end,
        res.steps,
        res.seconds,
    )
    return res.style


def refine_voice(voice: Voice, ref: Reference, steps: int = 24, progress: bool = False) -> Voice:
    """A refined copy of ``voice`` (a one-pass clone of ``ref``)."""
    from fedtts.voice.tuner import stock_prior, style_to_pack

    _, _, offsets = stock_prior()
    start = (voice.pack - offsets).mean(0)  # the length-independent style of the pack
    style = refine_style(start, [(ref.audio, ref.sample_rate)], steps=steps, progress=progress)
    meta = {**voice.meta, "method": f"{voice.meta.get('method', 'clone')}+refine", "refine_steps": int(steps)}
    refined = Voice(name=voice.name, pack=style_to_pack(style), meta=meta)
    if "eq_strength" in voice.meta:  # the curve depends on the style's own spectrum: measure it anew
        from fedtts.voice.spectral_match import spectral_match

        refined = spectral_match(refined, ref, float(voice.meta["eq_strength"]))
    return refined
