"""Emotion transfer and prosody knobs edit only the prosody half, in proportion to α."""

from __future__ import annotations

import numpy as np
import pytest

from fedtts.voice import VoiceError, stock_voice
from fedtts.voice.profile import PROSODY, TIMBRE
from fedtts.voice.style import adjust_prosody, apply_emotion


def test_emotion_keeps_timbre_and_scales_with_strength():
    spk, emo = stock_voice("jm_kumo"), stock_voice("jf_tebukuro")
    half = apply_emotion(spk, emo, 0.5)
    full = apply_emotion(spk, emo, 1.0)
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


def test_knobs_touch_only_prosody():
    v = stock_voice("jf_alpha")
    up = adjust_prosody(v, pitch_st=3.0, expressiveness=1.4)
    np.testing.assert_array_equal(up.pack[:, TIMBRE], v.pack[:, TIMBRE])
    assert np.abs(up.pack[:, PROSODY] - v.pack[:, PROSODY]).max() > 0.01
    assert adjust_prosody(v) is v
    with pytest.raises(VoiceError, match="semitones"):
        adjust_prosody(v, pitch_st=12)
