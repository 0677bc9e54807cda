"""HTTP API over real HTTP: a `fedtts serve` subprocess with the real model on a free loopback port."""

from __future__ import annotations

import base64
import io
import json
import socket
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
import soundfile as sf
from _serve_helpers import assert_speech, dev_clip, start, transcript

pytestmark = pytest.mark.slow

TEXT = "The quick brown fox jumps over the lazy dog."


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("serve")
    # queue of 1 so the busy test can fill it with a few requests
    srv = start(
        "serve",
        tmp,
        "--max-concurrent",
        "1",
        "--queue-size",
        "1",
        "--max-chars",
        "600",
        ready_path="/healthz",
    )
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def client(server):
    with httpx.Client(base_url=server.url, timeout=120) as c:
        yield c


def _speech(client, **body):
    return client.post("/v1/audio/speech", json={"input": TEXT, **body})


def _decode(data: bytes, fmt: str, sr: int = 24000) -> tuple[np.ndarray, int]:
    if fmt == "pcm":
        return np.frombuffer(data, "<i2").astype(np.float32) / 32768.0, sr
    return sf.read(io.BytesIO(data), dtype="float32")


def _error(r: httpx.Response, status: int, code: str | None = None) -> dict:
    assert r.status_code == status, (r.status_code, r.text[:500])
    err = r.json()["error"]
    assert err["message"]
    if code:
        assert err["code"] == code, err
    return err


def test_health_models_and_docs(client):
    h = client.get("/healthz").json()
    assert h["status"] == "ok" and h["model_loaded"] is True
    models = client.get("/v1/models").json()
    ids = [m["id"] for m in models["data"]]
    assert "tts-1" in ids and "fedtts-kokoro-82m" in ids
    spec = client.get("/openapi.json").json()
    assert "/v1/audio/speech" in spec["paths"] and "/v1/voices" in spec["paths"]
    assert client.get("/docs").status_code == 200


@pytest.mark.parametrize("fmt", ["wav", "mp3", "flac", "opus", "pcm"])
def test_speech_formats(client, fmt):
    r = _speech(client, response_format=fmt, voice="jf_alpha")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("audio/")
    audio, sr = _decode(r.content, fmt)
    if fmt != "opus":  # opus is decoded at 48 kHz
        assert sr == 24000
    assert_speech(audio, sr, TEXT)


def test_speech_is_what_was_asked(client):
    """32 kHz, OpenAI voice alias, and Whisper hears the sentence."""
    r = _speech(client, response_format="wav", voice="alloy", sample_rate=32000, seed=3)
    assert r.status_code == 200, r.text
    audio, sr = _decode(r.content, "wav")
    assert sr == 32000
    assert_speech(audio, sr, TEXT)
    hyp = transcript(audio, sr, "en")
    if hyp is not None:
        from fedtts.eval.asr import wer

        assert wer(TEXT, hyp) < 0.3, hyp


def test_streaming_wav_arrives_in_chunks(client):
    text = "First sentence here. A second sentence follows. And the third one ends it."
    pieces: list[bytes] = []
    with client.stream(
        "POST", "/v1/audio/speech", json={"input": text, "response_format": "wav", "stream": True}
    ) as r:
        assert r.status_code == 200
        assert r.headers.get("transfer-encoding") == "chunked"
        for piece in r.iter_raw():
            pieces.append(piece)
    assert len(pieces) >= 3  # header + one piece per sentence (at least)
    audio, sr = _decode(b"".join(pieces), "wav")
    assert_speech(audio, sr, text)


def test_openai_client_gets_speech(server):
    from openai import OpenAI

    oa = OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0)
    resp = oa.audio.speech.create(model="tts-1", voice="nova", input=TEXT, response_format="mp3")
    audio, sr = sf.read(io.BytesIO(resp.read()), dtype="float32")
    assert_speech(audio, sr, TEXT)
    with oa.audio.speech.with_streaming_response.create(
        model="tts-1", voice="echo", input=TEXT, response_format="pcm"
    ) as r:
        pcm = b"".join(r.iter_bytes())
    assert_speech(*_decode(pcm, "pcm"), TEXT)


