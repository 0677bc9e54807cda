"""CLI on hostile text (issue 18): invalid overrides/dictionaries exit 2 naming the syllable and the
file:line, `--dict` alone applies the dictionary (with a warning), dropped text is warned about on
stderr, unsupported-only text names the script and the languages fedtts speaks."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import soundfile as sf

from fedtts.app.cli import main


def _dict(tmp_path, entries: dict[str, str]):
    p = tmp_path / "d.jsonl"
    lines = [json.dumps({"grapheme": g, "phoneme": ph}, ensure_ascii=False) for g, ph in entries.items()]
    p.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return p


def test_phonemize_invalid_override_exit_2(capsys):
    assert main(["phonemize", "我要去[重庆](xyzq9 blah)"]) == 2
    captured = capsys.readouterr()
    assert "'xyzq9' is not a pinyin syllable" in captured.err and "at character 4" in captured.err
    assert "kyzq9" not in captured.out  # nothing sent on as phonemes


def test_phonemize_bad_dictionary_exit_2(tmp_path, capsys):
    p = _dict(tmp_path, {"银行": "zz9 qq"})
    assert main(["phonemize", "银行", "--phoneme", "--dict", str(p)]) == 2
    err = capsys.readouterr().err
    assert f"--dict: {p}:1: field 'phoneme'" in err and "'zz9'" in err


def test_dict_without_phoneme_is_applied_with_warning(tmp_path, capsys, caplog):
    p = _dict(tmp_path, {"银行": "yin2 xing2"})
    assert main(["phonemize", "银行", "--detail", "--dict", str(p)]) == 0
    assert "yin2 xing2" in capsys.readouterr().out  # the stock reading is yin2 hang2
    assert "--dict without --phoneme" in caplog.text  # in-process, warnings go to pytest's log capture


def test_phonemize_warns_about_dropped_text_on_stderr():
    """A real process: the warnings reach the user's terminal."""
    r = subprocess.run(
        [sys.executable, "-m", "fedtts.app.cli", "phonemize", "你好 مرحبا \x1b[31mhello <speak>ok</speak>"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    assert "Arabic" in r.stderr and "escape sequence" in r.stderr and "SSML is not supported" in r.stderr
    assert "ɹəbɪk" not in r.stdout and "θˈɜɹTi" not in r.stdout and r.stdout.strip()


@pytest.mark.parametrize(("text", "script"), [("مرحبا بالعالم", "Arabic"), ("こんにちは", "Japanese")])
def test_say_unsupported_only_exit_2(tmp_path, capsys, text, script):
    out = tmp_path / "o.wav"
    assert main(["say", text, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert script in err and "Mandarin Chinese and English" in err and "unsupported symbols" not in err
    assert not out.exists()


@pytest.mark.slow
def test_say_with_dict_only_and_mixed_script(tmp_path, capsys, caplog):
    p = _dict(tmp_path, {"银行": "yin2 xing2"})
    out = tmp_path / "o.wav"
    assert main(["say", "银行 مرحبا", "--dict", str(p), "--out", str(out)]) == 0
    assert "--dict without --phoneme" in caplog.text and "Arabic" in caplog.text
    assert sf.info(out).duration > 0.3
    bad = _dict(tmp_path, {"AI": "ˈeɪ ★"})
    assert main(["say", "AI", "--dict", str(bad), "--out", str(tmp_path / "b.wav")]) == 2
    assert "'★'" in capsys.readouterr().err and not (tmp_path / "b.wav").exists()


@pytest.mark.slow
def test_invalid_override_in_a_later_paragraph_refuses_the_text(tmp_path, capsys):
    """The synthesizer skips paragraphs with nothing speakable; an invalid override is not skipped."""
    out = tmp_path / "o.wav"
    assert main(["say", "第一段。\n\n我要去[重庆](xyzq9 blah)", "--out", str(out)]) == 2
    assert "'xyzq9' is not a pinyin syllable" in capsys.readouterr().err and not out.exists()
