"""Emotion / style transfer and prosody knobs on the prosody half (dims 128–255) of a style pack.

- :func:`apply_emotion`: prosody half moved from the speaker's toward the emotion voice's by α
  (0 = own prosody, 1 = the emotion reference's, >1 exaggerates); timbre half (0–127) untouched.
- :func:`adjust_prosody`: pitch shift in semitones and expressiveness (F0-range factor). The
  directions were *measured*, not guessed: random prosody-half perturbations of the stock packs
  were rendered with the ONNX model, F0 level and range measured (fedtts.voice.prosody), and a ridge
  regression of the measurements on the standardised prosody dims gives one direction per knob
  (:func:`fedtts.train.knobs.calibrate_knobs`, saved to ``fedtts/data/prosody_knobs.npz``).
"""

from __future__ import annotations

import functools
import importlib.resources as resources
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fedtts.engine import KokoroEngine
from fedtts.voice.bank import default_bank
from fedtts.voice.profile import MAX_PACE, MIN_PACE, PROSODY, Voice, VoiceError, is_clone
from fedtts.voice.prosody import measure_prosody
from fedtts.voice.reference import Reference
from fedtts.voice.resolve import render_phonemes

__all__ = [
    "VoiceShape",
    "ShapeError",
    "shape_voice",
    "apply_emotion",
    "transfer_emotion",
    "emotion_from_reference",
    "prosody_map",
    "adjust_prosody",
    "pitch_direction",
    "knobs_available",
    "knobs_path",
    "reload_knobs",
    "MAX_STRENGTH",
]

log = logging.getLogger(__name__)

MAX_STRENGTH = 2.0
KNOBS_FILE = "prosody_knobs.npz"


def apply_emotion(
    voice: Voice, emotion_voice: Voice, strength: float = 1.0, keep_pitch: bool = True
) -> Voice:
    """Speaker timbre + prosody interpolated (α ≤ 1) or extrapolated (α > 1) toward ``emotion_voice``.

    ``keep_pitch``: undo the F0-*level* part of the move along the measured pitch direction, so the
    speaker keeps their own voice height (part of who they are) while intonation range, rhythm and
    energy come from the emotion reference.
    """
    a = float(strength)
    if not np.isfinite(a) or not 0.0 <= a <= MAX_STRENGTH:
        raise VoiceError(f"emotion strength must be between 0 and {MAX_STRENGTH}, got {strength}")
    pack = voice.pack.copy()
    own = voice.pack[:, PROSODY]
    delta = a * (emotion_voice.pack[:, PROSODY] - own)
    if keep_pitch and knobs_available() and a:
        k = _knobs()
        b, std = k["b_level"], k["std"]
        level = (delta / std) @ b  # [510] semitones of F0-level change per row
        delta = delta - (level[:, None] * (b / float(b @ b))[None]) * std
    pack[:, PROSODY] = own + delta
    meta = {**voice.meta, "emotion": emotion_voice.name, "strength": a, "keep_pitch": bool(keep_pitch)}
    if is_clone(emotion_voice):  # prosody copied from a cloned voice: marked as a clone
        meta["cloned"] = True
    return Voice(name=f"{voice.name}+{emotion_voice.name}@{a:g}", pack=pack, meta=meta)


def knobs_path() -> Path:
    """Where the shipped knob calibration lives (``fedtts.train.knobs`` writes it)."""
    return Path(str(resources.files("fedtts.data") / KNOBS_FILE))


def reload_knobs() -> None:
    """Forget the loaded calibration (after :mod:`fedtts.train.knobs` rewrote it)."""
    _knobs.cache_clear()


def knobs_available() -> bool:
    return knobs_path().is_file()


