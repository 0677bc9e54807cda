"""CLI: exit codes and one-line messages for bad input, plugins, say/stream, glmtts_inference layout."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import soundfile as sf
from _speak_helpers import make_frontend

from fedtts.app.cli import main, speak


def run(capsys, *argv):
    code = main(list(argv))
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


def test_say_with_a_stock_voice_loads_no_torch_flwr_gradio_or_training(tmp_path):
    """Plain synthesis keeps the optional extras and fedtts.train out of the process (issue 16)."""
    out = tmp_path / "x.wav"
    code = (
        "import sys; import fedtts.app.cli as c; "
        f"rc = c.main(['say', 'Hello there.', '--voice', 'jf_alpha', '--out', {str(out)!r}]); "
        "print(rc, sorted(m for m in ('torch', 'flwr', 'gradio') if m in sys.modules), "
        "sorted(m for m in sys.modules if m.startswith('fedtts.train')))"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert r.stdout.strip().splitlines()[-1] == "0 [] []", r.stdout + r.stderr
    assert out.is_file()


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
    rows = [json.loads(x) for x in (tmp_path / "out" / "text_compare.jsonl").read_text().splitlines()]
    assert [(r["line"], r["status"]) for r in rows] == [(1, "rejected"), (2, "rejected")]  # issue 18 (7)
    code, _, err = run(capsys, "batch", str(tmp_path / "none.jsonl"), "--out-dir", str(tmp_path / "o2"))
    assert code == 2  # a missing task file is an input error (issue 18, 9)
    assert_clean_error(err, "none.jsonl")


def test_one_parser_has_every_command_group(capsys):
    """The command line is assembled in one place (fedtts.app.cli.main): every group answers --help."""
    from fedtts.app.cli.main import build_parser

    groups = build_parser()._subparsers._group_actions[0].choices
    expected = {"say", "phonemize", "batch", "book", "cache", "outputs", "voices", "voice", "train"}
    expected |= {"eval", "fl", "serve", "ui", "wyoming", "detect"}
    assert expected <= set(groups), sorted(groups)
    subs = [("train", s) for s in ("tuner", "recon-targets", "bank", "spectrum")]
    subs += [("eval", s) for s in ("speak", "clone", "emotion", "inversion", "asv")]
    subs += [("fl", s) for s in ("models", "pull", "rollback", "dict-sync", "audit", "simulate", "report")]
    for group, sub in subs:
        with pytest.raises(SystemExit) as done:
            main([group, sub, "--help"])
        assert done.value.code == 0 and f"fedtts {group} {sub}" in capsys.readouterr().out


def test_voices_lists_stock(capsys):
    code, out, _ = run(capsys, "voices")
    assert code == 0 and "jf_alpha\tstock" in out and "jm_kumo\tstock" in out


@pytest.fixture
def shim_synth(monkeypatch, engine):
    """The CLI's synthesizer, with the test front end when fedtts.frontend has not landed."""
    from fedtts.pipeline import Synthesizer

    fe = make_frontend()
    monkeypatch.setattr(speak, "make_synthesizer", lambda args: Synthesizer(engine=engine, frontend=fe))


@pytest.mark.slow
def test_say_32k_and_stream_stdout(capsysbinary, tmp_path, shim_synth):
    out = tmp_path / "a.flac"
    code = main(["say", "Hello there. 你好。", "--out", str(out), "--sample-rate", "32000"])
    assert code == 0, capsysbinary.readouterr().err
    y, sr = sf.read(out)
    assert sr == 32000 and len(y) > 0.5 * sr
    capsysbinary.readouterr()
    code = main(["say", "Hello there. 你好。", "--out", "-", "--stream", "--sample-rate", "32000"])
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


@pytest.mark.parametrize("exp_name", ["/../../../escape", "../up", "a/b", "x\\y"])
def test_glmtts_inference_refuses_an_exp_name_that_leaves_the_output_root(
    exp_name, tmp_path, repo_root, monkeypatch, capsys
):
    monkeypatch.syspath_prepend(str(repo_root))
    import glmtts_inference

    root = tmp_path / "outputs"
    code = glmtts_inference.main(["--data=example_en", f"--exp_name={exp_name}", f"--output_root={root}"])
    assert code == 2 and "--exp_name" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # nothing written, inside or outside


def test_python_dash_m_reports_plugin_errors_as_input_errors(tmp_path):
    """`python -m fedtts.app.cli` (and `python -m fedtts`): a command group's CliError exits 2 with its message."""
    for head in (["-m", "fedtts.app.cli"], ["-m", "fedtts"]):
        r = subprocess.run(
            [sys.executable, *head, "wyoming", "--uri", "http://example.com"],
            capture_output=True,
            text=True,
            cwd=tmp_path,
        )
        assert r.returncode == 2 and r.stderr.startswith("error: --uri"), r.stderr


# ---------------------------------------------------------------------- issue 18 (hostile inputs)

LONG_EN = " ".join(f"This is sentence number {i} of a rather long text to speak." for i in range(40))


@pytest.mark.slow
def test_say_stream_sigterm_removes_the_part_file(tmp_path):
    """SIGTERM mid-stream unwinds like Ctrl-C: exit 143 and no hidden .NAME.XXXX.part left behind."""
    out = tmp_path / "long.wav"
    cmd = [sys.executable, "-m", "fedtts.app.cli", "say", LONG_EN, "--stream", "--out", str(out)]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=env)
    try:
        deadline = time.monotonic() + 180
        seen = []
        while time.monotonic() < deadline:
            line = proc.stderr.readline()
            if not line:
                break
            seen.append(line)
            if line.startswith("chunk 0:"):
                break
        assert any(x.startswith("chunk 0:") for x in seen), "".join(seen)
        parts = [p.name for p in tmp_path.iterdir()]
        assert len(parts) == 1 and parts[0].startswith(".long.wav.") and parts[0].endswith(".part"), parts
        proc.send_signal(signal.SIGTERM)
        rest = proc.communicate(timeout=60)[1]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    assert proc.returncode == 143, rest
    assert "terminated" in rest and "Traceback" not in rest
    assert list(tmp_path.iterdir()) == []


