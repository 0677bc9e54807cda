"""The honest-but-curious server attack of `audit.py` on real speakers and real updates (`fedtts fl audit`).

Why a separate module: `audit.py` is the attack maths (numpy, tested on synthetic data); this module
builds what a real federation would produce — one client per training speaker of the shared manifest,
its private enrollment (`enroll_speaker` on its own clips), its update of the whole tuner from the global
weights (the full 5-map exchange; the federation now sends only FEDERATED arrays, not re-audited here)
— and what the attacker holds: one public
recording per candidate speaker. Enrollments use the devices' cache (`federated.enrollment`), kept
under `cache_dir()/audit`, so reruns are fast.
"""

from __future__ import annotations

import importlib.resources as resources
import logging
import math
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from fedtts.engine.assets import cache_dir, registry_dir, shared_dir
from fedtts.federated.audit import SHARED, AuditConfig, run_audit
from fedtts.federated.data import train_speakers
from fedtts.federated.enrollment import enroll_cached
from fedtts.federated.model import weights_from_version
from fedtts.federated.versions import VersionRegistry
from fedtts.voice.bank import default_bank
from fedtts.voice.tuner import TunerWeights

__all__ = [
    "AuditRunConfig",
    "AuditClient",
    "select_clients",
    "enroll_client",
    "global_weights",
    "client_updates",
    "run_real_audit",
    "summarise",
    "table_lines",
]

log = logging.getLogger(__name__)

SELECTION_SEED = 0  # fixed order of the eligible speakers: N clients are a prefix of N+1 clients


@dataclass
class AuditRunConfig:
    """clients: speakers taken from the manifest (each with >= 2 clips); cohort: updates summed per
    SecAgg+ round; clip / noise_multiplier: the federation's central-DP setting (FLConfig defaults);
    local_*: the client's local step (FLConfig defaults); seeds: repeats of the noise and cohort draws."""

    clients: int = 40
    cohort: int = 10
    clip: float = 0.5
    noise_multiplier: float = 0.5
    seeds: tuple[int, ...] = (0, 1, 2)
    local_epochs: int = 5
    lr: float = 0.01
    batch_size: int = 32
    l2: float = 1e-3
    manifest: str = ""  # "" = $FEDTTS_SHARED or <repo>/../shared, data/train/manifest.jsonl
    registry: str = ""  # "" = data_dir()/federated/models
    method: str = "bias"  # single-update attack of audit.py; with trained global weights "bias" is stronger
    shared: str = "federated"  # arrays the server sees: the federated subset (as deployed) or "all"

    def validate(self) -> AuditRunConfig:
        if self.clients < 2:
            raise ValueError(f"--clients must be >= 2, got {self.clients}")
        if not 1 <= self.cohort <= self.clients:
            raise ValueError(f"--cohort must be in [1, clients={self.clients}], got {self.cohort}")
        if not (self.clip > 0 and math.isfinite(self.clip)):
            raise ValueError(f"--clip must be > 0, got {self.clip}")
        if not (self.noise_multiplier > 0 and math.isfinite(self.noise_multiplier)):
            raise ValueError(f"--noise-multiplier must be > 0, got {self.noise_multiplier}")
        if self.method not in ("svd", "bias"):
            raise ValueError(f"--method must be svd or bias, got {self.method!r}")
        if self.shared not in SHARED:
            raise ValueError(f"--shared must be one of {', '.join(SHARED)}, got {self.shared!r}")
        if not self.seeds:
            raise ValueError("--seeds needs at least one seed")
        if self.local_epochs < 1 or not 0 < self.lr <= 1 or self.batch_size < 1 or self.l2 < 0:
            raise ValueError("local-epochs >= 1, 0 < lr <= 1, batch-size >= 1, l2 >= 0 required")
        return self

    def manifest_path(self) -> Path:
        if self.manifest:
            return Path(self.manifest)

        return shared_dir() / "data" / "train" / "manifest.jsonl"


@dataclass
class AuditClient:
    """One simulated device: private clip features + target style; `public` is the attacker's copy of
    a different clip of the same speaker."""

    label: str
    public: np.ndarray  # [262]
    features: np.ndarray  # [n, 262]
    style: np.ndarray  # [256]
    clips: list[str] = field(default_factory=list)


# ------------------------------------------------------------------ speakers and enrollment
def select_clients(manifest: Path, n: int) -> list[tuple[str, str, list[str]]]:
    """(speaker, public clip, private clips) for every speaker with >= 2 clips, in a fixed shuffled
    order (take a prefix). The public clip is the speaker's first clip by path."""
    if not manifest.is_file():
        raise FileNotFoundError(f"training manifest not found: {manifest} (set FEDTTS_SHARED)")
    speakers = [(s, list(c)) for s, c in train_speakers(str(manifest.parent)) if len(c) >= 2]
    if len(speakers) < n:
        raise ValueError(f"{manifest}: only {len(speakers)} speakers have >= 2 clips, asked for {n} clients")
    order = np.random.default_rng(SELECTION_SEED).permutation(len(speakers))
    return [(speakers[i][0], speakers[i][1][0], speakers[i][1][1:]) for i in order]


