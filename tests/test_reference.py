"""Reference ingestion on real dev speech and on the bad references users will send."""

from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest
import soundfile as sf

from fedtts.voice.reference import MAX_SPEECH_S, MIN_SPEECH_S, SHORT_SPEECH_S, ReferenceError, load_reference


@pytest.fixture(scope="module")
def prompt(dev_manifest):
    """An English prompt clip (≈10 s) and its audio."""
    row = next(r for r in dev_manifest if r["lang"] == "en" and r["role"] == "prompt" and r["duration_s"] > 8)
    audio, sr = sf.read(row["abspath"], dtype="float32")
    return row, audio, sr


def test_real_prompt_is_cleaned(prompt):
    row, audio, sr = prompt
    ref = load_reference(row["abspath"], text=row["text"])
    assert ref.sample_rate == 24000 and ref.audio.dtype == np.float32 and ref.audio.ndim == 1
    assert len(ref.sha256) == 64 and ref.text == row["text"]
    assert 3.0 < ref.speech_s <= ref.duration_s <= row["duration_s"] + 0.01
    rms_db = 20 * np.log10(np.sqrt(np.mean(ref.audio**2)))
    assert -30 < rms_db < -15 and np.max(np.abs(ref.audio)) <= 10 ** (-1 / 20) + 1e-4
    assert not any("speech" in w for w in ref.warnings)


@pytest.mark.parametrize("fmt", ["mp3", "ogg", "m4a"])
def test_compressed_formats_decode(prompt, tmp_path, fmt):
    if not shutil.which("ffmpeg"):
        pytest.skip("ffmpeg not installed")
    row, _, _ = prompt
    out = tmp_path / f"ref.{fmt}"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", row["abspath"], str(out)], check=True)
    ref = load_reference(out)
    assert ref.speech_s > 5.0


def test_long_pauses_are_shortened(prompt, tmp_path):
    row, audio, sr = prompt
    half = len(audio) // 2
    # Cut at a quiet point near the middle and insert 3 s of room noise.
    cut = half + int(np.argmin(np.abs(audio[half : half + sr])))
    gap = np.random.default_rng(1).normal(0, 1e-4, 3 * sr).astype(np.float32)
    path = tmp_path / "pause.wav"
    sf.write(path, np.concatenate([audio[:cut], gap, audio[cut:]]), sr)
    ref = load_reference(path)
    assert ref.duration_s < len(audio) / sr + 1.0  # the 3 s pause is mostly gone


def _write(tmp_path, name, audio, sr=24000):
    path = tmp_path / name
    sf.write(path, np.asarray(audio, np.float32), sr)
    return path


def test_silence_is_rejected(tmp_path):
    with pytest.raises(ReferenceError, match="silent"):
        load_reference(_write(tmp_path, "silence.wav", np.zeros(24000 * 5)))


