"""Issue 20.2: word timestamps from the model's own durations, and subtitles made from them.

Real synthesis through the Kokoro engine: the words come in the text's order and inside the audio,
agree with Whisper's alignment of the same audio (an independent ear; its own error is tens of ms),
hold at 32 kHz and at another speed, are the same streamed and whole; then SRT/WebVTT, the CLI's
``--subtitles``, batch (one subtitle file per item, redone on resume when missing) and the API's
``timestamps: true``.
"""

from __future__ import annotations

import base64
import io
import json
import re
import statistics

import numpy as np
import pytest
import soundfile as sf

from fedtts.pipeline import SynthesisOptions
from fedtts.pipeline.timing import Timeline, WordTiming, subtitle_cues, to_srt, to_vtt

EN = "Please read the instructions carefully before you begin."
ZH = "重庆的银行今天下午三点关门。"

pytestmark = pytest.mark.slow


def _key(w: str) -> str:
    return "".join(c for c in w.lower() if c.isalnum())


def test_english_words_in_order_inside_the_audio_and_heard_there(synth, voice):
    from fedtts.eval.asr import word_times

    res = synth.synthesize(EN, voice, SynthesisOptions(seed=1))
    assert [_key(w.text) for w in res.words] == [_key(w) for w in EN.split()]
    starts = [w.start_s for w in res.words]
    assert starts == sorted(starts) and all(w.end_s > w.start_s for w in res.words)
    assert res.words[-1].end_s <= res.duration_s + 1e-3 and res.words[-1].punct == "."
    heard = {_key(w): t0 for w, t0, _ in word_times(res.audio, res.sample_rate, "en")}
    errs = [abs(w.start_s - heard[_key(w.text)]) for w in res.words if _key(w.text) in heard]
    assert len(errs) >= 6, heard
    assert statistics.median(errs) < 0.15  # Whisper base's own alignment is a 20-60 ms estimate


def test_mandarin_words_carry_their_characters(synth, voice):
    res = synth.synthesize(ZH, voice, SynthesisOptions(seed=1))
    chars = [c for w in res.words for c in (w.chars or (w,))]
    assert "".join(c.text for c in chars) == "重庆的银行今天下午三点关门"
    assert all(len(c.text) == 1 for c in chars)
    assert [c.start_s for c in chars] == sorted(c.start_s for c in chars)
    assert chars[-1].end_s <= res.duration_s + 1e-3
    assert any(len(w.chars) >= 2 for w in res.words)  # 重庆, 银行 … are words of characters


def test_sample_rate_speed_and_stream_keep_the_timing(synth, voice):
    base = synth.synthesize(EN, voice, SynthesisOptions(seed=1))
    hi = synth.synthesize(EN, voice, SynthesisOptions(seed=1, sample_rate=32000))
    assert [w.start_s for w in hi.words] == pytest.approx([w.start_s for w in base.words], abs=0.002)
    fast = synth.synthesize(EN, voice, SynthesisOptions(seed=1, speed=1.4))
    ratio = fast.words[-1].start_s / base.words[-1].start_s
    assert 0.55 < ratio < 0.85, ratio  # the durations carry the speed
    timeline = Timeline()
    for chunk in synth.stream(EN + " " + EN, voice, SynthesisOptions(seed=1)):
        timeline.add(chunk)
    whole = synth.synthesize(EN + " " + EN, voice, SynthesisOptions(seed=1))
    assert [(w.text, w.start_s) for w in timeline.words] == [(w.text, w.start_s) for w in whole.words]
    second = timeline.words[len(EN.split()) :]
    assert second[0].start_s > base.words[-1].end_s  # the second sentence is counted from the start


def test_cues_split_at_sentences_pauses_and_length():
    w = [
        WordTiming("Hello", 0.0, 0.4, punct=","),
        WordTiming("world", 0.5, 0.9, punct="."),
        WordTiming("Next", 1.0, 1.3),
        WordTiming("after", 2.5, 2.8, punct="."),
        *[WordTiming("word", 3.0 + i * 0.3, 3.2 + i * 0.3) for i in range(12)],
    ]
    cues = subtitle_cues(w)
    assert cues[0].text == "Hello, world." and cues[1].text == "Next"  # sentence end, then a 1.2 s pause
    assert all(len(c.text) <= 42 for c in cues) and len(cues) >= 4
    zh = [WordTiming("你好", 0.0, 0.5, punct=","), WordTiming("世界", 0.6, 1.0, punct=".")]
    assert subtitle_cues(zh)[0].text == "你好，世界。"
    srt, vtt = to_srt(w), to_vtt(w)
    assert srt.startswith("1\n00:00:00,000 --> 00:00:00,900\nHello, world.\n")
    assert vtt.startswith("WEBVTT\n\n00:00:00.000 --> 00:00:00.900\nHello, world.\n")


