"""The shared service layer without the model: job gate, file-name safety, ZIP/JSONL handling."""

from __future__ import annotations

import base64
import json
import os
import stat
import threading
import time
import zipfile
from pathlib import Path

import pytest

from fedtts.app.errors import ServiceBusy, ServiceError, ServiceTimeout
from fedtts.app.jobs import JobGate, _relink_prompts, _safe_extract
from fedtts.app.outputs import safe_child
from fedtts.app.service import ServiceConfig, TTSService
from fedtts.app.system import federation_status


@pytest.fixture
def svc(tmp_path):
    s = TTSService(
        ServiceConfig(output_dir=tmp_path / "out", max_upload_bytes=4096, upload_dir=tmp_path / "up")
    )
    yield s
    s.close()


def test_gate_admits_limit_plus_queue_then_refuses():
    gate = JobGate(max_concurrent=1, queue_size=1)
    running = gate.enter()
    running.wait(1)
    queued = gate.enter()  # waits its turn
    with pytest.raises(ServiceBusy) as e:
        gate.enter()
    assert e.value.status == 503 and e.value.retry_after >= 1
    assert gate.status()["rejected"] == 1
    # the queued job times out while the slot is held, and frees its queue place
    with pytest.raises(ServiceTimeout):
        queued.wait(0.05)
    queued.release()
    again = gate.enter()
    got = []
    t = threading.Thread(target=lambda: (again.wait(5), got.append(time.monotonic())))
    t.start()
    time.sleep(0.1)
    assert not got  # still waiting for the running job
    released = time.monotonic()
    running.release()
    t.join(5)
    assert got and got[0] >= released
    again.release()
    st = gate.status()
    assert st["running"] == 0 and st["waiting"] == 0 and st["completed"] == 2


def test_release_is_idempotent():
    gate = JobGate(1, 0)
    t = gate.enter()
    t.wait(1)
    t.release()
    t.release()
    assert gate.status()["running"] == 0
    gate.enter().release()  # never started: frees its waiting place
    assert gate.status()["waiting"] == 0


@pytest.mark.parametrize(
    "name", ["../x.wav", "..", "/etc/passwd", "a/b.wav", ".hidden", "a\\b", "", "x\x00.wav"]
)
def test_safe_child_refuses_anything_but_plain_names(tmp_path, name):
    with pytest.raises(ServiceError) as e:
        safe_child(tmp_path, name)
    assert e.value.status == 400


def test_output_file_only_from_the_output_folder(svc, tmp_path):
    (tmp_path / "secret.wav").write_bytes(b"x")
    link = svc.outputs.dir / "link.wav"
    link.symlink_to(tmp_path / "secret.wav")
    with pytest.raises(ServiceError) as e:
        svc.outputs.file("link.wav")
    assert e.value.status in (400, 404)
    p = svc.outputs.path("speech")
    p.write_bytes(b"RIFF")
    assert svc.outputs.file(p.name) == p


@pytest.mark.parametrize("spec", ["jf_alpha", "alloy", "jf_alpha:0.7,jm_kumo:0.3", "my.voice-1", "张三"])
def test_voice_specs_accepted(svc, spec):
    assert svc.check_voice_spec(spec)


@pytest.mark.parametrize("spec", ["../../etc/passwd", "a/b", "a\\b", "..", "x:y", "", "a,,b"])
def test_voice_specs_refused(svc, spec):
    with pytest.raises(ServiceError) as e:
        svc.check_voice_spec(spec)
    assert e.value.code == "invalid_voice"


def test_audio_argument_base64_upload_and_limits(svc):
    data = b"RIFF" + b"\0" * 100
    p = svc.uploads.audio_arg(base64.b64encode(data).decode(), "reference_audio")
    assert p.read_bytes() == data and p.parent == svc.uploads.dir
    p2 = svc.uploads.audio_arg("data:audio/wav;base64," + base64.b64encode(data).decode(), "x")
    assert p2.read_bytes() == data
    uid = svc.uploads.save(data, suffix=".wav")
    assert svc.uploads.audio_arg(uid, "x").read_bytes() == data
    with pytest.raises(ServiceError, match="base64"):
        svc.uploads.audio_arg("%%%not base64", "reference_audio")
    with pytest.raises(ServiceError) as e:
        svc.uploads.audio_arg(base64.b64encode(b"x" * 5000).decode(), "reference_audio")
    assert e.value.status == 413
    with pytest.raises(ServiceError) as e:
        svc.uploads.path("upl_" + "f" * 32)
    assert e.value.status == 404


