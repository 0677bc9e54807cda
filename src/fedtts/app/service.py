"""The service the web UI, the HTTP API and the Wyoming server share: the model host and synthesis.

All front doors (Gradio in ``web.py``, FastAPI in ``server.py``, ``wyoming_server.py``) call one
:class:`TTSService`, so they behave the same: the same voices (stock, saved profiles, blends, cloned
references), the same job gate, the same deadline and the same output folder. The service owns the
model and the voices; its parts, built once here and reached as attributes, own the rest:
``outputs`` (:mod:`fedtts.app.outputs`), ``uploads`` (:mod:`fedtts.app.uploads`), ``profiles``
(:mod:`fedtts.app.profiles`), ``gate`` and ``jobs`` (:mod:`fedtts.app.jobs`); what the System tab shows
is :mod:`fedtts.app.system`.
"""

from __future__ import annotations

import gc
import logging
import os
import re
import tempfile
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from fedtts.app.errors import ServiceError, ServiceTimeout
from fedtts.app.jobs import BatchJobs, JobGate, Ticket
from fedtts.app.outputs import MB, OutputFolder, OutputsInfo
from fedtts.app.profiles import Profiles
from fedtts.app.system import malloc_trim, memory_mb
from fedtts.app.uploads import Uploads, UploadsInfo
from fedtts.engine.assets import data_dir
from fedtts.engine.onnx_engine import EngineConfig, KokoroEngine
from fedtts.frontend import Frontend, FrontendConfig, PronunciationDict
from fedtts.frontend.cache import cache_clear, cache_info
from fedtts.frontend.core import default_dict_path
from fedtts.pipeline import SynthesisOptions
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
    stock_voice_names,
)
from fedtts.voice.style import ShapeError, VoiceShape, shape_voice

__all__ = [
    "OPENAI_VOICE_ALIASES",
    "CacheReport",
    "ServiceConfig",
    "ServiceStatus",
    "SpeechOutcome",
    "SpeechRequest",
    "TTSService",
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
_ABS_PATH = re.compile(r"(?<![\w.~<>/])/(?:[\w.\-]+/)+[\w.\-]*")  # /a/b/c left in a message


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
    outcome: SpeechOutcome | None = None  # set by TTSService.stream once the voice is resolved


@dataclass
class SpeechOutcome:
    """What the service decided for a request, known before its first chunk: the voice it spoke in,
    how that voice was made, warnings about the inputs, and the file tags saying it is synthetic."""

    voice: str
    method: str | None = None
    warnings: list[str] = field(default_factory=list)
    tags: dict[str, str] = field(default_factory=dict)
    watermarked: bool = False  # a clone's output carries the PerTh mark (stock voices: none)


@dataclass
class ServiceStatus:
    """The process as ``GET /health`` and the System tab see it."""

    model_loaded: bool
    model_sessions: int
    memory_mb: float
    queue: dict[str, int]
    uptime_s: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class CacheReport:
    """What the service holds on disk and in memory besides the model."""

    frontend: dict[str, Any]
    outputs: OutputsInfo
    uploads: UploadsInfo
    cloned_voices_in_memory: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# ---------------------------------------------------------------------- service


class TTSService:
    """The model host (one runtime, its synthesizer, cloned-voice memo) and synthesis requests; the
    output folder, uploads, saved profiles, gate and batch jobs are its parts (attributes)."""

    def __init__(self, config: ServiceConfig | None = None, synthesizer=None, runtime: Runtime | None = None):
        """``runtime``: the process's model and stores (built here when not given); ``synthesizer``: a
        ready one to use instead of the runtime's (tests)."""
        self.config = (config or ServiceConfig()).validate()
        self.runtime = runtime or Runtime(engine_config=EngineConfig(threads=self.config.threads))
        self._lock = threading.RLock()
        self._synth = synthesizer
        self._ref_voices: OrderedDict[str, Any] = OrderedDict()  # sha256+method → Voice
        self.started = time.time()
        cfg = self.config
        self.outputs = OutputFolder(cfg.output_dir, cfg.max_output_bytes, cfg.max_output_age_s)
        self.uploads = Uploads(cfg.max_upload_bytes, cfg.upload_dir)
        self.profiles = Profiles(self.runtime.profiles, self.clone_voice, self.outputs)
        self.gate = JobGate(cfg.max_concurrent, cfg.queue_size)
        self.jobs = BatchJobs(
            self.outputs, self.gate, lambda: self.synthesizer, cfg.max_upload_bytes, cfg.timeout_s
        )
        if cfg.output_dir.is_dir():
            self.outputs.enforce_cap()

    def close(self) -> None:
        self.uploads.close()

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
        malloc_trim()
        return {"before_mb": before, "after_mb": memory_mb()}

    # ------------------------------------------------------------ voices
    def voice_names(self) -> dict[str, list[str]]:
        return {"stock": list(stock_voice_names()), "saved": self.profiles.names()}

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
            self.uploads.discard(path)  # a rejected clip is not kept on the server
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
            str(self.uploads.dir.resolve()): "<upload>",
            str(self.uploads.dir): "<upload>",
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
            self.uploads.discard(path)
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
            # a clone's output is marked and its file says it is synthetic (stock voices: neither)
            req.outcome = SpeechOutcome(
                voice=voice.name,
                method=voice.meta.get("method"),
                warnings=warnings,
                tags=output_tags(voice, opts.watermark),
                watermarked=is_clone(voice),
            )
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

    def detect(self, path: Path) -> Detection:
        """Is the file PerTh-marked? Unreadable audio is the caller's (400); no model is ours (503)."""
        try:
            return detect_file(path)
        except UnreadableAudio as e:
            raise ServiceError(str(e), 400, "unreadable_audio", "file") from e
        except WatermarkError as e:
            raise ServiceError(str(e), 503, "watermark_unavailable") from e

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
    def cache_info(self) -> CacheReport:
        return CacheReport(
            frontend=cache_info(),
            outputs=self.outputs.info(),
            uploads=self.uploads.info(),
            cloned_voices_in_memory=len(self._ref_voices),
        )

    def clear_caches(self) -> dict[str, int]:
        """Front-end disk cache, cloned-voice memo and uploads (outputs are the user's: kept)."""
        removed = {"frontend": int(cache_clear())}
        with self._lock:
            removed["cloned_voices"] = len(self._ref_voices)
            self._ref_voices.clear()
        removed["uploads"] = self.uploads.clear()
        return removed

    def status(self) -> ServiceStatus:
        return ServiceStatus(
            model_loaded=self.model_loaded(),
            model_sessions=KokoroEngine.sessions_created,
            memory_mb=memory_mb(),
            queue=self.gate.status(),
            uptime_s=round(time.time() - self.started, 1),
        )