def test_bad_requests_get_clear_4xx(client, server):
    h = {"content-type": "application/json"}
    _error(client.post("/v1/audio/speech", content=b'{"input": "hi",', headers=h), 400, "malformed_json")
    _error(client.post("/v1/audio/speech", content=b"[1, 2]", headers=h), 400, "malformed_json")
    _error(client.post("/v1/audio/speech", content=b"{nope"), 400, "malformed_json")  # no content type
    _error(_speech(client, response_format="aac"), 400, "unsupported_format")
    _error(_speech(client, response_format="flac", stream=True), 400, "unsupported_format")
    err = _error(_speech(client, voice="../../etc/passwd"), 400, "invalid_voice")
    assert err["param"] == "voice"
    _error(_speech(client, voice="no_such_voice"), 400, "unknown_voice")
    _error(_speech(client, model="gpt-9"), 400, "unknown_model")
    err = _error(_speech(client, speed=9, colour="red"), 422)
    assert "speed" in err["message"] and "colour" in err["message"]
    assert "pitch" in _error(_speech(client, pitch=12), 422)["message"]
    _error(client.post("/v1/audio/speech", json={"input": "x" * 601}), 400, "input_too_long")
    _error(client.post("/v1/audio/speech", json={"input": "   "}), 400, "empty_input")
    _error(_speech(client, reference_audio="not base64 !!"), 400, "invalid_audio")
    _error(_speech(client, reference_audio="upl_" + "0" * 32), 404, "unknown_upload")
    # files: only plain names inside the output folder
    _error(client.get("/v1/outputs/..%2F..%2Fetc%2Fpasswd"), 400, "invalid_name")
    _error(client.get("/v1/outputs/nothing-here.wav"), 404, "not_found")
    _error(client.delete("/v1/voices/..%2F..%2Fetc"), 400, "invalid_name")
    assert client.get("/healthz").json()["status"] == "ok"  # still serving


def _read_response(s: socket.socket) -> str:
    """Read one raw HTTP response: the head, then Content-Length bytes of body (or until closed)."""
    data = b""
    while True:
        head, sep, body = data.partition(b"\r\n\r\n")
        if sep:
            length = [ln for ln in head.split(b"\r\n") if ln.lower().startswith(b"content-length:")]
            if length and len(body) >= int(length[0].split(b":")[1]):
                break
        try:
            piece = s.recv(65536)
        except (ConnectionResetError, TimeoutError):
            break
        if not piece:
            break
        data += piece
    return data.decode(errors="replace")


def test_huge_upload_refused_before_reading(server):
    """200 MB announced: 413 comes back at once, the body is never read."""
    host, port = server.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(
            b"POST /v1/voices HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=b\r\n"
            b"Content-Length: 209715200\r\n\r\n"
        )
        t0 = time.monotonic()
        head = _read_response(s)
        assert time.monotonic() - t0 < 5
    assert head.startswith("HTTP/1.1 413"), head[:200]
    assert "too_large" in head
    # chunked body (no length): cut off once it passes the limit
    with socket.create_connection((host, int(port)), timeout=30) as s:
        s.sendall(
            b"POST /v1/uploads HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=bnd\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n"
        )
        part = b'--bnd\r\nContent-Disposition: form-data; name="file"; filename="a.wav"\r\n\r\n'
        s.sendall(b"%x\r\n%s\r\n" % (len(part), part))
        block = b"\0" * (1 << 20)
        try:
            for _ in range(40):  # 40 MB > 20 MB limit
                s.sendall(b"%x\r\n%s\r\n" % (len(block), block))
        except OSError:
            pass  # the server may close while we are still sending
        head = _read_response(s)
    assert head.startswith("HTTP/1.1 413"), head[:200]