def _cache_root() -> Path:
    return cache_dir() / "audit"


def enroll_client(label: str, public: str, private: list[str], need_style: bool = True) -> AuditClient | None:
    """The client's enrollment (`enroll_speaker` on its private clips) and the attacker's public features,
    from the enrollment cache devices use (`federated.enrollment`, kept under cache_dir()/audit): features
    and the bank-dependent style are keyed apart, so a rebuilt bank only re-matches the style. None if no
    usable public/private clip."""
    try:
        pub = enroll_cached([public], style=False, root=_cache_root()).features[0]
        enr = enroll_cached(private, style=need_style, root=_cache_root())
    except ValueError as e:  # no usable clip: remembered by the cache, so reruns do not decode it again
        log.warning("audit: speaker %s unusable (%s)", label, e)
        return None
    style = enr.style if enr.style is not None else np.zeros(256, np.float32)
    return AuditClient(
        label,
        np.asarray(pub, np.float32),
        np.asarray(enr.features, np.float32),
        np.asarray(style, np.float32),
        list(enr.clips),
    )


def load_clients(cfg: AuditRunConfig, progress: bool = True) -> list[AuditClient]:
    """The first `cfg.clients` usable speakers (unusable ones are skipped, the next one taken)."""
    from tqdm import tqdm

    rows = select_clients(cfg.manifest_path(), cfg.clients)
    out: list[AuditClient] = []
    ref_log = logging.getLogger("fedtts.voice.reference")
    level = ref_log.level
    ref_log.setLevel(logging.ERROR)  # per-clip quality warnings: hundreds of lines, not actionable here
    try:
        with tqdm(total=cfg.clients, desc="enroll", disable=not progress, file=sys.stderr) as bar:
            for label, pub, priv in rows:
                c = enroll_client(label, pub, priv)
                if c is not None:
                    out.append(c)
                    bar.update(1)
                if len(out) == cfg.clients:
                    break
    finally:
        ref_log.setLevel(level)
    if len(out) < cfg.clients:
        raise ValueError(f"only {len(out)} usable speakers with >= 2 clips, asked for {cfg.clients}")
    return out


# ------------------------------------------------------------------ global model and updates
def global_weights(registry: str = "") -> tuple[object, str]:
    """The weights a round would start from: the registry's current version, else the shipped
    synthetic tuner, else the zero tuner with the style bank's feature statistics."""
    root = Path(registry) if registry else registry_dir()
    if (root / "index.json").is_file():
        reg = VersionRegistry(root)
        if reg.current() is not None:
            mv, arrays = reg.load()
            return weights_from_version(arrays, version=f"fl-v{mv.version}"), f"registry {root} v{mv.version}"
    shipped = Path(str(resources.files("fedtts.data") / "tuner_v0_synthetic.npz"))
    if shipped.is_file():
        return TunerWeights.load(shipped), str(shipped.name)
    from fedtts.train.tuner import feature_stats  # training code: not loaded by every `fedtts` call

    mean, std = feature_stats(default_bank().features)
    return TunerWeights.init(mean, std), "TunerWeights.init() + style-bank feature stats"


def client_updates(
    weights: object, clients: list[AuditClient], cfg: AuditRunConfig
) -> list[list[np.ndarray]]:
    """Each client's update of the *whole* tuner (all 5 maps) from the global weights.

    Note: since the federation exchanges only `TunerWeights.FEDERATED` (b_t, w_p, b_p), this audits the
    earlier full-tuner exchange (the attack reads the w_t/w_c rows); the FEDERATED-only exchange is not
    re-measured here. Same local step as `client_app.local_fit` otherwise (FitConfig keys and defaults).
    """
    from fedtts.train.tuner import FitConfig, fit_tuner  # training code: not loaded by every `fedtts` call

    fc = FitConfig(
        epochs=cfg.local_epochs,
        lr=cfg.lr,
        batch_size=cfg.batch_size,
        l2=cfg.l2,
        seed=0,
        trainable=TunerWeights.TRAINABLE,
    ).validate()
    out = []
    for c in clients:
        targets = np.repeat(np.asarray(c.style, np.float32)[None], len(c.features), axis=0)
        new, _ = fit_tuner(weights, c.features, targets, fc)  # type: ignore[arg-type]
        out.append(
            [
                np.asarray(getattr(new, k), np.float64) - np.asarray(getattr(weights, k), np.float64)
                for k in TunerWeights.TRAINABLE
            ]
        )
    return out


