"""Shared service layer of the web UI and the HTTP API: one place for the model, limits and files.

Both front doors (Gradio in ``web.py``, FastAPI in ``server.py``) call this module, so they behave
the same: the same voices (stock, saved profiles, blends, cloned references), the same job gate
(``max_concurrent`` running + ``queue_size`` waiting, then :class:`ServiceBusy`), the same
deadline, the same output folder and the same rules for serving files from it.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import ctypes
import gc
import logging
import os
import re
import secrets
import shutil
import stat
import tempfile
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

import fedtts
from fedtts.app.batch import BatchConfig, run_batch
from fedtts.engine.assets import MODEL_FILENAME, MODEL_SHA256, data_dir, registry_dir
from fedtts.engine.onnx_engine import EngineConfig, KokoroEngine
from fedtts.federated.versions import VersionError, VersionRegistry
from fedtts.frontend import FRONTEND_VERSION, Frontend, FrontendConfig, PronunciationDict
from fedtts.frontend.cache import cache_clear, cache_info
from fedtts.frontend.core import default_dict_path
from fedtts.pipeline import SynthesisOptions
from fedtts.pipeline.audio_io import write_audio
from fedtts.pipeline.runtime import Runtime
from fedtts.pipeline.synth import collect
from fedtts.pipeline.watermark import (
    Detection,
    UnreadableAudio,
    WatermarkError,
    detect_file,
    is_clone,
    output_tags,
)
from fedtts.voice import (
    DEFAULT_VOICE,
    ReferenceError,
    VoiceError,
    load_reference,
    resolve_reference,
    resolve_voice_name,
    resolvers,
    stock_voice_names,
    tuner,
)
from fedtts.voice.store import ProfileStore, consent_status, validate_name
from fedtts.voice.style import ShapeError, VoiceShape, shape_voice

__all__ = [
    "DEFAULT_VOICE",
    "OPENAI_VOICE_ALIASES",
    "ServiceConfig",
    "ServiceError",
    "ServiceBusy",
    "ServiceTimeout",
    "NotAvailable",
    "JobGate",
    "Ticket",
    "SpeechRequest",
    "TTSService",
    "safe_child",
    "PruneReport",
    "prune_outputs",
    "parse_duration",
    "is_service_output",
    "check_output_root",
]

log = logging.getLogger(__name__)

# OpenAI clients send these names; map them to stock packs so such clients work unchanged.
OPENAI_VOICE_ALIASES = {
    "alloy": "jf_alpha",
    "nova": "jf_nezumi",
    "shimmer": "jf_tebukuro",
    "fable": "jf_gongitsune",
    "echo": "jm_kumo",
    "onyx": "jm_kumo",
}
_VOICE_SPEC = re.compile(
    r"^[A-Za-z0-9\u4e00-\u9fff_.\-]+(:[0-9.]+)?(,[A-Za-z0-9\u4e00-\u9fff_.\-]+(:[0-9.]+)?)*$"
)
_UPLOAD_ID = re.compile(r"^upl_[0-9a-f]{32}$")
_ABS_PATH = re.compile(r"(?<![\w.~<>/])/(?:[\w.\-]+/)+[\w.\-]*")  # /a/b/c left in a message
_OUTPUT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,200}$")
MB = 1024 * 1024


class ServiceError(ValueError):
    """A request the service refuses; ``status`` is the HTTP status the API answers with."""

    def __init__(
        self, message: str, status: int = 400, code: str = "invalid_request", param: str | None = None
    ):
        super().__init__(message)
        self.status = status
        self.code = code
        self.param = param


class ServiceBusy(ServiceError):
    """All slots busy and the waiting queue full: try again after ``retry_after`` seconds."""

    def __init__(self, message: str, retry_after: int):
        super().__init__(message, 503, "server_busy")
        self.retry_after = retry_after


class ServiceTimeout(ServiceError):
    def __init__(self, message: str):
        super().__init__(message, 504, "timeout")


class NotAvailable(ServiceError):
    """A part of fedtts that has not landed (or is not installed) on this machine."""

    def __init__(self, message: str):
        super().__init__(message, 501, "not_available")


@dataclass
class ServiceConfig:
    """Limits and folders shared by ``fedtts ui`` and ``fedtts serve``."""

    output_dir: Path = Path("outputs")
    max_chars: int = 4096  # per request; longer texts are chunked by the pipeline up to this
    max_upload_bytes: int = 20 * MB
    max_concurrent: int = 1  # synthesis jobs running at once (2 cores: more only adds latency)
    queue_size: int = 16  # jobs allowed to wait for a slot before 503
    timeout_s: float = 300.0  # per request, queue wait included
    threads: int = 2  # onnxruntime threads per job
    dict_path: Path | None = None  # pronunciation dictionary edited by the UI
    upload_dir: Path | None = None  # API uploads (default: a private temp folder)
    api_key: str | None = None  # HTTP API Bearer key (None = open; bind 127.0.0.1 then)
    # output folder caps (files this service wrote only; None = no cap): oldest go first
    max_output_bytes: int | None = 2048 * MB
    max_output_age_s: float | None = None

    def validate(self) -> ServiceConfig:
        self.output_dir = Path(self.output_dir)
        if self.output_dir.exists() and not self.output_dir.is_dir():
            raise ValueError(f"output folder {self.output_dir} exists and is not a folder")
        for name, lo in (("max_chars", 1), ("max_upload_bytes", 1024), ("max_concurrent", 1), ("threads", 1)):
            if int(getattr(self, name)) < lo:
                raise ValueError(f"{name} must be at least {lo}, got {getattr(self, name)}")
        if int(self.queue_size) < 0:
            raise ValueError(f"queue_size must be >= 0, got {self.queue_size}")
        if not float(self.timeout_s) > 0:
            raise ValueError(f"timeout_s must be > 0, got {self.timeout_s}")
        if self.dict_path is None:
            self.dict_path = default_dict_path()
        self.dict_path = Path(self.dict_path)
        if self.api_key is not None and not str(self.api_key).strip():
            self.api_key = None
        if self.max_output_bytes is not None and int(self.max_output_bytes) <= 0:
            self.max_output_bytes = None
        if self.max_output_age_s is not None and float(self.max_output_age_s) <= 0:
            self.max_output_age_s = None
        return self


def safe_child(root: Path, name: str) -> Path:
    """``root/name`` for a plain file name only; anything that could leave ``root`` is refused."""
    if not isinstance(name, str) or not _OUTPUT_NAME.match(name) or ".." in name:
        raise ServiceError(
            f"invalid file name {name!r}: plain names only (no folders or '..')", 400, "invalid_name"
        )
    root = Path(root).resolve()
    path = (root / name).resolve()
    if path.parent != root:
        raise ServiceError(f"{name!r} is outside the output folder", 400, "invalid_name")
    return path


# ---------------------------------------------------------------------- output folder cap

# what output_path() names: <UTC time>_<stem>_<6 hex> (+ suffix); batch jobs are such folders
_SERVICE_OUTPUT = re.compile(r"^\d{8}-\d{6}_[A-Za-z0-9_.\-]*_[0-9a-f]{6}(\.[A-Za-z0-9]{1,9})?$")
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$", re.IGNORECASE)
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400, "": 86400}


def parse_duration(text: str) -> float:
    """'7d', '12h', '30m', '90s', '2w' (a bare number is days) → seconds; ValueError names the input."""
    m = _DURATION.match(str(text))
    if not m:
        raise ValueError(f"invalid duration {text!r}: use a number and a unit, like 7d, 12h, 30m or 90s")
    return float(m.group(1)) * _UNIT_S[m.group(2).lower()]


def is_service_output(name: str) -> bool:
    """Whether a top-level entry of the output folder was written by the UI/API (output_path)."""
    return bool(_SERVICE_OUTPUT.match(name))


def check_output_root(root: Path) -> Path:
    """Refuse to clean a folder that holds more than outputs: /, the home folder, or an ancestor of
    the current folder or of home (a mistyped --dir must not empty a user's files)."""
    r = Path(root).expanduser().resolve()
    home = Path.home().resolve()
    cwd = Path.cwd().resolve()
    if r == Path(r.anchor) or r == home or home.is_relative_to(r) or cwd.is_relative_to(r):
        raise ValueError(
            f"{root}: refusing to clean this folder (it is /, the home folder or holds the current "
            "folder); give the output folder itself"
        )
    return r


@dataclass
class PruneReport:
    """What :func:`prune_outputs` removed (or would remove with ``dry_run``) and what is left."""

    removed: list[Path] = field(default_factory=list)
    removed_bytes: int = 0
    kept_files: int = 0
    kept_bytes: int = 0


def _output_files(root: Path, everything: bool) -> list[tuple[float, int, Path]]:
    """(mtime, size, path) of regular files under ``root``; links are neither followed nor touched.

    Only entries named like the service's outputs unless ``everything``."""
    out = []
    for top in sorted(root.iterdir()):
        if not everything and not is_service_output(top.name):
            continue
        if top.is_symlink():
            continue
        walk = [(str(root), [], [top.name])] if top.is_file() else os.walk(top, followlinks=False)
        for dirpath, _dirs, names in walk:
            for name in names:
                p = Path(dirpath) / name
                try:
                    st = os.lstat(p)
                except OSError:
                    continue
                if stat.S_ISREG(st.st_mode):
                    out.append((st.st_mtime, st.st_size, p))
    return out


def prune_outputs(
    root: Path,
    max_bytes: int | None = None,
    max_age_s: float | None = None,
    keep: tuple[Path, ...] = (),
    everything: bool = False,
    dry_run: bool = False,
    now: float | None = None,
) -> PruneReport:
    """Delete output files older than ``max_age_s``, then the oldest until the rest fit ``max_bytes``.

    Never outside ``root`` (paths are checked after resolving, links are skipped), never a path in
    ``keep`` (the file just written, a running batch job); emptied job folders are removed too.
    """
    root = Path(root).resolve()
    report = PruneReport()
    if not root.is_dir():
        return report
    now = time.time() if now is None else now
    kept_roots = [Path(k).resolve() for k in keep]
    files = sorted(_output_files(root, everything))  # oldest first
    victims: list[tuple[int, Path]] = []
    rest: list[tuple[int, Path]] = []
    for mtime, size, p in files:
        protected = any(p == k or p.is_relative_to(k) for k in kept_roots)
        if not p.resolve().is_relative_to(root) or protected:
            report.kept_files += 1
            report.kept_bytes += size
            continue
        if max_age_s is not None and now - mtime > max_age_s:
            victims.append((size, p))
        else:
            rest.append((size, p))
    total = sum(s for s, _ in rest) + report.kept_bytes
    if max_bytes is not None:
        while rest and total > max_bytes:
            size, p = rest.pop(0)
            victims.append((size, p))
            total -= size
    for size, p in victims:
        if not dry_run:
            try:
                p.unlink()
            except OSError as e:
                log.warning("could not remove %s: %s", p, e)
                continue
        report.removed.append(p)
        report.removed_bytes += size
    report.kept_files += len(rest)
    report.kept_bytes += sum(s for s, _ in rest)
    if not dry_run:
        _remove_empty_dirs(root, {p.parent for _, p in victims})
    return report


def _remove_empty_dirs(root: Path, dirs: set[Path]) -> None:
    """Remove emptied folders below ``root`` (never ``root`` itself), deepest first."""
    todo = set()
    for d in dirs:
        while d != root and d.is_relative_to(root):
            todo.add(d)
            d = d.parent
    for d in sorted(todo, key=lambda x: len(x.parts), reverse=True):
        if not d.is_symlink():
            with contextlib.suppress(OSError):
                d.rmdir()  # fails (kept) when not empty


# ---------------------------------------------------------------------- job gate


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


# ---------------------------------------------------------------------- requests


@dataclass
class SpeechRequest:
    """What both the UI and the API ask for; paths are already on disk (uploads saved)."""

    text: str
    voice: str | None = None  # stock / saved / blend spec; ignored when ``reference`` is set
    reference: Path | None = None
    reference_text: str | None = None
    emotion_reference: Path | None = None
    emotion_voice: str | None = None  # or a voice name as the emotion source
    emotion_strength: float = 1.0
    pitch_st: float = 0.0  # pitch shift in semitones (±6)
    expressiveness: float = 1.0  # F0 range factor (0.25–3)
    sample_rate: int = 24000
    speed: float = 1.0
    seed: int | None = None
    use_phoneme: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


# ---------------------------------------------------------------------- service


class TTSService:
    """Model lifecycle, voices, uploads, outputs, caches and limits for the UI and the API."""

    def __init__(self, config: ServiceConfig | None = None, synthesizer=None, runtime: Runtime | None = None):
        """``runtime``: the process's model and stores (built here when not given); ``synthesizer``: a
        ready one to use instead of the runtime's (tests)."""
        self.config = (config or ServiceConfig()).validate()
        self.runtime = runtime or Runtime(engine_config=EngineConfig(threads=self.config.threads))
        self.gate = JobGate(self.config.max_concurrent, self.config.queue_size)
        self._lock = threading.RLock()
        self._synth = synthesizer
        self._ref_voices: OrderedDict[str, Any] = OrderedDict()  # sha256+method → Voice
        self._uploads: OrderedDict[str, Path] = OrderedDict()
        self._own_upload_dir = self.config.upload_dir is None
        self.upload_dir = Path(self.config.upload_dir or tempfile.mkdtemp(prefix="fedtts-uploads-"))
        self.upload_dir.mkdir(parents=True, exist_ok=True)
        self.started = time.time()
        self._active_jobs: set[Path] = set()  # batch job folders being written: never pruned
        if self.config.output_dir.is_dir():
            self.enforce_output_cap()

    # ------------------------------------------------------------ folders
    @property
    def output_dir(self) -> Path:
        d = self.config.output_dir
        d.mkdir(parents=True, exist_ok=True)
        return d.resolve()

    def output_path(self, stem: str, suffix: str = ".wav") -> Path:
        """A fresh, unique file in the output folder: ``<UTC time>_<stem>_<random>.<suffix>``."""
        stem = re.sub(r"[^A-Za-z0-9_.\-]+", "-", stem or "speech").strip("-.")[:40] or "speech"
        ts = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
        return safe_child(self.output_dir, f"{ts}_{stem}_{secrets.token_hex(3)}{suffix}")

    def output_file(self, name: str) -> Path:
        """An existing regular file inside the output folder (the only files ever served)."""
        path = safe_child(self.output_dir, name)
        if not path.is_file() or path.is_symlink():
            raise ServiceError(f"no output file named {name!r}", 404, "not_found")
        return path

    def enforce_output_cap(self, keep: tuple[Path, ...] = ()) -> PruneReport:
        """Apply ``max_output_bytes``/``max_output_age_s`` to the files this service wrote."""
        cfg = self.config
        if cfg.max_output_bytes is None and cfg.max_output_age_s is None:
            return PruneReport()
        with self._lock:
            keep = (*keep, *self._active_jobs)
        report = prune_outputs(self.output_dir, cfg.max_output_bytes, cfg.max_output_age_s, keep=keep)
        if report.removed:
            log.info(
                "output cap: removed %d old file(s), %.1f MB, from %s",
                len(report.removed),
                report.removed_bytes / MB,
                self.output_dir,
            )
        return report

    def close(self) -> None:
        if self._own_upload_dir:
            shutil.rmtree(self.upload_dir, ignore_errors=True)

    # ------------------------------------------------------------ model
    @property
    def synthesizer(self):
        with self._lock:
            if self._synth is None:
                self._synth = self._new_synthesizer()
            return self._synth

    def _new_synthesizer(self):
        fcfg = None
        if self.config.dict_path is not None and Path(self.config.dict_path).is_file():
            fcfg = FrontendConfig(dict_path=Path(self.config.dict_path))
        synth = self.runtime.synthesizer(fcfg)  # on the runtime's one session
        synth.voice_resolver = self.resolve_voice  # SSML <voice name>: same names and aliases as "voice"
        return synth

    def model_loaded(self) -> bool:
        synth = self._synth
        return self.runtime.engine_loaded() or (
            synth is not None and getattr(synth, "_engine", None) is not None
        )

    def reload_frontends(self) -> None:
        """After a dictionary edit: new front ends, same (already loaded) ONNX session."""
        with self._lock:
            if self._synth is not None:
                self._synth = self._new_synthesizer()

    def warm_up(self) -> None:
        """Load the model and the front end now, so the first request is not slow."""
        voice = self.resolve_voice(DEFAULT_VOICE)
        for _ in self.synthesizer.stream("Hi.", voice, SynthesisOptions()):
            pass

    def free_memory(self) -> dict[str, float]:
        """Unload the ONNX session, front ends and cached voices; they reload on next use."""
        before = memory_mb()
        with self._lock:
            if self._synth is not None:
                self._synth.unload()
            self._ref_voices.clear()
        self.runtime.free_memory()
        gc.collect()
        _malloc_trim()
        return {"before_mb": before, "after_mb": memory_mb()}

    # ------------------------------------------------------------ voices
    def voice_names(self) -> dict[str, list[str]]:
        return {"stock": list(stock_voice_names()), "saved": self.store().names() if self.store() else []}

    def store(self) -> ProfileStore:
        """The saved-profile store."""
        return self.runtime.profiles  # data_dir()/voices ($FEDTTS_DATA_DIR), as the CLI uses

    def _require_store(self) -> ProfileStore:
        return self.store()

    def check_voice_spec(self, spec: str) -> str:
        """A voice spec (name or blend ``a:0.7,b:0.3``) with no path syntax; aliases mapped."""
        spec = str(spec or "").strip()
        spec = OPENAI_VOICE_ALIASES.get(spec.lower(), spec)
        if not spec or not _VOICE_SPEC.match(spec) or ".." in spec:
            raise ServiceError(
                f"invalid voice {spec[:80]!r}: a voice is a name of letters, digits, '_', '.', '-' "
                "or a blend like 'jf_alpha:0.7,jm_kumo:0.3' (no '/', '\\' or '..')",
                400,
                "invalid_voice",
                "voice",
            )
        return spec

    def resolve_voice(self, spec: str | None):
        spec = self.check_voice_spec(spec or DEFAULT_VOICE)
        try:
            return resolve_voice_name(spec, self.runtime.profiles)
        except VoiceError as e:
            raise ServiceError(str(e), 400, "unknown_voice", "voice") from e

    def load_reference(self, path: Path, text: str | None = None, param: str = "reference_audio"):
        try:
            return load_reference(path, text=text)
        except ReferenceError as e:
            self.discard_upload(path)  # a rejected clip is not kept on the server
            raise ServiceError(
                self.reference_message(str(e), path, param), 400, "bad_reference", param
            ) from e

    def reference_message(self, message: str, path: Path, label: str) -> str:
        """A reference error as the client should see it: its parameter, not the server's file."""
        if "not a readable audio file" in message:
            return f"{label}: not a readable audio file; use WAV, FLAC, MP3, OGG or M4A"
        p = Path(path)
        forms = {str(p), str(p.expanduser()), str(p.resolve()), p.name}
        for form in sorted(forms, key=len, reverse=True):
            message = message.replace(form, label)
        return self.public_message(message)

    def public_message(self, message: str) -> str:
        """Strip server-side paths (uploads, outputs, data, temp and home folders) from a message."""
        roots = {
            str(self.upload_dir.resolve()): "<upload>",
            str(self.upload_dir): "<upload>",
            str(self.config.output_dir.resolve()): "<outputs>",
            str(self.config.output_dir): "<outputs>",
            str(Path(tempfile.gettempdir()).resolve()): "<tmp>",
            str(Path.home()): "~",
        }
        roots[str(data_dir())] = "<data>"
        for root, tag in sorted(roots.items(), key=lambda kv: len(kv[0]), reverse=True):
            if len(root) > 1:
                message = message.replace(root, tag)
        return _ABS_PATH.sub("<path>", message)

    def discard_upload(self, path: Path | None) -> None:
        """Delete an upload (a rejected clip) now rather than when it ages out of the 64 kept."""
        if path is None:
            return
        p = Path(path)
        with self._lock:
            for uid, up in list(self._uploads.items()):
                if up == p:
                    del self._uploads[uid]
        if p.parent.resolve() == self.upload_dir.resolve() and _UPLOAD_ID.match(p.stem):
            p.unlink(missing_ok=True)

    def clone_voice(self, path: Path, text: str | None = None):
        """Reference clip → Voice, cached by the clip's sha256 (cloning the same clip twice is free)."""
        ref = self.load_reference(path, text)
        key = ref.sha256
        with self._lock:
            if key in self._ref_voices:
                self._ref_voices.move_to_end(key)
                return self._ref_voices[key], ref
        try:
            voice = resolve_reference(ref, engine=self.synthesizer.engine)
        except VoiceError as e:
            self.discard_upload(path)
            raise ServiceError(
                self.reference_message(str(e), path, "reference_audio"),
                400,
                "bad_reference",
                "reference_audio",
            ) from e
        with self._lock:
            self._ref_voices[key] = voice
            while len(self._ref_voices) > 32:
                self._ref_voices.popitem(last=False)
        return voice, ref

    def voice_for(self, req: SpeechRequest):
        """The Voice a request asks for: reference clone or spec, then the emotion transfer."""
        warnings: list[str] = []
        if req.reference is not None:
            voice, ref = self.clone_voice(req.reference, req.reference_text)
            warnings += list(ref.warnings)
        else:
            voice = self.resolve_voice(req.voice)
        shape = VoiceShape(
            emotion_strength=float(req.emotion_strength),
            pitch_st=float(req.pitch_st),
            expressiveness=float(req.expressiveness),
        )
        if req.emotion_reference is not None:  # a clip: move toward its measured prosody
            shape.emotion_reference = self.load_reference(req.emotion_reference, None, "emotion_reference")
            warnings += [f"emotion reference: {w}" for w in shape.emotion_reference.warnings]
        elif req.emotion_voice:  # a voice: interpolate toward its prosody half
            shape.emotion_voice = self.resolve_voice(req.emotion_voice)
        elif shape.emotion_strength != 1.0:  # said, not silently dropped (the UI's slider is always sent)
            warnings.append("emotion_strength ignored: no emotion_reference or emotion_voice to take it from")
            shape.emotion_strength = 1.0
        try:
            return shape_voice(voice, shape, engine=self.synthesizer.engine), warnings
        except ShapeError as e:
            if e.part == "prosody":
                raise ServiceError(str(e), 400, "invalid_prosody", "pitch") from e
            raise ServiceError(str(e), 400, "invalid_emotion", "emotion_strength") from e

    def enroll(
        self,
        name: str,
        clip: Path,
        consent: bool,
        ref_text: str | None = None,
        keep_clip: bool = False,
        consent_name: str = "",
        via: str = "api",
    ):
        """Clone ``clip`` and save it as profile ``name``: consent and who gave it are required and
        recorded (with the statement, the time, the clip's sha256 and ``via``)."""
        if consent is not True:
            raise ServiceError(
                "cloning a voice needs the speaker's consent: confirm that the person speaking in the "
                "clip agreed to have their voice cloned",
                400,
                "consent_required",
                "consent",
            )
        store = self._require_store()
        self.check_profile_name(name)
        if not str(consent_name or "").strip():
            raise ServiceError(
                "field 'consent_name' is required: the name of the person who agreed to be cloned",
                400,
                "consent_required",
                "consent_name",
            )
        if store.exists(name):
            raise ServiceError(f"voice '{name}' already exists; delete it first", 409, "exists", "name")
        voice, ref = self.clone_voice(clip, ref_text)
        try:
            return store.add(
                name,
                voice,
                consent=True,
                reference=ref,
                keep_clip=keep_clip,
                consent_name=consent_name,
                consent_via=via,
            )
        except VoiceError as e:
            raise ServiceError(str(e), 400, "invalid_voice", "name") from e

    def check_profile_name(self, name: str) -> str:
        try:
            return validate_name(name)
        except VoiceError as e:
            raise ServiceError(str(e), 400, "invalid_name", "name") from e

    def list_profiles(self) -> list[dict[str, Any]]:
        store = self.store()
        if store is None:
            return []
        out = []
        for info in store.list():
            m = info.meta
            out.append(
                {
                    "name": info.name,
                    "method": m.get("method"),
                    "base": m.get("base"),
                    "created": m.get("created"),
                    "speech_s": m.get("speech_s"),
                    "tuner_version": m.get("tuner_version"),
                    "clip_kept": bool(m.get("clip_file")),
                    "consent": bool(m.get("consent")),
                    "consent_status": consent_status(m),
                    "consent_record": m.get("consent_record"),
                }
            )
        return out

    def delete_voice(self, name: str) -> None:
        store = self._require_store()
        if name in stock_voice_names():
            raise ServiceError(f"'{name}' is a stock voice and cannot be deleted", 400, "stock_voice", "name")
        self.check_profile_name(name)
        if not store.exists(name):
            raise ServiceError(f"no saved voice '{name}'", 404, "not_found", "name")
        try:
            store.remove(name)
        except VoiceError as e:
            raise ServiceError(str(e), 404, "not_found", "name") from e

    def export_voice(self, name: str) -> Path:
        store = self._require_store()
        self.check_profile_name(name)
        if not store.exists(name):
            raise ServiceError(f"no saved voice '{name}'", 404, "not_found", "name")
        out = Path(store.export(name, self.output_path(f"voice-{name}", ".fedvoice")))
        self.enforce_output_cap(keep=(out,))
        return out

    # ------------------------------------------------------------ uploads
    def save_upload(self, data: bytes | None = None, src: Path | None = None, suffix: str = "") -> str:
        """Store an upload (bytes or a spooled file) under a random id; keeps the newest 64."""
        if data is not None and len(data) > self.config.max_upload_bytes:
            raise self.too_large(len(data))
        uid = "upl_" + secrets.token_hex(16)
        suffix = suffix.lower() if re.fullmatch(r"\.[A-Za-z0-9]{1,5}", suffix or "") else ""
        path = self.upload_dir / f"{uid}{suffix}"
        if data is not None:
            path.write_bytes(data)
        elif src is not None:
            shutil.copyfile(src, path)
        else:
            raise ServiceError("empty upload", 400, "empty_upload")
        if path.stat().st_size == 0:
            path.unlink(missing_ok=True)
            raise ServiceError("the uploaded file is empty", 400, "empty_upload")
        with self._lock:
            self._uploads[uid] = path
            while len(self._uploads) > 64:
                _, old = self._uploads.popitem(last=False)
                old.unlink(missing_ok=True)
        return uid

    def upload_path(self, uid: str) -> Path:
        with self._lock:
            path = self._uploads.get(uid)
        if path is None or not path.is_file():
            raise ServiceError(f"unknown or expired upload id {uid!r}", 404, "unknown_upload")
        return path

    def audio_arg(self, value: str | None, param: str) -> Path | None:
        """An API audio argument: an upload id (``upl_…``) or base64 audio (data: URLs too)."""
        if value is None or value == "":
            return None
        if not isinstance(value, str):
            raise ServiceError(
                f"{param} must be a string (upload id or base64 audio)", 400, "invalid_audio", param
            )
        if _UPLOAD_ID.match(value):
            return self.upload_path(value)
        payload = value.split(",", 1)[1] if value.startswith("data:") and "," in value else value
        try:
            data = base64.b64decode(payload, validate=True)
        except (binascii.Error, ValueError) as e:
            raise ServiceError(
                f"{param}: not an upload id (upl_…) nor valid base64 audio ({e})", 400, "invalid_audio", param
            ) from e
        if not data:
            raise ServiceError(f"{param}: empty audio", 400, "invalid_audio", param)
        return self.upload_path(self.save_upload(data))

    def too_large(self, n: int | None = None) -> ServiceError:
        lim = self.config.max_upload_bytes / MB
        got = f" ({n / MB:.1f} MB)" if n else ""
        return ServiceError(f"upload too large{got}: the limit is {lim:g} MB", 413, "too_large")

    # ------------------------------------------------------------ synthesis
    def options(self, req: SpeechRequest):
        try:
            return SynthesisOptions(
                sample_rate=int(req.sample_rate),
                speed=float(req.speed),
                seed=None if req.seed is None else int(req.seed),
                use_phoneme=bool(req.use_phoneme),
            ).validate()
        except (TypeError, ValueError) as e:
            raise ServiceError(str(e), 400, "invalid_option") from e

    def check_text(self, text: str) -> str:
        if text is None or not str(text).strip():
            raise ServiceError("input text is empty", 400, "empty_input", "input")
        if len(text) > self.config.max_chars:
            raise ServiceError(
                f"input is {len(text)} characters, over this server's limit of {self.config.max_chars}",
                400,
                "input_too_long",
                "input",
            )
        return str(text)

    def stream(
        self,
        req: SpeechRequest,
        ticket: Ticket | None = None,
        deadline: float | None = None,
        fast_start: bool = True,
    ) -> Iterator:
        """AudioChunks for ``req``, holding a gate slot while it runs; checks the deadline per chunk
        (``fast_start``: a short first phrase for live playback, else whole sentences).

        Pass a ``ticket`` from ``gate.enter()`` when admission was decided earlier (HTTP 503 before
        any work); otherwise admission happens here and may raise :class:`ServiceBusy`.
        """
        text = self.check_text(req.text)
        opts = self.options(req)
        deadline = deadline or (time.monotonic() + self.config.timeout_s)
        ticket = ticket or self.gate.enter()
        try:
            ticket.wait(deadline - time.monotonic())
            voice, warnings = self.voice_for(req)
            req.extra.update(voice=voice.name, method=voice.meta.get("method"), warnings=warnings)
            # a clone's output is marked and its file says it is synthetic (stock voices: neither)
            req.extra.update(tags=output_tags(voice, opts.watermark), watermarked=is_clone(voice))
            for chunk in self._guarded(self.synthesizer.stream(text, voice, opts, fast_start=fast_start)):
                yield chunk
                if time.monotonic() > deadline:
                    raise ServiceTimeout(f"request timed out after {self.config.timeout_s:.0f} s")
        finally:
            ticket.release()

    @staticmethod
    def _guarded(chunks: Iterator) -> Iterator:
        """Front-end/pipeline input errors → ServiceError 400 (they are the caller's text)."""
        try:
            yield from chunks
        except ServiceError:
            raise
        except WatermarkError as e:  # a clone cannot be served unmarked
            raise ServiceError(str(e), 503, "watermark_unavailable") from e
        except ValueError as e:
            raise ServiceError(str(e), 400, "invalid_input", "input") from e

    def synthesize(self, req: SpeechRequest, ticket: Ticket | None = None, deadline: float | None = None):
        """The whole request as one ``SynthesisResult`` (audio, chunk metadata, word timestamps)."""
        chunks = self.stream(req, ticket, deadline, fast_start=False)
        return collect(chunks, int(req.sample_rate), str(req.voice or ""))

    def save_output(
        self, audio: np.ndarray, sr: int, stem: str, fmt: str = "wav", tags: dict[str, str] | None = None
    ) -> Path:
        path = self.output_path(stem, f".{fmt}")
        write_audio(path, audio, sr, tags=tags)
        self.enforce_output_cap(keep=(path,))
        return path

    def detect(self, path: Path) -> Detection:
        """Is the file PerTh-marked? Unreadable audio is the caller's (400); no model is ours (503)."""
        try:
            return detect_file(path)
        except UnreadableAudio as e:
            raise ServiceError(str(e), 400, "unreadable_audio", "file") from e
        except WatermarkError as e:
            raise ServiceError(str(e), 503, "watermark_unavailable") from e

    # ------------------------------------------------------------ batch
    def prepare_batch(self, files: list[Path]) -> tuple[Path, Path]:
        """Uploaded JSONL + clips (or one ZIP) → (tasks file, job folder) inside the output folder.

        ZIP members are extracted only if they are plain relative paths (no '..', no absolute
        paths, no links), within a size budget. Clip paths in the JSONL that do not exist but whose
        file name was uploaded are pointed at the upload, so "prompts/a.wav" works after a flat upload.
        """
        if not files:
            raise ServiceError("upload a task JSONL (plus its clips) or a ZIP", 400, "missing_file")
        job = self.output_path("batch", "")
        inp = job / "input"
        inp.mkdir(parents=True)
        with self._lock:
            self._active_jobs.add(job)
        try:
            budget = 20 * self.config.max_upload_bytes
            for f in map(Path, files):
                if f.suffix.lower() == ".zip":
                    _safe_extract(f, inp, budget)
                else:
                    shutil.copyfile(f, inp / _plain_name(f.name))
            tasks = sorted(p for p in inp.rglob("*.jsonl") if not p.name.startswith(("._", "text_compare")))
            if len(tasks) != 1:
                found = ", ".join(p.name for p in tasks) or "none"
                raise ServiceError(
                    f"need exactly one .jsonl task file in the upload, found {found}", 400, "bad_batch"
                )
            return _relink_prompts(tasks[0], inp), job
        except BaseException:
            with self._lock:
                self._active_jobs.discard(job)
            raise

    def run_batch(self, tasks: Path, job: Path, voice: str | None, req: SpeechRequest):
        """Run :func:`fedtts.app.batch.run_batch` in one gate slot; returns (report, out folder)."""
        voice = self.check_voice_spec(voice or DEFAULT_VOICE)
        cfg = BatchConfig(
            tasks=tasks,
            out_dir=job / "results",
            options=self.options(req),
            voice=voice,
            zip=True,
            progress=False,
        )
        ticket = self.gate.enter()
        try:
            ticket.wait(self.config.timeout_s)
            return run_batch(cfg, synthesizer=self.synthesizer), cfg.out_dir
        finally:
            ticket.release()
            with self._lock:
                self._active_jobs.discard(job)
            self.enforce_output_cap(keep=(job,))

    # ------------------------------------------------------------ text front end
    def analyze(self, text: str, use_dict: bool, dictionary=None) -> list[Any]:
        """Segments of ``text``; ``dictionary`` (a PronunciationDict) previews unsaved entries."""
        self.check_text(text)
        if dictionary is not None:
            with tempfile.TemporaryDirectory(prefix="fedtts-dict-") as tmp:
                p = Path(tmp) / "dict.jsonl"
                dictionary.save(p)
                return Frontend(FrontendConfig(dict_path=p, use_dict=True)).analyze(text)
        dp = (
            self.config.dict_path if self.config.dict_path and Path(self.config.dict_path).is_file() else None
        )
        try:
            return Frontend(FrontendConfig(dict_path=dp, use_dict=bool(use_dict))).analyze(text)
        except ValueError as e:
            raise ServiceError(str(e), 400, "invalid_input", "input") from e

    def load_dictionary(self):
        p = Path(self.config.dict_path)
        return PronunciationDict.load(p) if p.is_file() else PronunciationDict()

    def save_dictionary(self, d) -> None:
        """Atomic write of the dictionary, then fresh front ends so synthesis uses it."""
        p = Path(self.config.dict_path)
        p.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", dir=p.parent)
        os.close(fd)
        try:
            d.save(tmp)
            os.replace(tmp, p)
        finally:
            Path(tmp).unlink(missing_ok=True)
        self.reload_frontends()

    # ------------------------------------------------------------ system
    def cache_info(self) -> dict[str, Any]:
        out: dict[str, Any] = {"frontend": cache_info()}
        files = [p for p in self.output_dir.rglob("*") if p.is_file()]
        out["outputs"] = {
            "files": len(files),
            "bytes": sum(p.stat().st_size for p in files),
            "path": str(self.output_dir),
            "max_bytes": self.config.max_output_bytes,
            "max_age_s": self.config.max_output_age_s,
        }
        ups = [p for p in self.upload_dir.glob("*") if p.is_file()]
        out["uploads"] = {"files": len(ups), "bytes": sum(p.stat().st_size for p in ups)}
        out["cloned_voices_in_memory"] = len(self._ref_voices)
        return out

    def clear_caches(self) -> dict[str, int]:
        """Front-end disk cache, cloned-voice memo and uploads (outputs are the user's: kept)."""
        removed = {"frontend": 0, "cloned_voices": 0, "uploads": 0}
        removed["frontend"] = int(cache_clear())
        with self._lock:
            removed["cloned_voices"] = len(self._ref_voices)
            self._ref_voices.clear()
            removed["uploads"] = len(self._uploads)
            for p in self._uploads.values():
                p.unlink(missing_ok=True)
            self._uploads.clear()
        return removed

    def versions(self) -> dict[str, Any]:
        out: dict[str, Any] = {"fedtts": getattr(fedtts, "__version__", _dist_version("fedtts"))}
        out["model"] = f"Kokoro-82M int8 ONNX ({MODEL_FILENAME}, sha256 {MODEL_SHA256[:12]})"
        out["frontend"] = FRONTEND_VERSION
        out["tuner"] = self.tuner_version()
        ok = "not available yet" not in out["tuner"]
        out["clone_methods"] = ", ".join(
            m if m != "tuner" or ok else "tuner (no weights yet)" for m in resolvers()
        )
        for lib in ("onnxruntime", "gradio", "fastapi"):
            out[lib] = _dist_version(lib)
        return out

    @staticmethod
    def tuner_version() -> str:
        if not tuner.tuner_available():
            return f"not available yet (no {tuner.WEIGHTS_FILE}; cloning uses the nearest stock pack)"
        try:
            return str(tuner.default_tuner().version)
        except Exception as e:  # corrupt weights must not break the System tab
            return f"error loading tuner weights: {e}"

    def federation_status(self) -> dict[str, Any]:
        """Global model versions, ε spent and the metric history, from the federated registry."""

        root = registry_dir()
        if not (root / "index.json").is_file():
            return {"available": False, "message": f"no federated rounds yet (registry {root} is empty)"}
        try:
            reg = VersionRegistry(root)
            versions = reg.list()
            current = reg.current()
        except VersionError as e:
            return {"available": False, "message": str(e)}
        cur = next((v for v in versions if v.version == current), None)
        # privacy is spent by every round, also one whose model the release gate rejected
        spent = max((v for v in versions if v.epsilon is not None), key=lambda v: v.epsilon, default=cur)
        return {
            "available": True,
            "registry": str(root),
            "current": current,
            "epsilon": spent.epsilon if spent else None,
            "delta": spent.delta if spent else None,
            "history": [
                {"version": v.version, "epsilon": v.epsilon, "created": v.created, **_numeric(v.metrics)}
                for v in versions
            ],
            # the release gate's verdict on each version and why (rejected ones are never current)
            "versions": [
                {"version": v.version, "parent": v.parent, "status": v.status, "reason": v.reason}
                for v in versions
            ],
        }

    def status(self) -> dict[str, Any]:
        return {
            "model_loaded": self.model_loaded(),
            "model_sessions": KokoroEngine.sessions_created,
            "memory_mb": memory_mb(),
            "queue": self.gate.status(),
            "uptime_s": round(time.time() - self.started, 1),
        }


# ---------------------------------------------------------------------- helpers


def memory_mb() -> float:
    """Resident memory of this process in MB (/proc; peak RSS where /proc is missing)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    import resource

    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def _plain_name(name: str) -> str:
    base = Path(str(name).replace("\\", "/")).name
    if not base or base.startswith(".") or not _OUTPUT_NAME.match(base):
        raise ServiceError(f"unusable file name {name!r}", 400, "invalid_name")
    return base


def _safe_extract(zip_path: Path, dest: Path, budget: int) -> None:
    """Extract a ZIP refusing absolute paths, '..', links, and more than ``budget`` bytes."""
    import stat
    import zipfile

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
    import json

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


def _malloc_trim() -> None:
    """Give freed heap back to the OS (glibc), so "free memory" shows in the RSS figure."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def _dist_version(name: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return "not installed"


def _numeric(d: dict) -> dict[str, float]:
    return {
        k: float(v) for k, v in (d or {}).items() if isinstance(v, (int, float)) and not isinstance(v, bool)
    }
