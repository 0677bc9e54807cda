"""Release gate: a round's global model becomes `current` only if it does not score worse than its parent.

Why: cloning uses the registry's current version (`voice.tuner.default_tuner`), so one bad round — a
poisoned or broken update that passed the norm bounds, a DP noise draw that hurt — would reach every
user. The gate compares the server-side score (`evaluate_tuner` on the server's own public held-back
speakers; the independent ASV stays a ruler that only reports) of the new model with its parent's, on
the speakers both were scored on, and rejects the model when the mean per-speaker change is below
`-sigmas` standard errors of that mean (a paired comparison: std of the changes / √n).

Why that noise: the evaluation is deterministic (the same model scores the same, measured), so the
only noise is which speakers happen to be evaluated. Speakers differ far more in level (GE2E-norm sd
0.21 over 6 dev speakers) than in how one model change moves them; the level cancels in the paired
change, whose own spread is what another draw of speakers would move.

Why GE2E-norm by default (`gate-metric`): measured on 6 dev speakers, random steps of 0.3 / 3 / 30
prior std per exchanged coordinate changed it by +0.015 ± 0.017 (passes), -0.19 ± 0.08 and
-0.24 ± 0.09 (rejected), while the MFCC similarity, which spectral match pulls toward the reference's
colour by construction, moved -0.16 ± 0.13 at 3 (passes) and rose for some speakers of a poisoned
model. Few speakers (default 4) catch only large drops: evaluate more (`eval-limit`) for a sharper
gate. Numpy only; the server app calls it after each round.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

__all__ = ["GateDecision", "release_gate"]

Scores = dict[str, dict[str, float]]  # speaker -> {measure: value}, as `evaluate_tuner_speakers` returns


@dataclass
class GateDecision:
    """accepted (made current), rejected (stored only) or ungated (made current without a verdict,
    e.g. a round that was not evaluated), with the figures that decided it."""

    status: str
    reason: str
    metric: str
    score: float | None = None
    parent_score: float | None = None
    stderr: float | None = None
    tolerance: float | None = None
    speakers: int = 0

    @property
    def release(self) -> bool:
        return self.status != "rejected"

    def as_dict(self) -> dict:
        return asdict(self)


def _ungated(reason: str, metric: str) -> GateDecision:
    return GateDecision("ungated", reason, metric)


def release_gate(
    scores: Scores | None,
    parent_scores: Scores | None,
    parent: int | None,
    metric: str = "ge2e_norm",
    sigmas: float = 2.0,
) -> GateDecision:
    """Verdict on a new model with per-speaker `scores` against its parent version `parent`."""
    if not scores:
        return _ungated("not evaluated this round (eval-every)", metric)
    if not parent_scores:
        return _ungated(f"parent v{parent} has no per-speaker server score", metric)
    common = sorted(
        s for s in scores if metric in scores[s] and metric in parent_scores.get(s, {})
    )  # same speakers on both sides: the speakers' own spread does not enter the difference
    new = np.array([scores[s][metric] for s in common], np.float64)
    old = np.array([parent_scores[s][metric] for s in common], np.float64)
    ok = np.isfinite(old)
    if int(ok.sum()) < 2:
        return _ungated(f"{int(ok.sum())} speaker(s) scored on both sides: no noise estimate", metric)
    new, old = new[ok], old[ok]
    n = len(old)
    if not np.all(np.isfinite(new)):  # a broken model: no score to compare
        return GateDecision(
            "rejected", f"{metric} is not finite on {n} speakers", metric, None, None, None, None, n
        )
    change = new - old
    stderr = float(change.std(ddof=1) / math.sqrt(n))
    tol = float(sigmas) * stderr
    score, base = float(new.mean()), float(old.mean())
    d = GateDecision("accepted", "", metric, score, base, stderr, tol, n)
    figures = (
        f"{metric} {score:.4f} vs parent v{parent} {base:.4f} (change {score - base:+.4f}; tolerance "
        f"{tol:.4f} = {sigmas:g} x standard error of the per-speaker change over {n} speakers)"
    )
    if score < base - tol:
        d.status, d.reason = "rejected", f"worse than its parent: {figures}"
    else:
        d.reason = figures
    return d
