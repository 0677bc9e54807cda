"""Helpers for the serve tests: real `fedtts serve` / `fedtts ui` processes on free loopback ports."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Server:
    proc: subprocess.Popen
    url: str
    log: Path

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def start(kind: str, tmp: Path, *extra: str, env: dict | None = None, ready_path: str = "/") -> Server:
    """`python -m fedtts.app.cli <kind> --port P ...`; waits until ``ready_path`` answers 200."""
    import httpx

    port = free_port()
    tmp.mkdir(parents=True, exist_ok=True)
    log = tmp / f"{kind}-{port}.log"
    e = {**os.environ, "FEDTTS_DATA_DIR": str(tmp / "data"), "PYTHONUNBUFFERED": "1", **(env or {})}
    if "FEDTTS_API_KEY" not in (env or {}):
        e.pop("FEDTTS_API_KEY", None)  # a key in the developer's shell must not leak into tests
    cmd = [sys.executable, "-m", "fedtts.app.cli", kind, "--host", "127.0.0.1", "--port", str(port)]
    cmd += ["--output-dir", str(tmp / "outputs"), *extra]
    fh = open(log, "wb")  # noqa: SIM115 - kept open for the process's lifetime
    proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env=e)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(
                f"{kind} exited with {proc.returncode}:\n{log.read_text(errors='replace')[-3000:]}"
            )
        try:
            if httpx.get(url + ready_path, timeout=2).status_code == 200:
                return Server(proc, url, log)
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    proc.kill()
    raise RuntimeError(f"{kind} did not become ready:\n{log.read_text(errors='replace')[-3000:]}")


def speech_checks(audio: np.ndarray, sr: int, text: str) -> dict:
    """Non-silent, plausible length for the text, and voiced (periodic) like speech."""
    from fedtts.eval.metrics import yin_f0

    audio = np.asarray(audio, np.float32).reshape(-1)
    dur = len(audio) / sr
    rms_db = 20 * np.log10(np.sqrt(np.mean(audio**2)) + 1e-12)
    with np.errstate(invalid="ignore", divide="ignore"):
        voiced = float(np.mean(yin_f0(audio, sr).voiced))
    return {"duration_s": dur, "rms_db": rms_db, "voiced": voiced, "chars": len(text)}


def assert_speech(audio: np.ndarray, sr: int, text: str, lang: str = "en") -> dict:
    c = speech_checks(audio, sr, text)
    # ~12-16 chars/s for read English; allow a wide band, but not silence or a stub
    assert 0.03 * c["chars"] < c["duration_s"] < 0.25 * c["chars"] + 1.0, c
    assert c["rms_db"] > -35, c
    assert c["voiced"] > 0.2, c
    return c


def transcript(audio: np.ndarray, sr: int, lang: str = "en") -> str | None:
    """Whisper transcript when the eval extra is installed (None otherwise)."""
    try:
        from fedtts.eval.asr import transcribe
    except ImportError:
        return None
    return transcribe(np.asarray(audio, np.float32), sr, lang)


def dev_clip(dev_manifest: list[dict], lang: str = "en", min_s: float = 4.0) -> dict:
    return next(
        r for r in dev_manifest if r["lang"] == lang and r["role"] == "prompt" and r["duration_s"] >= min_s
    )
