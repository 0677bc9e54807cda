"""CER/WER normalisation and the shared prosody/quality metrics (numpy; DNSMOS on real speech)."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from fedtts.eval.asr import cer, edit_distance, normalize_text, wer
from fedtts.eval.metrics import (
    count_syllables,
    dnsmos,
    f0_range_st,
    pause_ratio,
    prosody_stats,
    spectral_envelope_distance,
    yin_f0,
)

SR = 16000


def _clip(rows, lang, role="gt", i=0):
    sel = [r for r in rows if r["lang"] == lang and r["role"] == role]
    r = sel[i]
    x, sr = sf.read(r["abspath"], dtype="float32")
    return r, x, sr


def test_edit_distance_known_pairs():
    assert edit_distance("kitten", "sitting") == 3
    assert edit_distance([], ["a"]) == 1
    assert edit_distance(["a", "b"], ["a", "b"]) == 0


def test_wer_known_pairs():
    assert wer("the cat sat on the mat", "the cat sat on a mat") == pytest.approx(1 / 6)
    assert wer("Hello, World!", "hello world") == 0.0
    assert wer("a b c d", "") == 1.0
    # numbers and clock formats count as the same words
    assert wer("I have 3 cats.", "I have three cats") == 0.0
    assert wer("It starts at 3:30 PM.", "It starts at 3.30 p.m.") == 0.0
    assert wer("the U.S. economy", "the US economy") == 0.0
    assert wer("I have 3 cats.", "I have four cats") == pytest.approx(1 / 4)


def test_cer_known_pairs():
    assert cer("请提前15分钟到。", "请提前十五分钟到") == 0.0
    assert cer("银行行长说", "銀行行長說") == 0.0  # traditional → simplified
    assert cer("ＡＢＣ你好", "abc你好") == 0.0  # full-width, case
    assert cer("我们明天开会", "我们今天开会") == pytest.approx(1 / 6)
    assert cer("你好", "") == 1.0
    assert cer("", "") == 0.0
    # code-switched text: an English word is one unit, however long (mixed error rate)
    assert cer("用AI写Python程序", "用AI写派森程序") == pytest.approx(2 / 6)
    assert cer("用AI写Python程序", "用ai写python程序") == 0.0


def test_normalize_text_is_idempotent_enough():
    t = normalize_text("2024年3月15日，只要¥199.50。")
    assert t and not any(c.isdigit() for c in t)
    assert normalize_text(t) == t


@pytest.mark.parametrize("f0", [90.0, 180.0, 350.0])
def test_yin_on_sine(f0):
    t = np.arange(SR) / SR
    tr = yin_f0(0.3 * np.sin(2 * np.pi * f0 * t), SR)
    assert tr.voiced.mean() > 0.9
    assert np.median(tr.voiced_f0()) == pytest.approx(f0, rel=0.01)


def test_yin_glide_range_and_noise():
    f = np.linspace(100, 200, SR)
    x = 0.3 * np.sin(2 * np.pi * np.cumsum(f) / SR)
    # p10..p90 of a linear 100→200 Hz glide: 110→190 Hz ≈ 9.5 semitones
    assert f0_range_st(yin_f0(x, SR)) == pytest.approx(12 * np.log2(190 / 110), abs=0.7)
    noise = np.random.default_rng(0).normal(0, 0.1, SR).astype(np.float32)
    assert yin_f0(noise, SR).voiced.mean() < 0.05


def test_pause_ratio_on_synthetic_bursts():
    t = np.arange(SR // 2) / SR
    tone = 0.3 * np.sin(2 * np.pi * 150 * t)
    gap = np.zeros(SR // 2)
    x = np.concatenate([tone, gap, tone]).astype(np.float32)
    assert pause_ratio(x, SR) == pytest.approx(1 / 3, abs=0.05)
    assert pause_ratio(np.concatenate([tone, tone]).astype(np.float32), SR) == 0.0


def test_count_syllables():
    assert count_syllables("你好世界") == 4
    assert count_syllables("hello world") == 3
    assert count_syllables("请提前15分钟到") == 8  # 15 → 十五


def test_prosody_on_real_speech(dev_manifest):
    _, x_en, sr_en = _clip(dev_manifest, "en")
    r, x_zh, sr_zh = _clip(dev_manifest, "zh", role="prompt")
    en = prosody_stats(x_en, sr_en)
    zh = prosody_stats(x_zh, sr_zh, r["text"])
    for p in (en, zh):
        assert 60 < p.f0_median_hz < 400
        assert 1.0 < p.f0_range_st < 24.0
        assert 0.2 < p.voiced_fraction <= 1.0
        assert 1.5 < p.rate_syl_s < 9.0
        assert 0.0 <= p.pause_ratio < 0.6
        assert p.energy_std_db > 2.0


def test_spectral_envelope_distance(dev_manifest):
    rows = [r for r in dev_manifest if r["lang"] == "en"]
    spk = rows[0]["speaker"]
    same = [r for r in rows if r["speaker"] == spk][:2]
    other = next(r for r in rows if r["speaker"] != spk and r.get("gender") != rows[0].get("gender"))
    a, sa = sf.read(same[0]["abspath"], dtype="float32")
    b, sb = sf.read(same[1]["abspath"], dtype="float32")
    c, sc = sf.read(other["abspath"], dtype="float32")
    assert spectral_envelope_distance(a, sa, a, sa) == pytest.approx(0.0, abs=1e-4)
    assert spectral_envelope_distance(a, sa, b, sb) < spectral_envelope_distance(a, sa, c, sc)


def test_dnsmos_real_speech_beats_noise(dev_manifest):
    _, x, sr = _clip(dev_manifest, "en")
    real = dnsmos(x, sr)
    noise = dnsmos(np.random.default_rng(1).normal(0, 0.3, 4 * SR).astype(np.float32), SR)
    assert set(real) == {"ovrl", "sig", "bak", "p808"}
    assert 2.5 < real["ovrl"] <= 5.0
    assert real["ovrl"] > noise["ovrl"] + 0.8
