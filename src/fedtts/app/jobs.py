"""Jobs: the gate that admits synthesis work, and the batch jobs the UI and the API run.

Why together: a batch job is the longest thing that holds a gate slot, and its folder in the output
folder is protected from the caps while it runs. Admission (:meth:`JobGate.enter`) never blocks, so an
HTTP handler can answer 503 before doing any work.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import threading
import time
import zipfile
from collections import deque
from collections.abc import Callable
from pathlib import Path

import numpy as np

from fedtts.app.batch import BatchConfig, BatchReport, run_batch
from fedtts.app.errors import ServiceBusy, ServiceError, ServiceTimeout
from fedtts.app.outputs import MB, OutputFolder, plain_name
from fedtts.pipeline import SynthesisOptions

__all__ = ["BatchJobs", "JobGate", "Ticket"]


class Ticket:
    """A place in the gate: waiting until :meth:`wait`, running until :meth:`release`."""

    def __init__(self, gate: JobGate):
        self.gate = gate
        self.state = "waiting"  # waiting | running | done
        self.started = 0.0

    def wait(self, timeout: float) -> None:
        self.gate._wait(self, timeout)

    def release(self) -> None:
        self.gate._release(self)

    def __enter__(self) -> Ticket:
        return self

    def __exit__(self, *exc) -> None:
        self.release()


class JobGate:
    """``max_concurrent`` jobs run, ``queue_size`` wait; beyond that :class:`ServiceBusy` at once.

    Admission (``enter``) never blocks, so an HTTP handler can answer 503 before doing any work;
    the wait for a slot happens in the worker thread with the request's deadline.
    """

    def __init__(self, max_concurrent: int, queue_size: int):
        self.max_concurrent = int(max_concurrent)
        self.queue_size = int(queue_size)
        self.running = 0
        self.waiting = 0
        self.rejected = 0
        self.completed = 0
        self._cond = threading.Condition()
        self._queue: deque[Ticket] = deque()  # waiting tickets in arrival order
        self._durations: deque[float] = deque(maxlen=32)

    def enter(self) -> Ticket:
        with self._cond:
            if self.waiting >= self.queue_size and self.running >= self.max_concurrent:
                self.rejected += 1
                raise ServiceBusy(
                    f"server busy: {self.running} job(s) running and {self.waiting} waiting "
                    f"(limit {self.max_concurrent} + queue {self.queue_size}); retry later",
                    self._retry_after(),
                )
            self.waiting += 1
            t = Ticket(self)
            self._queue.append(t)
            return t

    def _retry_after(self) -> int:
        avg = (sum(self._durations) / len(self._durations)) if self._durations else 5.0
        ahead = self.waiting + self.running
        return max(1, int(np.ceil(avg * ahead / max(self.max_concurrent, 1))))

    def _wait(self, t: Ticket, timeout: float) -> None:
        with self._cond:
            if t.state != "waiting":
                return
            ok = self._cond.wait_for(  # first come, first served: no request starves under load
                lambda: self.running < self.max_concurrent and self._queue[0] is t, timeout=max(timeout, 0.0)
            )
            self.waiting -= 1
            self._queue.remove(t)
            self._cond.notify_all()
            if not ok:
                t.state = "done"
                raise ServiceTimeout(f"timed out after waiting {timeout:.0f} s for a free synthesis slot")
            self.running += 1
            t.state = "running"
            t.started = time.perf_counter()

    def _release(self, t: Ticket) -> None:
        with self._cond:
            if t.state == "waiting":
                self.waiting -= 1
                self._queue.remove(t)
            elif t.state == "running":
                self.running -= 1
                self.completed += 1
                self._durations.append(time.perf_counter() - t.started)
            t.state = "done"
            self._cond.notify_all()

    def status(self) -> dict[str, int]:
        with self._cond:
            return {
                "running": self.running,
                "waiting": self.waiting,
                "max_concurrent": self.max_concurrent,
                "queue_size": self.queue_size,
                "completed": self.completed,
                "rejected": self.rejected,
            }


class BatchJobs:
    """Uploaded task files (or a ZIP) → a job folder in the output folder → results and a ZIP."""

    def __init__(
        self,
        outputs: OutputFolder,
        gate: JobGate,
        synthesizer: Callable[[], object],
        max_upload_bytes: int,
        timeout_s: float,
    ):
        self.outputs = outputs
        self.gate = gate
        self._synthesizer = synthesizer  # the service's, built on first use
        self.max_upload_bytes = max_upload_bytes
        self.timeout_s = timeout_s

    def prepare(self, files: list[Path]) -> tuple[Path, Path]:
        """Uploaded JSONL + clips (or one ZIP) → (tasks file, job folder) inside the output folder.

        ZIP members are extracted only if they are plain relative paths (no '..', no absolute
        paths, no links), within a size budget. Clip paths in the JSONL that do not exist but whose
        file name was uploaded are pointed at the upload, so "prompts/a.wav" works after a flat upload.
        """
        if not files:
            raise ServiceError("upload a task JSONL (plus its clips) or a ZIP", 400, "missing_file")
        job = self.outputs.path("batch", "")
        inp = job / "input"
        inp.mkdir(parents=True)
        self.outputs.protect(job)
        try:
            budget = 20 * self.max_upload_bytes
            for f in map(Path, files):
                if f.suffix.lower() == ".zip":
                    _safe_extract(f, inp, budget)
                else:
                    shutil.copyfile(f, inp / plain_name(f.name))
            tasks = sorted(p for p in inp.rglob("*.jsonl") if not p.name.startswith(("._", "text_compare")))
            if len(tasks) != 1:
                found = ", ".join(p.name for p in tasks) or "none"
                raise ServiceError(
                    f"need exactly one .jsonl task file in the upload, found {found}", 400, "bad_batch"
                )
            return _relink_prompts(tasks[0], inp), job
        except BaseException:
            self.outputs.release(job)
            raise

    def run(self, tasks: Path, job: Path, voice: str, options: SynthesisOptions) -> tuple[BatchReport, Path]:
        """:func:`fedtts.app.batch.run_batch` in one gate slot; returns (report, results folder)."""
        cfg = BatchConfig(
            tasks=tasks,
            out_dir=job / "results",
            options=options,
            voice=voice,
            zip=True,
            progress=False,
        )
        ticket = self.gate.enter()
        try:
            ticket.wait(self.timeout_s)
            return run_batch(cfg, synthesizer=self._synthesizer()), cfg.out_dir
        finally:
            ticket.release()
            self.outputs.release(job)
            self.outputs.enforce_cap(keep=(job,))


def _safe_extract(zip_path: Path, dest: Path, budget: int) -> None:
    """Extract a ZIP refusing absolute paths, '..', links, and more than ``budget`` bytes."""
    try:
        z = zipfile.ZipFile(zip_path)
    except zipfile.BadZipFile as e:
        raise ServiceError(f"{Path(zip_path).name}: not a ZIP file ({e})", 400, "bad_zip") from e
    with z:
        infos = [i for i in z.infolist() if not i.is_dir() and not i.filename.startswith("__MACOSX/")]
        if len(infos) > 5000:
            raise ServiceError(f"{zip_path.name}: too many files ({len(infos)})", 400, "bad_zip")
        if sum(i.file_size for i in infos) > budget:
            raise ServiceError(
                f"{zip_path.name}: unpacks to more than {budget / MB:.0f} MB", 413, "too_large"
            )
        root = dest.resolve()
        for info in infos:
            name = info.filename.replace("\\", "/")
            parts = name.split("/")
            mode = info.external_attr >> 16
            if name.startswith("/") or ".." in parts or ":" in parts[0] or stat.S_ISLNK(mode):
                raise ServiceError(f"{zip_path.name}: unsafe entry {info.filename!r}", 400, "bad_zip")
            target = (root / name).resolve()
            if not target.is_relative_to(root):
                raise ServiceError(f"{zip_path.name}: unsafe entry {info.filename!r}", 400, "bad_zip")
            target.parent.mkdir(parents=True, exist_ok=True)
            with z.open(info) as src, open(target, "wb") as out:
                shutil.copyfileobj(src, out)


def _relink_prompts(tasks: Path, inp: Path) -> Path:
    """Point missing clip paths at an uploaded file of the same name; other lines stay untouched."""
    root = inp.resolve()
    by_name = {p.name: p.resolve() for p in inp.rglob("*") if p.is_file()}
    out_lines, changed = [], False
    for raw in tasks.read_text(encoding="utf-8-sig").splitlines():
        try:
            obj = json.loads(raw)
        except ValueError:
            out_lines.append(raw)  # run_batch reports it with its line number
            continue
        if isinstance(obj, dict):
            for key in ("prompt_speech", "prompt_audio"):
                v = obj.get(key)
                if not isinstance(v, str) or not v:
                    continue
                where = (tasks.parent / v).resolve()
                inside = where.is_relative_to(root) and where.is_file()
                if not inside:  # missing, or outside the upload (never read server files)
                    base = Path(v.replace("\\", "/")).name
                    hit = by_name.get(base)
                    obj[key] = (
                        os.path.relpath(hit, tasks.parent) if hit is not None else f"missing-upload/{base}"
                    )
                    changed = True
        out_lines.append(json.dumps(obj, ensure_ascii=False) if isinstance(obj, dict) else raw)
    if changed:
        tasks.write_text("\n".join(out_lines) + "\n", encoding="utf-8")
    return tasks
