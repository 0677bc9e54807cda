"""`fedtts wyoming`: a real server process on a free loopback port, driven by the real `wyoming` client.

One server serves the whole module (the model loads once); each test opens its own connections, the
way Home Assistant does, and the bad-input tests check that the same server goes on serving.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
from _serve_helpers import assert_speech
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.client import AsyncTcpClient
from wyoming.error import Error
from wyoming.event import Event
from wyoming.info import Describe, Info
from wyoming.ping import Ping
from wyoming.tts import (
    Synthesize,
    SynthesizeChunk,
    SynthesizeStart,
    SynthesizeStop,
    SynthesizeStopped,
    SynthesizeVoice,
)

pytestmark = pytest.mark.slow

PROFILE = "anna_wy"  # a saved profile made before the server starts: info must list it
READ_TIMEOUT = 60.0


class WyServer:
    def __init__(self, proc: subprocess.Popen, port: int, lines: list[str]):
        self.proc, self.port, self.lines = proc, port, lines

    def client(self) -> AsyncTcpClient:
        return AsyncTcpClient("127.0.0.1", self.port, connect_timeout=10, read_timeout=READ_TIMEOUT)

    def log(self) -> str:
        return "".join(self.lines)[-3000:]


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> WyServer:
    from fedtts.voice import blend, stock_voice
    from fedtts.voice.store import ProfileStore

    data = tmp_path_factory.mktemp("wyoming-data")
    voice = blend([(stock_voice("jf_alpha"), 0.5), (stock_voice("jf_nezumi"), 0.5)], name=PROFILE)
    ProfileStore(data / "voices").add(PROFILE, voice, consent=True)
    env = {**os.environ, "FEDTTS_DATA_DIR": str(data), "PYTHONUNBUFFERED": "1"}
    cmd = [
        sys.executable,
        "-m",
        "fedtts.app.cli",
        "wyoming",
        "--uri",
        "tcp://127.0.0.1:0",
        "--max-chars",
        "2000",
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
    lines: list[str] = []
    ready = threading.Event()

    def pump() -> None:  # keep reading stderr so the server never blocks on a full pipe
        for line in proc.stderr:
            lines.append(line)
            if "Wyoming server on" in line:
                ready.set()

    threading.Thread(target=pump, daemon=True).start()
    deadline = time.monotonic() + 180
    while not ready.wait(0.2):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"fedtts wyoming did not start (rc {proc.poll()}):\n{''.join(lines)[-3000:]}")
    port = int(re.search(r"tcp://127\.0\.0\.1:(\d+)", "".join(lines)).group(1))
    srv = WyServer(proc, port, lines)
    yield srv
    proc.send_signal(signal.SIGTERM)
    try:
        assert proc.wait(20) == 0, srv.log()
    finally:
        if proc.poll() is None:
            proc.kill()


def run(coro):
    return asyncio.run(coro)


async def read_until(client: AsyncTcpClient, *types: str) -> list[Event]:
    """Events up to and including the first of ``types`` (or an error, or the end of the connection)."""
    events = []
    while True:
        ev = await client.read_event()
        if ev is None:
            return events
        events.append(ev)
        if ev.type in types or Error.is_type(ev.type):
            return events


def decode(events: list[Event]) -> tuple[np.ndarray, AudioStart]:
    """One audio cycle: its format (checked on every chunk) and its samples as float."""
    starts = [AudioStart.from_event(e) for e in events if AudioStart.is_type(e.type)]
    assert len(starts) == 1, [e.type for e in events]
    start = starts[0]
    chunks = [AudioChunk.from_event(e) for e in events if AudioChunk.is_type(e.type)]
    assert chunks, [e.type for e in events]
    for c in chunks:
        assert (c.rate, c.width, c.channels) == (start.rate, start.width, start.channels)
    stamps = [c.timestamp for c in chunks]
    assert stamps == sorted(stamps) and stamps[0] == 0
    pcm = b"".join(c.audio for c in chunks)
    return np.frombuffer(pcm, "<i2").astype(np.float32) / 32768.0, start


async def describe(server: WyServer) -> Info:
    async with server.client() as c:
        await c.write_event(Describe().event())
        (ev,) = await read_until(c, "info")
        return Info.from_event(ev)


def test_describe_lists_stock_and_saved_voices(server):
    info = run(describe(server))
    (prog,) = info.tts
    assert prog.name == "fedtts" and prog.installed and prog.supports_synthesize_streaming
    names = {v.name: v for v in prog.voices}
    assert {"jf_alpha", "jm_kumo", PROFILE} <= set(names), sorted(names)
    assert all(v.languages == ["zh", "en"] and v.installed for v in prog.voices)
    assert "saved" in names[PROFILE].description and "stock" in names["jf_alpha"].description


def test_synthesize_returns_real_speech(server):
    text = "Hello from the kitchen speaker. 今天下午三点开会。"

    async def go():
        async with server.client() as c:
            await c.write_event(Synthesize(text, voice=SynthesizeVoice(name="jm_kumo")).event())
            return await read_until(c, "audio-stop")

    events = run(go())
    assert [e.type for e in events][-1] == "audio-stop", [e.type for e in events]
    audio, start = decode(events)
    assert (start.rate, start.width, start.channels) == (24000, 2, 1)
    c = assert_speech(audio, start.rate, text)
    assert 2.0 < c["duration_s"] < 12.0, c
    assert AudioStop.from_event(events[-1]).timestamp == int(len(audio) * 1000 // 24000)


def test_streaming_speaks_before_the_text_ends(server):
    """synthesize-start/-chunk: the first sentence is heard while the rest of the text is still coming."""
    first = "The lights in the living room are now off."
    rest = ["我已经", "把温度", "调到二十二度。", " See you", " tomorrow."]

    async def go():
        async with server.client() as c:
            await c.write_event(SynthesizeStart(voice=SynthesizeVoice(name=PROFILE)).event())
            for word in first.split(" "):
                await c.write_event(SynthesizeChunk(word + " ").event())
            # a sentence ends where the next one begins (the boundary detector needs its first letter)
            await c.write_event(SynthesizeChunk(rest[0]).event())
            head = await read_until(c, "audio-chunk")  # before any more text is sent
            for piece in rest[1:]:
                await c.write_event(SynthesizeChunk(piece).event())
            await c.write_event(Synthesize(first + " " + "".join(rest)).event())  # compat copy: ignored
            await c.write_event(SynthesizeStop().event())
            return head, await read_until(c, "synthesize-stopped")

    head, tail = run(go())
    assert [e.type for e in head] == ["audio-start", "audio-chunk"], [e.type for e in head]
    events = head + tail
    types = [e.type for e in events]
    assert types[-2:] == ["audio-stop", "synthesize-stopped"], types
    assert SynthesizeStopped.is_type(events[-1].type)
    audio, start = decode(events)
    c = assert_speech(audio, start.rate, first + "".join(rest))
    assert 4.0 < c["duration_s"] < 16.0, c  # all three sentences, the compat copy not spoken twice


def test_unknown_voice_is_an_error_event_and_the_server_goes_on(server):
    async def go():
        async with server.client() as c:
            await c.write_event(Synthesize("Hello.", voice=SynthesizeVoice(name="no_such_voice")).event())
            events = await read_until(c, "audio-stop")
            return events, await c.read_event()

    events, after = run(go())
    assert [e.type for e in events] == ["error"]
    err = Error.from_event(events[0])
    assert err.code == "unknown_voice" and "no_such_voice" in err.text and "jf_alpha" in err.text
    assert after is None  # closed after the error: a client waiting for audio-stop does not hang
    assert run(describe(server)).tts[0].voices


def test_unknown_event_gets_an_error_and_the_connection_stays(server):
    async def go():
        async with server.client() as c:
            await c.write_event(Event(type="make-coffee", data={"sugar": 2}))
            (err,) = await read_until(c, "error")
            await c.write_event(Ping(text="still there?").event())
            (pong,) = await read_until(c, "pong")
            await c.write_event(Describe().event())
            (info,) = await read_until(c, "info")
            return err, pong, info

    err, pong, info = run(go())
    e = Error.from_event(err)
    assert e.code == "unknown_event" and "make-coffee" in e.text
    assert pong.type == "pong" and pong.data.get("text") == "still there?"
    assert Info.from_event(info).tts[0].name == "fedtts"


def test_megabyte_text_and_malformed_events_are_refused(server):
    async def huge():
        async with server.client() as c:
            await c.write_event(Synthesize("好" * 1_000_000).event())  # 3 MB of UTF-8
            return await read_until(c, "audio-stop")

    async def raw(data: bytes) -> bytes:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(data)
        await writer.drain()
        got = await asyncio.wait_for(reader.read(), READ_TIMEOUT)  # until the server closes
        writer.close()
        return got

    (ev,) = run(huge())
    err = Error.from_event(ev)
    assert err.code == "text_too_long" and "1000000" in err.text and "2000" in err.text
    assert b'"bad_event"' in run(raw(b"this is not json\n"))
    assert b'"event_too_large"' in run(raw(b'{"type": "synthesize", "data_length": 999999999}\n'))
    assert run(describe(server)).tts[0].voices


def test_client_gone_mid_stream_then_the_next_client_is_served(server):
    long_text = " ".join(
        f"Sentence number {i} of a long announcement that nobody listens to." for i in range(30)
    )

    async def leave_early():
        c = server.client()
        await c.connect()
        await c.write_event(Synthesize(long_text).event())
        events = [await c.read_event() for _ in range(4)]
        await c.disconnect()
        return events

    async def next_client():
        async with server.client() as c:
            await c.write_event(Synthesize("Still here.").event())
            return await read_until(c, "audio-stop")

    head = run(leave_early())
    assert [e.type for e in head] == ["audio-start"] + ["audio-chunk"] * 3
    t0 = time.monotonic()
    events = run(next_client())
    took = time.monotonic() - t0
    audio, start = decode(events)
    assert_speech(audio, start.rate, "Still here.")
    # the abandoned text (~100 s of speech) was not rendered to the end before this one
    assert took < 30, f"{took:.1f} s: the abandoned request kept its job slot\n{server.log()}"
    assert server.proc.poll() is None
