"""Gradient training of the linear voice tuner (numpy, Adam), shared by central and federated training.

Moved from ``fedtts.voice.tuner_train``: synthesis never fits a tuner, so the fitting code lives in
the training package (:mod:`fedtts.train`), which the runtime never imports.

Why numpy: the tuner is a small linear model, so a device can train it in milliseconds without
PyTorch, and the same :func:`fit_tuner` is the local step of a Flower client and the whole of
``fedtts train tuner``. The loss is the squared error in *prior standard deviations* (every style
dimension counts by how much it varies among real voices), plus L2 on the maps and an optional
FedProx term that keeps a client near the global model it started from.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from tqdm import tqdm

from fedtts.base.tuner_weights import N_EMB, N_FEATURES, TunerWeights, stock_prior
from fedtts.voice.bank import default_bank
from fedtts.voice.enroll import enroll_features
from fedtts.voice.prosody import TRACKER_VERSION

__all__ = ["FitConfig", "fit_tuner", "tuner_loss", "feature_stats", "predict_raw", "load_targets"]


@dataclass
class FitConfig:
    """Adam on mini-batches; ``prox_mu`` > 0 turns a local fit into a FedProx step."""

    epochs: int = 30
    lr: float = 5e-4
    batch_size: int = 32
    l2: float = 0.3  # strong: 262 inputs, a few hundred speakers
    prox_mu: float = 0.0
    seed: int = 0
    trainable: tuple[str, ...] = TunerWeights.TRAINABLE  # the rest stay fixed (federation: FEDERATED)

    def validate(self) -> FitConfig:
        if int(self.epochs) < 1:
            raise ValueError(f"epochs must be >= 1, got {self.epochs}")
        if not 0 < float(self.lr) <= 1:
            raise ValueError(f"lr must be in (0, 1], got {self.lr}")
        if int(self.batch_size) < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if float(self.l2) < 0 or float(self.prox_mu) < 0:
            raise ValueError(f"l2 and prox_mu must be >= 0, got {self.l2}, {self.prox_mu}")
        bad = [k for k in self.trainable if k not in TunerWeights.TRAINABLE]
        if bad or not self.trainable:
            raise ValueError(f"trainable must name some of {TunerWeights.TRAINABLE}, got {self.trainable}")
        return self


def feature_stats(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Standardisation statistics stored with the weights (fixed once, so updates stay comparable).

    Each std is floored at half its block's median (embedding, prosody): a dimension that barely
    varies among synthetic renders must not blow real voices up to z-scores of 100.
    """
    f = np.asarray(features, np.float64)
    std = f.std(0)
    for blk in (slice(0, N_EMB), slice(N_EMB, N_FEATURES)):
        std[blk] = np.maximum(std[blk], 0.5 * np.median(std[blk]))
    return f.mean(0).astype(np.float32), (std + 1e-6).astype(np.float32)


