"""CLI: exit codes and one-line messages for bad input, plugins, say/stream, glmtts_inference layout."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
from _speak_helpers import make_frontend

from fedtts.app import cli


def run(capsys, *argv):
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def assert_clean_error(err: str, *needles: str):
    assert "Traceback" not in err
    lines = [x for x in err.strip().splitlines() if x.startswith("error:")]
    assert len(lines) == 1, err
    for n in needles:
        assert n in lines[0], err


def test_help_is_fast_and_light():
    code = (
        "import sys; from fedtts.app.cli import build_parser; build_parser(); "
        "print(sorted(m for m in ('onnxruntime', 'torch', 'gradio') if m in sys.modules))"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert r.stdout.strip() == "[]"
    r = subprocess.run([sys.executable, "-m", "fedtts.app.cli", "--help"], capture_output=True, text=True)
    assert r.returncode == 0 and "say" in r.stdout and "batch" in r.stdout


def test_empty_text(capsys, tmp_path):
    code, _, err = run(capsys, "say", "   ", "--out", str(tmp_path / "x.wav"))
    assert code == 2
    assert_clean_error(err, "empty")
    assert not (tmp_path / "x.wav").exists()


def test_huge_text(capsys, tmp_path):
    code, _, err = run(capsys, "say", "好" * 100_000, "--out", str(tmp_path / "x.wav"))
    assert code == 2
    assert_clean_error(err, "100000 characters")


def test_unknown_voice(capsys, tmp_path):
    code, _, err = run(capsys, "say", "hello", "--voice", "nope_voice", "--out", str(tmp_path / "x.wav"))
    assert code == 2
    assert_clean_error(err, "unknown voice 'nope_voice'")


def test_bad_suffix_and_bad_options(capsys, tmp_path):
    code, _, err = run(capsys, "say", "hello", "--out", str(tmp_path / "x.txt"))
    assert code == 2
    assert_clean_error(err, "x.txt")
    code, _, err = run(capsys, "say", "hello", "--speed", "9", "--out", str(tmp_path / "x.wav"))
    assert code == 2
    assert_clean_error(err, "speed")


def test_voice_shaping_options_are_checked(capsys, tmp_path):
    out = str(tmp_path / "x.wav")
    cases = [
        (["--emotion-strength", "0.5"], "--emotion-ref"),
        (["--refine", "3"], "--refine needs --ref"),
        (["--pitch", "12"], "semitones"),
        (["--emotion-ref", "no_such_voice"], "unknown voice 'no_such_voice'"),
        (["--emotion-ref-text", "some words"], "--emotion-ref-text needs --emotion-ref CLIP"),
    ]
    for options, message in cases:
        code, _, err = run(capsys, "say", "hello", *options, "--out", out)
        assert code == 2, options
        assert_clean_error(err, message)
    assert not (tmp_path / "x.wav").exists()


def test_missing_and_corrupt_reference(capsys, tmp_path):
    code, _, err = run(
        capsys, "say", "hello", "--ref", str(tmp_path / "gone.wav"), "--out", str(tmp_path / "o.wav")
    )
    assert code == 2
    assert_clean_error(err, "gone.wav")
    bad = tmp_path / "corrupt.wav"
    bad.write_bytes(b"RIFF\x00\x00garbage" * 10)
    code, _, err = run(capsys, "say", "hello", "--ref", str(bad), "--out", str(tmp_path / "o.wav"))
    assert code == 2
    assert_clean_error(err, "corrupt.wav")
    code, _, err = run(capsys, "-v", "say", "hello", "--ref", str(bad), "--out", str(tmp_path / "o.wav"))
    assert code == 2 and "Traceback" in err  # --verbose shows it


def test_batch_bad_lines_exit_nonzero(capsys, tmp_path):
    tasks = tmp_path / "t.jsonl"
    tasks.write_text(
        '{"uttid": "a", "syn_text": \n'
        + json.dumps({"prompt_audio": "", "input_text": "hi", "output_name": "../../etc/x"})
        + "\n",
        encoding="utf-8",
    )
    code, _, err = run(capsys, "batch", str(tasks), "--out-dir", str(tmp_path / "out"))
    assert code == 1
    assert f"{tasks}:1:" in err and "malformed JSON" in err
    assert f"{tasks}:2: field 'output_name'" in err
    assert "Traceback" not in err
    rows = (tmp_path / "out" / "text_compare.jsonl").read_text().splitlines()
    assert rows == []
    code, _, err = run(capsys, "batch", str(tmp_path / "none.jsonl"), "--out-dir", str(tmp_path / "o2"))
    assert code == 1
    assert_clean_error(err, "none.jsonl")


def test_plugins_missing_skipped_broken_loud(capsys, tmp_path, monkeypatch):
    (tmp_path / "fedtts_broken_plugin.py").write_text("raise RuntimeError('boom at import')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(cli, "PLUGINS", [("fedtts_missing_plugin_xyz", "register")])
    assert run(capsys, "voices")[0] == 0
    monkeypatch.setattr(cli, "PLUGINS", [("fedtts_broken_plugin", "register")])
    code, _, err = run(capsys, "voices")
    assert code == 1
    assert_clean_error(err, "fedtts_broken_plugin", "boom at import")


def test_voices_lists_stock(capsys):
    code, out, _ = run(capsys, "voices")
    assert code == 0 and "jf_alpha\tstock" in out and "jm_kumo\tstock" in out


@pytest.fixture
def shim_synth(monkeypatch, engine):
    """The CLI's synthesizer, with the test front end when fedtts.frontend has not landed."""
    from fedtts.pipeline import Synthesizer

    fe = make_frontend()
    monkeypatch.setattr(cli, "make_synthesizer", lambda args: Synthesizer(engine=engine, frontend=fe))


