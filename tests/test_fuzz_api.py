"""Property-based fuzzing of the HTTP API's speech request body (issue 18): any JSON value, wrong
types, huge numbers, odd strings → a JSON error with a 4xx, or 200 with audio; never a 500.

The real FastAPI app with the real model, in-process (httpx transport). Texts are capped at a few
characters (``max_chars``) so valid examples synthesise well under a second; examples are bounded.
"""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fedtts.app.server import MODEL_IDS, create_app
from fedtts.app.service import ServiceConfig, TTSService

pytestmark = pytest.mark.slow

MAX_CHARS = 12
FIELDS = [
    "model", "input", "voice", "response_format", "speed", "stream", "reference_audio",
    "reference_text", "emotion_reference", "emotion_strength", "pitch", "expressiveness",
    "sample_rate", "seed", "phoneme", "save", "instructions", "stream_format",
]  # fmt: skip

odd_text = st.one_of(
    st.text(max_size=MAX_CHARS),
    st.sampled_from(
        ["Hi.", "你好。", "../../etc/passwd", "\x1b[31m", "\u202e", "\x00", "[重庆](chóng", "x" * 5000]
    ),
)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([1e308, -1e308, 0.0, 24000, 32000, 16000, 2**32, -1]),
    odd_text,
)
values = st.recursive(
    scalars,
    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=5), c, max_size=3),
    max_leaves=6,
)
good = {
    "model": st.sampled_from(MODEL_IDS),
    "input": st.sampled_from(["Hi.", "你好。", "OK"]),
    "voice": st.sampled_from(["jf_alpha", "alloy", "jf_alpha:0.5,jm_kumo:0.5", "nope", "a/b"]),
    "response_format": st.sampled_from(["wav", "mp3", "flac", "opus", "pcm", "aac", "WAV "]),
    "speed": st.floats(0.1, 5),
    "stream": st.booleans(),
    "sample_rate": st.sampled_from([24000, 32000, 44100]),
    "seed": st.integers(-5, 2**33),
    "pitch": st.floats(-8, 8),
}
field_value = {k: st.one_of(v, values) for k, v in good.items()}
body_dicts = st.fixed_dictionaries(
    {"input": field_value["input"]},
    optional={
        **{k: field_value.get(k, values) for k in FIELDS if k != "input"},
        "colour": values,
    },
)
bodies = st.one_of(body_dicts, body_dicts.map(lambda d: {k: v for k, v in d.items() if k != "input"}), values)


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("fuzz")
    svc = TTSService(ServiceConfig(output_dir=tmp / "out", upload_dir=tmp / "up", max_chars=MAX_CHARS))
    with TestClient(create_app(svc), raise_server_exceptions=False) as client:
        yield client, svc


def _check(r, svc: TTSService) -> None:
    if r.status_code == 200:
        assert r.headers["content-type"].startswith("audio/") and len(r.content) > 44
        return
    assert 400 <= r.status_code < 500, (r.status_code, r.text[:300])
    err = r.json()["error"]
    assert isinstance(err["message"], str) and err["message"]
    assert str(svc.uploads.dir) not in err["message"] and "Traceback" not in err["message"]


def test_valid_bodies_get_audio(api):
    """The property's other half is reachable: small valid bodies do get audio."""
    client, svc = api
    for body in (
        {"input": "Hi.", "response_format": "wav"},
        {"input": "你好。", "stream": True, "voice": "nova"},
    ):
        r = client.post("/v1/audio/speech", json=body)
        assert r.status_code == 200, r.text
        _check(r, svc)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=bodies)
def test_speech_body_never_500(api, body):
    client, svc = api
    r = client.post("/v1/audio/speech", json=body)
    _check(r, svc)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(raw=st.one_of(st.binary(max_size=64), st.text(max_size=64).map(str.encode)))
def test_raw_bytes_body_never_500(api, raw):
    client, svc = api
    r = client.post("/v1/audio/speech", content=raw, headers={"content-type": "application/json"})
    _check(r, svc)
    try:
        parsed = json.loads(raw)
    except ValueError:
        assert r.status_code == 400 and r.json()["error"]["code"] == "malformed_json"
    else:
        if not isinstance(parsed, dict):
            assert r.status_code == 400


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(clip=st.binary(min_size=1, max_size=2048))
def test_reference_bytes_rejected_cleanly_and_not_kept(api, clip):
    import base64

    client, svc = api
    before = set(svc.uploads.dir.iterdir())
    r = client.post(
        "/v1/audio/speech", json={"input": "Hi.", "reference_audio": base64.b64encode(clip).decode()}
    )
    _check(r, svc)
    if r.status_code != 200:
        assert set(svc.uploads.dir.iterdir()) == before  # a rejected clip is deleted at once
