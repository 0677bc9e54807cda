"""Batch runner: both schemas, failing lines reported with line+field, path traversal, resume, zip."""

from __future__ import annotations

import json
import shutil
import zipfile

import pytest
import soundfile as sf
from _speak_helpers import make_frontend

from fedtts.app.batch import (
    BatchConfig,
    BatchError,
    ItemError,
    incomplete_audio,
    parse_tasks,
    run_batch,
    safe_name,
)
from fedtts.app.cli import main
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


@pytest.mark.parametrize(
    "bad", ["a\nb", "a\tb", "name\n", "x\x1by", "a\x7fb", "evil\u202egnp.wav", "a\u2028b"]
)
def test_safe_name_refuses_control_characters(bad):
    with pytest.raises(ItemError, match=r"field 'output_name'.*control character U\+"):
        safe_name(bad, "output_name")


def test_control_character_name_reported_with_line(tmp_path):
    tasks = tmp_path / "t.jsonl"
    lines = [{"input_text": "Hi.", "output_name": "ok"}, {"input_text": "Hi.", "output_name": "a\nb"}]
    tasks.write_text("\n".join(json.dumps(x) for x in lines) + "\n", encoding="utf-8")
    items = parse_tasks(tasks)
    assert items[0].name == "ok"
    line, err = items[1]
    assert line == 2 and err.field == "output_name" and "U+000A" in str(err)


def test_task_file_errors_name_the_file(tmp_path):
    out = tmp_path / "out"
    with pytest.raises(BatchError, match="task file not found: .*none.jsonl"):
        BatchConfig(tasks=tmp_path / "none.jsonl", out_dir=out).validate()
    (tmp_path / "f").write_text("x", encoding="utf-8")
    good = tmp_path / "t.jsonl"
    good.write_text('{"input_text": "hi", "output_name": "a"}\n', encoding="utf-8")
    with pytest.raises(BatchError, match="--out-dir .*f exists and is not a folder"):
        BatchConfig(tasks=good, out_dir=tmp_path / "f").validate()
    binary = tmp_path / "b.jsonl"
    binary.write_bytes(b"\x00\xff\xfe\x80" * 64)
    with pytest.raises(BatchError, match=r"b\.jsonl: binary data"):
        parse_tasks(binary)
    latin1 = tmp_path / "l.jsonl"
    latin1.write_bytes('{"input_text": "caf\xe9", "output_name": "a"}\n'.encode("latin-1"))
    with pytest.raises(BatchError, match=r"l\.jsonl: not UTF-8"):
        parse_tasks(latin1)
    empty = tmp_path / "e.jsonl"
    empty.write_text("\n\n", encoding="utf-8")
    with pytest.raises(BatchError, match="no task lines"):
        parse_tasks(empty)


@pytest.mark.parametrize(
    ("setup", "needle"),
    [
        ("missing", "none.jsonl"),
        ("out-is-file", "--out-dir"),
        ("binary", "t.jsonl: binary data"),
    ],
)
def test_cli_batch_input_errors_exit_2(tmp_path, monkeypatch, capsys, setup, needle):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "t.jsonl").write_text('{"input_text": "hi", "output_name": "a"}\n', encoding="utf-8")
    (tmp_path / "f").write_text("x", encoding="utf-8")
    if setup == "binary":
        (tmp_path / "t.jsonl").write_bytes(b"\x00\xff\xfe\x80" * 64)
    argv = {"missing": ["none.jsonl", "--out-dir", "out"], "out-is-file": ["t.jsonl", "--out-dir", "f"]}
    code = main(["batch", *argv.get(setup, ["t.jsonl", "--out-dir", "out"])])
    err = capsys.readouterr().err
    assert code == 2 and needle in err and "unexpected" not in err
    assert not (tmp_path / "out").exists()


def _wav_bytes(tmp_path) -> bytes:
    import numpy as np

    p = tmp_path / "ref.wav"
    sf.write(p, np.zeros(24000, dtype=np.float32), 24000, subtype="PCM_16")
    return p.read_bytes()