def test_out_that_is_a_folder_says_so(capsys, tmp_path):
    code, _, err = run(capsys, "say", "hello", "--out", str(tmp_path))
    assert code == 2
    assert_clean_error(err, str(tmp_path), "is a folder", "speech.wav")
    assert "suffix '.'" not in err
    code, _, err = run(capsys, "say", "hello", "--out", str(tmp_path / "noext"))
    assert code == 2
    assert_clean_error(err, "noext", "no file suffix", ".wav")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_long_say_shows_progress_and_quiet_silences_it(capsys, tmp_path, shim_synth):
    text = " ".join(f"Sentence {i} of a text long enough for a bar." for i in range(6))
    assert len(text) >= speak.PROGRESS_MIN_CHARS
    code, _, err = run(capsys, "say", text, "--out", str(tmp_path / "a.wav"))
    assert code == 0, err
    assert "say:" in err and "100%|" in err and "char" in err and "<" in err  # tqdm: bar, rate, ETA
    code, _, err = run(capsys, "say", text, "--out", str(tmp_path / "b.wav"), "--quiet")
    assert code == 0
    assert "%|" not in err and "wrote" not in err
    assert sf.info(str(tmp_path / "b.wav")).duration > 5
    code, _, err = run(capsys, "say", "Short.", "--out", str(tmp_path / "c.wav"))
    assert code == 0 and "%|" not in err and "wrote" in err  # short texts: no bar


@pytest.mark.slow
def test_voice_add_accepts_ref_like_say(capsys, tmp_path, dev_manifest):
    clip = next(r for r in dev_manifest if r["role"] == "prompt" and r["duration_s"] >= 4)["abspath"]
    code, out, err = run(capsys, "voice", "add", "refform", "--ref", clip, "--consent")
    assert code == 0, err
    assert "saved voice 'refform'" in out
    code, _, err = run(capsys, "voice", "add", "refform2", clip, "--ref", str(tmp_path / "other.wav"))
    assert code == 2
    assert_clean_error(err, "either CLIP")
    code, _, err = run(capsys, "voice", "add", "refform3", "--consent")
    assert code == 2
    assert_clean_error(err, "--ref CLIP")
    assert run(capsys, "voice", "rm", "refform")[0] == 0


def test_fl_simulate_zero_clients_is_a_usage_error(capsys, tmp_path, train_manifest):
    # the upper bound is the number of training speakers: the shared data must be there
    out = tmp_path / "sim"
    code, _, err = run(capsys, "fl", "simulate", "--clients", "0", "--out", str(out))
    assert code == 2
    assert_clean_error(err, "--clients", "got 0")
    assert "unexpected" not in err and not out.exists()
    code, _, err = run(capsys, "fl", "simulate", "--clients", "100000", "--out", str(out))
    assert code == 2
    assert_clean_error(err, "--clients must be in [2,")


@pytest.mark.parametrize(
    "argv, says",
    [
        (["--rounds", "0"], "--rounds must be >= 1, got 0"),
        (["--clip", "-1"], "--clip must be > 0, got -1.0"),
        (["--fraction", "1.5"], "--fraction must be in (0, 1], got 1.5"),
        (["--dp", "central", "--noise-multiplier", "0"], "--noise-multiplier must be > 0 with --dp=central"),
    ],
)
def test_fl_simulate_bad_values_name_the_option_typed(argv, says, capsys, tmp_path):
    """FLConfig speaks in run-config keys (num-rounds); the CLI user typed --rounds."""
    out = tmp_path / "sim"
    code, _, err = run(capsys, "fl", "simulate", *argv, "--out", str(out))
    assert code == 2 and not out.exists()
    assert_clean_error(err, says)


def test_fl_report_of_a_wrong_file_names_it(capsys, tmp_path):
    code, _, err = run(capsys, "fl", "report", "/etc/passwd")
    assert code == 2
    assert_clean_error(err, "/etc/passwd", "fl_metrics.json")
    assert "unexpected" not in err
    for name, content in [("list.json", "[1, 2]"), ("norounds.json", '{"rounds": [3]}')]:
        (tmp_path / name).write_text(content)
        code, _, err = run(capsys, "fl", "report", str(tmp_path / name))
        assert code == 2
        assert_clean_error(err, name)
    code, _, err = run(capsys, "fl", "report", str(tmp_path / "missing.json"))
    assert code == 2
    assert_clean_error(err, "missing.json")


def test_fl_pull_without_registry_is_clear_and_creates_nothing(capsys, tmp_path):
    reg = tmp_path / "no_registry"
    code, _, err = run(capsys, "fl", "--registry", str(reg), "pull", str(tmp_path / "v.npz"))
    assert code == 2
    assert_clean_error(err, "no model registry", str(reg), "--registry")
    assert "None" not in err
    assert not reg.exists() and not (tmp_path / "v.npz").exists()
    code, out, err = run(capsys, "fl", "--registry", str(reg), "models")
    assert code == 0 and "no model versions" in out and not reg.exists()
    from fedtts.engine.assets import data_dir

    default = data_dir() / "federated" / "models"
    existed = default.exists()
    code, _, err = run(capsys, "fl", "pull", str(tmp_path / "v.npz"))
    assert code == 2 and "no model registry" in err
    assert default.exists() == existed