# ------------------------------------------------------------------ the audit
def run_real_audit(cfg: AuditRunConfig, progress: bool = True) -> dict:
    """Enroll, compute updates, attack them under every setting for every seed; a JSON-able result."""
    cfg.validate()
    t0 = time.perf_counter()
    clients = load_clients(cfg, progress)
    t_enroll = time.perf_counter() - t0
    weights, source = global_weights(cfg.registry)
    deltas = client_updates(weights, clients, cfg)
    by_key = {c.features.astype(np.float32).tobytes(): d for c, d in zip(clients, deltas, strict=True)}
    if len(by_key) != len(clients):
        raise ValueError("two clients have identical features (duplicate clips in the manifest?)")

    def update_fn(features: np.ndarray, _weights: object) -> list[np.ndarray]:
        return by_key[np.asarray(features, np.float32).tobytes()]  # the precomputed real update

    candidates = np.stack([c.public for c in clients])
    private = [c.features for c in clients]
    settings = {
        # central DP without SecAgg+: the server receives clipped, not yet noised, updates
        "clip": dict(noise_multiplier=0.0),
        "dp": dict(noise_multiplier=cfg.noise_multiplier),
        "secagg": dict(central_noise=0.0),
        "secagg_dp": dict(central_noise=cfg.noise_multiplier),
    }
    per_seed: list[dict] = []
    for seed in cfg.seeds:
        row: dict = {"seed": int(seed)}
        for name, over in settings.items():
            base = dict(clip=cfg.clip, noise_multiplier=cfg.noise_multiplier, round_size=cfg.cohort)
            base.update(over)
            ac = AuditConfig(**base, method=cfg.method, seed=int(seed), shared=cfg.shared)
            row[name] = asdict(run_audit(update_fn, candidates, weights, private, ac))
        per_seed.append(row)
    norms = [float(np.sqrt(sum(float(np.sum(a * a)) for a in d))) for d in deltas]
    return {
        "config": {**asdict(cfg), "seeds": list(cfg.seeds)},
        "global_weights": source,
        "clients": [c.label for c in clients],
        "private_clips": int(sum(len(c.features) for c in clients)),
        "update_norm": {
            "median": float(np.median(norms)),
            "min": float(min(norms)),
            "max": float(max(norms)),
        },
        "per_seed": per_seed,
        "summary": summarise(per_seed, cfg),
        "seconds": {"enroll": round(t_enroll, 1), "total": round(time.perf_counter() - t0, 1)},
    }


def _ms(vals: list[float]) -> dict:
    a = np.asarray(vals, np.float64)
    return {"mean": float(a.mean()), "sd": float(a.std(ddof=1)) if len(a) > 1 else 0.0}


def summarise(per_seed: list[dict], cfg: AuditRunConfig) -> list[dict]:
    """One row per setting: accuracy (mean, sd over seeds), its chance, and round-membership recall."""
    m, z, c = cfg.cohort, cfg.noise_multiplier, cfg.clip
    r0 = per_seed[0]
    rows = [
        ("raw", "(a) raw updates", "secagg", "raw_accuracy", None),
        ("clip", f"(b0) clipped only (C {c}; central DP server view)", "clip", "dp_accuracy", None),
        ("dp", f"(b) clip C {c} + noise z {z} per update", "dp", "dp_accuracy", None),
        ("secagg", f"(c) SecAgg+ sum of {m}", "secagg", "secagg_link_accuracy", "secagg_membership_recall"),
        (
            "secagg_dp",
            f"(c') SecAgg+ sum of {m} + noise z {z}",
            "secagg_dp",
            "secagg_link_accuracy",
            "secagg_membership_recall",
        ),
    ]
    out = []
    for name, label, key, acc, mem in rows:
        row = {
            "setting": label,
            "key": name,
            "accuracy": _ms([s[key][acc] for s in per_seed]),
            "chance": r0[key]["chance"],
        }
        if mem:
            row["membership_recall"] = _ms([s[key][mem] for s in per_seed])
            row["membership_chance"] = r0[key]["membership_chance"]
        out.append(row)
    return out


def table_lines(result: dict) -> list[str]:
    """The printed table (markdown, so it can be pasted into the docs)."""
    lines = [
        "| setting | accuracy | chance | × chance | round membership recall (chance) |",
        "|---|---|---|---|---|",
    ]
    for r in result["summary"]:
        a, ch = r["accuracy"], r["chance"]
        mem = "—"
        if "membership_recall" in r:
            mr = r["membership_recall"]
            mem = f"{mr['mean']:.3f} ± {mr['sd']:.3f} ({r['membership_chance']:.3f})"
        lines.append(
            f"| {r['setting']} | {a['mean']:.3f} ± {a['sd']:.3f} | {ch:.3f} | {a['mean'] / ch:.1f} | {mem} |"
        )
    cfg = result["config"]
    lines.append(
        f"{len(result['clients'])} clients ({result['private_clips']} private clips), candidates = their public "
        f"clips, global weights: {result['global_weights']}, attack {cfg['method']} on the "
        f"{cfg.get('shared', 'federated')} arrays, seeds {cfg['seeds']}, "
        f"update norm median {result['update_norm']['median']:.3g}, {result['seconds']['total']} s "
        f"(enroll {result['seconds']['enroll']} s)"
    )
    return lines
