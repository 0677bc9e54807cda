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


def test_voice_pace_scales_the_synthesis_speed():
    from fedtts.pipeline import Synthesizer
    from fedtts.voice.profile import Voice, blend

    synth = Synthesizer()
    v = stock_voice("jm_kumo")
    slow = Voice(name="slow", pack=v.pack, meta={"pace": 0.7})
    text = "We have to leave right now, the train is about to depart."
    n1 = len(synth.synthesize(text, v).audio)
    n2 = len(synth.synthesize(text, slow).audio)
    assert 1.25 < n2 / n1 < 1.6, n2 / n1
    assert blend([(v, 1.0), (slow, 1.0)]).pace == pytest.approx(0.85)
    assert Voice(name="bad", pack=v.pack, meta={"pace": float("nan")}).pace == 1.0


def test_transfer_emotion_moves_rate_and_range_toward_the_target(engine):
    from fedtts.voice.style import _rendered, transfer_emotion

    v = stock_voice("jm_kumo")
    own = _rendered(v, 1.0, True, engine)
    target = own.as_array().copy()
    target[1] *= 1.4  # wider F0 range
    target[3] *= 0.7  # slower
    same = transfer_emotion(v, target, 0.0, rate_from_text=True, engine=engine)
    np.testing.assert_array_equal(same.pack, v.pack)
    assert same.pace == 1.0
    out = transfer_emotion(v, target, 1.0, rate_from_text=True, engine=engine)
    np.testing.assert_array_equal(out.pack[:, TIMBRE], v.pack[:, TIMBRE])
    assert 0.6 < out.pace < 0.85
    assert out.meta["expressiveness"] > 1.15
    moved = _rendered(out, out.pace, True, engine)
    assert moved.rate < 0.85 * own.rate
    assert moved.f0_range_st > own.f0_range_st + 1.0


def test_one_voice_composition_for_cli_and_api(tmp_path, engine):
    """Emotion first, then the knobs, in the CLI and the service alike (same pack for the same ask)."""
    import argparse

    from fedtts.app.cli.options import shape_voice as cli_shape
    from fedtts.app.service import ServiceConfig, SpeechRequest, TTSService
    from fedtts.pipeline import Synthesizer
    from fedtts.voice.style import ShapeError, VoiceShape, shape_voice

    v, emo = stock_voice("jf_alpha"), stock_voice("jm_kumo")
    want = adjust_prosody(apply_emotion(v, emo, 0.7), 2.0, 1.5)
    got = shape_voice(
        v,
        VoiceShape(emotion_voice=emo, emotion_strength=0.7, pitch_st=2.0, expressiveness=1.5),
        engine=engine,
    )
    np.testing.assert_array_equal(got.pack, want.pack)
    args = argparse.Namespace(emotion_ref="jm_kumo", emotion_strength=0.7, pitch=2.0, expressiveness=1.5)
    synth = Synthesizer(engine=engine)
    np.testing.assert_array_equal(cli_shape(v, args, synth).pack, want.pack)
    svc = TTSService(ServiceConfig(output_dir=tmp_path / "out"), synthesizer=synth)
    try:
        req = SpeechRequest(
            text="hi",
            voice="jf_alpha",
            emotion_voice="jm_kumo",
            emotion_strength=0.7,
            pitch_st=2.0,
            expressiveness=1.5,
        )
        voice, warnings = svc.voice_for(req)
        np.testing.assert_array_equal(voice.pack, want.pack)
        voice, warnings = svc.voice_for(SpeechRequest(text="hi", voice="jf_alpha", emotion_strength=0.5))
        assert any("emotion_strength ignored" in w for w in warnings)  # said, not silently dropped
    finally:
        svc.close()
    with pytest.raises(ShapeError) as e:
        shape_voice(v, VoiceShape(pitch_st=9.0), engine=engine)
    assert e.value.part == "prosody"
    with pytest.raises(ShapeError) as e:
        shape_voice(v, VoiceShape(emotion_voice=emo, emotion_strength=7.0), engine=engine)
    assert e.value.part == "emotion"