def test_half_second_is_rejected(prompt, tmp_path):
    _, audio, sr = prompt
    path = _write(tmp_path, "short.wav", audio[sr : sr + sr // 2], sr)
    with pytest.raises(ReferenceError, match=r"short\.wav: only 0\.\d s of speech.*at least 1 s of speech"):
        load_reference(path)


@pytest.fixture(scope="module")
def short_zh(dev_manifest):
    """The real dev Mandarin prompt with 1.1-1.8 s of speech (a 2.0 s AISHELL-3 clip)."""
    for row in dev_manifest:
        if row["lang"] == "zh" and row["duration_s"] < 2.5:
            ref = load_reference(row["abspath"])
            if 1.1 <= ref.speech_s <= 1.8:
                return row, ref
    pytest.skip("no dev Mandarin clip with 1.1-1.8 s of speech")


def test_short_mandarin_clip_is_cloned_with_a_warning(short_zh):
    """1-2 s of speech: accepted, the warning names the length and the expected quality, and it clones."""
    from fedtts.voice.resolve import resolve_reference

    row, ref = short_zh
    assert MIN_SPEECH_S <= ref.speech_s < SHORT_SPEECH_S
    warn = [w for w in ref.warnings if "of speech" in w]
    assert len(warn) == 1 and f"{ref.speech_s:.1f} s of speech" in warn[0] and "rough match" in warn[0]
    from fedtts.pipeline import Synthesizer

    voice = resolve_reference(ref)
    pack = np.asarray(voice.pack)
    assert pack.shape[-1] == 256 and np.all(np.isfinite(pack))
    audio = np.asarray(Synthesizer().synthesize("你好，今天天气很好。", voice).audio)
    assert len(audio) > 24000 * 0.8 and np.all(np.isfinite(audio)) and np.sqrt(np.mean(audio**2)) > 0.01


def test_cut_of_0_8_s_is_refused_with_its_length(short_zh, tmp_path):
    row, _ = short_zh
    audio, sr = sf.read(row["abspath"], dtype="float32")
    # the 0.8 s of the clip with the most energy: all of it speech, still under the 1 s floor
    n = int(0.8 * sr)
    energy = np.convolve(audio**2, np.ones(n), mode="valid")
    start = int(np.argmax(energy))
    path = _write(tmp_path, "cut08.wav", audio[start : start + n], sr)
    with pytest.raises(
        ReferenceError, match=r"cut08\.wav: only 0\.[0-8] s of speech found in 0\.8 s.*at least 1 s"
    ):
        load_reference(path)


def test_white_noise_is_rejected(tmp_path):
    noise = np.random.default_rng(0).normal(0, 0.1, 24000 * 5)
    with pytest.raises(ReferenceError, match="speech"):
        load_reference(_write(tmp_path, "white.wav", noise))


def test_music_is_rejected_or_flagged(tmp_path):
    sr = 24000
    t = np.arange(sr) / sr
    notes = []
    for f in (220, 277, 330, 440, 392, 330, 294, 262):
        env = np.exp(-2 * t)
        notes.append(env * sum(np.sin(2 * np.pi * f * h * t) / h for h in range(1, 6)))
    music = 0.2 * np.concatenate(notes) / np.max(np.abs(np.concatenate(notes)))
    path = _write(tmp_path, "music.wav", music)
    try:
        ref = load_reference(path)
    except ReferenceError as e:
        assert "not speech" in str(e) or "speech" in str(e)
    else:
        assert any("music" in w for w in ref.warnings), ref.warnings


def test_ten_minute_file_keeps_best_30_s(prompt, tmp_path):
    _, audio, sr = prompt
    long = np.tile(audio, int(600 * sr / len(audio)) + 1)[: 600 * sr]
    ref = load_reference(_write(tmp_path, "long.wav", long, sr))
    assert ref.duration_s <= MAX_SPEECH_S + 0.05
    assert any("best 30 s" in w for w in ref.warnings)


def test_text_file_renamed_wav(tmp_path):
    path = tmp_path / "notes.wav"
    path.write_text("this is not audio\n" * 50)
    with pytest.raises(ReferenceError, match=r"notes\.wav: not a readable audio file"):
        load_reference(path)


def test_missing_and_oversize(tmp_path, monkeypatch):
    with pytest.raises(ReferenceError, match="not found"):
        load_reference(tmp_path / "nope.wav")
    import fedtts.voice.reference as R

    monkeypatch.setattr(R, "MAX_FILE_BYTES", 1000)
    path = _write(tmp_path, "big.wav", np.zeros(24000))
    with pytest.raises(ReferenceError, match="limit"):
        load_reference(path)


def test_clipping_and_noise_warn_with_figures(prompt, tmp_path):
    _, audio, sr = prompt
    clipped = load_reference(_write(tmp_path, "clip.wav", np.clip(audio * 8, -1, 1), sr))
    assert any("clipping" in w and "%" in w for w in clipped.warnings), clipped.warnings
    noisy_audio = audio + np.random.default_rng(0).normal(0, 0.05, len(audio))
    noisy = load_reference(_write(tmp_path, "noisy.wav", noisy_audio, sr))
    assert any("SNR" in w for w in noisy.warnings), noisy.warnings
