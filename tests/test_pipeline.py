"""Pipeline: streaming order, stream == synthesize, determinism, 32 kHz, speed, pauses/fades, audio files."""

from __future__ import annotations

import io

import numpy as np
import pytest
import soundfile as sf
from _speak_helpers import make_frontend

from fedtts.pipeline import SynthesisOptions, Synthesizer, encode_audio, write_audio
from fedtts.pipeline.synth import AHEAD_CHUNKS, split_phonemes

TEXT = "Good morning. 今天天气很好。"


@pytest.fixture(scope="module")
def synth(engine):
    return Synthesizer(engine=engine, frontend=make_frontend())


@pytest.fixture(scope="module")
def voice():
    from fedtts.voice import stock_voice

    return stock_voice("jf_alpha")


@pytest.fixture(scope="module")
def base(synth, voice):
    return synth.synthesize(TEXT, voice, SynthesisOptions(seed=7))


@pytest.mark.slow
def test_stream_first_sentence_first_and_equals_synthesize(synth, voice, base):
    chunks = list(synth.stream(TEXT, voice, SynthesisOptions(seed=7), fast_start=False))
    assert len(chunks) >= 2
    assert "morning" in chunks[0].text.lower() or "morning" in chunks[0].normalized.lower()
    assert [c.index for c in chunks] == list(range(len(chunks)))
    assert chunks[0].since_start_s < chunks[-1].since_start_s
    streamed = np.concatenate([c.audio for c in chunks])
    # same input and seed → identical samples, and the whole file is exactly the sentence-by-sentence stream
    np.testing.assert_array_equal(streamed, base.audio)
    assert base.sample_rate == 24000 and base.duration_s > 1.0
    assert len(base.segments) >= 2 and base.phonemes


@pytest.mark.slow
def test_chunks_fade_and_pause(synth, voice):
    chunks = list(synth.stream(TEXT, voice, SynthesisOptions()))
    for c in chunks:
        assert abs(float(c.audio[0])) < 1e-3 and abs(float(c.audio[-1])) < 1e-3  # no click at joins
        assert np.max(np.abs(c.audio)) > 0.05  # real speech inside
    # the first segment's pause_after is rendered as digital silence at its end
    first = chunks[0]
    assert first.pause_s >= 0.05
    assert np.all(first.audio[-int(first.pause_s * 24000) + 1 :] == 0.0)


@pytest.mark.slow
def test_32k_is_resampled_same_utterance(synth, voice, base):
    r32 = synth.synthesize(TEXT, voice, SynthesisOptions(sample_rate=32000, seed=7))
    assert r32.sample_rate == 32000
    assert abs(len(r32.audio) - len(base.audio) * 4 / 3) <= 1
    # same content: the 32 kHz file brought back to 24 kHz correlates with the native one
    import soxr

    back = soxr.resample(r32.audio, 32000, 24000)[: len(base.audio)]
    corr = np.corrcoef(back, base.audio[: len(back)])[0, 1]
    assert corr > 0.95


@pytest.mark.slow
def test_speed_changes_duration(synth, voice, base):
    fast = synth.synthesize(TEXT, voice, SynthesisOptions(speed=1.5, seed=7))
    assert fast.duration_s < 0.85 * base.duration_s


@pytest.mark.slow
def test_long_phonemes_split_under_limit(engine):
    word = "həlˈoʊ wˈɜːld"
    long = " ".join([word] * 80)  # ~1000 tokens
    pieces = split_phonemes(long, engine.tokenize)
    assert len(pieces) >= 2
    assert all(len(engine.tokenize(p)) <= 510 for p in pieces)
    assert " ".join(pieces).split() == long.split()


def test_options_validate():
    with pytest.raises(ValueError, match="sample rate"):
        SynthesisOptions(sample_rate=16000).validate()
    with pytest.raises(ValueError, match="speed"):
        SynthesisOptions(speed=0).validate()
    SynthesisOptions(sample_rate=32000, speed=2.0, seed=3).validate()


def test_empty_text_is_an_error():
    synth = Synthesizer(frontend=object())  # never reached: rejected before the front end
    with pytest.raises(ValueError, match="empty"):
        list(synth.stream("   \n", voice=None))


def test_unload_drops_session(engine):
    s = Synthesizer(engine=engine)
    assert s._engine is engine
    s.unload()
    assert s._engine is None


def _tone(sr=24000, s=0.5):
    t = np.arange(int(sr * s)) / sr
    return (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)


@pytest.mark.parametrize("suffix", ["wav", "flac", "mp3", "ogg"])
def test_write_audio_roundtrip(tmp_path, suffix):
    x = _tone()
    path = write_audio(tmp_path / f"a.{suffix}", x, 24000)
    y, sr = sf.read(path)
    assert sr in (24000, 48000)
    assert abs(len(y) / sr - 0.5) < 0.1
    assert list(tmp_path.iterdir()) == [path]  # no temporary file left behind


def test_encode_audio_formats():
    x = _tone()
    assert len(encode_audio(x, 24000, "pcm")) == 2 * len(x)
    wav = encode_audio(x, 24000, "wav")
    y, sr = sf.read(io.BytesIO(wav))
    assert sr == 24000 and len(y) == len(x)
    assert encode_audio(x, 32000, "opus")[:4] == b"OggS"
    mp3 = encode_audio(x, 24000, "mp3")
    assert len(mp3) > 500 and sf.info(io.BytesIO(mp3)).samplerate == 24000
    with pytest.raises(ValueError, match="unsupported"):
        encode_audio(x, 24000, "aiff")


def test_failed_write_keeps_finished_file(tmp_path):
    out = tmp_path / "done.wav"
    write_audio(out, _tone(), 24000)
    before = out.read_bytes()
    bad = _tone()
    bad[10] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        write_audio(out, bad, 24000)
    assert out.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["done.wav"]


class _Counting:
    """Wraps a front end and counts analyze() calls."""

    def __init__(self, inner):
        self.inner, self.calls = inner, 0

    def analyze(self, text):
        self.calls += 1
        return self.inner.analyze(text)


@pytest.mark.slow
def test_long_text_streams_paragraph_by_paragraph(synth, voice, engine):
    inner = synth.frontend(SynthesisOptions())
    counting = _Counting(inner)
    s = Synthesizer(engine=engine, frontend=counting)
    text = "\n\n".join(["Hello there."] * 200)  # long: only the first paragraph is analysed up front
    gen = s.stream(text, voice, SynthesisOptions())
    first = next(gen)
    assert first.index == 0 and first.duration_s > 0.3
    # the render-ahead worker may be a queue's length ahead: one paragraph per chunk here
    assert counting.calls <= 2 + AHEAD_CHUNKS + 1
    gen.close()
