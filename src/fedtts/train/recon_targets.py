"""Reconstruction targets for the one-pass tuner: per training speaker, the style fitted to one clip.

Why: the tuner learned from style-bank matches, a target no closer to the speaker than the nearest
synthetic render (0.11 on the independent ear). The reconstruction fit (:mod:`fedtts.engine.reconstruction`)
moves the timbre itself (0.46 on train/ speakers), so its fitted styles are the richer teacher.
Each speaker's prompt is its first 3–10 s clip with a ground-truth transcript; the fit starts from
the current tuner's one-pass style (the shipped ``tuner_v2`` was trained on targets started from
``tuner_v1``). Results are cached one file per speaker (resumable), in a folder keyed by the fit
settings and the start tuner's version.

    fedtts train recon-targets [--manifest M] [--limit N] [--budget S] [--steps K]
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from pathlib import Path

import numpy as np

from fedtts.base.tuner_weights import pack_to_style, stock_prior
from fedtts.engine.assets import cache_dir
from fedtts.engine.reconstruction import ReconConfig, TranscriptMismatch, fit_style
from fedtts.engine.torch_model import load_torch_model
from fedtts.voice.reference import load_reference
from fedtts.voice.refine import reference_phonemes
from fedtts.voice.tuner import VoiceTuner

__all__ = ["prompt_rows", "fit_targets"]


def prompt_rows(manifest: Path) -> dict[str, dict]:
    """speaker → its first 3–10 s clip that has a transcript (the clip the fit reconstructs)."""
    out: dict[str, dict] = {}
    for line in manifest.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        r = json.loads(line)
        if r["speaker"] not in out and 3.0 <= float(r.get("duration_s", 0)) <= 10.0 and r.get("text"):
            out[r["speaker"]] = {**r, "path": str((manifest.parent / r["path"]).resolve())}
    return out


def _settings(cfg: ReconConfig, start_version: str) -> dict:
    """What a target depends on: the fit settings and the tuner the fit starts from."""
    return {**dataclasses.asdict(cfg), "start": start_version}


def _folder(settings: dict) -> Path:
    key = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:12]
    return cache_dir() / "train" / f"recon_targets_{key}"


def fit_targets(manifest: Path, cfg: ReconConfig, speakers: list[str] | None = None) -> Path:
    """Fit (or reuse) one target style per speaker; returns the cache folder."""
    rows = prompt_rows(manifest)
    tuner = VoiceTuner()
    settings = _settings(cfg, tuner.version)
    folder = _folder(settings)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(settings, indent=1))
    model = load_torch_model()
    _, std, offsets = stock_prior()
    todo = [s for s in (speakers or sorted(rows)) if s in rows and not (folder / f"{s}.npz").is_file()]
    t_all = time.perf_counter()
    for i, spk in enumerate(todo, 1):
        r = rows[spk]
        ref = load_reference(r["path"])
        _, phonemes = reference_phonemes(ref, r["text"])
        start = pack_to_style(tuner.voice(ref).pack)
        n = len(model.tokenize(phonemes))
        t0 = time.perf_counter()
        try:
            res = fit_style(model, ref.audio, phonemes, start, std, offsets[max(n, 1) - 1], cfg)
        except TranscriptMismatch as e:
            print(f"[{i}/{len(todo)}] {spk}: skipped ({e})", flush=True)
            continue
        np.savez(
            folder / f"{spk}.npz",
            style=res.style.astype(np.float32),
            start=start,
            steps=len(res.curve),
            seconds=time.perf_counter() - t0,
            clip=r["path"],
        )
        eta = (time.perf_counter() - t_all) / i * (len(todo) - i)
        print(
            f"[{i}/{len(todo)}] {spk}: {len(res.curve)} steps, {time.perf_counter() - t0:.0f} s, eta {eta / 60:.0f} min",
            flush=True,
        )
    return folder