def test_busy_server_answers_503_with_retry_after(server):
    """1 running + 1 queued: further requests are refused at once, the admitted ones succeed."""
    text = " ".join(["This sentence keeps the only worker busy for a little while."] * 4)
    results: list[httpx.Response] = []
    lock = threading.Lock()

    def one():
        r = httpx.post(
            server.url + "/v1/audio/speech", json={"input": text, "response_format": "pcm"}, timeout=120
        )
        with lock:
            results.append(r)

    threads = [threading.Thread(target=one) for _ in range(5)]
    for t in threads:
        t.start()
        time.sleep(0.05)
    for t in threads:
        t.join()
    codes = sorted(r.status_code for r in results)
    assert codes.count(200) >= 2 and codes.count(503) >= 1, codes
    assert set(codes) <= {200, 503}, codes
    busy = next(r for r in results if r.status_code == 503)
    assert int(busy.headers["retry-after"]) >= 1
    assert busy.json()["error"]["code"] == "server_busy"


def test_clone_from_reference_base64_and_upload_id(client, dev_manifest):
    row = dev_clip(dev_manifest)
    clip = Path(row["abspath"]).read_bytes()
    r = _speech(client, response_format="wav", reference_audio=base64.b64encode(clip).decode())
    assert r.status_code == 200, r.text
    a1, sr = _decode(r.content, "wav")
    assert_speech(a1, sr, TEXT)
    # a clone is watermarked and says so; the detect endpoint finds the mark, not in the real clip
    assert r.headers["x-watermark"] == "perth" and r.headers["x-synthetic-voice"] == "cloned"
    with sf.SoundFile(io.BytesIO(r.content)) as f:
        assert "synthetic speech" in f.copy_metadata()["comment"]
    d = client.post("/v1/audio/detect", files={"file": ("out.wav", r.content, "audio/wav")})
    assert d.status_code == 200, d.text
    assert d.json()["marked"] is True and d.json()["frame_share"] > 0.5
    d = client.post("/v1/audio/detect", files={"file": ("ref.flac", clip, "audio/flac")})
    assert d.status_code == 200 and d.json()["marked"] is False
    bad = client.post("/v1/audio/detect", files={"file": ("x.wav", b"not audio" * 50, "audio/wav")})
    _error(bad, 400, "unreadable_audio")
    _error(client.post("/v1/audio/detect", data={"x": "1"}), 400, "missing_field")
    assert _speech(client, response_format="wav").headers["x-watermark"] == "none"  # stock voice
    # an upload that is not audio is refused at once (not when first used) and not kept
    _error(
        client.post("/v1/uploads", files={"file": ("x.wav", b"not audio" * 50, "audio/wav")}),
        415,
        "unreadable_audio",
    )
    up = client.post("/v1/uploads", files={"file": ("ref.flac", clip, "audio/flac")})
    assert up.status_code == 201, up.text
    uid = up.json()["id"]
    r2 = _speech(
        client,
        response_format="wav",
        reference_audio=uid,
        emotion_reference="jf_nezumi",
        emotion_strength=0.5,
    )
    assert r2.status_code == 200, r2.text
    a2, _ = _decode(r2.content, "wav")
    assert_speech(a2, sr, TEXT)
    assert not np.array_equal(a1, a2)  # the emotion transfer changed the voice
    # emotion from a clip (its measured prosody) plus the pitch knob
    r3 = _speech(client, response_format="wav", reference_audio=uid, emotion_reference=uid, pitch=-3)
    assert r3.status_code == 200, r3.text
    a3, _ = _decode(r3.content, "wav")
    assert_speech(a3, sr, TEXT)
    assert not np.array_equal(a1, a3)
    not_audio = base64.b64encode(b"this is not audio at all" * 10).decode()
    _error(_speech(client, reference_audio=not_audio), 400, "bad_reference")


