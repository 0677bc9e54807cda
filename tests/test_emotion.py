"""Emotion transfer and prosody knobs edit only the prosody half, in proportion to α."""

from __future__ import annotations

import numpy as np
import pytest

from fedtts.voice import VoiceError, stock_voice
from fedtts.voice.profile import PROSODY, TIMBRE
from fedtts.voice.style import adjust_prosody, apply_emotion


def test_emotion_keeps_timbre_and_scales_with_strength():
    spk, emo = stock_voice("jm_kumo"), stock_voice("jf_tebukuro")
    half = apply_emotion(spk, emo, 0.5, keep_pitch=False)
    full = apply_emotion(spk, emo, 1.0, keep_pitch=False)
    np.testing.assert_array_equal(half.pack[:, TIMBRE], spk.pack[:, TIMBRE])
    np.testing.assert_allclose(full.pack[:, PROSODY], emo.pack[:, PROSODY], atol=1e-6)
    np.testing.assert_allclose(
        half.pack[:, PROSODY] - spk.pack[:, PROSODY],
        0.5 * (emo.pack[:, PROSODY] - spk.pack[:, PROSODY]),
        atol=1e-5,
    )
    np.testing.assert_array_equal(apply_emotion(spk, emo, 0.0).pack, spk.pack)
    with pytest.raises(VoiceError, match="strength"):
        apply_emotion(spk, emo, 3.0)


def test_emotion_keeps_the_speakers_pitch_level_by_default():
    from fedtts.voice.style import _knobs

    k = _knobs()
    spk, emo = stock_voice("jm_kumo"), stock_voice("jf_tebukuro")

    def level(v):  # predicted F0 level (semitones, linear knob model) of row 100
        return float(((v.pack[100, PROSODY] - k["mean"]) / k["std"]) @ k["b_level"])

    moved = apply_emotion(spk, emo, 1.0, keep_pitch=False)
    kept = apply_emotion(spk, emo, 1.0)
    assert abs(level(moved) - level(spk)) > 1.0  # the raw transfer would shift the voice's height
    assert abs(level(kept) - level(spk)) < 1e-3
    np.testing.assert_array_equal(kept.pack[:, TIMBRE], spk.pack[:, TIMBRE])
    assert np.abs(kept.pack[:, PROSODY] - spk.pack[:, PROSODY]).max() > 0.05  # the rest still moves


def test_knobs_touch_only_prosody():
    v = stock_voice("jf_alpha")
    up = adjust_prosody(v, pitch_st=3.0, expressiveness=1.4)
    np.testing.assert_array_equal(up.pack[:, TIMBRE], v.pack[:, TIMBRE])
    assert np.abs(up.pack[:, PROSODY] - v.pack[:, PROSODY]).max() > 0.01
    assert adjust_prosody(v) is v
    with pytest.raises(VoiceError, match="semitones"):
        adjust_prosody(v, pitch_st=12)