@pytest.mark.slow
def test_say_32k_and_stream_stdout(capsysbinary, tmp_path, shim_synth):
    out = tmp_path / "a.flac"
    code = cli.main(["say", "Hello there. 你好。", "--out", str(out), "--sample-rate", "32000"])
    assert code == 0, capsysbinary.readouterr().err
    y, sr = sf.read(out)
    assert sr == 32000 and len(y) > 0.5 * sr
    capsysbinary.readouterr()
    code = cli.main(["say", "Hello there. 你好。", "--out", "-", "--stream", "--sample-rate", "32000"])
    raw, err = capsysbinary.readouterr()
    assert code == 0
    assert err.decode().count("chunk ") >= 2
    pcm = np.frombuffer(raw, dtype="<i2")
    assert abs(len(pcm) - len(y)) <= 1


@pytest.mark.slow
def test_say_stream_to_file_equals_plain(capsys, tmp_path, shim_synth):
    a, b = tmp_path / "a.wav", tmp_path / "b.wav"
    assert run(capsys, "say", "Hello there. 你好。", "--out", str(a))[0] == 0
    assert run(capsys, "say", "Hello there. 你好。", "--out", str(b), "--stream")[0] == 0
    np.testing.assert_array_equal(sf.read(a)[0], sf.read(b)[0])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.wav", "b.wav"]


@pytest.mark.slow
def test_glmtts_inference_layout(tmp_path, repo_root, shim_synth, monkeypatch, capsys):
    monkeypatch.syspath_prepend(str(repo_root))
    import glmtts_inference

    code = glmtts_inference.main(
        ["--data=example_en", "--exp_name=_test", "--use_cache", "--phoneme", f"--output_root={tmp_path}"]
    )
    assert code == 0, capsys.readouterr().err
    out = tmp_path / "pretrain_test" / "example_en"
    uttids = [
        json.loads(x)["uttid"] for x in (repo_root / "examples/example_en.jsonl").read_text().splitlines()
    ]
    assert sorted(p.stem for p in out.glob("*.wav")) == sorted(uttids)
    rows = [json.loads(x) for x in (out / "text_compare.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [r["uttid"] for r in rows] == uttids and all(r["phonemes"] for r in rows)
