"""The composition root: what one process shares, built once and passed down.

Why: synthesis needs one ONNX session (about 300 MB, 1–2 s to load), front ends, the tuner that
cloning uses, the saved-profile store and the settings read from ``FEDTTS_*``. Built in several
places, they drift (two sessions in one server; a tuner chosen under one registry while the System
tab reads another). So the CLI, ``fedtts serve``/``ui``/``wyoming`` and the evaluations build one
:class:`Runtime` and pass it (or its parts) down; no runtime module builds an engine of its own, and
freeing memory is the runtime's job. Training code (:mod:`fedtts.train`) builds its own, as piper's
trainer does.
"""

from __future__ import annotations

import gc
import os
import threading
import time
import weakref
from dataclasses import dataclass, field
from pathlib import Path

from fedtts.engine.assets import cache_dir, data_dir, registry_dir, shared_dir
from fedtts.engine.onnx_engine import EngineConfig, KokoroEngine
from fedtts.frontend import FrontendConfig
from fedtts.pipeline.synth import Synthesizer
from fedtts.voice.resolve import clear_stock_profiles
from fedtts.voice.store import ProfileStore
from fedtts.voice.tuner import VoiceTuner, default_tuner

__all__ = ["Settings", "Runtime"]


@dataclass(frozen=True)
class Settings:
    """The folders and choices fedtts reads from the environment, read once per process."""

    cache_dir: Path = field(default_factory=cache_dir)  # models, front-end cache ($FEDTTS_CACHE_DIR)
    data_dir: Path = field(default_factory=data_dir)  # saved voices, model versions ($FEDTTS_DATA_DIR)
    registry_dir: Path = field(default_factory=registry_dir)  # federated versions ($FEDTTS_FL_REGISTRY)
    shared_dir: Path = field(default_factory=shared_dir)  # team data for evaluation ($FEDTTS_SHARED)
    clone_method: str | None = field(default_factory=lambda: os.environ.get("FEDTTS_CLONE_METHOD") or None)

    @property
    def voices_dir(self) -> Path:
        return self.data_dir / "voices"

    def validate(self) -> Settings:
        for name in ("cache_dir", "data_dir", "registry_dir"):
            p = Path(getattr(self, name))
            if p.exists() and not p.is_dir():
                raise ValueError(f"{name} {p} exists and is not a folder")
        return self


class Runtime:
    """One engine, the synthesizers built on it, the profile store, the tuner source and settings.

    The engine loads on first use; :meth:`free_memory` drops it and every cache that holds model
    output, and the next request loads it again.
    """

    def __init__(
        self,
        settings: Settings | None = None,
        engine_config: EngineConfig | None = None,
        frontend_config: FrontendConfig | None = None,
    ):
        self.settings = (settings or Settings()).validate()
        self.engine_config = (engine_config or EngineConfig()).validate()
        self.frontend_config = frontend_config
        self.profiles = ProfileStore(self.settings.voices_dir)
        self._engine: KokoroEngine | None = None
        self._lock = threading.Lock()
        self._synths: weakref.WeakSet[Synthesizer] = weakref.WeakSet()
        self.load_seconds: float | None = None

    # ------------------------------------------------------------ model
    @property
    def engine(self) -> KokoroEngine:
        """The process's one acoustic-model session (loaded now if it is not yet)."""
        with self._lock:
            if self._engine is None:
                t0 = time.perf_counter()
                self._engine = KokoroEngine(self.engine_config)
                self.load_seconds = time.perf_counter() - t0
            return self._engine

    def engine_loaded(self) -> bool:
        return self._engine is not None

    def synthesizer(self, frontend_config: FrontendConfig | None = None) -> Synthesizer:
        """A synthesizer on this runtime's engine (its own front ends: a dictionary edit makes a new one)."""
        synth = Synthesizer(
            engine_config=self.engine_config,
            frontend_config=frontend_config if frontend_config is not None else self.frontend_config,
            engine_provider=lambda: self.engine,
        )
        self._synths.add(synth)
        return synth

    def tuner(self) -> VoiceTuner:
        """The tuner cloning uses ($FEDTTS_TUNER, else the registry's current version, else shipped)."""
        return default_tuner()

    # ------------------------------------------------------------ memory
    def free_memory(self) -> None:
        """Unload the session, the front ends and the cached tuner and stock profiles."""
        for synth in list(self._synths):
            synth.unload()
        with self._lock:
            self._engine = None
        default_tuner.cache_clear()
        clear_stock_profiles()
        gc.collect()
