"""HTTP API (``fedtts serve``): OpenAI-compatible ``/v1/audio/speech`` plus voices, uploads, system.

Everything that decides *what* happens lives in :mod:`fedtts.app.service` (shared with the web UI);
this module only maps HTTP onto it: JSON errors in OpenAI's shape, upload size enforced while the
body is read (a 200 MB upload is refused on its Content-Length, before any of it is read), 503 +
Retry-After from the job gate, Bearer key from ``FEDTTS_API_KEY``, files only from the output folder.
"""

from __future__ import annotations

import base64
import contextlib
import hmac
import json
import logging
import struct
import time
from pathlib import Path
from typing import Any, Literal

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from fedtts.app.errors import ServiceBusy, ServiceError
from fedtts.app.service import OPENAI_VOICE_ALIASES, ServiceConfig, SpeechRequest, TTSService
from fedtts.app.system import federation_status, versions
from fedtts.pipeline.audio_io import encode_audio, to_int16
from fedtts.voice import DEFAULT_VOICE
from fedtts.voice.reference import unreadable_audio

__all__ = ["create_app", "SpeechBody", "BodyLimitMiddleware", "MODEL_IDS", "MEDIA_TYPES"]

log = logging.getLogger(__name__)

MODEL_ID = "fedtts-kokoro-82m"
# OpenAI's model names are accepted too, so existing clients work without changes.
MODEL_IDS = (MODEL_ID, "fedtts", "kokoro", "tts-1", "tts-1-hd", "gpt-4o-mini-tts")
MEDIA_TYPES = {
    "wav": "audio/wav",
    "mp3": "audio/mpeg",
    "flac": "audio/flac",
    "opus": "audio/ogg",
    "pcm": "audio/L16",
}
STREAM_FORMATS = ("wav", "pcm", "mp3")