def _check(features: np.ndarray, targets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x = np.atleast_2d(np.asarray(features, np.float32))
    y = np.atleast_2d(np.asarray(targets, np.float32))
    if x.shape[1] != N_FEATURES or y.shape[1] != 256 or len(x) != len(y) or len(x) == 0:
        raise ValueError(f"need features [n, {N_FEATURES}] and targets [n, 256], got {x.shape}, {y.shape}")
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
        raise ValueError("features/targets contain NaN or inf")
    return x, y


def predict_raw(w: TunerWeights, xn: np.ndarray) -> np.ndarray:
    """Unclamped linear prediction for standardised features ``xn`` [n, 262]."""
    e, p = xn[:, :N_EMB], xn[:, N_EMB:]
    return np.concatenate([e @ w.w_t.T + w.b_t, p @ w.w_p.T + e @ w.w_c.T + w.b_p], axis=1)


def _normalise(w: TunerWeights, x: np.ndarray) -> np.ndarray:
    return ((x - w.feat_mean) / w.feat_std).astype(np.float32)


def tuner_loss(weights: TunerWeights, features: np.ndarray, targets: np.ndarray) -> float:
    """Mean squared style error in prior standard deviations (no regularisers)."""
    x, y = _check(features, targets)
    _, std, _ = stock_prior()
    r = (predict_raw(weights, _normalise(weights, x)) - y) / std
    return float(np.mean(r**2))


def fit_tuner(
    weights: TunerWeights,
    features: np.ndarray,
    targets: np.ndarray,
    cfg: FitConfig | None = None,
    callback: Callable[[int, float], None] | None = None,
) -> tuple[TunerWeights, list[float]]:
    """Fit the trainable maps to (features → target styles); returns new weights and the loss per epoch."""
    cfg = (cfg or FitConfig()).validate()
    x, y = _check(features, targets)
    _, std, _ = stock_prior()
    inv_var = (1.0 / std**2).astype(np.float32)
    xn = _normalise(weights, x)
    start = {k: np.asarray(getattr(weights, k), np.float32) for k in TunerWeights.TRAINABLE}
    params = {k: v.copy() for k, v in start.items()}
    m = {k: np.zeros_like(v) for k, v in params.items()}
    v2 = {k: np.zeros_like(v) for k, v in params.items()}
    b1, b2, eps = 0.9, 0.999, 1e-8
    rng = np.random.default_rng(cfg.seed)
    n = len(xn)
    bs = min(int(cfg.batch_size), n)
    t = 0
    curve: list[float] = []
    for epoch in range(int(cfg.epochs)):
        order = rng.permutation(n)
        for i in range(0, n, bs):
            idx = order[i : i + bs]
            xb, yb = xn[idx], y[idx]
            e, p = xb[:, :N_EMB], xb[:, N_EMB:]
            cur = replace(weights, **params)
            r = (predict_raw(cur, xb) - yb) * inv_var * (2.0 / (len(idx) * 256))
            rt, rp = r[:, :128], r[:, 128:]
            grads = {
                "w_t": rt.T @ e + 2 * cfg.l2 * params["w_t"],
                "b_t": rt.sum(0),
                "w_p": rp.T @ p + 2 * cfg.l2 * params["w_p"],
                "w_c": rp.T @ e + 2 * cfg.l2 * params["w_c"],
                "b_p": rp.sum(0),
            }
            t += 1
            for k, g in grads.items():
                if k not in cfg.trainable:
                    continue
                if cfg.prox_mu:
                    g = g + cfg.prox_mu * (params[k] - start[k])
                m[k] = b1 * m[k] + (1 - b1) * g
                v2[k] = b2 * v2[k] + (1 - b2) * g * g
                mh, vh = m[k] / (1 - b1**t), v2[k] / (1 - b2**t)
                params[k] = (params[k] - cfg.lr * mh / (np.sqrt(vh) + eps)).astype(np.float32)
        loss = tuner_loss(replace(weights, **params), x, y)
        curve.append(loss)
        if callback:
            callback(epoch, loss)
    return replace(weights, **params), curve


# ------------------------------------------------------------------------- central training (CLI)
def _manifest_speakers(manifest: Path, min_s: float = 2.5) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for n, line in enumerate(manifest.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            path, spk = row["path"], row["speaker"]
        except (ValueError, KeyError) as e:
            raise ValueError(f"{manifest}:{n}: bad manifest line ({e})") from e
        if float(row.get("duration_s", min_s)) >= min_s:
            out.setdefault(spk, []).append(str(manifest.parent / path))
    return out


def speaker_dataset(manifest: Path, cache: Path | None = None) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """speaker → (clip features [n, 262], bank target style [256]); features cached on disk."""
    speakers = _manifest_speakers(manifest)
    blob = json.dumps({"speakers": speakers, "f0_tracker": TRACKER_VERSION}, sort_keys=True)
    key = hashlib.sha256(blob.encode()).hexdigest()[:16]
    feats: dict[str, np.ndarray] = {}
    if cache is not None and (cache / f"features_{key}.npz").is_file():
        with np.load(cache / f"features_{key}.npz") as z:
            feats = {k: z[k] for k in z.files}
    for spk, clips in tqdm(sorted(speakers.items()), desc="features", disable=len(feats) == len(speakers)):
        if spk not in feats:
            try:
                feats[spk] = enroll_features(clips)[0]
            except ValueError:
                continue
    if cache is not None:
        cache.mkdir(parents=True, exist_ok=True)
        np.savez(cache / f"features_{key}.npz", **feats)
    bank = default_bank()
    return {spk: (f, bank.match(f)[0]) for spk, f in feats.items()}


def load_targets(folder: Path) -> dict[str, np.ndarray]:
    """speaker → reconstruction-fitted style [256], as :mod:`fedtts.train.recon_targets` stores them."""
    out = {}
    for p in sorted(Path(folder).glob("*.npz")):
        with np.load(p) as z:
            out[p.stem] = z["style"].astype(np.float32)
    return out


def _plot(curves: dict[str, list[float]], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    for name, c in curves.items():
        ax.plot(range(1, len(c) + 1), c, label=name)
    ax.set_xlabel("epoch")
    ax.set_ylabel("style error (prior std², mean)")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def train_tuner(
    manifest: Path | None,
    out: Path,
    plots: Path,
    cfg: FitConfig,
    val_fraction: float = 0.15,
    cache: Path | None = None,
    recon_targets: dict[str, np.ndarray] | None = None,
) -> dict:
    """Fit the tuner on the style bank's synthetic pairs (+ real speakers' targets if ``manifest``).

    A real speaker's target is its style-bank match, or with ``recon_targets`` (speaker → style fitted
    by reconstruction, :mod:`fedtts.train.recon_targets`) that style's timbre half beside the bank
    match's prosody half; speakers without a reconstruction target are then left out.
    """
    t0 = time.perf_counter()
    bank = default_bank()
    xs, ys = bank.features, bank.styles
    info: dict = {"bank": bank.version, "synthetic_pairs": len(xs), "fit": cfg.__dict__}
    xv = yv = None
    if manifest is not None:
        data = speaker_dataset(manifest, cache)
        if recon_targets is not None:
            data = {
                s: (f, np.concatenate([recon_targets[s][:128], t[128:]]).astype(np.float32))
                for s, (f, t) in data.items()
                if s in recon_targets
            }
            info["targets"] = f"reconstruction ({len(data)} speakers)"
        names = sorted(data)
        rng = np.random.default_rng(cfg.seed)
        val = set(rng.choice(names, max(1, int(len(names) * val_fraction)), replace=False))
        tr = [data[s] for s in names if s not in val]
        va = [data[s] for s in names if s in val]
        xr = np.concatenate([f for f, _ in tr])
        yr = np.concatenate([np.repeat(t[None], len(f), 0) for f, t in tr])
        xv = np.concatenate([f for f, _ in va])
        yv = np.concatenate([np.repeat(t[None], len(f), 0) for f, t in va])
        mean, std = feature_stats(xr)
        xs, ys = np.concatenate([xr, xs]), np.concatenate([yr, ys])
        info.update(train_speakers=len(tr), val_speakers=len(va), real_clips=len(xr), manifest=str(manifest))
    else:
        mean, std = feature_stats(xs)
    w = TunerWeights.init(mean, std)
    curves: dict[str, list[float]] = {"train": [], "validation (held-out speakers)": []}

    def _cb(epoch: int, loss: float) -> None:
        curves["train"].append(loss)

    w, _ = fit_tuner(w, xs, ys, cfg, callback=_cb)
    # validation curve: refit epoch by epoch is wasteful, so evaluate the final and a per-epoch replay
    if xv is not None:
        replay = TunerWeights.init(mean, std)
        for e in range(int(cfg.epochs)):
            replay, _ = fit_tuner(replay, xs, ys, replace(cfg, epochs=1, seed=cfg.seed + e))
            curves["validation (held-out speakers)"].append(tuner_loss(replay, xv, yv))
        info["val_loss"] = curves["validation (held-out speakers)"][-1]
        info["val_loss_start"] = tuner_loss(TunerWeights.init(mean, std), xv, yv)
    else:
        curves.pop("validation (held-out speakers)")
    info["train_loss"] = curves["train"][-1]
    info["seconds"] = round(time.perf_counter() - t0, 1)
    w.version = (
        "tuner-v0-synthetic" if manifest is None else "tuner-v2-recon" if recon_targets else "tuner-bank"
    )
    w.info = json.dumps(info)
    out.parent.mkdir(parents=True, exist_ok=True)
    w.save(out)
    plots.mkdir(parents=True, exist_ok=True)
    _plot(curves, plots / f"{w.version}_curve.png", f"{w.version}: tuner fit")
    (plots / f"{w.version}_log.json").write_text(json.dumps({**info, "curves": curves}, indent=1))
    return info
