"""Whisper base on real speech and the speak evaluation end to end (real model, real ASR)."""

from __future__ import annotations

import json

import pytest
import soundfile as sf

pytestmark = pytest.mark.slow


def test_whisper_assembled_once():
    from fedtts.eval.asr import whisper_dir

    d = whisper_dir()
    for name in ("model.bin", "config.json", "tokenizer.json", "vocabulary.txt"):
        assert (d / name).is_file()
    assert (d / "model.bin").stat().st_size > 100_000_000


def test_transcribe_real_english_clip(dev_manifest):
    from fedtts.eval.asr import transcribe, wer

    r = next(
        r for r in dev_manifest if r["lang"] == "en" and r["role"] == "gt" and r["text_source"] == "gt_split"
    )
    x, sr = sf.read(r["abspath"], dtype="float32")
    hyp = transcribe(x, sr, "en")
    assert wer(r["text"], hyp) <= 0.15, (r["text"], hyp)


def test_transcribe_real_mandarin_clip(dev_manifest):
    from fedtts.eval.asr import cer, transcribe

    r = next(r for r in dev_manifest if r["lang"] == "zh" and r["text"] == "加快发展现代保险服务业")
    x, sr = sf.read(r["abspath"], dtype="float32")
    hyp = transcribe(x, sr, "zh")
    assert cer(r["text"], hyp) <= 0.2, (r["text"], hyp)


def test_transcribe_rejects_bad_lang():
    import numpy as np

    from fedtts.eval.asr import transcribe

    with pytest.raises(ValueError, match="lang"):
        transcribe(np.zeros(16000, np.float32), 16000, "fr")


def test_speak_eval_short_sentences(tmp_path, repo_root):
    """Synthesise one zh and one en sentence with the real pipeline; Whisper must understand them."""
    from fedtts.eval.speak_eval import SpeakEvalConfig, evaluate

    tasks = tmp_path / "tasks.jsonl"
    lines = [
        {"uttid": "zh1", "syn_text": "重庆的银行今天下午三点关门，请提前15分钟到。"},
        {"uttid": "en1", "syn_text": "Please read the instructions carefully before you begin."},
    ]
    tasks.write_text("\n".join(json.dumps(x, ensure_ascii=False) for x in lines) + "\n", encoding="utf-8")
    report = evaluate(SpeakEvalConfig(examples=[tasks], acceptance=False), log=lambda *_: None)
    assert [i.name for i in report.items] == ["zh1", "en1"]
    assert all(not i.error for i in report.items), [i.error for i in report.items]
    assert report.zh_cer is not None and report.zh_cer <= 0.10, report.items[0]
    assert report.en_wer is not None and report.en_wer <= 0.10, report.items[1]
    assert report.passed


def test_eval_speak_cli_bad_file(tmp_path, capsys):
    from fedtts.app.cli import main

    code = main(["eval", "speak", "--examples", str(tmp_path / "missing.jsonl")])
    assert code == 2
    assert "missing.jsonl" in capsys.readouterr().err
