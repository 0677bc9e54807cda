"""One enrollment cache for every simulated or real device: the ClientApp and the privacy audit.

Why one: a device's enrollment (clip features, then its target style) is the costly part of joining a
federation, and the audit enrolls the same speakers the same way (`enroll_speaker`). Two caches keyed
differently computed it twice and could disagree on when a result is stale. Here the key follows what
the result depends on, and nothing else:

* features: the clips' *content* (not paths or mtimes, so a restored folder keeps its enrollment), the
  clips used (`EnrollConfig.max_clips`) and the F0 tracker version (prosody features change with it);
* target style: the features' key, the style bank (a rebuilt bank must not reuse old matches), the
  match settings and the inversion steps (`refine_steps`; each N is its own target).

Layout (a device: `data_dir()/federated/enrollment`; the audit, which enrolls many speakers at once,
keeps its copy under `cache_dir()/audit`): `<features key>.npz` (features, clips used, or an `unusable`
marker so a clip set without speech is not decoded again) and `<features key>-<style key>.npz`.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from fedtts.engine.assets import data_dir
from fedtts.federated.data import files_digest
from fedtts.voice.bank import bank_digest
from fedtts.voice.enroll import EnrollConfig, enroll_features, enroll_speaker
from fedtts.voice.prosody import TRACKER_VERSION

__all__ = ["DeviceEnrollment", "cache_root", "features_file", "style_file", "enroll_cached"]

log = logging.getLogger(__name__)


@dataclass
class DeviceEnrollment:
    """What a device keeps: features [n, 262] of its usable clips, its target style [256] (None when
    only features were asked for), those clips, and the seconds spent computing now (0 if cached)."""

    features: np.ndarray
    style: np.ndarray | None
    clips: list[str]
    seconds: float


def cache_root() -> Path:
    return data_dir() / "federated" / "enrollment"


def _features_key(clips: Sequence[str], cfg: EnrollConfig) -> str:
    used = [str(c) for c in list(clips)[: int(cfg.max_clips)]]
    salt = f"f0_tracker={TRACKER_VERSION}\nmax_clips={cfg.max_clips}\n"
    return files_digest(used, salt)[:24]


def _style_key(cfg: EnrollConfig) -> str:
    digest = bank_digest()
    if digest is None:
        raise FileNotFoundError("style bank src/fedtts/data/style_bank_v1.npz is missing (fedtts train bank)")
    text = f"bank={digest}\n" + "".join(
        f"{k}={v}\n" for k, v in sorted(asdict(cfg).items()) if k != "max_clips"
    )
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def features_file(clips: Sequence[str], cfg: EnrollConfig | None = None, root: Path | None = None) -> Path:
    return (root or cache_root()) / f"{_features_key(clips, cfg or EnrollConfig())}.npz"


def style_file(
    clips: Sequence[str], refine_steps: int = 0, cfg: EnrollConfig | None = None, root: Path | None = None
) -> Path:
    """The target-style file of these clips for `refine_steps` (changes with content and style bank)."""
    c = cfg or EnrollConfig(refine_steps=int(refine_steps))
    return (root or cache_root()) / f"{_features_key(clips, c)}-{_style_key(c)}.npz"


def _write(path: Path, **arrays: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp.npz")
    np.savez(tmp, **arrays)
    tmp.replace(path)  # atomic: two devices of one simulation may enroll the same clips at once


def _read(path: Path) -> dict[str, np.ndarray] | None:
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except (OSError, ValueError) as e:  # a torn or foreign file: enroll again
        log.warning("enrollment cache %s unreadable (%s): enrolling again", path, e)
        return None


def enroll_cached(
    clips: Sequence[str], refine_steps: int = 0, *, style: bool = True, root: Path | None = None
) -> DeviceEnrollment:
    """Enrollment of these clips from the cache, else computed (`enroll_speaker`) and cached.

    `style=False` needs only the features (no style bank). Raises ValueError when no clip is usable
    (remembered, so the clips are not decoded again). `refine_steps` > 0 polishes the bank match by
    gradient inversion through the differentiable Kokoro (torch, 5–50 s a step on one core): minutes
    once per device, then cached, since the clips do not change.
    """
    cfg = EnrollConfig(refine_steps=int(refine_steps)).validate()
    ffile = features_file(clips, cfg, root)
    feats = _read(ffile)
    if feats is not None and "unusable" in feats:
        raise ValueError(f"no usable clip among {len(clips)} for enrollment (cached in {ffile.name})")
    sfile = style_file(clips, cfg=cfg, root=root) if style else None
    cached_style = _read(sfile) if sfile is not None else None
    if feats is not None and (not style or cached_style is not None):
        target = None if cached_style is None else np.asarray(cached_style["style"], np.float32)
        return DeviceEnrollment(feats["features"], target, [str(c) for c in feats["clips"]], 0.0)
    t0 = time.perf_counter()
    try:
        if style:  # features and target together (the style needs the features anyway)
            enr = enroll_speaker(list(clips), cfg)
            f, used, target = enr.features, enr.clips, np.asarray(enr.style, np.float32)
        else:
            (f, used), target = enroll_features(list(clips)[: int(cfg.max_clips)]), None
    except ValueError:
        _write(ffile, unusable=np.array(1))
        raise
    f = np.asarray(f, np.float32)
    if feats is None:
        _write(ffile, features=f, clips=np.array([str(c) for c in used]))
    if sfile is not None and target is not None:
        _write(sfile, style=target)
    return DeviceEnrollment(f, target, [str(c) for c in used], time.perf_counter() - t0)
