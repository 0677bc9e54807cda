"""Reconstruction refine: the style is fitted so the model re-synthesises a real LibriSpeech clip.

A few decoder steps on a short real clip must lower the whole-clip spectral loss and give a valid
style; a transcript that cannot be what the clip says is caught and the one-pass voice kept.
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")


def test_config_validation():
    from fedtts.engine.reconstruction import ReconConfig

    ReconConfig().validate()
    with pytest.raises(ValueError, match="align"):
        ReconConfig(align="viterbi").validate()
    with pytest.raises(ValueError, match="learning rates"):
        ReconConfig(lr=0).validate()
    with pytest.raises(ValueError, match="window_s"):
        ReconConfig(window_s=0.1).validate()


def test_duration_helpers():
    from fedtts.engine.reconstruction import _dtw_path, _durations_from_path, _scaled_durations

    dur = _scaled_durations(np.array([0.2, 3.0, 5.5, 1.0, 0.1]), 40)
    assert dur.sum() == 40 and (dur >= 1).all()
    # A clip spoken at half speed: the identity path stretched by two.
    a = np.eye(10)
    cost = 1.0 - np.repeat(a, 2, axis=1)  # render frame i matches clip frames 2i, 2i+1
    path = _dtw_path(cost)
    assert tuple(path[0]) == (0, 0) and tuple(path[-1]) == (9, 19)
    assert (np.diff(path, axis=0) >= 0).all()
    new = _durations_from_path(path, np.array([2, 3, 5]), 20)
    assert new.tolist() == [4, 6, 10]


@pytest.mark.torch
@pytest.mark.slow
def test_fit_lowers_loss_on_real_clip(dev_manifest):
    import soundfile as sf

    from fedtts.engine.reconstruction import ReconConfig, fit_style
    from fedtts.engine.torch_model import load_torch_model
    from fedtts.voice import reference_from_array, resolve_reference
    from fedtts.voice.profile import Voice
    from fedtts.voice.refine import reference_phonemes
    from fedtts.voice.tuner import stock_prior, style_to_pack

    # The shortest checked-transcript English clip (a few seconds) keeps the test quick.
    rows = [r for r in dev_manifest if r["lang"] == "en" and r.get("text_source") in ("gt", "gt_split")]
    row = min(rows, key=lambda r: r["duration_s"])
    audio, sr = sf.read(row["abspath"], dtype="float32")
    ref = reference_from_array(audio, sr, text=row["text"])
    voice = resolve_reference(ref, method="tuner", spectral_match=0.0)
    _, std, offsets = stock_prior()
    start = (voice.pack - offsets).mean(0)
    _, phonemes = reference_phonemes(ref)
    model = load_torch_model()
    n = len(model.tokenize(phonemes))
    cfg = ReconConfig(
        steps=4,
        lr=0.15,
        window_s=0.75,
        prosody_steps=4,
        report_full_loss=True,
        time_budget_s=0,
        prosody_budget_s=0,
    )
    res = fit_style(model, ref.audio, phonemes, start, std, offsets[n - 1], cfg)

    assert len(res.curve) == 4 and len(res.prosody_curve) == 4
    assert res.full_loss_end < res.full_loss_start
    assert res.prosody_curve[-1] < res.prosody_curve[0]
    assert res.style.shape == (256,) and np.isfinite(res.style).all()
    assert not np.allclose(res.style, start)
    al = res.alignment
    assert al.durations.sum() == al.frames and (al.durations >= 1).all()
    assert al.f0.shape == al.energy.shape == (2 * al.frames,)
    assert 7000 < al.band_hz <= 8100  # a 16 kHz LibriSpeech recording carries up to 8 kHz
    Voice(name="fitted", pack=style_to_pack(res.style))  # a valid pack


@pytest.mark.torch
@pytest.mark.slow
def test_wrong_transcript_keeps_one_pass_voice(dev_manifest):
    import soundfile as sf

    from fedtts.voice import reference_from_array, resolve_reference
    from fedtts.voice.refine import recon_voice

    rows = [r for r in dev_manifest if r["lang"] == "en" and r.get("text_source") in ("gt", "gt_split")]
    row = min(rows, key=lambda r: r["duration_s"])
    audio, sr = sf.read(row["abspath"], dtype="float32")
    ref = reference_from_array(audio, sr)
    voice = resolve_reference(ref, method="tuner", spectral_match=0.0)
    long_text = " ".join(r["text"] for r in sorted(rows, key=lambda r: -r["duration_s"])[:3])
    out = recon_voice(voice, ref, steps=2, text=long_text)
    assert "does not seem to be what the clip says" in out.meta["refine_warning"]
    np.testing.assert_array_equal(out.pack, voice.pack)
