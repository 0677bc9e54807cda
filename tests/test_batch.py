"""Batch runner: both schemas, failing lines reported with line+field, path traversal, resume, zip."""

from __future__ import annotations

import json
import shutil
import zipfile

import pytest
import soundfile as sf
from _speak_helpers import make_frontend

from fedtts.app.batch import BatchConfig, ItemError, parse_tasks, run_batch, safe_name
from fedtts.pipeline import SynthesisOptions, Synthesizer


def _tasks(tmp_path, repo_root):
    clips = tmp_path / "clips"
    clips.mkdir()
    shutil.copy(repo_root / "examples/prompts/SSB00800191.flac", clips / "zh.flac")
    (clips / "broken.wav").write_bytes(b"RIFF not really a wave file")
    lines = [
        {"uttid": "good_zh", "prompt_text": "x", "prompt_speech": "clips/zh.flac", "syn_text": "你好。"},
        "{not json",
        {"prompt_audio": "", "input_text": "Hello there.", "output_name": "../../etc/x"},
        {"prompt_audio": "", "input_text": "Hello there.", "output_name": "/tmp/abs_x"},
        {"prompt_audio": "", "input_text": "Hello there.", "output_name": "good_en.wav"},
        {"uttid": "no_clip", "prompt_speech": "clips/missing.flac", "syn_text": "你好。"},
        {"uttid": "bad_clip", "prompt_speech": "clips/broken.wav", "syn_text": "你好。"},
        {"uttid": "no_text", "prompt_speech": "clips/zh.flac", "syn_text": "  "},
    ]
    path = tmp_path / "tasks.jsonl"
    path.write_text(
        "\n".join(x if isinstance(x, str) else json.dumps(x, ensure_ascii=False) for x in lines) + "\n",
        encoding="utf-8",
    )
    return path


def test_safe_name_rejects_escapes():
    assert safe_name("utt_01.wav", "uttid") == "utt_01"
    for bad in ["../../etc/x", "/etc/passwd", "a/b", "..", ".hidden", "", "a\\b"]:
        with pytest.raises(ItemError, match="uttid"):
            safe_name(bad, "uttid")


def test_parse_tasks_reports_line_and_field(tmp_path, repo_root):
    items = parse_tasks(_tasks(tmp_path, repo_root))
    errors = {line: str(e) for line, e in (x for x in items if isinstance(x, tuple))}
    assert "malformed JSON" in errors[2]
    assert "output_name" in errors[3] and "output_name" in errors[4]
    assert "syn_text" in errors[8]
    good = [x for x in items if not isinstance(x, tuple)]
    assert good[0].prompt == (tmp_path / "clips/zh.flac").resolve()  # relative to the JSONL's folder


@pytest.mark.slow
def test_batch_run_resume_overwrite_zip(tmp_path, repo_root, engine, capsys):
    tasks = _tasks(tmp_path, repo_root)
    out = tmp_path / "out"
    synth = Synthesizer(engine=engine, frontend=make_frontend())
    cfg = BatchConfig(tasks=tasks, out_dir=out, options=SynthesisOptions(seed=1), zip=True, progress=False)
    rep = run_batch(cfg, synthesizer=synth)
    err = capsys.readouterr().err
    assert rep.done == 2 and not rep.ok
    assert sorted(line for line, _ in rep.failed) == [2, 3, 4, 6, 7, 8]
    assert f"{tasks}:6: field 'prompt_speech'" in err and "missing.flac" in err
    assert f"{tasks}:7: field 'prompt_speech'" in err
    assert sorted(p.name for p in out.glob("*.wav")) == ["good_en.wav", "good_zh.wav"]
    assert not (tmp_path / "etc").exists() and not (tmp_path.parent / "etc" / "x.wav").exists()
    info = sf.info(out / "good_en.wav")
    assert info.samplerate == 24000 and info.duration > 0.3
    rows = [json.loads(x) for x in (out / "text_compare.jsonl").read_text(encoding="utf-8").splitlines()]
    done = {r["uttid"]: r for r in rows if r["status"] == "done"}
    assert set(done) == {"good_zh", "good_en"} and done["good_zh"]["phonemes"]
    with zipfile.ZipFile(rep.zip_path) as z:
        assert sorted(z.namelist()) == ["out/good_en.wav", "out/good_zh.wav", "out/text_compare.jsonl"]

    # resume: finished items are skipped, their files untouched
    before = (out / "good_zh.wav").stat().st_mtime_ns
    rep2 = run_batch(cfg, synthesizer=synth)
    assert rep2.skipped == 2 and rep2.done == 0
    assert (out / "good_zh.wav").stat().st_mtime_ns == before
    # --overwrite redoes them, identically (deterministic)
    old = sf.read(out / "good_en.wav")[0]
    cfg.overwrite = True
    rep3 = run_batch(cfg, synthesizer=synth)
    assert rep3.done == 2 and rep3.skipped == 0
    assert (sf.read(out / "good_en.wav")[0] == old).all()
