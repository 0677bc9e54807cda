"""Style inversion check (``fedtts eval inversion``): invert toward a dev speaker, judge it.

Why here and not in :mod:`fedtts.engine.inversion`: the optimiser is what refine mode runs; this is
the measurement around it (renders with its own ONNX engine, Whisper, espeak-ng phonemes), which
belongs with training and evaluation, not in the engine layer. Needs the ``[train]`` extra (torch)
and, for the Whisper error, the ``[eval]`` extra.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fedtts.engine import EngineConfig, KokoroEngine
from fedtts.engine.assets import shared_dir
from fedtts.engine.inversion import SR, InversionConfig, _as_audio16k, invert_style, style_prior
from fedtts.engine.torch_model import load_torch_model
from fedtts.engine.torch_speaker import (
    SR_EMB,
    ge2e,
    load_audio,
    ltas,
    mfcc_similarity,
    mfcc_stats,
    pitch_track,
)
from fedtts.eval.torch_asr import error_rate, transcribe

__all__ = ["InversionCheck", "check_speaker", "evaluate_style"]


def evaluate_style(
    pack: np.ndarray,
    heldout_clips: Sequence,
    texts: Sequence[tuple[str, str]],
    lang: str = "en",
    background: np.ndarray | None = None,
    engine: KokoroEngine | None = None,
) -> dict[str, float]:
    """Render ``texts`` ([(text, phonemes)]) with the int8 ONNX engine and the pack, and compare to
    held-back recordings: Resemblyzer cosine (optimised), MFCC-statistics similarity and envelope
    distance (not optimised), voiced fraction and median F0 (pYIN), Whisper error."""
    engine = engine or KokoroEngine(EngineConfig(threads=2))
    enc = ge2e()
    refs = [_as_audio16k(c) for c in heldout_clips]
    ref_emb = np.stack([enc.embed_numpy(a) for a in refs]).mean(0)
    ref_emb /= np.linalg.norm(ref_emb)
    ref_mfcc = np.stack([mfcc_stats(a) for a in refs]).mean(0)
    ref_env = np.stack([ltas(a) for a in refs]).mean(0)
    ref_pitch = [pitch_track(a, SR_EMB) for a in refs]
    ref_f0 = np.concatenate([p[0] for p in ref_pitch])
    out: dict[str, list[float]] = {
        k: [] for k in ("ge2e", "mfcc", "envelope_db", "voiced", "f0_median", "asr_err")
    }
    for text, ph in texts:
        ids = engine.tokenize(ph)
        audio = engine.infer(ids, pack[min(len(ids), 510) - 1])
        a16 = load_audio(audio, SR)
        out["ge2e"].append(float(enc.embed_numpy(a16) @ ref_emb))
        if background is not None:
            out["mfcc"].append(mfcc_similarity(mfcc_stats(a16), ref_mfcc, background))
        out["envelope_db"].append(float(np.sqrt(np.mean((ltas(a16) - ref_env) ** 2))))
        f0, frac = pitch_track(a16, SR_EMB)
        out["voiced"].append(frac)
        out["f0_median"].append(float(np.median(f0)) if f0.size else 0.0)
        out["asr_err"].append(error_rate(text, transcribe(audio, SR, lang), lang))
    res = {k: float(np.mean(v)) for k, v in out.items() if v}
    res["target_f0_median"] = float(np.median(ref_f0)) if ref_f0.size else 0.0
    res["target_voiced"] = float(np.mean([p[1] for p in ref_pitch]))
    return res


# ----------------------------------------------------------------------------------- CLI check
_EVAL_TEXTS = [
    "The old bridge was closed for repairs last winter.",
    "Could you send me the report before the meeting tomorrow?",
    "Bright colors make the small kitchen feel much larger.",
]
_FIT_TEXTS = [
    "She said the weather would be nice today.",
    "We walked along the river until the sun went down.",
    "Please remember to lock the door when you leave.",
]


def _espeak(text: str) -> str:
    out = subprocess.run(
        ["espeak-ng", "--ipa", "-q", "-v", "en-us", text], capture_output=True, text=True, check=True
    )
    return " ".join(out.stdout.split())


@dataclass
class InversionCheck:
    """Held-back measures of a dev speaker before (the prior's mean style) and after inversion."""

    speaker: str
    steps: int
    seconds: float
    objective: tuple[float, float]  # first, best
    start: dict[str, float]
    end: dict[str, float]


def check_speaker(speaker: str, steps: int = 60, data: Path | None = None) -> InversionCheck:
    """Invert toward one dev speaker (its prompt clip) and measure on its held-back clips.

    Raises ValueError when the speaker has no prompt clip or no held-back clips in ``data``.
    """
    root = Path(data) if data else shared_dir() / "data" / "dev"
    rows = [json.loads(x) for x in (root / "manifest.jsonl").read_text().splitlines() if x.strip()]
    mine = [r for r in rows if r["speaker"] == speaker]
    fit = [str(root / r["path"]) for r in mine if r["role"] == "prompt"]
    held = [str(root / r["path"]) for r in mine if r["role"] != "prompt"]
    if not fit or not held:
        raise ValueError(f"speaker {speaker} needs a prompt clip and held-back clips in {root}")
    others = [r for r in rows if r["lang"] == "en" and r["speaker"] != speaker]
    background = np.stack([mfcc_stats(load_audio(str(root / r["path"]))) for r in others])
    model = load_torch_model()
    prior = style_prior()
    res = invert_style(
        model, fit, [_espeak(t) for t in _FIT_TEXTS], InversionConfig(steps=steps), prior=prior
    )
    texts = [(t, _espeak(t)) for t in _EVAL_TEXTS]
    start = evaluate_style(prior.pack(prior.mean), held, texts, background=background)
    end = evaluate_style(res.pack, held, texts, background=background)
    return InversionCheck(speaker, steps, res.seconds, (res.curve[0], min(res.curve)), start, end)
