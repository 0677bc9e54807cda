"""Bounds on client updates: reject NaN/inf or oversized updates, clip to a norm bound.

Why: one broken or malicious device must not wreck the global tuner. Without SecAgg the
server checks each update; with SecAgg+ it only sees the sum, so clients clip locally
(fixedclipping_mod) and the server can only check the aggregate.
"""

from __future__ import annotations

import numpy as np

__all__ = ["update_norm", "check_update", "clip_update"]


def update_norm(update: list[np.ndarray]) -> float:
    """Global L2 norm over all arrays of an update."""
    return float(np.sqrt(sum(float(np.sum(np.square(u, dtype=np.float64))) for u in update)))


def check_update(update: list[np.ndarray], max_norm: float) -> str | None:
    """Reason to reject the update, or None if it is within bounds."""
    if not update:
        return "empty update"
    for i, u in enumerate(update):
        if not np.all(np.isfinite(u)):
            return f"array {i} has NaN/inf"
    n = update_norm(update)
    if n > max_norm:
        return f"norm {n:.4g} exceeds bound {max_norm:.4g}"
    return None


def clip_update(update: list[np.ndarray], clip: float) -> list[np.ndarray]:
    """Scale the update so its global norm is at most `clip`."""
    n = update_norm(update)
    scale = min(1.0, clip / n) if n > 0 else 1.0
    return [(u * scale).astype(u.dtype) for u in update]