def test_voices_enroll_use_export_delete(client, dev_manifest, tmp_path):
    row = dev_clip(dev_manifest, "en")
    clip = Path(row["abspath"]).read_bytes()
    files = {"file": ("clip.flac", clip, "audio/flac")}
    _error(client.post("/v1/voices", data={"name": "alice"}, files=files), 400, "consent_required")
    _error(
        client.post("/v1/voices", data={"name": "../evil", "consent": "true"}, files=files),
        400,
        "invalid_name",
    )
    _error(  # who agreed is part of the consent record: required
        client.post("/v1/voices", data={"name": "alice", "consent": "true"}, files=files),
        400,
        "consent_required",
    )
    form = {"name": "alice", "consent": "true", "consent_name": "Alice Liddell"}
    r = client.post("/v1/voices", data=form, files=files)
    assert r.status_code == 201, r.text
    assert r.json()["meta"]["consent"] is True
    rec = r.json()["meta"]["consent_record"]
    assert rec["name"] == "Alice Liddell" and rec["via"] == "api" and len(rec["clip_sha256"]) == 64
    _error(client.post("/v1/voices", data=form, files=files), 409, "exists")
    listed = {v["id"]: v for v in client.get("/v1/voices").json()["data"]}
    assert listed["alice"]["type"] == "profile" and listed["jf_alpha"]["type"] == "stock"
    r = _speech(client, voice="alice:0.6,jm_kumo:0.4", response_format="wav", save=True)
    assert r.status_code == 200, r.text
    saved = r.headers["x-output-file"]
    again = client.get(saved)
    assert again.status_code == 200 and again.content == r.content
    ex = client.get("/v1/voices/alice/export")
    assert ex.status_code == 200 and ex.content[:2] == b"PK"
    names = __import__("zipfile").ZipFile(io.BytesIO(ex.content)).namelist()
    assert sorted(names) == ["meta.json", "pack.npy"]  # the clip is not in it unless kept
    assert client.delete("/v1/voices/alice").json()["deleted"] is True
    _error(client.delete("/v1/voices/alice"), 404, "not_found")
    _error(client.delete("/v1/voices/jf_alpha"), 400, "stock_voice")


def test_system_endpoints(client):
    # By now this server has served stock, streamed, cloned, profile and blended speech; add word
    # timestamps and an SSML dialogue in two voices: all of it through one onnxruntime session.
    r = _speech(client, timestamps=True)
    assert r.status_code == 200 and r.json()["timestamps"], r.text[:300]
    dialogue = '<speak><voice name="jm_kumo">Hello there.</voice> <voice name="jf_alpha">Hi!</voice></speak>'
    assert (
        client.post("/v1/audio/speech", json={"input": dialogue, "response_format": "wav"}).status_code == 200
    )
    info = client.get("/v1/system").json()
    assert info["model_sessions"] == 1, info
    assert "model" in info["versions"] and "queue" in info
    assert isinstance(info["federation"]["available"], bool)
    freed = client.post("/v1/system/free-memory").json()
    assert freed["after_mb"] > 0
    assert client.get("/healthz").json()["model_loaded"] is False
    r = _speech(client, response_format="wav")  # reloads on demand
    assert r.status_code == 200
    assert client.get("/healthz").json()["model_loaded"] is True
    assert client.get("/v1/system").json()["model_sessions"] == 2  # the unloaded one is not kept


def test_api_key_required_when_set(tmp_path):
    srv = start("serve", tmp_path, "--no-warmup", env={"FEDTTS_API_KEY": "s3cret"}, ready_path="/healthz")
    try:
        r = httpx.get(srv.url + "/v1/models")
        assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
        assert json.loads(r.text)["error"]["code"] == "unauthorized"
        assert httpx.get(srv.url + "/v1/models", headers={"Authorization": "Bearer wrong"}).status_code == 401
        ok = httpx.get(srv.url + "/v1/models", headers={"Authorization": "Bearer s3cret"})
        assert ok.status_code == 200
    finally:
        srv.stop()
