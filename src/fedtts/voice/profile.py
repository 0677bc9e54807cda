"""A ``Voice``: a Kokoro style pack ``[510, 256]`` plus metadata; stock packs and weighted blends.

Dims 0–127 of a style row condition the decoder (timbre), 128–255 the prosody predictor; row k
is used for an input of k+1 phoneme tokens.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fedtts.engine.assets import load_stock_packs

PACK_SHAPE = (510, 256)
TIMBRE = slice(0, 128)
PROSODY = slice(128, 256)
MIN_PACE, MAX_PACE = 0.5, 2.0
EQ_LIMIT_DB = 18.0  # a stored curve is clipped to this on use (a hand-edited profile cannot blow up)


class VoiceError(ValueError):
    """An unknown voice name or a malformed voice specification."""


@dataclass
class Voice:
    """A style pack and where it came from."""

    name: str
    pack: np.ndarray
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        pack = np.asarray(self.pack, dtype=np.float32)
        if pack.size != PACK_SHAPE[0] * PACK_SHAPE[1]:
            raise VoiceError(f"voice '{self.name}': style pack must be {PACK_SHAPE}, got {pack.shape}")
        pack = pack.reshape(PACK_SHAPE)
        if not np.all(np.isfinite(pack)):
            raise VoiceError(f"voice '{self.name}': style pack contains NaN or infinity")
        self.pack = pack

    @property
    def pace(self) -> float:
        """The voice's own speaking-rate factor (multiplies the request's speed; 1 = model default).

        Rate is a trait of a voice (and of an emotion), and Kokoro's ``speed`` input is the one
        control that moves it reliably; the prosody half barely does.
        """
        pace = float(self.meta.get("pace", 1.0))
        return pace if np.isfinite(pace) and MIN_PACE <= pace <= MAX_PACE else 1.0

    @property
    def eq_db(self) -> np.ndarray | None:
        """The voice's spectral-match curve (dB per mel band, see ``voice.spectral_match``), if any."""
        eq = self.meta.get("eq_db")
        if eq is None:
            return None
        g = np.asarray(eq, dtype=np.float32).ravel()
        if g.size < 2 or not np.all(np.isfinite(g)):
            return None
        return np.clip(g, -EQ_LIMIT_DB, EQ_LIMIT_DB)

    def style_for(self, n_tokens: int) -> np.ndarray:
        """The style row Kokoro uses for an input of ``n_tokens`` phoneme tokens."""
        return self.pack[min(max(int(n_tokens), 1), PACK_SHAPE[0]) - 1]


def is_clone(voice) -> bool:
    """True for a voice copied from someone's speech (a saved profile, a ``--ref`` clip, a blend or
    emotion transfer that includes one): its output must carry the watermark."""
    meta = getattr(voice, "meta", None) or {}
    return bool(meta.get("kind") == "profile" or meta.get("clip_sha256") or meta.get("cloned"))


DEFAULT_VOICE = "jf_alpha"  # the stock voice used when none is named (CLI, API, UI, batch, eval)


def stock_voice_names() -> list[str]:
    return sorted(load_stock_packs())


def stock_voice(name: str) -> Voice:
    packs = load_stock_packs()
    if name not in packs:
        raise VoiceError(f"unknown voice '{name}'; stock voices: {', '.join(sorted(packs))}")
    return Voice(name=name, pack=packs[name].copy(), meta={"kind": "stock"})


def blend(parts: list[tuple[Voice, float]], name: str | None = None) -> Voice:
    """Weighted average of packs; weights are normalised to sum to 1."""
    if not parts:
        raise VoiceError("empty voice blend")
    weights = np.array([w for _, w in parts], dtype=np.float64)
    if np.any(weights < 0) or not np.isfinite(weights).all() or weights.sum() <= 0:
        raise VoiceError(f"blend weights must be non-negative and not all zero, got {weights.tolist()}")
    weights /= weights.sum()
    pack = sum(w * v.pack.astype(np.float64) for (v, _), w in zip(parts, weights, strict=True))
    label = name or ",".join(f"{v.name}:{w:.3g}" for (v, _), w in zip(parts, weights, strict=True))
    meta: dict[str, Any] = {"kind": "blend", "parts": label}
    clones = [v.name for v, _ in parts if is_clone(v)]
    if clones:  # a blend that includes a clone is a clone: its output is watermarked
        meta.update({"cloned": True, "clones": clones})
    pace = float(sum(w * v.pace for (v, _), w in zip(parts, weights, strict=True)))
    if abs(pace - 1.0) > 1e-6:
        meta["pace"] = pace
    curves = [v.eq_db for v, _ in parts]
    if any(c is not None for c in curves):  # a voice without a curve counts as flat
        size = max(c.size for c in curves if c is not None)
        flat = np.zeros(size, np.float32)
        if all(c is None or c.size == size for c in curves):
            eq = sum(w * (flat if c is None else c) for c, w in zip(curves, weights, strict=True))
            meta["eq_db"] = [round(float(g), 2) for g in eq]
    return Voice(name=label, pack=pack.astype(np.float32), meta=meta)


_SPEC_PART = re.compile(r"^\s*([^:,]+?)\s*(?::\s*([0-9]*\.?[0-9]+)\s*)?$")


def parse_voice_spec(spec: str, resolve=None) -> Voice:
    """``"jf_alpha"`` or ``"jf_alpha:0.7,jm_kumo:0.3"``; ``resolve(name)`` finds non-stock voices."""
    resolve = resolve or stock_voice
    if not spec or not spec.strip():
        raise VoiceError("empty voice name")
    items = spec.split(",")
    if len(items) == 1 and ":" not in spec:
        return resolve(spec.strip())
    parts = []
    for item in items:
        m = _SPEC_PART.match(item)
        if not m:
            raise VoiceError(f"malformed voice blend part {item!r} in {spec!r}; use NAME:WEIGHT,NAME:WEIGHT")
        parts.append((resolve(m.group(1)), float(m.group(2)) if m.group(2) else 1.0))
    return blend(parts, name=spec.strip())
