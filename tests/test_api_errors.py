"""Issue 18.11: API errors name the problem, not the server's files; rejected clips are deleted at once.

The real FastAPI app (the one `fedtts serve` runs) over httpx's in-process transport: real routing,
validation, upload handling and reference decoding; no model is needed for these refusals.
"""

from __future__ import annotations

import base64
import io

import numpy as np
import pytest
import soundfile as sf
from fastapi.testclient import TestClient

from fedtts.app.server import create_app
from fedtts.app.service import ServiceConfig, TTSService

LEAKS = ("soundfile", "ffmpeg", "Error opening", "Invalid data", "upl_", "fedtts-uploads", "/tmp")


@pytest.fixture
def api(tmp_path):
    svc = TTSService(ServiceConfig(output_dir=tmp_path / "out", upload_dir=tmp_path / "uploads"))
    with TestClient(create_app(svc)) as client:
        yield client, svc


def _assert_clean(r, status: int, param: str, svc: TTSService) -> str:
    assert r.status_code == status, r.text
    err = r.json()["error"]
    msg = err["message"]
    assert err["param"] == param, err
    for leak in (*LEAKS, str(svc.uploads.dir)):
        assert leak not in msg, msg
    return msg


def _silent_wav() -> bytes:
    buf = io.BytesIO()
    sf.write(buf, np.zeros(24000 * 4, np.float32), 24000, format="WAV")
    return buf.getvalue()


def test_bad_inline_reference_is_named_and_not_kept(api):
    client, svc = api
    garbage = base64.b64encode(b"RIFF\x00\x00garbage" * 50).decode()
    r = client.post("/v1/audio/speech", json={"input": "hi", "reference_audio": garbage})
    msg = _assert_clean(r, 400, "reference_audio", svc)
    assert msg.startswith("reference_audio: not a readable audio file") and "WAV" in msg
    silent = base64.b64encode(_silent_wav()).decode()
    r = client.post("/v1/audio/speech", json={"input": "hi", "reference_audio": silent})
    assert "silent" in _assert_clean(r, 400, "reference_audio", svc)
    r = client.post("/v1/audio/speech", json={"input": "hi", "emotion_reference": garbage})
    assert "emotion_reference" in _assert_clean(r, 400, "emotion_reference", svc)
    assert list(svc.uploads.dir.iterdir()) == []  # rejected clips are gone at once


def test_rejected_upload_id_and_enrollment_are_deleted(api):
    client, svc = api
    r = client.post("/v1/uploads", files={"file": ("clip.wav", b"not audio at all" * 20, "audio/wav")})
    _assert_clean(r, 415, "file", svc)  # not audio: refused at upload, nothing kept
    assert list(svc.uploads.dir.iterdir()) == []
    r = client.post("/v1/uploads", files={"file": ("clip.wav", _silent_wav(), "audio/wav")})
    assert r.status_code == 201, r.text  # audio, but unusable as a reference: refused on use, then deleted
    uid = r.json()["id"]
    assert len(list(svc.uploads.dir.iterdir())) == 1
    r = client.post("/v1/audio/speech", json={"input": "hi", "reference_audio": uid})
    _assert_clean(r, 400, "reference_audio", svc)
    assert list(svc.uploads.dir.iterdir()) == []
    r = client.post("/v1/audio/speech", json={"input": "hi", "reference_audio": uid})
    assert r.status_code == 404 and r.json()["error"]["code"] == "unknown_upload"
    form = {"name": "anna", "consent": "true", "consent_name": "Anna"}
    r = client.post("/v1/voices", data=form, files={"file": ("a.wav", b"\x00\x01" * 400, "audio/wav")})
    _assert_clean(r, 400, "reference_audio", svc)
    r = client.post(
        "/v1/voices", data={"name": "anna"}, files={"file": ("a.wav", _silent_wav(), "audio/wav")}
    )
    assert r.status_code == 400 and r.json()["error"]["code"] == "consent_required"
    assert list(svc.uploads.dir.iterdir()) == []


def test_public_message_strips_server_paths(api):
    _, svc = api
    msg = svc.public_message(
        f"{svc.uploads.dir}/upl_x.wav: bad; {svc.config.output_dir.resolve()}/a.wav; /srv/secret/k.pem"
    )
    assert str(svc.uploads.dir) not in msg and "/srv/secret" not in msg and "<upload>" in msg
    assert svc.public_message("invalid voice '../../etc/passwd'") == "invalid voice '../../etc/passwd'"
