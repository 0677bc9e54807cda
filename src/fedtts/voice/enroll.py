"""On-device enrollment: a speaker's clips → tuner features and the target style the tuner should predict.

Why: federated training needs, on each device, a target for "the style that sounds like this
person" without sending anything away. The target comes from the public style bank (the bank
styles whose renders sound closest, by GE2E and median F0), so it costs a second, not the minutes
of a gradient inversion; ``refine_steps`` > 0 polishes it by inversion through the differentiable
model when torch is installed and the user can wait.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from fedtts.base.tuner_weights import style_to_pack
from fedtts.voice.bank import default_bank
from fedtts.voice.profile import Voice
from fedtts.voice.reference import Reference, ReferenceError, load_reference
from fedtts.voice.refine import refine_style
from fedtts.voice.tuner import VoiceTuner

__all__ = ["EnrollConfig", "Enrollment", "enroll_speaker", "enroll_features", "bank_voice"]

log = logging.getLogger(__name__)


@dataclass
class EnrollConfig:
    k: int = 8  # bank styles averaged
    temperature: float = 0.01  # softmax temperature on the match score
    refine_steps: int = 0  # gradient inversion steps after the bank match (torch)
    max_clips: int = 8

    def validate(self) -> EnrollConfig:
        if int(self.k) < 1:
            raise ValueError(f"k must be >= 1, got {self.k}")
        if not float(self.temperature) > 0:
            raise ValueError(f"temperature must be > 0, got {self.temperature}")
        if int(self.refine_steps) < 0 or int(self.max_clips) < 1:
            raise ValueError("refine_steps must be >= 0 and max_clips >= 1")
        return self


@dataclass
class Enrollment:
    """Stays on the device: features of each clip, the target style, and the voice pack built from it."""

    features: np.ndarray  # [n_clips, 262]
    style: np.ndarray  # [256]
    pack: np.ndarray  # [510, 256]
    clips: list[str] = field(default_factory=list)

    def voice(self, name: str = "enrolled") -> Voice:
        return Voice(name=name, pack=self.pack, meta={"kind": "clone", "method": "bank"})


def enroll_features(clips: Sequence[str | Path]) -> tuple[np.ndarray, list[str]]:
    """Tuner features [n, 262] of the usable clips (cleaned like any reference); unusable ones skipped."""
    feats, used = [], []
    for c in clips:
        try:
            ref = load_reference(c)
        except ReferenceError as e:
            log.warning("enrollment: skipping %s", e)
            continue
        feats.append(VoiceTuner.featurize(ref))
        used.append(str(c))
    if not feats:
        raise ValueError(f"no usable clip among {len(clips)} for enrollment")
    return np.stack(feats).astype(np.float32), used


def enroll_speaker(clips: Sequence[str | Path], cfg: EnrollConfig | None = None) -> Enrollment:
    """Features and target style for one speaker's clips (all on this machine)."""
    cfg = (cfg or EnrollConfig()).validate()
    feats, used = enroll_features(list(clips)[: int(cfg.max_clips)])
    style, _ = default_bank().match(feats, k=cfg.k, temperature=cfg.temperature)
    if cfg.refine_steps:
        style = refine_style(style, used, steps=int(cfg.refine_steps))
    style = np.asarray(style, np.float32)
    return Enrollment(features=feats, style=style, pack=style_to_pack(style), clips=used)


def bank_voice(ref: Reference) -> Voice:
    """The "bank" cloning method (:data:`fedtts.voice.resolve.METHODS`): the best-matching bank styles."""
    style, top = default_bank().match(VoiceTuner.featurize(ref))
    log.info("bank match for %s: styles %s", ref.label, top.tolist())
    return Voice(name="clone", pack=style_to_pack(style), meta={"kind": "clone", "method": "bank"})
