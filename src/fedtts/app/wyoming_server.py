"""Wyoming protocol server (Home Assistant's local voice protocol) on fedtts's shared service.

One :class:`~fedtts.app.service.TTSService` serves every connection, as in ``fedtts serve``: the same
voices (stock packs and saved profiles), the same job gate and the same limits. Per connection,
events are read on one task and answered in order by another, so a client that disconnects is
noticed at once (its synthesis stops after the chunk in progress and its job slot is freed) even
while audio is being sent. Synthesis runs on a thread per request and its chunks are sent as
``audio-chunk`` events as they are made: a plain ``synthesize`` gets one
``audio-start``/``audio-chunk``*/``audio-stop`` cycle; a ``synthesize-start``/``-chunk``*/``-stop``
stream is spoken sentence by sentence while the text still arrives, as one cycle, then
``synthesize-stopped``.

A request the server refuses (unknown voice, text over ``max_chars``, an event over
``max_event_bytes``, a malformed event) gets an ``error`` event and then the connection is closed,
as wyoming-piper does: Home Assistant waits for ``audio-stop``/``synthesize-stopped`` or a closed
connection, never for ``error``. Unknown event types get an ``error`` event and are otherwise
ignored. The server itself keeps serving in every case.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from typing import Any
from urllib.parse import urlparse

from sentence_stream import SentenceBoundaryDetector
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.error import Error
from wyoming.event import Event
from wyoming.info import Attribution, Describe, Info, SelectProgram, TtsProgram, TtsVoice
from wyoming.ping import Ping, Pong
from wyoming.server import AsyncEventHandler, AsyncServer, AsyncStdioServer
from wyoming.tts import Synthesize, SynthesizeChunk, SynthesizeStart, SynthesizeStop, SynthesizeStopped

import fedtts
from fedtts.app.errors import ServiceError
from fedtts.app.service import ServiceConfig, SpeechRequest, TTSService
from fedtts.pipeline import SynthesisOptions
from fedtts.pipeline.audio_io import to_int16
from fedtts.voice import DEFAULT_VOICE

__all__ = [
    "LANGUAGES",
    "PROGRAM",
    "WyomingConfig",
    "WyomingTTS",
    "FedttsEventHandler",
    "EventReader",
    "serve",
]

log = logging.getLogger(__name__)

PROGRAM = "fedtts"
LANGUAGES = ("zh", "en")  # every voice speaks both: the front end reads mixed Mandarin/English text
SAMPLE_WIDTH = 2  # s16le
CHANNELS = 1
KOKORO = Attribution(name="fedtts on Kokoro-82M (Apache-2.0)", url="https://github.com/hexgrad/kokoro")


@dataclass
class WyomingConfig:
    """Settings of ``fedtts wyoming``; the synthesis limits are handed to the shared TTSService."""

    uri: str = "tcp://127.0.0.1:10200"
    voice: str = DEFAULT_VOICE  # used when a request names no voice
    sample_rate: int = 24000
    speed: float = 1.0
    use_phoneme: bool = False  # apply the pronunciation dictionary
    max_chars: int = 4096  # per synthesize request, and per synthesize-start…stop stream in total
    max_event_bytes: int = 8 * 1024 * 1024  # one event (header + data + payload) larger than this is refused
    samples_per_chunk: int = 1024  # audio samples per audio-chunk event (wyoming-piper's default)
    write_timeout_s: float = 30.0  # a client that stops reading for this long is dropped (frees the job slot)
    max_concurrent: int = 1
    queue_size: int = 16
    timeout_s: float = 300.0
    threads: int = 2
    dict_path: str | None = None
    warmup: bool = True

    def validate(self) -> WyomingConfig:
        uri = urlparse(self.uri)
        if uri.scheme not in ("tcp", "unix", "stdio"):
            raise ValueError(f"--uri {self.uri!r}: use tcp://HOST:PORT, unix://PATH or stdio://")
        if uri.scheme == "tcp":
            try:
                port = uri.port
            except ValueError as e:
                raise ValueError(f"--uri {self.uri!r}: {e}") from e
            if not uri.hostname or port is None:
                raise ValueError(f"--uri {self.uri!r}: give a host and a port, e.g. tcp://127.0.0.1:10200")
        if uri.scheme == "unix" and not uri.path:
            raise ValueError(f"--uri {self.uri!r}: give a socket path, e.g. unix:///run/fedtts.sock")
        if int(self.sample_rate) not in (24000, 32000):
            raise ValueError(f"sample rate must be 24000 or 32000, got {self.sample_rate}")
        if not 0.25 <= float(self.speed) <= 4.0:
            raise ValueError(f"speed must be in [0.25, 4], got {self.speed}")
        for name, lo in (("max_chars", 1), ("samples_per_chunk", 64), ("max_event_bytes", 65536)):
            if int(getattr(self, name)) < lo:
                raise ValueError(f"{name} must be at least {lo}, got {getattr(self, name)}")
        if not float(self.write_timeout_s) > 0:
            raise ValueError(f"write_timeout_s must be > 0, got {self.write_timeout_s}")
        return self

    def service_config(self) -> ServiceConfig:
        """The TTSService settings: same gate and limits as ``fedtts serve``; it writes no files."""
        return ServiceConfig(
            max_chars=self.max_chars,
            max_concurrent=self.max_concurrent,
            queue_size=self.queue_size,
            timeout_s=self.timeout_s,
            threads=self.threads,
            dict_path=self.dict_path,
            max_output_bytes=None,  # nothing is written: the output folder is never pruned from here
            max_output_age_s=None,
        ).validate()


# ---------------------------------------------------------------------- reading events


class ProtocolError(ValueError):
    """Bytes that are not a Wyoming event: the connection cannot be trusted to stay in step."""

    code = "bad_event"


class EventTooLarge(ProtocolError):
    code = "event_too_large"


class EventReader:
    """Wyoming events from a stream with every part capped at ``max_bytes`` in total.

    The ``wyoming`` package's reader trusts ``data_length``/``payload_length`` and stops at a 64 KiB
    header line; this one reads a header line of any size up to the cap (data may be inline) and
    refuses an event that declares more, before buffering it.
    """

    def __init__(self, reader: asyncio.StreamReader, max_bytes: int):
        self._reader = reader
        self._buf = bytearray()
        self.max_bytes = int(max_bytes)

    async def _fill(self) -> bool:
        data = await self._reader.read(65536)
        self._buf += data
        return bool(data)

    async def _line(self) -> bytes | None:
        start = 0
        while True:
            end = self._buf.find(b"\n", start)
            if end >= 0:
                line = bytes(self._buf[:end])
                del self._buf[: end + 1]
                return line
            if len(self._buf) > self.max_bytes:
                raise EventTooLarge(
                    f"event header is over this server's limit of {self.max_bytes} bytes without a newline"
                )
            start = len(self._buf)
            if not await self._fill():
                if self._buf.strip():
                    raise ProtocolError("connection closed in the middle of an event")
                return None

    async def _exactly(self, n: int) -> bytes:
        while len(self._buf) < n:
            if not await self._fill():
                raise ProtocolError("connection closed in the middle of an event")
        out = bytes(self._buf[:n])
        del self._buf[:n]
        return out

    async def read(self) -> Event | None:
        """The next event, or None at the end of the stream."""
        line = b""
        while not line.strip():
            got = await self._line()
            if got is None:
                return None
            line = got
        try:
            header = json.loads(line)
        except ValueError as e:
            raise ProtocolError(f"not a Wyoming event: the header line is not JSON ({e})") from e
        if not isinstance(header, dict) or not isinstance(header.get("type"), str):
            raise ProtocolError("not a Wyoming event: the header has no string 'type'")
        data = header.get("data") or {}
        sizes = [header.get("data_length") or 0, header.get("payload_length") or 0]
        if not isinstance(data, dict) or not all(isinstance(n, int) and n >= 0 for n in sizes):
            raise ProtocolError(f"malformed {header['type']!r} event: bad data or lengths")
        total = len(line) + sum(sizes)
        if total > self.max_bytes:
            raise EventTooLarge(
                f"{header['type']!r} event is {total} bytes, over this server's limit of {self.max_bytes}"
            )
        if sizes[0]:
            try:
                extra = json.loads(await self._exactly(sizes[0]))
            except ValueError as e:
                raise ProtocolError(f"malformed {header['type']!r} event: data is not JSON ({e})") from e
            if not isinstance(extra, dict):
                raise ProtocolError(f"malformed {header['type']!r} event: data is not an object")
            data.update(extra)
        payload = await self._exactly(sizes[1]) if sizes[1] else None
        return Event(type=header["type"], data=data, payload=payload)


# ---------------------------------------------------------------------- synthesis


_END = object()


class _Failed:
    def __init__(self, exc: BaseException):
        self.exc = exc


class ChunkPump:
    """One blocking chunk iterator on its own thread, handed to the event loop at most ``depth`` ahead.

    The loop never blocks on synthesis; ``cancel()`` (client gone) stops the thread after the chunk
    in progress, and closing the iterator there releases its job slot.
    """

    def __init__(self, make_iter: Callable[[], Iterator], depth: int = 2):
        self._loop = asyncio.get_running_loop()
        self._queue: asyncio.Queue = asyncio.Queue()
        self._slots = threading.Semaphore(max(1, int(depth)))
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, args=(make_iter,), name="fedtts-wyoming-synth", daemon=True
        )
        self._thread.start()

    def _post(self, item: object) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is closed: the server is shutting down
            self._loop.call_soon_threadsafe(self._queue.put_nowait, item)

    def _run(self, make_iter: Callable[[], Iterator]) -> None:
        it = None
        try:
            it = make_iter()
            for item in it:
                while not self._slots.acquire(timeout=0.1):
                    if self._stop.is_set():
                        return
                if self._stop.is_set():
                    return
                self._post(item)
            self._post(_END)
        except BaseException as e:  # noqa: BLE001 - every failure belongs to the consumer
            self._post(_Failed(e))
        finally:
            close = getattr(it, "close", None)
            if close is not None:
                close()

    async def get(self) -> Any | None:
        """The next item, None at the end; the iterator's exception is raised here."""
        item = await self._queue.get()
        if item is _END:
            return None
        if isinstance(item, _Failed):
            raise item.exc
        self._slots.release()
        return item

    def cancel(self) -> None:
        self._stop.set()