def _zip(path: Path, entries: dict[str, bytes], link: str | None = None) -> Path:
    with zipfile.ZipFile(path, "w") as z:
        for name, data in entries.items():
            z.writestr(name, data)
        if link:
            info = zipfile.ZipInfo(link)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            z.writestr(info, "/etc/passwd")
    return path


@pytest.mark.parametrize("bad", ["../evil.txt", "/abs.txt", "a/../../evil.txt"])
def test_zip_with_unsafe_paths_is_refused(tmp_path, bad):
    z = _zip(tmp_path / "b.zip", {"tasks.jsonl": b"{}", bad: b"x"})
    with pytest.raises(ServiceError, match="unsafe"):
        _safe_extract(z, tmp_path / "dest", 1 << 20)
    assert not (tmp_path / "evil.txt").exists()


def test_zip_symlink_and_bomb_refused(tmp_path):
    with pytest.raises(ServiceError, match="unsafe"):
        _safe_extract(_zip(tmp_path / "l.zip", {"a.txt": b"x"}, link="link"), tmp_path / "d1", 1 << 20)
    with pytest.raises(ServiceError) as e:
        _safe_extract(_zip(tmp_path / "big.zip", {"a.bin": b"\0" * 50_000}), tmp_path / "d2", 10_000)
    assert e.value.status == 413


def test_prepare_batch_relinks_clips_and_never_reads_outside(svc, tmp_path):
    lines = [
        {"uttid": "a", "prompt_speech": "prompts/clip.flac", "syn_text": "hi"},
        {"uttid": "b", "prompt_speech": "/etc/passwd", "syn_text": "hi"},
        {"input_text": "hi", "prompt_audio": "../../clip.flac", "output_name": "c"},
    ]
    tasks = tmp_path / "t.jsonl"
    tasks.write_text("\n".join(json.dumps(x) for x in lines) + "\n{broken\n")
    clip = tmp_path / "clip.flac"
    clip.write_bytes(b"fLaC")
    found, job = svc.jobs.prepare([tasks, clip])
    assert job.parent == svc.outputs.dir
    rows = found.read_text().splitlines()
    assert json.loads(rows[0])["prompt_speech"] == "clip.flac"
    assert json.loads(rows[1])["prompt_speech"] == "missing-upload/passwd"
    assert json.loads(rows[2])["prompt_audio"] == "clip.flac"  # pointed at the upload, not outside
    assert rows[3] == "{broken"  # left for run_batch to report with its line number
    with pytest.raises(ServiceError, match="exactly one"):
        svc.jobs.prepare([clip])


def test_relink_keeps_existing_relative_paths(tmp_path):
    (tmp_path / "p").mkdir()
    (tmp_path / "p" / "x.wav").write_bytes(b"RIFF")
    t = tmp_path / "t.jsonl"
    t.write_text(json.dumps({"uttid": "a", "prompt_speech": "p/x.wav", "syn_text": "hi"}) + "\n")
    before = t.read_text()
    _relink_prompts(t, tmp_path)
    assert t.read_text() == before


def test_prepare_batch_from_a_zip(svc, tmp_path):
    lines = [{"uttid": "a", "prompt_speech": "prompts/clip.flac", "syn_text": "hi"}]
    z = _zip(
        tmp_path / "job.zip",
        {
            "job/tasks.jsonl": "\n".join(json.dumps(x) for x in lines).encode(),
            "job/prompts/clip.flac": b"fLaC",
        },
    )
    tasks, job = svc.jobs.prepare([z])
    assert tasks.name == "tasks.jsonl" and (tasks.parent / "prompts" / "clip.flac").is_file()
    assert json.loads(tasks.read_text())["prompt_speech"] == "prompts/clip.flac"  # already right: untouched
    assert tasks.resolve().is_relative_to(job.resolve())


def test_federation_status_from_the_version_registry(svc, tmp_path, monkeypatch):
    import numpy as np

    pytest.importorskip("fedtts.federated.versions")
    from fedtts.federated.versions import VersionRegistry

    monkeypatch.setenv("FEDTTS_FL_REGISTRY", str(tmp_path / "reg"))
    assert federation_status().to_dict()["available"] is False  # nothing trained yet: said so, not faked
    reg = VersionRegistry(tmp_path / "reg")
    reg.save([np.zeros(3)], metrics={"loss": 0.9}, epsilon=0.5, delta=1e-4)
    reg.save([np.ones(3)], metrics={"loss": 0.7}, epsilon=0.8, delta=1e-4)
    st = federation_status().to_dict()
    assert st["available"] and st["current"] == 2 and st["epsilon"] == pytest.approx(0.8)
    assert [h["loss"] for h in st["history"]] == [0.9, 0.7]
    pytest.importorskip("gradio")
    pytest.importorskip("matplotlib")
    from fedtts.app.web import _fed_plot

    fig = _fed_plot(st["history"])
    assert fig.axes and fig.axes[0].lines


