"""Issue 18.14: the UI/API output folder has a size/age cap, and `fedtts outputs clean` empties it by hand.

Real files on disk, the real service writing real audio, the real CLI in a subprocess.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from fedtts.app.outputs import MB, check_output_root, is_service_output, parse_duration, prune_outputs
from fedtts.app.service import ServiceConfig, TTSService

DAY = 86400.0


def _file(path: Path, size: int, age_s: float = 0.0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\0" * size)
    t = time.time() - age_s
    os.utime(path, (t, t))
    return path


def _name(i: int, suffix: str = ".wav") -> str:
    return f"20260101-0000{i:02d}_speech_{i:06x}{suffix}"


def test_durations_and_names():
    assert parse_duration("7d") == 7 * DAY and parse_duration("12h") == 12 * 3600
    assert parse_duration("30m") == 1800 and parse_duration("90s") == 90 and parse_duration("2") == 2 * DAY
    for bad in ("", "7 days", "-1d", "d", "1y"):
        with pytest.raises(ValueError, match="duration"):
            parse_duration(bad)
    assert is_service_output("20261202-201500_api-jf_alpha_0a1b2c.mp3")
    assert is_service_output("20261202-201500_batch_0a1b2c")
    assert not is_service_output("demo_zh.wav") and not is_service_output("notes.txt")


def test_prune_by_age_and_size_never_outside_nor_user_files(tmp_path):
    root = tmp_path / "outputs"
    outside = _file(tmp_path / "precious" / "keep.wav", 1000, age_s=400 * DAY)
    old = _file(root / _name(1), 1000, age_s=10 * DAY)
    job = _file(root / _name(2, "") / "results" / "a.wav", 1000, age_s=9 * DAY)
    mid = _file(root / _name(3), 1000, age_s=2 * DAY)
    new = _file(root / _name(4), 1000)
    user = _file(root / "demo_zh.wav", 1000, age_s=100 * DAY)
    (root / _name(5, ".lnk")).symlink_to(outside)  # a link named like an output: never followed
    (root / _name(6, "")).symlink_to(outside.parent, target_is_directory=True)

    dry = prune_outputs(root, max_age_s=7 * DAY, dry_run=True)
    assert sorted(dry.removed) == sorted([old, job]) and old.exists()
    rep = prune_outputs(root, max_age_s=7 * DAY)
    assert sorted(rep.removed) == sorted([old, job]) and rep.removed_bytes == 2000
    assert not old.exists() and not job.exists() and not job.parent.parent.exists()  # emptied job folder
    assert mid.exists() and new.exists() and user.exists() and outside.exists()
    # size: the oldest go first until the rest fit; the kept path survives even when oldest
    rep = prune_outputs(root, max_bytes=1000, keep=(mid,))
    assert rep.removed == [new] and mid.exists()
    rep = prune_outputs(root, max_bytes=1000)
    assert rep.removed == [] and rep.kept_bytes == 1000
    assert outside.exists() and user.exists() and (root / _name(5, ".lnk")).is_symlink()


def test_output_root_guard(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for bad in ("/", str(Path.home()), str(tmp_path), "."):
        with pytest.raises(ValueError, match="refusing"):
            check_output_root(Path(bad))
    (tmp_path / "outputs").mkdir()
    assert check_output_root(Path("outputs")) == (tmp_path / "outputs").resolve()


def test_service_keeps_its_folder_under_the_cap(tmp_path):
    root = tmp_path / "out"
    user = _file(root / "mine.txt", 50_000, age_s=100 * DAY)
    stale = _file(root / _name(1), 10, age_s=3 * DAY)
    cfg = ServiceConfig(
        output_dir=root, upload_dir=tmp_path / "up", max_output_bytes=150_000, max_output_age_s=DAY
    )
    svc = TTSService(cfg)
    try:
        assert not stale.exists()  # the age cap applies at start
        audio = np.zeros(24000, np.float32)  # 1 s of 16-bit WAV: 48 kB
        paths = []
        for i in range(4):
            paths.append(svc.outputs.save_audio(audio, 24000, f"s{i}"))
            time.sleep(0.01)  # distinct mtimes: "oldest first" is well defined
        assert user.exists()  # not the service's: neither removed nor counted
        assert [p.exists() for p in paths] == [False, True, True, True]  # 3 x 48 kB fit in 150 kB
        info = svc.cache_info().to_dict()["outputs"]
        assert info["max_bytes"] == 150_000 and info["max_age_s"] == DAY and info["files"] == 4
    finally:
        svc.close()


def test_system_tab_shows_the_folder_size_and_cap(tmp_path):
    pytest.importorskip("gradio")
    from fedtts.app.web import _cap_text

    svc = TTSService(ServiceConfig(output_dir=tmp_path / "o", upload_dir=tmp_path / "u", max_output_bytes=MB))
    try:
        svc.outputs.save_audio(np.zeros(2400, np.float32), 24000, "x")
        o = svc.cache_info().outputs
        assert o.files == 1 and o.bytes > 4000
        assert _cap_text(o) == "cap 1.0 MB, oldest removed first"
        assert "outputs clean" in _cap_text(dataclasses.replace(o, max_bytes=None, max_age_s=None))
    finally:
        svc.close()


def _cli(*argv: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "fedtts.app.cli", *argv], capture_output=True, text=True, cwd=cwd, timeout=60
    )


def test_outputs_clean_cli(tmp_path):
    root = tmp_path / "outputs"
    old = _file(root / _name(1), 2000, age_s=10 * DAY)
    new = _file(root / _name(2), 2000, age_s=3600)
    user = _file(root / "notes.txt", 10, age_s=50 * DAY)
    r = _cli("outputs", "info", cwd=tmp_path)
    assert r.returncode == 0 and "3 files" in r.stdout, r.stderr
    r = _cli("outputs", "clean", "--older-than", "7d", "--dry-run", cwd=tmp_path)
    assert r.returncode == 0 and "would remove 1 file" in r.stdout and old.exists()
    r = _cli("outputs", "clean", "--older-than", "7d", cwd=tmp_path)
    assert r.returncode == 0 and "removed 1 file" in r.stdout
    assert not old.exists() and new.exists() and user.exists()
    r = _cli("outputs", "clean", "--older-than", "a week", cwd=tmp_path)
    assert r.returncode == 2 and "--older-than" in r.stderr and "Traceback" not in r.stderr
    r = _cli("outputs", "clean", cwd=tmp_path)  # no age: every result the UI/API wrote
    assert r.returncode == 0 and not new.exists() and user.exists()
    r = _cli("outputs", "clean", "--all", "--dir", str(tmp_path), cwd=tmp_path)
    assert r.returncode == 2 and "refusing" in r.stderr and user.exists()
    r = _cli("outputs", "clean", "--all", cwd=tmp_path)
    assert r.returncode == 0 and not user.exists() and root.is_dir()
    r = _cli("outputs", "clean", "--dir", str(user), cwd=tmp_path)
    assert r.returncode == 0  # a missing folder: nothing to clean


def test_outputs_clean_bad_age_refused_even_without_a_folder(tmp_path):
    r = _cli("outputs", "clean", "--older-than", "a week", "--dir", str(tmp_path / "none"), cwd=tmp_path)
    assert r.returncode == 2 and "--older-than" in r.stderr and "Traceback" not in r.stderr