def test_cli_say_writes_subtitles_and_refuses_other_suffixes(tmp_path, capsys):
    from fedtts.app.cli import main

    out, subs = tmp_path / "a.wav", tmp_path / "a.srt"
    assert main(["say", EN, "--out", str(out), "--subtitles", str(subs), "--quiet"]) == 0
    blocks = subs.read_text(encoding="utf-8").strip().split("\n\n")
    assert re.match(r"1\n00:00:00,\d{3} --> 00:00:0\d,\d{3}\nPlease read", blocks[0])
    dur = sf.info(str(out)).duration
    last = re.findall(r"--> 00:00:(\d\d),(\d{3})", blocks[-1])[0]
    assert int(last[0]) + int(last[1]) / 1000 <= dur + 1e-3
    assert main(["say", EN, "--out", str(out), "--stream", "--subtitles", str(tmp_path / "b.vtt")]) == 0
    assert (tmp_path / "b.vtt").read_text(encoding="utf-8").startswith("WEBVTT")
    capsys.readouterr()
    assert main(["say", EN, "--out", str(tmp_path / "c.wav"), "--subtitles", str(tmp_path / "c.txt")]) == 2
    assert "c.txt: subtitles must be .srt or .vtt" in capsys.readouterr().err
    assert not (tmp_path / "c.wav").exists()


def test_batch_writes_one_subtitle_file_per_item_and_resume_makes_a_missing_one(tmp_path, synth):
    from fedtts.app.batch import BatchConfig, run_batch

    tasks = tmp_path / "t.jsonl"
    rows = [{"input_text": EN, "output_name": "en"}, {"input_text": ZH, "output_name": "zh"}]
    tasks.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n", encoding="utf-8")
    out = tmp_path / "out"

    def run():
        cfg = BatchConfig(
            tasks=tasks, out_dir=out, voice="jf_alpha", progress=False, subtitles="vtt", zip=True
        )
        return run_batch(cfg.validate(), synth)

    assert run().done == 2
    assert "重庆" in (out / "zh.vtt").read_text(encoding="utf-8")
    (out / "en.vtt").unlink()
    report = run()
    assert report.done == 1 and (out / "en.vtt").is_file()  # the item without its subtitles was redone
    import zipfile

    with zipfile.ZipFile(report.zip_path) as z:
        assert {"out/en.wav", "out/en.vtt", "out/zh.wav", "out/zh.vtt"} <= set(z.namelist())


def test_api_timestamps_answer_captioned_json(tmp_path, synth):
    from fastapi.testclient import TestClient

    from fedtts.app.server import create_app
    from fedtts.app.service import ServiceConfig, TTSService

    svc = TTSService(
        ServiceConfig(output_dir=tmp_path / "out", upload_dir=tmp_path / "up"), synthesizer=synth
    )
    with TestClient(create_app(svc)) as client:
        r = client.post("/v1/audio/speech", json={"input": EN, "response_format": "wav", "timestamps": True})
        assert r.status_code == 200, r.text
        body = r.json()
        audio, sr = sf.read(io.BytesIO(base64.b64decode(body["audio"])))
        assert sr == body["sample_rate"] == 24000 and abs(len(audio) / sr - body["duration"]) < 0.01
        words = body["timestamps"]
        assert [_key(w["word"]) for w in words] == [_key(w) for w in EN.split()]
        assert all(0 <= w["start_time"] < w["end_time"] <= body["duration"] + 1e-3 for w in words)
        assert np.all(np.diff([w["start_time"] for w in words]) > 0)
        r = client.post("/v1/audio/speech", json={"input": EN, "timestamps": True, "stream": True})
        assert r.status_code == 400 and "timestamps" in r.json()["error"]["message"]
