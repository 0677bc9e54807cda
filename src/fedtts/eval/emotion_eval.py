"""``fedtts eval emotion``: does emotion transfer move prosody in proportion to α, and keep the speaker?

A speaker voice (cloned from a clip) is given the prosody of an emotion reference (another clip) at
several strengths α. For each α the renders' F0 range (semitones, YIN) and speaking rate
(syllables/s) are measured with ``fedtts.eval.metrics`` (independent of the tuner's own prosody
features), and regressed on α: ``slope`` is the share of the speaker→reference gap covered per
unit α (1 = exactly proportional), ``r2`` how linear the move is. Speaker similarity (GE2E and the
independent MFCC signature) to the speaker's real recording is reported per α; its drop from α=0
to α=1 is the cost in identity.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fedtts.engine.assets import shared_dir
from fedtts.eval.clone_eval import _background, _load
from fedtts.eval.metrics import f0_range_st, mfcc_signature, signature_similarity, speaking_rate, yin_f0
from fedtts.pipeline.runtime import Runtime
from fedtts.voice import load_reference, resolve_reference
from fedtts.voice.speaker import embed
from fedtts.voice.style import emotion_from_reference

__all__ = ["EmotionEvalConfig", "run_emotion_eval", "dev_clip"]

SR = 24000
TEXTS = (
    "I really did not expect to see you here today, what a wonderful surprise.",
    "We have to leave right now, the train is about to depart from the station.",
)


@dataclass
class EmotionEvalConfig:
    speaker_clip: Path
    emotion_clip: Path
    speaker_other: Path | None = None  # another real recording of the speaker (similarity target)
    emotion_text: str | None = None  # transcript of the emotion clip (syllable-based rate)
    alphas: tuple[float, ...] = (0.0, 0.25, 0.5, 0.75, 1.0, 1.5)
    out: Path | None = None

    def validate(self) -> EmotionEvalConfig:
        for p in (self.speaker_clip, self.emotion_clip, self.speaker_other):
            if p is not None and not Path(p).is_file():
                raise ValueError(f"clip not found: {p}")
        if not self.alphas or 0.0 not in self.alphas or any(not 0 <= a <= 2 for a in self.alphas):
            raise ValueError(f"alphas must include 0 and lie in [0, 2], got {self.alphas}")
        return self


def _measure(synth, voice) -> dict[str, float]:
    audios = [synth.synthesize(t, voice).audio for t in TEXTS]
    rng = [f0_range_st(yin_f0(a, SR)) for a in audios]
    rate = [speaking_rate(a, SR, t) for a, t in zip(audios, TEXTS, strict=True)]
    joined = np.concatenate(audios)
    return {
        "f0_range_st": float(np.mean(rng)),
        "rate_syl_s": float(np.mean(rate)),
        "_emb": embed(joined, SR),
        "_sig": mfcc_signature(joined, SR),
    }


def _fit(alphas: np.ndarray, y: np.ndarray, y0: float, y_ref: float) -> dict[str, float]:
    """Regress the covered share of the gap (y − y0)/(y_ref − y0) on α."""
    gap = y_ref - y0
    share = (y - y0) / gap if abs(gap) > 1e-6 else np.zeros_like(y)
    slope = float(np.sum(alphas * share) / np.sum(alphas**2))  # through the origin: α=0 is the speaker
    ss_res = float(np.sum((share - slope * alphas) ** 2))
    ss_tot = float(np.sum((share - share.mean()) ** 2)) or 1e-12
    return {"slope": slope, "r2": 1 - ss_res / ss_tot, "gap": float(gap)}


def run_emotion_eval(cfg: EmotionEvalConfig) -> dict:
    cfg.validate()
    synth = Runtime().synthesizer()
    spk = resolve_reference(load_reference(cfg.speaker_clip), engine=synth.engine)
    emo_ref = load_reference(cfg.emotion_clip, text=cfg.emotion_text)
    real = _load(str(cfg.speaker_other or cfg.speaker_clip))
    real_emb, real_sig, bg = embed(real, SR), mfcc_signature(real, SR), _background()
    emo_real = _load(str(cfg.emotion_clip))
    ref = {
        "f0_range_st": f0_range_st(yin_f0(emo_real, SR)),
        "rate_syl_s": speaking_rate(emo_real, SR, cfg.emotion_text),
    }
    rows = []
    for a in cfg.alphas:
        m = _measure(synth, emotion_from_reference(spk, emo_ref, a, engine=synth.engine))
        rows.append(
            {
                "alpha": a,
                "f0_range_st": m["f0_range_st"],
                "rate_syl_s": m["rate_syl_s"],
                "ge2e_to_speaker": float(m["_emb"] @ real_emb),
                "mfcc_to_speaker": signature_similarity(m["_sig"], real_sig, bg),
            }
        )
    al = np.array([r["alpha"] for r in rows])
    base = rows[int(np.argmin(al))]
    one = min(rows, key=lambda r: abs(r["alpha"] - 1.0))
    report = {
        "speaker_clip": str(cfg.speaker_clip),
        "emotion_clip": str(cfg.emotion_clip),
        "emotion_reference": ref,
        "rows": rows,
        "f0_range_fit": _fit(
            al, np.array([r["f0_range_st"] for r in rows]), base["f0_range_st"], ref["f0_range_st"]
        ),
        "rate_fit": _fit(
            al, np.array([r["rate_syl_s"] for r in rows]), base["rate_syl_s"], ref["rate_syl_s"]
        ),
        "ge2e_drop_at_1": base["ge2e_to_speaker"] - one["ge2e_to_speaker"],
        "mfcc_drop_at_1": base["mfcc_to_speaker"] - one["mfcc_to_speaker"],
    }
    if cfg.out:
        Path(cfg.out).mkdir(parents=True, exist_ok=True)
        (Path(cfg.out) / "emotion_report.json").write_text(json.dumps(report, indent=1))
    return report


def dev_clip(role: str, speaker: str) -> tuple[str, str | None]:
    """(path, lower-case transcript) of a dev speaker's clip by role: the evaluation's default inputs."""
    dev = shared_dir() / "data" / "dev"
    for line in (dev / "manifest.jsonl").read_text().splitlines():
        r = json.loads(line)
        if r["speaker"] == speaker and r["role"] == role:
            return str(dev / r["path"]), (r.get("text") or "").lower() or None
    raise ValueError(f"no {role} clip of {speaker} in {dev}")
