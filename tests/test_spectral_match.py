"""Spectral match: curve, equaliser, the shipped render-spectrum map, and clones of real speakers."""

from __future__ import annotations

import numpy as np
import pytest

from fedtts.pipeline.equalizer import equalize
from fedtts.voice.profile import Voice, blend, stock_voice
from fedtts.voice.spectral_match import MAX_GAIN_DB, N_BANDS, ltas_db, match_curve, render_spectrum

SR = 24000


def _load(path: str) -> np.ndarray:
    import soundfile as sf
    import soxr

    x, sr = sf.read(path, dtype="float32", always_2d=True)
    return soxr.resample(x.mean(1), sr, SR).astype(np.float32)


def _en_speaker(dev_manifest, name: str) -> tuple[str, str, str]:
    rows = [r for r in dev_manifest if r["speaker"] == name]
    prompt = next(r for r in rows if r["role"] == "prompt")
    other = next(r for r in rows if r["role"] != "prompt")
    return prompt["abspath"], other["abspath"], other["text"].lower()


def test_curve_keeps_loudness_is_clipped_and_holds_above_the_reference_bandwidth():
    rng = np.random.default_rng(0)
    voice = rng.normal(-40, 5, N_BANDS)
    ref = voice + np.linspace(-6, 12, N_BANDS) + 17.0  # a tilt plus a level offset
    ref[-4:] = -150.0  # a band-limited recording: nothing in the top bands
    g = match_curve(ref, voice)
    power = 10.0 ** (voice / 10.0)
    assert (power * 10.0 ** (g / 10.0)).sum() == pytest.approx(power.sum(), rel=1e-3)  # loudness kept
    assert g.max() <= MAX_GAIN_DB + 1e-6 and g.min() >= -MAX_GAIN_DB - 1e-6
    assert np.all(g[-4:] == g[-5])  # the clone is not band-limited
    assert np.allclose(np.diff(g[: N_BANDS - 4]), 18 / (N_BANDS - 1), atol=1e-4)  # the tilt, exactly
    steep = match_curve(voice + np.linspace(-40, 40, N_BANDS), voice)
    assert np.abs(steep).max() == pytest.approx(MAX_GAIN_DB)  # clipped
    assert np.sum(np.abs(steep) >= MAX_GAIN_DB - 1e-4) >= 8
    assert np.allclose(match_curve(ref, voice, strength=0.0), 0.0)
    half = match_curve(ref, voice, strength=0.5)
    assert np.ptp(half) == pytest.approx(0.5 * np.ptp(g), rel=1e-3)  # half the shape


def test_equalizer_applies_the_curve_and_keeps_the_level():
    rng = np.random.default_rng(1)
    x = (0.05 * rng.standard_normal(SR * 2)).astype(np.float32)
    flat = equalize(x, np.zeros(N_BANDS))
    assert flat.shape == x.shape
    assert abs(10 * np.log10(np.mean(flat**2) / np.mean(x**2))) < 0.5
    g = np.concatenate([np.full(N_BANDS // 2, -5.0), np.full(N_BANDS // 2, 5.0)])
    y = equalize(x, g)
    change = ltas_db(y) - ltas_db(x)
    change -= change.mean()
    inner = np.r_[2 : N_BANDS // 2 - 2, N_BANDS // 2 + 2 : N_BANDS - 2]  # away from the step
    assert np.max(np.abs(change[inner] - g[inner])) < 1.5
    assert equalize(np.zeros(0, np.float32), g).size == 0
    from fedtts.pipeline.equalizer import soft_limit

    lim = soft_limit(np.array([0.5, -0.8, 3.0, -3.0], np.float32))
    assert lim[0] == 0.5 and -0.8 < lim[1] < -0.7 and 0.99 < lim[2] <= 1.0 and lim[3] == -lim[2]


def test_shipped_map_predicts_a_stock_render_better_than_a_constant(engine):
    from fedtts.voice.resolve import render_phonemes
    from fedtts.voice.spectral_match import _style_of

    spec = render_spectrum()
    for name in ("jf_alpha", "jm_kumo"):
        v = stock_voice(name)
        measured = ltas_db(render_phonemes(v, engine=engine))
        err = spec.predict(_style_of(v)) - measured
        const = spec.b - measured
        err, const = err - err.mean(), const - const.mean()
        assert np.sqrt(np.mean(err**2)) < np.sqrt(np.mean(const**2))
        assert np.sqrt(np.mean(err**2)) < 2.5  # dB


def test_blend_and_profile_keep_the_curve(tmp_path, monkeypatch):
    a = Voice("a", stock_voice("jf_alpha").pack, {"eq_db": [2.0] * N_BANDS})
    b = stock_voice("jm_kumo")  # no curve: counts as flat
    mixed = blend([(a, 0.75), (b, 0.25)])
    assert np.allclose(mixed.eq_db, 1.5)
    assert Voice("x", b.pack, {"eq_db": [float("nan")] * N_BANDS}).eq_db is None
    assert Voice("x", b.pack, {"eq_db": [90.0] * N_BANDS}).eq_db.max() <= 18.0

    from fedtts.voice.store import ProfileStore

    store = ProfileStore(tmp_path / "voices")
    store.add("eqvoice", a, consent=True)
    assert np.allclose(store.get("eqvoice").eq_db, 2.0)


@pytest.mark.slow
def test_spectral_match_brings_a_real_speakers_clone_closer(dev_manifest):
    """ls3168: the clone's long-term spectrum and its MFCC signature move toward the speaker's
    *other* recording (not the clip it was cloned from). The nearest stock pack is the clone here: the
    tuner's own timbre already carries much of the speaker's spectrum, the stock pack none of it."""
    from fedtts.eval.clone_eval import _background
    from fedtts.eval.metrics import mfcc_signature, signature_similarity
    from fedtts.pipeline import Synthesizer
    from fedtts.voice import reference_from_array, resolve_reference

    prompt, other, text = _en_speaker(dev_manifest, "ls3168")
    ref = reference_from_array(_load(prompt), SR)
    real = _load(other)
    plain = resolve_reference(ref, method="nearest", spectral_match=0.0)
    matched = resolve_reference(ref, method="nearest")
    assert plain.eq_db is None and matched.eq_db is not None and len(matched.eq_db) == N_BANDS
    assert np.allclose(plain.pack, matched.pack)  # the pack is untouched; only the colour changes

    synth = Synthesizer()
    a_plain = synth.synthesize(text, plain).audio
    a_match = synth.synthesize(text, matched).audio
    target = ltas_db(real)

    def dist(audio):
        d = ltas_db(audio)[:24] - target[:24]  # the band a 16 kHz recording carries
        return float(np.sqrt(np.mean((d - d.mean()) ** 2)))

    assert dist(a_match) < 0.6 * dist(a_plain)
    bg = _background()
    sig = mfcc_signature(real, SR)
    assert (
        signature_similarity(mfcc_signature(a_match, SR), sig, bg)
        > signature_similarity(mfcc_signature(a_plain, SR), sig, bg) + 0.05
    )
    level = 10 * np.log10(np.mean(a_match**2) / np.mean(a_plain**2))
    assert abs(level) < 1.5  # colour, not loudness