@pytest.mark.parametrize(
    "argv, message",
    [
        (["serve", "--port", "70000"], "--port"),
        (["serve", "--max-chars", "0"], "max_chars"),
        (["ui", "--max-concurrent", "0"], "max_concurrent"),
        (["serve", "--timeout", "0"], "timeout"),
    ],
)
def test_cli_refuses_bad_options_before_starting(argv, message, capsys, tmp_path):
    from fedtts.app.cli import main

    assert main([*argv, "--output-dir", str(tmp_path / "o")]) == 2
    assert message in capsys.readouterr().err


def test_cli_help_lists_serve_and_ui():
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "fedtts.app.cli", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and " serve " in out.stdout and " ui " in out.stdout
    out = subprocess.run(
        [sys.executable, "-m", "fedtts.app.cli", "serve", "--help"], capture_output=True, text=True
    )
    assert "--max-upload-mb" in out.stdout and "127.0.0.1" in out.stdout


def test_gate_serves_waiting_jobs_in_arrival_order():
    gate = JobGate(max_concurrent=1, queue_size=8)
    first = gate.enter()
    first.wait(1)
    order: list[int] = []
    tickets = [gate.enter() for _ in range(5)]

    def run(i: int) -> None:
        tickets[i].wait(10)
        order.append(i)
        time.sleep(0.01)
        tickets[i].release()

    threads = [threading.Thread(target=run, args=(i,)) for i in reversed(range(5))]  # start in reverse
    for t in threads:
        t.start()
    time.sleep(0.1)
    first.release()
    for t in threads:
        t.join(10)
    assert order == [0, 1, 2, 3, 4]


def test_serve_beyond_loopback_needs_a_key_or_no_auth(capsys, tmp_path, monkeypatch):
    """Issue 18.12: 0.0.0.0 without FEDTTS_API_KEY is refused (exit 2) before the model loads."""
    from fedtts.app.cli import main

    monkeypatch.delenv("FEDTTS_API_KEY", raising=False)
    for host in ("0.0.0.0", "::", "192.0.2.7"):
        assert main(["serve", "--host", host, "--output-dir", str(tmp_path / "o")]) == 2
        err = capsys.readouterr().err
        assert f"--host {host}" in err and "FEDTTS_API_KEY" in err and "--no-auth" in err


@pytest.mark.slow
def test_serve_no_auth_starts_on_all_interfaces(tmp_path):
    import subprocess
    import sys

    import httpx
    from _serve_helpers import free_port

    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "FEDTTS_API_KEY"}
    cmd = [sys.executable, "-m", "fedtts.app.cli", "serve", "--host", "0.0.0.0", "--port", str(port)]
    cmd += ["--output-dir", str(tmp_path / "o"), "--no-warmup", "--no-auth"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
    try:
        deadline = time.monotonic() + 60
        ok = False
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                ok = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200
            except httpx.HTTPError:
                pass
            if ok:
                break
            time.sleep(0.3)
        assert ok, proc.stderr.read() if proc.poll() is not None else "not ready"
    finally:
        proc.terminate()
        err = proc.communicate(timeout=20)[1]
    assert "without an API key (--no-auth)" in err


def test_ui_messages_name_the_users_file_not_the_servers_folders(svc, tmp_path):
    """The System tab's "Check a file" and every UI error: no server path reaches the browser."""
    pytest.importorskip("gradio")
    from fedtts.app.web import _check_text, _err

    fake = tmp_path / "gradio" / "4678111de42463d2" / "note.wav"
    fake.parent.mkdir(parents=True)
    fake.write_text("this is not audio\n" * 20)
    msg = _check_text(svc, str(fake))
    assert msg.startswith("**cannot check**") and "note.wav" in msg
    assert str(tmp_path) not in msg and "4678111de42463d2" not in msg
    shown = str(_err(ServiceError(f"{svc.uploads.dir}/abc.wav: cannot decode", 400), svc))
    assert str(svc.uploads.dir) not in shown and "cannot decode" in shown
