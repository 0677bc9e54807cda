"""onnxruntime inference of Kokoro-82M: token ids + 256-d style + speed → 24 kHz float32 audio."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fedtts.engine.assets import fp32_model_path, load_vocab, runtime_model_path

SAMPLE_RATE = 24000
MAX_TOKENS = 510  # phoneme tokens per call, not counting the two pad tokens
STYLE_DIM = 256
FRAME_SAMPLES = 600  # one predicted duration unit: 25 ms of 24 kHz audio
# The pad tokens' durations are left as the model predicts them. Capping them (12 / 4 frames) clipped
# the first and last sounds: "Or which…" heard as "which…", "opponents" as "opponent"; Whisper error of
# 18 dev clones 11.2 % capped vs 7.0 % uncapped. The silence they add is trimmed after the call.
NO_CAP = 1e6
# Back ends, measured side by side in bench/bench_speak.py. int8 is the default: the fastest whose
# parity and Whisper error hold here; fp32 is the dequantised export of the PyTorch rebuild (built
# by `python -m fedtts.app.prepare` when the [train] extra is installed).
BACKENDS = ("onnx-int8", "onnx-fp32")
DEFAULT_BACKEND = "onnx-int8"

log = logging.getLogger(__name__)


@dataclass
class EngineConfig:
    """How the acoustic model runs."""

    threads: int = 2
    model_path: Path | None = None  # default: the verified, assembled asset of the back end
    backend: str = DEFAULT_BACKEND

    def validate(self) -> EngineConfig:
        if not 1 <= int(self.threads) <= 64:
            raise ValueError(f"threads must be between 1 and 64, got {self.threads}")
        if self.backend not in BACKENDS:
            raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, got {self.backend!r}")
        if self.model_path is not None and not Path(self.model_path).is_file():
            raise ValueError(f"model file not found: {self.model_path}")
        return self


def _backend_file(backend: str) -> Path:
    if backend == "onnx-fp32":
        path = fp32_model_path()
        if not path.is_file():
            raise FileNotFoundError(
                f"{path} is missing: build it with `python -m fedtts.app.prepare` ([train])"
            )
        return path
    raise ValueError(f"unknown back end {backend!r}")


class KokoroEngine:
    """One reusable onnxruntime session; thread-safe (onnxruntime's ``run`` is)."""

    # Sessions this process has built: a server must hold one model, whatever mix of requests it gets.
    sessions_created: int = 0
    _count_lock = threading.Lock()

    def __init__(self, config: EngineConfig | None = None):
        import onnxruntime as ort

        self.config = (config or EngineConfig()).validate()
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = int(self.config.threads)
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        self.backend = self.config.backend
        self.session = None
        if self.config.model_path is None and self.backend != DEFAULT_BACKEND:
            try:
                self.session = ort.InferenceSession(
                    str(_backend_file(self.backend)), sess_options=opts, providers=["CPUExecutionProvider"]
                )
            except Exception as e:  # noqa: BLE001 - any load failure falls back, once, loudly
                log.warning("back end %s is not available (%s); using %s", self.backend, e, DEFAULT_BACKEND)
                self.backend = DEFAULT_BACKEND
        if self.session is None:
            path = self.config.model_path or runtime_model_path()
            self.session = ort.InferenceSession(
                str(path), sess_options=opts, providers=["CPUExecutionProvider"]
            )
        with KokoroEngine._count_lock:
            KokoroEngine.sessions_created += 1
        self._caps = "max_frames" in {i.name for i in self.session.get_inputs()}
        self.vocab = load_vocab()
        self._warned: set[str] = set()
        self._lock = threading.Lock()

    def tokenize(self, phonemes: str) -> list[int]:
        """Map phoneme symbols to ids; symbols outside the vocabulary are dropped (logged once)."""
        ids = []
        for ch in phonemes:
            tid = self.vocab.get(ch)
            if tid is None:
                if ch not in self._warned:
                    self._warned.add(ch)
                    log.warning(
                        "phoneme symbol %r (U+%04X) is not in the model vocabulary; skipped", ch, ord(ch)
                    )
                continue
            ids.append(tid)
        return ids

    def infer(self, tokens: list[int], style: np.ndarray, speed: float = 1.0) -> np.ndarray:
        """Render one chunk of at most ``MAX_TOKENS`` tokens with a single 256-d style row."""
        return self.infer_timed(tokens, style, speed)[0]

    def infer_timed(
        self, tokens: list[int], style: np.ndarray, speed: float = 1.0
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """(audio, frames per token incl. the two pads, or None for a model without that output)."""
        if not tokens:
            raise ValueError("no phoneme tokens to synthesise")
        if len(tokens) > MAX_TOKENS:
            raise ValueError(f"{len(tokens)} tokens exceed the model limit of {MAX_TOKENS}; chunk the text")
        style = np.asarray(style, dtype=np.float32).reshape(1, STYLE_DIM)
        if not np.all(np.isfinite(style)):
            raise ValueError("style vector contains NaN or infinity")
        if not 0.25 <= float(speed) <= 4.0:
            raise ValueError(f"speed must be between 0.25 and 4, got {speed}")
        feed = {
            "tokens": np.array([[0, *tokens, 0]], dtype=np.int64),
            "style": style,
            "speed": np.array([speed], dtype=np.float32),
        }
        if not self._caps:
            (audio,) = self.session.run(None, feed)
            return np.asarray(audio, dtype=np.float32).reshape(-1), None
        caps = np.full(len(tokens) + 2, NO_CAP, dtype=np.float32)
        audio, frames = self.session.run(None, {**feed, "max_frames": caps})
        return np.asarray(audio, dtype=np.float32).reshape(-1), np.asarray(frames).reshape(-1).astype(
            np.int64
        )
