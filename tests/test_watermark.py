"""The PerTh watermark of cloned speech: marking, detection, the CLI, and parity with perth itself.

Real audio throughout (dev recordings, clones made with the real model); the converted watermark
model is built at set-up (``python -m fedtts.app.prepare``).
"""

from __future__ import annotations

import json
import tracemalloc

import numpy as np
import pytest
import soundfile as sf
import soxr

from fedtts.pipeline import SynthesisOptions, Synthesizer
from fedtts.pipeline.watermark import (
    THRESHOLD,
    ChunkMarker,
    UnreadableAudio,
    detect_file,
    get_watermarker,
    watermark_available,
)
from fedtts.voice import load_reference, resolve_reference, stock_voice

pytestmark = pytest.mark.skipif(not watermark_available(), reason="watermark model not built (prepare)")


def _clip(dev_manifest: list[dict], lang: str, role: str = "prompt") -> tuple[np.ndarray, int, str]:
    row = next(r for r in dev_manifest if r["lang"] == lang and r["role"] == role and r["duration_s"] >= 4)
    x, sr = sf.read(row["abspath"], dtype="float32", always_2d=True)
    return x.mean(axis=1), sr, row["abspath"]


@pytest.fixture(scope="module")
def wm():
    return get_watermarker()


@pytest.fixture(scope="module")
def clone(dev_manifest):
    return resolve_reference(load_reference(_clip(dev_manifest, "en")[2]), method="nearest")


@pytest.fixture(scope="module")
def synth():
    return Synthesizer()


TEXT = "The library opens at nine. 图书馆九点开门，请准时到达。"


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_marked_recordings_are_detected_and_originals_are_not(wm, dev_manifest, lang):
    x, sr, _ = _clip(dev_manifest, lang)
    x24 = soxr.resample(x, sr, 24000).astype(np.float32)
    y = wm.apply(x24, 24000)
    assert y.shape == x24.shape and y.dtype == np.float32
    marked, plain = wm.detect_array(y, 24000), wm.detect_array(x24, 24000)
    assert marked.marked and marked.score >= 0.9 and marked.frame_share > 0.5
    assert not plain.marked and plain.score < THRESHOLD
    # the mark lives below ~2 kHz: above 2.5 kHz the audio is left (nearly) as it was
    d = np.fft.rfft(y.astype(np.float64) - x24)
    f = np.fft.rfftfreq(len(x24), 1 / 24000)
    assert np.sum(np.abs(d[f > 2500]) ** 2) < 1e-3 * np.sum(np.abs(d[f < 2000]) ** 2)


