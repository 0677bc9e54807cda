"""Refine mode: polish a one-pass clone by gradient descent through the differentiable Kokoro.

Why: the tuner answers in a second; users who can wait about a minute get a closer match by
optimising the style itself against their clip (``fedtts voice add … --refine N``,
``fedtts say --ref CLIP --refine N``). Needs the ``[train]`` extra (torch). Two modes:

- ``ge2e``: invert toward the clip's GE2E speaker embedding while rendering fixed sentences
  (:mod:`fedtts.engine.inversion`);
- ``recon``: reconstruction-based enrollment — the clip itself is the target: its transcript
  (``--ref-text``, else Whisper) is aligned to the clip, the decoder gets the clip's own F0 and
  energy, and the style is fitted by a spectral loss (:mod:`fedtts.engine.reconstruction`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from fedtts.base.tuner_weights import pack_to_style, stock_prior, style_to_pack
from fedtts.engine.whisper import transcribe
from fedtts.frontend import Frontend
from fedtts.voice.profile import Voice, VoiceError
from fedtts.voice.reference import Reference
from fedtts.voice.spectral_match import spectral_match

__all__ = ["refine_style", "refine_voice", "recon_voice", "reference_phonemes", "REFINE_PHONEMES", "MODES"]

MODES = ("ge2e", "recon")
MODE_ENV = "FEDTTS_REFINE_MODE"  # default mode for `--refine N` (ge2e unless set)

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

    from fedtts.engine.inversion import InversionConfig, invert_style  # torch: the [train] extra
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


def refine_voice(
    voice: Voice, ref: Reference, steps: int = 24, progress: bool = False, mode: str | None = None
) -> Voice:
    """A refined copy of ``voice`` (a one-pass clone of ``ref``); ``mode`` is one of :data:`MODES`
    (default: ``$FEDTTS_REFINE_MODE``, else ``ge2e``)."""
    mode = (mode or os.environ.get(MODE_ENV) or "ge2e").strip().lower()
    if mode not in MODES:
        raise VoiceError(f"unknown refine mode {mode!r}; choose from {', '.join(MODES)}")
    if mode == "recon":
        return recon_voice(voice, ref, steps=steps, progress=progress)
    start = pack_to_style(voice.pack)  # the length-independent style of the pack
    style = refine_style(start, [(ref.audio, ref.sample_rate)], steps=steps, progress=progress)
    meta = {**voice.meta, "method": f"{voice.meta.get('method', 'clone')}+refine", "refine_steps": int(steps)}
    refined = Voice(name=voice.name, pack=style_to_pack(style), meta=meta)
    if "eq_strength" in voice.meta:  # the curve depends on the style's own spectrum: measure it anew
        refined = spectral_match(refined, ref, float(voice.meta["eq_strength"]))
    return refined


def _spoken(text: str) -> str:
    """Transcripts in capitals (corpora, headlines) are read as words, not spelled out."""
    letters = [c for c in text if c.isalpha() and c.isascii()]
    return text.lower() if letters and all(c.isupper() for c in letters) else text


def reference_phonemes(ref: Reference, text: str | None = None, lang: str | None = None) -> tuple[str, str]:
    """(transcript, Kokoro phonemes) of the clip: ``text``, else ``ref.text``, else Whisper's."""
    text = (text or ref.text or "").strip()
    if not text:
        # Whisper is the [eval] extra: without it transcribe raises AssetError naming what to install
        text = transcribe(ref.audio, ref.sample_rate, lang).strip()
        log.info("reference transcript (Whisper): %s", text)
        if not text:
            raise VoiceError(f"{ref.label}: Whisper heard no words in the clip; pass --ref-text")
    return text, Frontend().phonemize(_spoken(text))


def recon_voice(
    voice: Voice,
    ref: Reference,
    steps: int = 60,
    progress: bool = False,
    text: str | None = None,
    config=None,
) -> Voice:
    """A copy of ``voice`` whose style is fitted to re-synthesise ``ref`` (reconstruction refine).

    ``steps`` caps the decoder steps; ``config`` (a ``ReconConfig``) overrides the defaults, whose
    time budget (70 s, alignment included) keeps a voice within about 90 s on two cores. A transcript that does not fit the
    clip is reported with a warning and the one-pass voice is returned unchanged.
    """
    import dataclasses

    from tqdm import tqdm

    from fedtts.engine.reconstruction import ReconConfig, TranscriptMismatch, fit_style  # torch
    from fedtts.engine.torch_model import load_torch_model

    cfg = dataclasses.replace(config or ReconConfig(), steps=int(steps)).validate()
    transcript, phonemes = reference_phonemes(ref, text)
    _, std, offsets = stock_prior()
    model = load_torch_model()
    n = len(model.tokenize(phonemes))
    start = pack_to_style(voice.pack)
    bar = tqdm(total=int(cfg.steps), desc="refine (recon)", disable=not progress)

    def _tick(step: int, row: dict) -> None:
        bar.update(1)
        bar.set_postfix(loss=f"{row['spectral']:.3f}")

    try:
        res = fit_style(model, ref.audio, phonemes, start, std, offsets[max(n, 1) - 1], cfg, callback=_tick)
    except TranscriptMismatch as e:
        log.warning("%s: %s; keeping the one-pass voice", ref.label, e)
        return Voice(name=voice.name, pack=voice.pack.copy(), meta={**voice.meta, "refine_warning": str(e)})
    finally:
        bar.close()
    meta = {
        **voice.meta,
        "method": f"{voice.meta.get('method', 'clone')}+recon",
        "refine_steps": len(res.curve),
        "refine_mode": "recon",
        "refine_seconds": round(res.seconds, 1),
        "ref_text": transcript,
    }
    refined = Voice(name=voice.name, pack=style_to_pack(res.style), meta=meta)
    if "eq_strength" in voice.meta:  # the curve depends on the style's own spectrum: measure it anew
        refined = spectral_match(refined, ref, float(voice.meta["eq_strength"]))
    return refined
