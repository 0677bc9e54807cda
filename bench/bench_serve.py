"""Load test of ``fedtts serve``: 50 requests at concurrency 8, with bad requests thrown in.

    python bench/bench_serve.py                 # starts a server on a free port (real model)
    python bench/bench_serve.py --url http://127.0.0.1:8000 [--api-key K]

Prints p50/p95 latency, throughput and the status of every deliberate bad request (malformed
JSON, a 200 MB upload, a path-traversal voice name, an unsupported format), which are sent while
the load runs and must get their 4xx without failing any good request. A second phase bursts more
requests than the queue holds: the only errors allowed there are 503s with Retry-After.
"""

from __future__ import annotations

import argparse
import io
import json
import socket
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import soundfile as sf

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

TEXTS = [
    "The weather is nice today.",
    "Please call me back when you have a minute.",
    "今天天气很好。",
    "我们明天上午十点开会。",
    "Privacy matters: your voice stays on your computer.",
    "这个周末我们去公园散步吧。",
    "The train leaves at half past seven.",
    "Thank you for listening.",
]


def pct(xs: list[float], p: float) -> float:
    return float(np.percentile(xs, p)) if xs else float("nan")


def good_request(client: httpx.Client, i: int) -> dict:
    text = TEXTS[i % len(TEXTS)]
    t0 = time.perf_counter()
    r = client.post("/v1/audio/speech", json={"input": text, "voice": "jf_alpha", "response_format": "wav"})
    dt = time.perf_counter() - t0
    out = {"i": i, "status": r.status_code, "latency_s": dt, "retry_after": r.headers.get("retry-after")}
    if r.status_code == 200:
        audio, sr = sf.read(io.BytesIO(r.content), dtype="float32")
        out["audio_s"] = len(audio) / sr
        out["rms_db"] = float(20 * np.log10(np.sqrt(np.mean(audio**2)) + 1e-12))
    else:
        out["error"] = r.text[:200]
    return out


def huge_upload(url: str, mb: int = 200) -> tuple[int, float, int]:
    """Announce ``mb`` MB, send up to all of it unless the server answers first; (status, s, MB sent)."""
    host, port = url.removeprefix("http://").split(":")
    t0 = time.perf_counter()
    sent = 0
    with socket.create_connection((host, int(port)), timeout=30) as s:
        s.sendall(
            b"POST /v1/voices HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=b\r\n"
            + f"Content-Length: {mb << 20}\r\n\r\n".encode()
        )
        s.setblocking(False)
        block = b"\0" * (1 << 20)
        data = b""
        while sent < mb << 20:
            try:
                data += s.recv(65536)
                if data:
                    break
            except BlockingIOError:
                pass
            try:
                s.sendall(block)
                sent += len(block)
            except (BlockingIOError, BrokenPipeError, ConnectionResetError):
                break
        s.setblocking(True)
        s.settimeout(10)
        try:
            while b"\r\n" not in data:
                piece = s.recv(65536)
                if not piece:
                    break
                data += piece
        except (ConnectionResetError, TimeoutError):
            pass
    status = int(data.split(b" ")[1]) if data.startswith(b"HTTP/") else -1
    return status, time.perf_counter() - t0, sent >> 20


def bad_requests(url: str, headers: dict) -> list[dict]:
    out = []
    with httpx.Client(base_url=url, headers=headers, timeout=60) as c:
        cases = [
            ("malformed JSON body", 400, lambda: c.post("/v1/audio/speech", content=b'{"input": "hi",')),
            (
                "path-traversal voice",
                400,
                lambda: c.post("/v1/audio/speech", json={"input": "hi", "voice": "../../etc/passwd"}),
            ),
            (
                "unsupported format",
                400,
                lambda: c.post("/v1/audio/speech", json={"input": "hi", "response_format": "aac"}),
            ),
            ("path-traversal delete", 400, lambda: c.delete("/v1/voices/..%2F..%2Fetc")),
        ]
        for name, want, fn in cases:
            t0 = time.perf_counter()
            r = fn()
            out.append(
                {
                    "case": name,
                    "want": want,
                    "got": r.status_code,
                    "s": time.perf_counter() - t0,
                    "code": r.json()["error"]["code"],
                }
            )
    status, dt, sent = huge_upload(url)
    out.append(
        {"case": f"200 MB upload ({sent} MB sent before the answer)", "want": 413, "got": status, "s": dt}
    )
    return out