def test_chunked_marking_has_no_seams(wm, dev_manifest):
    """A stream marked chunk by chunk (with left context) ≈ the whole file marked at once."""
    x, sr, _ = _clip(dev_manifest, "en")
    x24 = soxr.resample(x, sr, 24000).astype(np.float32)
    cut = np.flatnonzero(np.abs(x24[len(x24) // 2 :]) < 1e-3)  # a quiet sample near the middle
    k = len(x24) // 2 + (int(cut[0]) if cut.size else 0)
    marker = ChunkMarker(wm, 24000)
    chunked = np.concatenate([marker(x24[:k]), marker(x24[k:])])
    whole = wm.apply(x24, 24000)
    assert np.max(np.abs(chunked - whole)) < 0.02
    assert wm.detect_array(chunked, 24000).marked


def test_clone_outputs_are_marked_stock_and_opted_out_are_not(synth, clone, tmp_path):
    res = synth.synthesize(TEXT, clone, SynthesisOptions())
    assert get_watermarker().detect_array(res.audio, 24000).marked
    assert "synthetic speech" in res.tags["comment"] and "PerTh" in res.tags["comment"]
    chunks = list(synth.stream(TEXT, clone, SynthesisOptions(), fast_start=False))
    np.testing.assert_array_equal(
        np.concatenate([c.audio for c in chunks]), res.audio
    )  # marked chunk by chunk
    live = np.concatenate(
        [c.audio for c in synth.stream(TEXT, clone, SynthesisOptions())]
    )  # cut for a fast start
    assert get_watermarker().detect_array(live, 24000).marked
    off = synth.synthesize(TEXT, clone, SynthesisOptions(watermark=False))
    assert not get_watermarker().detect_array(off.audio, 24000).marked
    assert "NOT watermarked" in off.tags["comment"]
    stock = synth.synthesize(TEXT, stock_voice("jf_alpha"), SynthesisOptions())
    assert stock.tags == {} and not get_watermarker().detect_array(stock.audio, 24000).marked
    r32 = synth.synthesize("The library opens at nine.", clone, SynthesisOptions(sample_rate=32000))
    assert get_watermarker().detect_array(r32.audio, 32000).marked


def test_blend_with_a_clone_is_a_clone():
    from fedtts.voice import blend
    from fedtts.voice.profile import Voice, is_clone

    a = Voice("anna", stock_voice("jf_alpha").pack, meta={"kind": "profile"})
    assert is_clone(blend([(a, 0.2), (stock_voice("jm_kumo"), 0.8)]))
    assert not is_clone(blend([(stock_voice("jf_alpha"), 0.5), (stock_voice("jm_kumo"), 0.5)]))


def test_detect_cli_exit_codes_and_bad_input(synth, clone, dev_manifest, tmp_path, capsys):
    from fedtts.app.cli import main

    marked = tmp_path / "clone.flac"
    out = main(["say", "Checking the mark.", "--voice", "jf_alpha", "--out", str(tmp_path / "stock.wav")])
    assert out == 0
    res = synth.synthesize("Checking the mark.", clone, SynthesisOptions())
    sf.write(marked, res.audio, 24000)
    mp3 = tmp_path / "clone.mp3"
    from fedtts.pipeline import write_audio

    write_audio(mp3, res.audio, 24000)
    capsys.readouterr()
    assert main(["detect", str(marked), str(mp3)]) == 0
    text = capsys.readouterr().out
    assert text.count(": marked (confidence") == 2 and "of frames carry the mark" in text
    assert main(["detect", str(tmp_path / "stock.wav")]) == 1
    assert main(["detect", _clip(dev_manifest, "zh")[2], "--json"]) == 1
    row = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert row["marked"] is False and 0 <= row["score"] < THRESHOLD
    corrupt = tmp_path / "corrupt.wav"
    corrupt.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk" * 20)
    silent, short = tmp_path / "silence.wav", tmp_path / "short.wav"
    sf.write(silent, np.zeros(48000, np.float32), 24000)
    sf.write(short, res.audio[:4800], 24000)
    empty = tmp_path / "empty.m4a"
    empty.write_bytes(b"")
    for path, code, says in [
        (corrupt, 2, "cannot decode"),
        (empty, 2, "error"),
        (tmp_path / "missing.wav", 2, "file not found"),
        (tmp_path, 2, "is a folder"),
        (silent, 1, "silent"),
        (short, 1, "too little"),
    ]:
        assert main(["detect", str(path)]) == code, path
        got = capsys.readouterr()
        assert says in got.out + got.err and "Traceback" not in got.err


def test_long_file_detection_streams_in_bounded_memory(wm, dev_manifest, tmp_path):
    x, sr, _ = _clip(dev_manifest, "en")
    y = wm.apply(soxr.resample(x, sr, 24000).astype(np.float32), 24000)
    peaks = []
    for minutes in (1, 4):
        path = tmp_path / f"long{minutes}.flac"
        reps = int(np.ceil(minutes * 60 * 24000 / len(y)))
        with sf.SoundFile(path, "w", 24000, 1, format="FLAC") as f:
            for _ in range(reps):
                f.write(y)
        tracemalloc.start()
        det = detect_file(path, wm)
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
        assert det.marked and det.duration_s >= minutes * 60 - 1
    assert peaks[1] < 1.3 * peaks[0] and peaks[1] < 200e6, peaks


def test_unreadable_detect_file_raises_clear_error(tmp_path):
    bad = tmp_path / "x.ogg"
    bad.write_bytes(b"OggS" + bytes(300))
    with pytest.raises(UnreadableAudio, match="x.ogg"):
        detect_file(bad)


@pytest.mark.torch
def test_converted_watermarker_agrees_with_perth(wm, dev_manifest):
    """perth's own PerthImplicitWatermarker (its code and checkpoint, torch) vs our ONNX + numpy."""
    pytest.importorskip("torch")
    from fedtts.train.watermark_export import original_watermarker

    orig = original_watermarker()
    x, sr, _ = _clip(dev_manifest, "zh")
    x32 = soxr.resample(x, sr, 32000).astype(np.float32)
    y_orig = np.asarray(orig.apply_watermark(x32, 32000), np.float32)
    y_ours = wm.apply(x32, 32000)
    n = len(y_orig)
    assert abs(len(y_ours) - n) < 320
    for y in (y_orig, y_ours):
        assert float(orig.get_watermark(y, 32000, round=False)) >= 0.9  # perth detects both
    assert abs(wm.score_window(y_orig)[0] - float(orig.get_watermark(y_orig, 32000, round=False))) < 1e-3
    s_o, f_o, m_o = wm.score_window(y_orig)
    s_u, f_u, m_u = wm.score_window(y_ours[:n])
    sel = m_o > 0
    assert np.mean((f_o >= THRESHOLD)[sel] == (f_u >= THRESHOLD)[sel]) >= 0.99
    d = y_orig.astype(np.float64) - y_ours[:n]
    assert 10 * np.log10(np.sum(y_orig.astype(np.float64) ** 2) / np.sum(d**2)) > 30


def test_cli_say_with_ref_writes_synthetic_tags(dev_manifest, tmp_path):
    from fedtts.app.cli import main

    out = tmp_path / "c.wav"
    assert main(["say", "A cloned voice.", "--ref", _clip(dev_manifest, "en")[2], "--out", str(out)]) == 0
    with sf.SoundFile(out) as f:
        meta = f.copy_metadata()
    assert "synthetic speech" in meta["comment"] and "PerTh" in meta["comment"]
    assert detect_file(out).marked
    out2 = tmp_path / "n.flac"
    args = ["say", "A cloned voice.", "--ref", _clip(dev_manifest, "en")[2], "--no-watermark", "--stream"]
    assert main([*args, "--out", str(out2)]) == 0
    with sf.SoundFile(out2) as f:
        assert "NOT watermarked" in f.copy_metadata()["comment"]
    assert not detect_file(out2).marked