def test_incomplete_audio_detects_empty_truncated_and_garbage(tmp_path):
    full = _wav_bytes(tmp_path)
    cases = {
        "ok.wav": full,
        "empty.wav": b"",
        "trunc.wav": full[: len(full) // 2],
        "header.wav": full[:44],
        "garbage.wav": b"RIFF not really a wave file",
    }
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
    assert incomplete_audio(tmp_path / "ok.wav") is None
    assert "empty" in incomplete_audio(tmp_path / "empty.wav")
    assert "truncated" in incomplete_audio(tmp_path / "trunc.wav")
    assert "truncated" in incomplete_audio(tmp_path / "header.wav")
    assert incomplete_audio(tmp_path / "garbage.wav")


@pytest.mark.slow
def test_resume_redoes_incomplete_outputs(tmp_path, engine, capsys):
    tasks = tmp_path / "t.jsonl"
    rows = [
        {"input_text": t, "output_name": n} for n, t in [("a", "Hello."), ("b", "你好。"), ("c", "Fine.")]
    ]
    tasks.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n", encoding="utf-8")
    out = tmp_path / "out"
    synth = Synthesizer(engine=engine, frontend=make_frontend())
    cfg = BatchConfig(tasks=tasks, out_dir=out, options=SynthesisOptions(seed=1), progress=False)
    assert run_batch(cfg, synthesizer=synth).done == 3
    good = {n: (out / f"{n}.wav").read_bytes() for n in "abc"}
    (out / "a.wav").write_bytes(b"")  # a 0-byte file (disk full, killed copy)
    (out / "b.wav").write_bytes(good["b"][: len(good["b"]) // 3])  # a truncated one
    capsys.readouterr()
    rep = run_batch(cfg, synthesizer=synth)
    err = capsys.readouterr().err
    assert rep.done == 2 and rep.redone == 2 and rep.skipped == 1 and rep.ok
    assert (
        "a.wav is incomplete (it is empty (0 bytes))" in err and "b.wav is incomplete (it is truncated" in err
    )
    for n in "ab":
        assert incomplete_audio(out / f"{n}.wav") is None
        assert sf.info(out / f"{n}.wav").duration > 0.3
    rows = [json.loads(x) for x in (out / "text_compare.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [r["status"] for r in rows] == ["redone", "redone", "skipped"]
    assert "empty" in rows[0]["redone_because"]


@pytest.mark.slow
def test_cli_batch_failed_item_exits_1(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    lines = [{"input_text": "Hi.", "output_name": "ok"}, {"input_text": "Hi.", "output_name": "a\nb"}]
    (tmp_path / "t.jsonl").write_text("\n".join(json.dumps(x) for x in lines) + "\n", encoding="utf-8")
    code = main(["batch", "t.jsonl", "--out-dir", "out"])
    err = capsys.readouterr().err
    assert code == 1 and "t.jsonl:2: field 'output_name'" in err and "control character U+000A" in err
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["ok.wav", "text_compare.jsonl"]


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
    # one row per task line, rejected (parse/validation) and failed (synthesis) lines included
    assert [r["line"] for r in rows] == list(range(1, 9))
    status = {r["line"]: r["status"] for r in rows}
    assert [status[i] for i in (2, 3, 4, 8)] == ["rejected"] * 4 and status[6] == status[7] == "failed"
    assert all(r["error"] for r in rows if r["status"] in ("rejected", "failed"))
    assert "malformed JSON" in rows[1]["error"] and rows[1]["task"] == "{not json"
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


def test_text_compare_rows_stay_one_per_line(tmp_path):
    """Found by the fuzzer: a raw U+2028 in a row (valid JSON) split it for str.splitlines() readers."""
    tasks = tmp_path / "t.jsonl"
    lines = [{"input_text": "Hi.", "output_name": "a\u2028b"}, {"input_text": "Hi.", "output_name": "c\x85"}]
    tasks.write_text("\n".join(json.dumps(x, ensure_ascii=False) for x in lines) + "\n", encoding="utf-8")
    out = tmp_path / "out"
    rep = run_batch(BatchConfig(tasks=tasks, out_dir=out, progress=False), synthesizer=Synthesizer())
    assert len(rep.failed) == 2
    rows = [json.loads(x) for x in (out / "text_compare.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [(r["line"], r["status"]) for r in rows] == [(1, "rejected"), (2, "rejected")]
    assert "U+2028" in rows[0]["error"] and "U+0085" in rows[1]["error"]


def test_a_misspelt_field_is_refused_and_an_unknown_one_is_named(tmp_path, caplog):
    """`prompt_audo` would be ignored and give a stock voice where a clone was asked for."""
    tasks = tmp_path / "t.jsonl"
    tasks.write_text(
        json.dumps({"input_text": "hi", "output_name": "a", "prompt_audo": "x.wav"})
        + "\n"
        + json.dumps({"uttid": "b", "syn_text": "hi", "prompt_speach": "x.wav"})
        + "\n"
        + json.dumps({"input_text": "hi", "output_name": "c", "lang": "en"})
        + "\n",
        encoding="utf-8",
    )
    with caplog.at_level("WARNING", logger="fedtts.pipeline.tasks"):
        out = parse_tasks(tasks)
    (l1, e1), (l2, e2), item = out
    assert (
        isinstance(e1, ItemError) and e1.field == "prompt_audo" and "did you mean 'prompt_audio'" in str(e1)
    )
    assert isinstance(e2, ItemError) and "did you mean 'prompt_speech'" in str(e2) and (l1, l2) == (1, 2)
    assert item.name == "c"
    assert "unknown field 'lang' (line 3)" in caplog.text