def run(url: str, n: int, conc: int, burst: int, api_key: str | None) -> int:
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    with httpx.Client(base_url=url, headers=headers, timeout=300) as c:
        h = c.get("/healthz").json()
        print(f"server: {url}, queue {h['queue']}, memory {h['memory_mb']:.0f} MB")
        single = [good_request(c, i)["latency_s"] for i in range(3)]
    print(f"single request (warm, idle server): median {statistics.median(single):.2f} s")

    # ---------------------------------------------------------------- phase 1: load + bad requests
    results: list[dict] = []
    bad: list[dict] = []
    local = threading.local()

    def worker(i: int) -> dict:
        if not hasattr(local, "c"):
            local.c = httpx.Client(base_url=url, headers=headers, timeout=600)
        return good_request(local.c, i)

    t0 = time.perf_counter()
    with ThreadPoolExecutor(conc) as ex:
        futs = [ex.submit(worker, i) for i in range(n)]
        time.sleep(1.0)  # bad requests arrive while the queue is busy
        bad = bad_requests(url, headers)
        results = [f.result() for f in futs]
    wall = time.perf_counter() - t0
    with httpx.Client(base_url=url, headers=headers, timeout=60) as c:
        mem_after = c.get("/healthz").json()["memory_mb"]
    ok = [r for r in results if r["status"] == 200]
    lat = [r["latency_s"] for r in ok]
    audio_s = sum(r.get("audio_s", 0.0) for r in ok)
    codes = {s: sum(r["status"] == s for r in results) for s in sorted({r["status"] for r in results})}
    print(f"\nphase 1: {n} requests at concurrency {conc}: statuses {codes}")
    print(
        f"  latency p50 {pct(lat, 50):.2f} s, p95 {pct(lat, 95):.2f} s, max {max(lat, default=float('nan')):.2f} s; "
        f"throughput {len(ok) / wall:.2f} req/s; {audio_s:.1f} s of audio in {wall:.1f} s wall "
        f"(server RTF {wall / max(audio_s, 1e-9):.2f})"
    )
    silent = [r for r in ok if r["rms_db"] < -35]
    print(f"  silent outputs: {len(silent)}; server memory after: {mem_after:.0f} MB")
    print("  deliberate bad requests (sent during the load):")
    for b in bad:
        mark = "ok" if b["got"] == b["want"] else "WRONG"
        print(f"    {b['case']:<45} want {b['want']} got {b['got']} in {b['s'] * 1000:.0f} ms [{mark}]")

    # ---------------------------------------------------------------- phase 2: burst past the queue
    burst_res: list[dict] = []
    if burst:
        barrier = threading.Barrier(burst)

        def burst_one(i: int) -> dict:
            with httpx.Client(base_url=url, headers=headers, timeout=600) as c:
                barrier.wait()
                return good_request(c, i)

        with ThreadPoolExecutor(burst) as ex:
            burst_res = list(ex.map(burst_one, range(burst)))
        bcodes = {
            s: sum(r["status"] == s for r in burst_res) for s in sorted({r["status"] for r in burst_res})
        }
        ra = sorted({int(r["retry_after"]) for r in burst_res if r["status"] == 503 and r["retry_after"]})
        print(
            f"\nphase 2: burst of {burst} simultaneous requests: statuses {bcodes}; Retry-After values {ra}"
        )

    failures = [r for r in results if r["status"] != 200]
    failures += [r for r in burst_res if r["status"] not in (200, 503)]
    failures += [r for r in burst_res if r["status"] == 503 and not r["retry_after"]]
    wrong = [b for b in bad if b["got"] != b["want"]]
    verdict = "PASS" if not failures and not wrong and not silent else "FAIL"
    print(
        f"\n{verdict}: {len(failures)} unexpected errors, {len(wrong)} wrong 4xx, {len(silent)} silent outputs"
    )
    summary = {
        "requests": n,
        "concurrency": conc,
        "p50_s": pct(lat, 50),
        "p95_s": pct(lat, 95),
        "statuses": codes,
        "bad": bad,
        "burst": burst,
        "burst_statuses": {str(k): v for k, v in (bcodes if burst else {}).items()},
        "verdict": verdict,
    }
    out = REPO / "bench" / "out"
    out.mkdir(parents=True, exist_ok=True)
    (out / "serve_load.json").write_text(json.dumps(summary, indent=1))
    return 0 if verdict == "PASS" else 1


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", default=None, help="an already running server (default: start one)")
    ap.add_argument("--api-key", default=None)
    ap.add_argument("--requests", type=int, default=50)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--burst", type=int, default=24, help="phase 2 burst size (0 = skip)")
    ap.add_argument("--queue-size", type=int, default=16, help="queue of the server we start")
    args = ap.parse_args()
    if args.url:
        return run(args.url.rstrip("/"), args.requests, args.concurrency, args.burst, args.api_key)
    from _serve_helpers import start

    with tempfile.TemporaryDirectory(prefix="fedtts-bench-serve-") as tmp:
        srv = start("serve", Path(tmp), "--queue-size", str(args.queue_size), ready_path="/healthz")
        try:
            return run(srv.url, args.requests, args.concurrency, args.burst, None)
        finally:
            srv.stop()


if __name__ == "__main__":
    sys.exit(main())