class WyomingTTS:
    """What every connection shares: the config, the TTSService (model, voices, gate) and the info."""

    def __init__(self, config: WyomingConfig, service: TTSService | None = None):
        self.config = config.validate()
        self.service = service or TTSService(config.service_config())

    def close(self) -> None:
        self.service.close()

    def warm_up(self) -> None:
        """Model plus both front ends (Mandarin and English) loaded: the first request is not slow."""
        self.service.warm_up()
        voice = self.service.resolve_voice(self.config.voice)
        for _ in self.service.synthesizer.stream("OK, 好的。", voice, SynthesisOptions()):
            pass

    def info(self) -> Info:
        """Rebuilt per ``describe``: a profile saved while the server runs is listed at once."""
        names = self.service.voice_names()
        voices = [
            TtsVoice(
                name=name,
                description=f"{name} ({kind})",
                attribution=KOKORO,
                installed=True,
                version=None,
                languages=list(LANGUAGES),
            )
            for kind, group in (("stock voice", names["stock"]), ("saved voice", names["saved"]))
            for name in group
        ]
        return Info(
            tts=[
                TtsProgram(
                    name=PROGRAM,
                    description="fedtts: Mandarin + English voice-cloning TTS on CPU (Kokoro-82M)",
                    attribution=KOKORO,
                    installed=True,
                    version=fedtts.__version__,
                    voices=voices,
                    supports_synthesize_streaming=True,
                )
            ]
        )

    def voice_spec(self, voice: Any) -> str:
        """A SynthesizeVoice → the voice spec to use: its name, else the default voice for a language
        fedtts speaks; unknown voices and languages raise ServiceError (checked before any audio)."""
        name = getattr(voice, "name", None)
        language = getattr(voice, "language", None)
        if not name and language:
            base = str(language).replace("_", "-").split("-")[0].lower()
            if base not in LANGUAGES:
                raise ServiceError(
                    f"language {language!r} is not supported: fedtts speaks {', '.join(LANGUAGES)}",
                    400,
                    "unsupported_language",
                )
        spec = name or self.config.voice
        self.service.resolve_voice(spec)  # ServiceError("unknown voice …") now, not after audio-start
        return spec

    def check_text(self, text: object, so_far: int = 0) -> str:
        if not isinstance(text, str):
            raise ServiceError("'text' must be a string", 400, "bad_text")
        if so_far + len(text) > self.config.max_chars:
            what = "stream's text" if so_far else "text"
            raise ServiceError(
                f"the {what} is {so_far + len(text)} characters, over this server's limit of "
                f"{self.config.max_chars} (fedtts wyoming --max-chars); split it into shorter requests",
                400,
                "text_too_long",
            )
        return text

    def pump(self, text: str, spec: str) -> ChunkPump:
        req = SpeechRequest(
            text=text,
            voice=spec,
            sample_rate=self.config.sample_rate,
            speed=self.config.speed,
            use_phoneme=self.config.use_phoneme,
        )
        return ChunkPump(lambda: self.service.stream(req))