@functools.lru_cache(maxsize=1)
def _knobs() -> dict[str, np.ndarray]:
    if not knobs_available():
        raise VoiceError("prosody knob calibration is missing (fedtts/data/prosody_knobs.npz)")
    with np.load(knobs_path(), allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def pitch_direction(pitch_st: float) -> np.ndarray:
    """Step [128] on the prosody half that shifts F0 by about ``pitch_st`` semitones."""
    k = _knobs()
    b = k["b_level"]
    return (b * (float(pitch_st) / float(b @ b)) * k["std"]).astype(np.float32)


def adjust_prosody(voice: Voice, pitch_st: float = 0.0, expressiveness: float = 1.0) -> Voice:
    """Shift F0 by ``pitch_st`` semitones (±6) and scale the F0 range by ``expressiveness`` (0.25–3).

    Moves every pack row along measured directions (prior-std units); the timbre half is untouched.
    """
    if not -6.0 <= float(pitch_st) <= 6.0:
        raise VoiceError(f"pitch shift must be within ±6 semitones, got {pitch_st}")
    if not 0.25 <= float(expressiveness) <= 3.0:
        raise VoiceError(f"expressiveness must be between 0.25 and 3, got {expressiveness}")
    if pitch_st == 0.0 and expressiveness == 1.0:
        return voice
    k = _knobs()
    std, mean = k["std"], k["mean"]
    pack = voice.pack.copy()
    z = (voice.pack[:, PROSODY] - mean) / std  # [510, 128]
    # Pitch: minimum-norm step along the F0-level Jacobian row (semitones per prior std).
    dz = pitch_direction(pitch_st) / std
    # Expressiveness: the range direction is nonlinear, so it was optimised (not linearised): a
    # shared step that multiplies the predictor's F0 range by 1.5 at a fixed level; scaled linearly.
    if expressiveness != 1.0:
        dz = dz + k["expr_up"] * ((float(expressiveness) - 1.0) / 0.5)
    pack[:, PROSODY] = (z + dz[None]) * std + mean
    meta = {**voice.meta, "pitch_st": float(pitch_st), "expressiveness": float(expressiveness)}
    return Voice(name=voice.name, pack=pack, meta=meta)


# ------------------------------------------------------------------ emotion from a reference clip
# Measured prosody (fedtts.voice.prosody order): f0_median_st, f0_range_st, voiced_fraction, rate,
# energy_std_db, pause_ratio. Emotion moves range, rate, energy dynamics and pauses; level is held.
EMOTION_DIMS = (1, 3, 4, 5)
LEVEL_DIM = 0
RANGE_DIM = 1
RATE_DIM = 3


@functools.lru_cache(maxsize=1)
def prosody_map() -> dict[str, np.ndarray]:
    """Linear map standardised prosody half → measured prosody, fitted (ridge) on the style bank renders.

    Why: the bank already holds hundreds of renders with their styles and measured prosody, so the
    direction that raises, say, F0 range by one semitone is a regression away, no extra rendering.
    """
    k = _knobs()
    bank = default_bank()
    z = (bank.styles[:, PROSODY] - k["mean"]) / k["std"]
    p = bank.features[:, 256:262]
    zc = np.hstack([np.ones((len(z), 1)), z])
    reg = 20.0 * np.eye(129)
    reg[0, 0] = 0
    coef = np.linalg.solve(zc.T @ zc + reg, zc.T @ p)  # [129, 6]
    pred = zc @ coef
    r2 = 1 - ((p - pred) ** 2).sum(0) / ((p - p.mean(0)) ** 2).sum(0)
    return {"c": coef[0], "w": coef[1:], "r2": r2, "mean": k["mean"], "std": k["std"]}


# The text of CALIBRATION_PHONEMES, so a render's rate can be counted in syllables of text.
CALIBRATION_TEXT = (
    "The quick brown fox jumps over the lazy dog. She sells seashells by the seashore, "
    "and then she goes home to read a book."
)


def _rendered(voice: Voice, pace: float, from_text: bool, engine: KokoroEngine):
    """Measured prosody of the voice on the calibration phonemes at ``pace``.

    Measured, not predicted (the bank map explains little of rate, R² ≈ 0.4; a render costs a
    fraction of a second), and rate in the reference's units: syllables of text per speech second
    when the reference has a transcript, energy peaks per second when it has not.
    """
    audio = render_phonemes(voice, speed=pace, engine=engine)
    return measure_prosody(audio, 24000, CALIBRATION_TEXT if from_text else None)


def transfer_emotion(
    voice: Voice,
    target_prosody: np.ndarray,
    strength: float = 1.0,
    max_step: float = 4.0,
    rate_from_text: bool = False,
    *,
    engine: KokoroEngine,
) -> Voice:
    """Move the voice ``strength`` of the way toward an emotion reference's measured prosody ([6]).

    Speaking rate goes through the voice's pace (Kokoro's speed input; factor 1 + α·(target/current
    − 1)), because the prosody half hardly moves rate; F0 range through the validated
    expressiveness knob (same factor form, current measured at the new pace); energy dynamics and pauses
    through the minimum-norm step of :func:`prosody_map`, with the F0 level held so the speaker keeps
    their voice height. The timbre half is untouched. ``engine``: the caller's model (a process keeps
    one session: :class:`fedtts.pipeline.runtime.Runtime`).
    """
    a = float(strength)
    if not np.isfinite(a) or not 0.0 <= a <= MAX_STRENGTH:
        raise VoiceError(f"emotion strength must be between 0 and {MAX_STRENGTH}, got {strength}")
    target = np.asarray(target_prosody, np.float64)
    m = prosody_map()
    z = (voice.pack[100, PROSODY] - m["mean"]) / m["std"]
    current = m["c"] + z @ m["w"]
    dims = [LEVEL_DIM, *(d for d in EMOTION_DIMS if d not in (RANGE_DIM, RATE_DIM))]
    gap = target[dims] - current[dims]
    gap[0] = 0.0  # hold F0 level
    w = m["w"][:, dims]  # [128, d]
    dz = w @ np.linalg.solve(w.T @ w + 1e-2 * np.eye(len(dims)), gap)
    norm = float(np.linalg.norm(dz)) / np.sqrt(len(dz))
    if norm > max_step:  # an unreachable target: go as far as stays clean
        dz *= max_step / norm
    pack = voice.pack.copy()
    pack[:, PROSODY] += (a * dz * m["std"]).astype(np.float32)[None]
    moved = Voice(name=voice.name, pack=pack, meta=dict(voice.meta))
    expr, pace = 1.0, voice.pace
    if a > 0:
        rate_now = _rendered(moved, voice.pace, rate_from_text, engine).rate
        rate_ratio = float(target[RATE_DIM]) / max(rate_now, 0.5)
        pace = float(np.clip(voice.pace * (1.0 + a * (rate_ratio - 1.0)), MIN_PACE, MAX_PACE))
        # F0 range measured at the new pace (a slower pace narrows it) on the same phonemes.
        range_now = _rendered(moved, pace, False, engine).f0_range_st
        ratio = float(target[RANGE_DIM]) / max(range_now, 1.0)
        expr = float(np.clip(1.0 + a * (ratio - 1.0), 0.25, 3.0))
    out = adjust_prosody(moved, 0.0, expr)
    out.meta.update({"emotion": "reference", "strength": a, "expressiveness": expr, "pace": pace})
    out.name = f"{voice.name}+emotion@{a:g}"
    return out


def emotion_from_reference(voice: Voice, reference, strength: float = 1.0, *, engine: KokoroEngine) -> Voice:
    """:func:`transfer_emotion` toward the measured prosody of a cleaned reference clip.

    The clip's transcript, when given, makes its speaking rate a count of syllables.
    """
    text = getattr(reference, "text", None)
    target = measure_prosody(reference.audio, reference.sample_rate, text).as_array()
    out = transfer_emotion(voice, target, strength, rate_from_text=bool(text), engine=engine)
    out.meta["emotion"] = reference.label
    return out


class ShapeError(VoiceError):
    """A shaping value out of range; ``part`` is ``"emotion"`` or ``"prosody"`` (for the caller's message)."""

    def __init__(self, message: str, part: str):
        super().__init__(message)
        self.part = part


@dataclass
class VoiceShape:
    """How a chosen voice is shaped: an emotion source (a clip or a voice) and the prosody knobs."""

    emotion_reference: Reference | None = None  # a cleaned clip: move toward its measured prosody
    emotion_voice: Voice | None = None  # or a voice: interpolate toward its prosody half
    emotion_strength: float = 1.0
    pitch_st: float = 0.0  # ±6 semitones
    expressiveness: float = 1.0  # F0 range factor, 0.25–3


def shape_voice(voice: Voice, shape: VoiceShape, *, engine: KokoroEngine) -> Voice:
    """The one voice composition of the CLI, API, UI and batch: emotion first, then pitch/expressiveness.

    In this order the user's knobs are the last word: an emotion transfer measures the voice's range
    and would undo an expressiveness set before it. Raises :class:`ShapeError` naming the part.
    """
    try:
        if shape.emotion_reference is not None:
            voice = emotion_from_reference(
                voice, shape.emotion_reference, shape.emotion_strength, engine=engine
            )
        elif shape.emotion_voice is not None:
            voice = apply_emotion(voice, shape.emotion_voice, shape.emotion_strength)
        elif float(shape.emotion_strength) != 1.0:
            raise VoiceError("an emotion strength needs an emotion reference (a clip or a voice)")
    except ShapeError:
        raise
    except VoiceError as e:
        raise ShapeError(str(e), "emotion") from e
    try:
        return adjust_prosody(voice, float(shape.pitch_st), float(shape.expressiveness))
    except VoiceError as e:
        raise ShapeError(str(e), "prosody") from e