class SpeechBody(BaseModel):
    """OpenAI's speech request plus fedtts extras (reference/emotion clips, sample rate, seed...)."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(MODEL_ID, description=f"one of {', '.join(MODEL_IDS)}")
    input: str = Field(
        ..., description="text to speak (Mandarin, English or mixed); SSML when it starts with <speak>"
    )
    voice: str = Field(
        DEFAULT_VOICE,
        description="stock voice, saved profile, blend 'jf_alpha:0.7,jm_kumo:0.3', or an OpenAI name "
        f"({', '.join(OPENAI_VOICE_ALIASES)})",
    )
    response_format: str = Field("mp3", description="wav | mp3 | flac | opus | pcm (s16le mono)")
    speed: float = Field(1.0, ge=0.25, le=4.0)
    stream: bool = Field(False, description="chunked audio as each sentence is ready (wav, pcm, mp3)")
    reference_audio: str | None = Field(None, description="voice to clone: upload id (upl_…) or base64 audio")
    reference_text: str | None = Field(None, description="transcript of the reference (optional)")
    emotion_reference: str | None = Field(
        None, description="emotion/style source: upload id, base64 audio, or a voice name"
    )
    emotion_strength: float = Field(1.0, ge=0.0, le=2.0)
    pitch: float = Field(0.0, ge=-6.0, le=6.0, description="pitch shift in semitones")
    expressiveness: float = Field(1.0, ge=0.25, le=3.0, description="F0 range factor")
    sample_rate: Literal[24000, 32000] = 24000
    seed: int | None = Field(None, ge=0, lt=2**32)
    phoneme: bool = Field(False, description="apply the pronunciation dictionary")
    timestamps: bool = Field(
        False,
        description="answer JSON {audio (base64), audio_format, sample_rate, timestamps: [{word, "
        "start_time, end_time}]} (Kokoro-FastAPI's captioned speech; Mandarin words list their characters)",
    )
    save: bool = Field(False, description="also save the result in the server's output folder")
    instructions: str | None = Field(None, description="accepted for OpenAI compatibility; ignored")
    stream_format: str | None = Field(None, description="accepted for OpenAI compatibility; ignored")


# ---------------------------------------------------------------------- errors


def error_body(message: str, status: int, code: str | None = None, param: str | None = None) -> dict:
    kind = "invalid_request_error" if status < 500 else "server_error"
    return {"error": {"message": message, "type": kind, "code": code, "param": param}}


def error_response(
    message: str, status: int, code: str | None = None, param: str | None = None, headers=None
) -> JSONResponse:
    return JSONResponse(error_body(message, status, code, param), status_code=status, headers=headers)


class PayloadTooLarge(StarletteHTTPException):
    def __init__(self, limit: int):
        super().__init__(
            413,
            f"request body too large: the limit is {limit / 1024 / 1024:g} MB",
            headers={"Connection": "close"},
        )


class BodyLimitMiddleware:
    """Refuse bodies over ``max_bytes``: at once from Content-Length, else while reading the stream."""

    def __init__(self, app, max_bytes: int):
        self.app = app
        self.max_bytes = int(max_bytes)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers") or [])
        length = headers.get(b"content-length")
        if length is not None:
            try:
                n = int(length)
            except ValueError:
                return await self._reply(send, 400, "invalid Content-Length header", "bad_request")
            if n > self.max_bytes:
                log.info("refused a %d-byte body (limit %d) before reading it", n, self.max_bytes)
                return await self._reply(
                    send,
                    413,
                    f"request body is {n / 1024 / 1024:.1f} MB: the limit is {self.max_bytes / 1024 / 1024:g} MB",
                    "too_large",
                )
        seen = 0
        started = False

        async def limited_receive():
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise PayloadTooLarge(self.max_bytes)
            return message

        async def tracking_send(message):
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except PayloadTooLarge as e:
            if started:
                raise
            await self._reply(send, 413, str(e.detail), "too_large")

    @staticmethod
    async def _reply(send, status: int, message: str, code: str) -> None:
        body = json.dumps(error_body(message, status, code)).encode()
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


# ---------------------------------------------------------------------- app


def create_app(service: TTSService | ServiceConfig | None = None) -> FastAPI:
    """The FastAPI app around one :class:`TTSService` (``app.state.service``)."""
    svc = service if isinstance(service, TTSService) else TTSService(service)

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI):
        import anyio.to_thread

        # every queued job holds a worker thread while it waits: keep threads for everything else
        limiter = anyio.to_thread.current_default_thread_limiter()
        limiter.total_tokens = max(
            limiter.total_tokens, svc.config.queue_size + svc.config.max_concurrent + 16
        )
        yield
        svc.close()  # removes the private upload folder

    app = FastAPI(
        lifespan=lifespan,
        title="fedtts",
        version=versions().get("fedtts", "0"),
        description="Privacy-first zero-shot voice-cloning TTS (Mandarin + English) on CPU. "
        "`POST /v1/audio/speech` is compatible with OpenAI's API.",
    )
    app.state.service = svc
    app.add_middleware(BodyLimitMiddleware, max_bytes=svc.config.max_upload_bytes)

    @app.exception_handler(ServiceError)
    async def _service_error(_request: Request, e: ServiceError):
        headers = {"Retry-After": str(e.retry_after)} if isinstance(e, ServiceBusy) else None
        return error_response(svc.public_message(str(e)), e.status, e.code, e.param, headers)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, e: RequestValidationError):
        errors = e.errors()
        if any(err.get("type") == "json_invalid" for err in errors):
            msg = next(
                err.get("ctx", {}).get("error", "") for err in errors if err.get("type") == "json_invalid"
            )
            return error_response(f"malformed JSON body: {msg}".rstrip(": "), 400, "malformed_json")
        if any(tuple(err.get("loc", ())) == ("body",) for err in errors):  # the body as a whole is wrong
            try:
                parsed = json.loads(await request.body())
            except ValueError as je:  # e.g. sent without a JSON content type
                return error_response(f"malformed JSON body: {je}", 400, "malformed_json")
            if not isinstance(parsed, dict):
                kind = type(parsed).__name__
                return error_response(f"the body must be a JSON object, got {kind}", 400, "malformed_json")
        parts = []
        for err in errors:
            loc = ".".join(str(x) for x in err.get("loc", ()) if x != "body") or "body"
            parts.append(f"{loc}: {err.get('msg')}")
        first = next((str(err["loc"][-1]) for err in errors if err.get("loc")), None)
        msg = svc.public_message("invalid request: " + "; ".join(parts))
        return error_response(msg, 422, "invalid_request", first)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_request: Request, e: StarletteHTTPException):
        code = {401: "unauthorized", 404: "not_found", 405: "method_not_allowed", 413: "too_large"}
        if e.status_code == 400 and "parsing the body" in str(e.detail):  # FastAPI: e.g. not UTF-8
            return error_response("malformed JSON body: not UTF-8 encoded JSON text", 400, "malformed_json")
        return error_response(str(e.detail), e.status_code, code.get(e.status_code), headers=e.headers)

    @app.exception_handler(Exception)
    async def _unexpected(_request: Request, e: Exception):
        # the details (paths, decoder output) are for the server's log, not for the client
        log.exception("unexpected error")
        return error_response(
            f"internal error ({type(e).__name__}); the details are in the server log", 500, "internal_error"
        )

    @app.get("/healthz", tags=["system"])
    def healthz() -> dict[str, Any]:
        """Liveness plus the queue: no key needed, no work done."""
        return {"status": "ok", **svc.status().to_dict()}

    v1 = APIRouter(prefix="/v1", dependencies=[Depends(_auth(svc))])
    _speech_routes(v1, svc)
    _voice_routes(v1, svc)
    _misc_routes(v1, svc)
    app.include_router(v1)
    return app


def _auth(svc: TTSService):
    async def check(request: Request) -> None:
        key = svc.config.api_key
        if not key:
            return
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), key.encode()):
            raise StarletteHTTPException(
                401,
                "missing or wrong API key: send 'Authorization: Bearer <FEDTTS_API_KEY>'",
                headers={"WWW-Authenticate": "Bearer"},
            )

    return check


# ---------------------------------------------------------------------- speech


def _speech_routes(r: APIRouter, svc: TTSService) -> None:
    @r.post(
        "/audio/speech",
        tags=["speech"],
        response_class=Response,
        responses={200: {"content": {m: {} for m in MEDIA_TYPES.values()}, "description": "audio"}},
    )
    async def speech(body: SpeechBody):
        """Text → audio. With ``stream: true`` the audio is sent chunk by chunk as it is made."""
        fmt = body.response_format.lower().strip()
        if fmt not in MEDIA_TYPES:
            raise ServiceError(
                f"unsupported response_format {body.response_format!r}; use one of {', '.join(MEDIA_TYPES)}",
                400,
                "unsupported_format",
                "response_format",
            )
        if body.stream and body.timestamps:
            raise ServiceError(
                "timestamps need stream=false (the JSON answer carries the whole audio)",
                400,
                "invalid_request",
                "timestamps",
            )
        if body.stream and fmt not in STREAM_FORMATS:
            raise ServiceError(
                f"streaming is available for {', '.join(STREAM_FORMATS)}; '{fmt}' needs stream=false",
                400,
                "unsupported_format",
                "response_format",
            )
        if body.model not in MODEL_IDS:
            raise ServiceError(
                f"unknown model {body.model!r}; use one of {', '.join(MODEL_IDS)}",
                400,
                "unknown_model",
                "model",
            )
        svc.check_text(body.input)
        req = await run_in_threadpool(_to_request, svc, body)
        deadline = time.monotonic() + svc.config.timeout_s
        ticket = svc.gate.enter()  # 503 + Retry-After here, before any work
        try:
            if not body.stream:
                result = await run_in_threadpool(svc.synthesize, req, ticket, deadline)
                audio, sr = result.audio, result.sample_rate
                data, saved = await run_in_threadpool(
                    _encode_and_save, svc, audio, sr, fmt, body.save, body.voice, req.outcome.tags
                )
                headers = _headers(sr, len(audio) / sr, saved) | _mark_headers(req)
                if body.timestamps:
                    return JSONResponse(_captioned(data, fmt, result), headers=headers)
                return Response(data, media_type=MEDIA_TYPES[fmt], headers=headers)
            gen = svc.stream(req, ticket, deadline)
            first = await run_in_threadpool(next, gen)  # bad text/voice → a real 4xx, not a broken stream
        except BaseException:
            ticket.release()
            raise
        return StreamingResponse(
            _stream_body(first, gen, fmt),
            media_type=MEDIA_TYPES[fmt],
            headers={"X-Sample-Rate": str(req.sample_rate), "Cache-Control": "no-store"} | _mark_headers(req),
        )

    @r.post("/audio/detect", tags=["speech"])
    async def detect(request: Request) -> dict[str, Any]:
        """Is this audio PerTh-watermarked (made with a cloned voice)? Multipart ``file`` or
        ``upload_id``; WAV/FLAC/MP3/OGG/M4A. The clip sent is not kept."""
        form = await _form(request)
        try:
            path = await _form_audio(svc, form, "file")
            sent = hasattr(form.get("file"), "read")
        finally:
            await form.close()
        try:
            result = await run_in_threadpool(svc.detect, path)
        finally:
            if sent:
                svc.uploads.discard(path)
        return {"object": "watermark.detection", "watermark": "perth-implicit", **result.to_dict()}


def _mark_headers(req: SpeechRequest) -> dict[str, str]:
    """Say in the response whether the audio carries the watermark (clones do; stock voices not)."""
    if req.outcome is None or not req.outcome.watermarked:
        return {"X-Watermark": "none"}
    marked = "NOT watermarked" not in req.outcome.tags.get("comment", "")
    return {"X-Watermark": "perth" if marked else "none", "X-Synthetic-Voice": "cloned"}


def _to_request(svc: TTSService, body: SpeechBody) -> SpeechRequest:
    """API body → service request; base64 clips are decoded to upload files here (off the loop)."""
    ref = svc.uploads.audio_arg(body.reference_audio, "reference_audio")
    emo_path, emo_voice = None, None
    if body.emotion_reference:
        v = body.emotion_reference
        is_name = len(v) <= 100 and not v.startswith(("upl_", "data:")) and _looks_like_voice(svc, v)
        if is_name:
            emo_voice = v
        else:
            emo_path = svc.uploads.audio_arg(v, "emotion_reference")
    if ref is None:
        svc.check_voice_spec(body.voice)
    return SpeechRequest(
        text=body.input,
        voice=body.voice,
        reference=ref,
        reference_text=body.reference_text,
        emotion_reference=emo_path,
        emotion_voice=emo_voice,
        emotion_strength=body.emotion_strength,
        pitch_st=float(body.pitch),
        expressiveness=float(body.expressiveness),
        sample_rate=int(body.sample_rate),
        speed=float(body.speed),
        seed=body.seed,
        use_phoneme=bool(body.phoneme),
    )


def _captioned(data: bytes, fmt: str, result) -> dict:
    return {
        "audio": base64.b64encode(data).decode("ascii"),
        "audio_format": fmt,
        "sample_rate": result.sample_rate,
        "duration": round(result.duration_s, 3),
        "timestamps": [w.as_dict() for w in result.words],
    }


def _looks_like_voice(svc: TTSService, v: str) -> bool:
    try:
        svc.check_voice_spec(v)
        return True
    except ServiceError:
        return False


def _encode_and_save(
    svc: TTSService, audio, sr: int, fmt: str, save: bool, voice: str, tags: dict[str, str] | None = None
):
    data = encode_audio(audio, sr, fmt, tags=tags)
    saved = None
    if save:
        saved = svc.outputs.path(f"api-{voice}", f".{fmt if fmt != 'pcm' else 'raw'}")
        saved.write_bytes(data)
        svc.outputs.enforce_cap(keep=(saved,))
    return data, saved


def _headers(sr: int, duration_s: float, saved: Path | None) -> dict[str, str]:
    h = {"X-Sample-Rate": str(sr), "X-Audio-Duration": f"{duration_s:.3f}"}
    if saved is not None:
        h["X-Output-File"] = f"/v1/outputs/{saved.name}"
    return h


def wav_stream_header(sr: int) -> bytes:
    """A WAV header for a stream of unknown length (sizes 0xFFFFFFFF, as streaming players expect)."""
    fmt = struct.pack("<HHIIHH", 1, 1, sr, sr * 2, 2, 16)
    return (
        b"RIFF"
        + struct.pack("<I", 0xFFFFFFFF)
        + b"WAVE"
        + b"fmt "
        + struct.pack("<I", 16)
        + fmt
        + b"data"
        + struct.pack("<I", 0xFFFFFFFF)
    )


def _stream_body(first, gen, fmt: str):
    """Sync generator (starlette runs it in a thread): one encoded piece per pipeline chunk."""
    try:
        if fmt == "wav":
            yield wav_stream_header(first.sample_rate)
        chunk = first
        while chunk is not None:
            if fmt in ("wav", "pcm"):
                yield to_int16(chunk.audio).tobytes()
            else:
                yield encode_audio(chunk.audio, chunk.sample_rate, fmt)
            chunk = next(gen, None)
    except ServiceError as e:  # headers are gone: the stream just ends early, the log says why
        log.warning("stream ended early: %s", e)
    finally:
        gen.close()


# ---------------------------------------------------------------------- voices


def _voice_routes(r: APIRouter, svc: TTSService) -> None:
    @r.get("/voices", tags=["voices"])
    def list_voices() -> dict[str, Any]:
        """Stock voices, saved profiles and the OpenAI aliases."""
        names = svc.voice_names()
        data = [{"id": n, "object": "voice", "type": "stock"} for n in names["stock"]]
        data += [
            {"id": p.name, "object": "voice", "type": "profile", **p.to_dict()} for p in svc.profiles.list()
        ]
        return {
            "object": "list",
            "data": data,
            "aliases": OPENAI_VOICE_ALIASES,
            "profiles_available": True,  # kept for clients of the first API version
        }

    @r.post("/voices", tags=["voices"], status_code=201)
    async def create_voice(request: Request) -> dict[str, Any]:
        """Enroll a voice: multipart form ``name``, ``consent=true``, ``consent_name`` (who agreed),
        ``file`` (or ``upload_id``), optional ``ref_text`` and ``keep_clip``."""
        form = await _form(request)
        try:
            name = str(form.get("name") or "").strip()
            if not name:
                raise ServiceError("field 'name' is required", 400, "missing_field", "name")
            consent = str(form.get("consent") or "").strip().lower() in ("1", "true", "yes", "on")
            path = await _form_audio(svc, form, "file")
            ref_text = str(form.get("ref_text") or "").strip() or None
            keep = str(form.get("keep_clip") or "").strip().lower() in ("1", "true", "yes", "on")
            try:
                who = str(form.get("consent_name") or "").strip()
                info = await run_in_threadpool(
                    svc.profiles.enroll, name, path, consent, ref_text, keep, who, "api"
                )
            except ServiceError:
                if hasattr(form.get("file"), "read"):  # sent with this request: not kept when refused
                    svc.uploads.discard(path)
                raise
        finally:
            await form.close()
        return {"id": info.name, "object": "voice", "type": "profile", "meta": info.meta}

    @r.get("/voices/{name}/export", tags=["voices"])
    def export_voice(name: str):
        """The profile as one ``.fedvoice`` file (pack + metadata; the clip only if it was kept)."""
        path = svc.profiles.export(name)
        return FileResponse(path, media_type="application/zip", filename=path.name)

    @r.get("/voices/{name:path}", tags=["voices"])
    def get_voice(name: str) -> dict[str, Any]:
        names = svc.voice_names()
        if name in names["stock"]:
            return {"id": name, "object": "voice", "type": "stock"}
        svc.profiles.check_name(name)
        for p in svc.profiles.list():
            if p.name == name:
                return {"id": name, "object": "voice", "type": "profile", **p.to_dict()}
        raise ServiceError(f"no voice named {name!r}", 404, "not_found", "name")

    @r.delete("/voices/{name:path}", tags=["voices"])
    def delete_voice(name: str) -> dict[str, Any]:
        svc.profiles.delete(name)
        return {"id": name, "object": "voice", "deleted": True}


async def _form(request: Request):
    ctype = request.headers.get("content-type", "")
    if not ctype.startswith(("multipart/form-data", "application/x-www-form-urlencoded")):
        raise ServiceError("send multipart/form-data (fields + file)", 415, "unsupported_media_type")
    try:
        return await request.form(max_files=2, max_fields=20)
    except PayloadTooLarge:
        raise
    except Exception as e:
        raise ServiceError(f"malformed form body: {e}", 400, "malformed_body") from e


async def _form_audio(svc: TTSService, form, field: str) -> Path:
    upload = form.get(field)
    if upload is not None and hasattr(upload, "read"):
        suffix = Path(upload.filename or "").suffix
        data = await upload.read()
        return svc.uploads.path(await run_in_threadpool(svc.uploads.save, data, None, suffix))
    uid = str(form.get("upload_id") or "").strip()
    if uid:
        return svc.uploads.path(uid)
    raise ServiceError(
        f"field '{field}' (an audio file) or 'upload_id' is required", 400, "missing_field", field
    )


# ---------------------------------------------------------------------- misc


def _misc_routes(r: APIRouter, svc: TTSService) -> None:
    @r.get("/models", tags=["system"])
    def models() -> dict[str, Any]:
        created = int(svc.started)
        return {
            "object": "list",
            "data": [
                {"id": m, "object": "model", "created": created, "owned_by": "fedtts"} for m in MODEL_IDS
            ],
        }

    @r.post("/uploads", tags=["speech"], status_code=201)
    async def upload(request: Request) -> dict[str, Any]:
        """Store a clip once and use its id as ``reference_audio``/``emotion_reference``/``upload_id``."""
        form = await _form(request)
        try:
            path = await _form_audio(svc, form, "file")
        finally:
            await form.close()
        if await run_in_threadpool(unreadable_audio, path):  # refused now, not when first used
            svc.uploads.discard(path)
            raise ServiceError(
                "file: not a readable audio file; use WAV, FLAC, MP3, OGG or M4A",
                415,
                "unreadable_audio",
                "file",
            )
        return {"id": path.stem, "object": "upload", "bytes": path.stat().st_size}

    @r.get("/outputs/{name:path}", tags=["system"])
    def output(name: str):
        """A file from the output folder (and nothing else)."""
        path = svc.outputs.file(name)
        return FileResponse(path, filename=path.name)

    @r.get("/system", tags=["system"])
    def system() -> dict[str, Any]:
        return {
            **svc.status().to_dict(),
            "versions": versions(),
            "caches": svc.cache_info().to_dict(),
            "federation": federation_status().to_dict(),
        }

    @r.post("/system/free-memory", tags=["system"])
    def free_memory() -> dict[str, Any]:
        """Unload the model and cached voices (they load again on the next request)."""
        return svc.free_memory()

    @r.post("/system/clear-caches", tags=["system"])
    def clear_caches() -> dict[str, Any]:
        return {"removed": svc.clear_caches()}