# ---------------------------------------------------------------------- connections


@dataclass
class _Speak:
    """One request: its voice and its texts (a plain synthesize has one; a stream, its sentences)."""

    voice: Any
    streaming: bool
    texts: asyncio.Queue = field(default_factory=asyncio.Queue)  # str…, then None
    chars: int = 0
    sentences: SentenceBoundaryDetector = field(default_factory=SentenceBoundaryDetector)


@dataclass
class _Fatal:
    message: str
    code: str


class FedttsEventHandler(AsyncEventHandler):
    """One client connection: a reader task (this ``run``) and a worker task answering in order."""

    def __init__(self, tts: WyomingTTS, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        super().__init__(reader, writer)
        self.tts = tts
        self.events = EventReader(reader, tts.config.max_event_bytes)
        self._actions: asyncio.Queue = asyncio.Queue()
        self._stream: _Speak | None = None
        self._worker: asyncio.Task | None = None
        self._pump: ChunkPump | None = None

    async def run(self) -> None:
        """Read events until the client leaves or a fatal error; then stop any synthesis at once."""
        self._is_running = True
        self._worker = asyncio.create_task(self._work(), name="fedtts wyoming worker")
        fatal = False
        try:
            while self._is_running:
                try:
                    event = await self.events.read()
                except ProtocolError as e:
                    self._actions.put_nowait(_Fatal(str(e), e.code))
                    fatal = True
                    break
                except (ConnectionError, OSError):
                    break
                if event is None:
                    break
                if not await self.handle_event(event):
                    fatal = True
                    break
            if fatal:  # the error is queued behind earlier answers: let the worker send it, then close
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(asyncio.shield(self._worker), self.tts.config.timeout_s)
        finally:
            self._is_running = False
            if self._pump is not None:
                self._pump.cancel()
            if self._worker is not None and not self._worker.done():
                self._worker.cancel()
                with contextlib.suppress(BaseException):
                    await self._worker
            await self.disconnect()
            self.writer.close()

    async def handle_event(self, event: Event) -> bool:
        """Queue the answer to ``event`` (the worker answers in order); False ends the connection."""
        try:
            return self._dispatch(event)
        except ServiceError as e:
            self._actions.put_nowait(_Fatal(str(e), e.code))
            return False
        except (KeyError, TypeError, ValueError) as e:
            self._actions.put_nowait(_Fatal(f"malformed {event.type!r} event: {e}", "bad_event"))
            return False

    def _dispatch(self, event: Event) -> bool:
        kind = event.type
        if Describe.is_type(kind):
            self._actions.put_nowait(self.tts.info().event())
        elif Ping.is_type(kind):
            self._actions.put_nowait(Pong(text=Ping.from_event(event).text).event())
        elif Synthesize.is_type(kind):
            if self._stream is not None:  # sent inside a stream for older servers: the chunks count
                return True
            syn = Synthesize.from_event(event)
            text = self.tts.check_text(syn.text)
            speak = _Speak(voice=syn.voice, streaming=False)
            speak.texts.put_nowait(text)
            speak.texts.put_nowait(None)
            self._actions.put_nowait(speak)
        elif SynthesizeStart.is_type(kind):
            if self._stream is not None:
                raise ServiceError(
                    "synthesize-start inside a stream: send synthesize-stop first", 400, "bad_order"
                )
            self._stream = _Speak(voice=SynthesizeStart.from_event(event).voice, streaming=True)
            self._actions.put_nowait(self._stream)
        elif SynthesizeChunk.is_type(kind):
            s = self._stream
            if s is None:
                raise ServiceError(
                    "synthesize-chunk outside a stream: send synthesize-start first", 400, "bad_order"
                )
            text = self.tts.check_text(SynthesizeChunk.from_event(event).text, s.chars)
            s.chars += len(text)
            for sentence in s.sentences.add_chunk(text):
                s.texts.put_nowait(sentence)
        elif SynthesizeStop.is_type(kind):
            s, self._stream = self._stream, None
            if s is None:
                raise ServiceError(
                    "synthesize-stop outside a stream: send synthesize-start first", 400, "bad_order"
                )
            rest = s.sentences.finish()
            if rest:
                s.texts.put_nowait(rest)
            s.texts.put_nowait(None)
        elif SelectProgram.is_type(kind):
            name = SelectProgram.from_event(event).name
            if name != PROGRAM:
                log.info("select-program %r: this server has only %r", name, PROGRAM)
        else:
            log.info("unknown event %r ignored", kind)
            self._actions.put_nowait(
                Error(
                    text=f"unknown event type {kind[:64]!r}: ignored (this is a TTS server: describe, "
                    "synthesize, synthesize-start/-chunk/-stop)",
                    code="unknown_event",
                ).event()
            )
        return True

    async def _write(self, event: Event) -> None:
        await asyncio.wait_for(self.write_event(event), self.tts.config.write_timeout_s)

    async def _work(self) -> None:
        """Answer the queued actions in order; a refused request ends with an error and a close."""
        try:
            while True:
                action = await self._actions.get()
                if isinstance(action, Event):
                    await self._write(action)
                    continue
                if isinstance(action, _Fatal):
                    await self._fail(action.message, action.code)
                    return
                try:
                    await self._speak(action)
                except ServiceError as e:
                    await self._fail(self.tts.service.public_message(str(e)), e.code)
                    return
                except Exception as e:  # noqa: BLE001 - the client gets a message, the server goes on
                    if isinstance(e, (ConnectionError, asyncio.TimeoutError)):
                        raise
                    log.exception("synthesis failed")
                    await self._fail(f"synthesis failed: {type(e).__name__}: {e}", "synthesis_failed")
                    return
        except (ConnectionError, asyncio.TimeoutError) as e:
            log.info("client gone: %s", e or type(e).__name__)
        finally:
            await self.stop()

    async def _fail(self, message: str, code: str) -> None:
        log.info("error event to client: [%s] %s", code, message)
        with contextlib.suppress(ConnectionError, asyncio.TimeoutError):
            await self._write(Error(text=message, code=code).event())

    @staticmethod
    async def _next_chunk(pump: ChunkPump, speak: _Speak, text: str) -> Any | None:
        """The pump's next chunk; in a stream, a sentence with nothing speakable (only symbols or
        emoji from a chat model) is skipped with a log line instead of ending the whole answer."""
        try:
            return await pump.get()
        except ServiceError as e:
            if not speak.streaming or e.code not in ("invalid_input", "empty_input"):
                raise
            log.info("stream sentence skipped (%s): %r", e, text[:60])
            return None

    async def _speak(self, speak: _Speak) -> None:
        cfg = self.tts.config
        spec = await asyncio.to_thread(self.tts.voice_spec, speak.voice)
        rate, n = int(cfg.sample_rate), int(cfg.samples_per_chunk)
        fmt = {"rate": rate, "width": SAMPLE_WIDTH, "channels": CHANNELS}
        started, sent = False, 0
        while (text := await speak.texts.get()) is not None:
            self._pump = pump = self.tts.pump(text, spec)
            try:
                while (chunk := await self._next_chunk(pump, speak, text)) is not None:
                    if not started:
                        await self._write(AudioStart(**fmt, timestamp=0).event())
                        started = True
                    pcm = to_int16(chunk.audio).tobytes()
                    step = n * SAMPLE_WIDTH * CHANNELS
                    for i in range(0, len(pcm), step):
                        stamp = sent * 1000 // rate
                        await self._write(AudioChunk(audio=pcm[i : i + step], **fmt, timestamp=stamp).event())
                        sent += len(pcm[i : i + step]) // (SAMPLE_WIDTH * CHANNELS)
            finally:
                pump.cancel()
                self._pump = None
        if not started:  # a stream that carried no text: an empty but well-formed answer
            await self._write(AudioStart(**fmt, timestamp=0).event())
        await self._write(AudioStop(timestamp=sent * 1000 // rate).event())
        if speak.streaming:
            await self._write(SynthesizeStopped().event())


# ---------------------------------------------------------------------- server


def _bound_uri(server: AsyncServer, uri: str) -> str:
    """The URI actually listened on (tcp://…:0 picks a free port)."""
    inner = getattr(server, "_server", None)
    sockets = getattr(inner, "sockets", None) or []
    if uri.startswith("tcp://") and sockets:
        host, port = sockets[0].getsockname()[:2]
        return f"tcp://{host}:{port}"
    return uri


async def _serve(tts: WyomingTTS) -> int:
    cfg = tts.config
    if cfg.warmup:
        await asyncio.to_thread(tts.warm_up)
    server = AsyncServer.from_uri(cfg.uri)
    factory = partial(FedttsEventHandler, tts)
    if isinstance(server, AsyncStdioServer):
        await server.run(factory)
        return 0
    await server.start(factory)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    names = tts.service.voice_names()
    print(
        f"fedtts Wyoming server on {_bound_uri(server, cfg.uri)} ({len(names['stock'])} stock + "
        f"{len(names['saved'])} saved voices, default {cfg.voice}, {cfg.sample_rate} Hz, streaming)",
        file=sys.stderr,
        flush=True,
    )
    try:
        await stop.wait()
    finally:
        await server.stop()
    print("fedtts Wyoming server stopped", file=sys.stderr, flush=True)
    return 0


def serve(config: WyomingConfig) -> int:
    """Run the server until SIGINT/SIGTERM; the default voice is checked before listening."""
    tts = WyomingTTS(config)
    try:
        tts.service.resolve_voice(tts.config.voice)
        return asyncio.run(_serve(tts))
    finally:
        tts.close()
