"""Differentiable PyTorch Kokoro-82M, rebuilt from the bundled int8 ONNX (the only copy we have).

The float weights are recovered from the ONNX once (see :mod:`fedtts.engine.torch_weights`) and
cached as ``kokoro-82m-fp32.safetensors`` next to the assembled ONNX; the cache is keyed by the
ONNX's sha256 and rebuilt when it changes. Nothing is downloaded.

Importing this module imports torch: plain synthesis must use :mod:`fedtts.engine.onnx_engine`.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from fedtts.engine.assets import MODEL_SHA256, load_vocab, model_path, sha256_file
from fedtts.engine.kokoro_modules import KokoroConfig, KokoroNet
from fedtts.engine.torch_weights import onnx_state_dict

__all__ = [
    "KokoroTorch",
    "TorchResult",
    "TorchModelConfig",
    "load_torch_model",
    "weights_path",
    "SAMPLE_RATE",
    "FRAME_HOP",
]

SAMPLE_RATE = 24000
FRAME_HOP = 600  # audio samples per duration frame (2 F0 steps of 300 samples)
WEIGHTS_FILENAME = "kokoro-82m-fp32.safetensors"
MAX_TOKENS = 510

log = logging.getLogger(__name__)
_lock = threading.Lock()
_loaded: dict[tuple, KokoroTorch] = {}


@dataclass
class TorchModelConfig:
    """Where the ONNX comes from and how many threads torch may use."""

    onnx_path: Path | None = None  # default: the verified assembled asset
    threads: int = 2

    def validate(self) -> TorchModelConfig:
        if not 1 <= int(self.threads) <= 64:
            raise ValueError(f"threads must be between 1 and 64, got {self.threads}")
        if self.onnx_path is not None and not Path(self.onnx_path).is_file():
            raise ValueError(f"ONNX model file not found: {self.onnx_path}")
        return self


@dataclass
class TorchResult:
    """One forward pass. ``audio`` keeps its graph (differentiable w.r.t. the style)."""

    audio: torch.Tensor  # [L] float32, 24 kHz
    durations: torch.Tensor  # [N+2] long, frames per token (incl. the two pad tokens)
    f0: torch.Tensor  # [2·frames] Hz, predictor F0 curve (differentiable)
    energy: torch.Tensor  # [2·frames] predictor energy (N) curve (differentiable)
    raw_durations: torch.Tensor  # [N+2] expected frames before rounding (differentiable)

    @property
    def sample_rate(self) -> int:
        return SAMPLE_RATE

    def numpy_audio(self) -> np.ndarray:
        return self.audio.detach().cpu().numpy().astype(np.float32)


def weights_path(onnx_path: Path | None = None) -> Path:
    """Cache file for the float weights recovered from ``onnx_path``."""
    src = Path(onnx_path) if onnx_path else model_path()
    return src.parent / WEIGHTS_FILENAME if onnx_path is None else src.with_suffix(".fp32.safetensors")


def _onnx_digest(path: Path) -> str:
    if path == model_path():
        return MODEL_SHA256  # verified by assets.model_path() when it was assembled
    return sha256_file(path)


def _load_state(onnx_path: Path) -> dict[str, torch.Tensor]:
    from safetensors import safe_open
    from safetensors.numpy import save_file

    out = weights_path(None if onnx_path == model_path() else onnx_path)
    digest = _onnx_digest(onnx_path)
    if out.is_file():
        try:
            with safe_open(str(out), framework="np") as f:
                meta = f.metadata() or {}
            if meta.get("onnx_sha256") == digest:
                from safetensors.torch import load_file as load_torch

                return load_torch(str(out))
            log.info("ONNX changed (hash %s != %s): rebuilding %s", meta.get("onnx_sha256"), digest, out)
        except Exception as e:  # corrupt cache: rebuild it
            log.warning("cached torch weights %s unreadable (%s); rebuilding", out, e)
    log.info("recovering float weights from %s", onnx_path)
    sd = onnx_state_dict(onnx_path)
    tmp = out.with_name(out.name + ".tmp")
    save_file(sd, str(tmp), metadata={"onnx_sha256": digest, "config": json.dumps(KokoroConfig().__dict__)})
    tmp.replace(out)
    return {k: torch.from_numpy(np.array(v)) for k, v in sd.items()}


class KokoroTorch(torch.nn.Module):
    """Kokoro with a differentiable style input and optional externally fixed durations."""

    def __init__(self, config: TorchModelConfig | None = None):
        super().__init__()
        self.config = (config or TorchModelConfig()).validate()
        torch.set_num_threads(int(self.config.threads))
        self.net = KokoroNet(KokoroConfig())
        onnx_path = Path(self.config.onnx_path) if self.config.onnx_path else model_path()
        missing, unexpected = self.net.load_state_dict(_load_state(onnx_path), strict=False)
        if missing or unexpected:
            raise RuntimeError(f"weight mismatch: missing {missing[:5]}, unexpected {unexpected[:5]}")
        self.net.eval()
        for p in self.net.parameters():
            p.requires_grad_(False)
        self.vocab = load_vocab()

    # ----------------------------------------------------------------------------- inputs
    def tokenize(self, phonemes: str) -> list[int]:
        """Phoneme string → ids (unknown symbols dropped, as the ONNX engine does)."""
        return [self.vocab[c] for c in phonemes if c in self.vocab]

    @staticmethod
    def _tokens(tokens: torch.Tensor | Sequence[int]) -> torch.Tensor:
        if isinstance(tokens, torch.Tensor):
            t = tokens.to(torch.long).reshape(1, -1)
        else:
            ids = list(tokens)
            if not ids:
                raise ValueError("no phoneme tokens to synthesise")
            t = torch.tensor([[0, *ids, 0]], dtype=torch.long)  # bare ids: add the pad tokens
        if t.shape[1] < 3:
            raise ValueError("tokens must hold at least one phoneme between the two pad tokens")
        if t.shape[1] > MAX_TOKENS + 2:
            raise ValueError(
                f"{t.shape[1] - 2} tokens exceed the model limit of {MAX_TOKENS}; chunk the text"
            )
        return t

    # ---------------------------------------------------------------------------- forward
    def forward(
        self,
        tokens: torch.Tensor | Sequence[int],
        style: torch.Tensor | np.ndarray,
        speed: float = 1.0,
        durations: torch.Tensor | Sequence[int] | None = None,
    ) -> TorchResult:
        """Render tokens (LongTensor [1, N+2] with pads, or a list of N ids) with a 256-d style.

        ``durations`` (N+2 frame counts, pads included) replaces the predicted ones, so an
        optimisation step is not disturbed by rounding jumps.
        """
        ids = self._tokens(tokens)
        s = torch.as_tensor(style, dtype=torch.float32).reshape(1, 256)
        if not torch.isfinite(s).all():
            raise ValueError("style vector contains NaN or infinity")
        if not 0.25 <= float(speed) <= 4.0:
            raise ValueError(f"speed must be between 0.25 and 4, got {speed}")
        net = self.net
        s_pro, s_tim = s[:, 128:], s[:, :128]
        bert = net.bert(ids)
        d_en = net.bert_encoder(bert).transpose(1, 2)
        d = net.predictor.text_encoder(d_en, s_pro)  # [1, T, 640]
        raw = net.predictor.durations(d)[0] / float(speed)
        if durations is None:
            dur = torch.round(raw.detach()).clamp(min=1).long()
        else:
            dur = torch.as_tensor(durations, dtype=torch.long).reshape(-1)
            if dur.shape[0] != ids.shape[1]:
                raise ValueError(
                    f"durations has {dur.shape[0]} entries, tokens has {ids.shape[1]} (pads included)"
                )
            if (dur < 0).any() or dur.sum() < 1:
                raise ValueError("durations must be non-negative frame counts with a positive total")
        frames = int(dur.sum())
        idx = torch.repeat_interleave(torch.arange(ids.shape[1]), dur)
        aln = torch.zeros(ids.shape[1], frames)
        aln[idx, torch.arange(frames)] = 1.0
        aln = aln[None]
        en = d.transpose(1, 2) @ aln
        f0, energy = net.predictor.f0n(en, s_pro)
        t_en = net.text_encoder(ids)
        asr = t_en @ aln
        audio = net.decoder(asr, f0, energy, s_tim)[0]
        return TorchResult(audio=audio, durations=dur, f0=f0[0], energy=energy[0], raw_durations=raw)

    def render(
        self, phonemes: str, voice, speed: float = 1.0, style: torch.Tensor | None = None
    ) -> TorchResult:
        """Render a phoneme string with a fedtts ``Voice`` (its row for this length) or an explicit style."""
        ids = self.tokenize(phonemes)
        if not ids:
            raise ValueError(f"no known phoneme symbols in {phonemes!r}")
        if style is None:
            style = torch.from_numpy(np.asarray(voice.style_for(len(ids)), dtype=np.float32))
        return self.forward(ids, style, speed=speed)


def load_torch_model(config: TorchModelConfig | None = None) -> KokoroTorch:
    """Process-wide shared instance (the weights take ~330 MB)."""
    cfg = (config or TorchModelConfig()).validate()
    key = (str(cfg.onnx_path), cfg.threads)
    with _lock:
        if key not in _loaded:
            _loaded[key] = KokoroTorch(cfg)
        return _loaded[key]
