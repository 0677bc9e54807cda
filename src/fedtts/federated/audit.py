"""Privacy audit: can an honest-but-curious server tell which speaker produced a tuner update?

Why: the tuner is linear, so one client's least-squares gradient is r x^T (residual times the client's
standardised features): the row space of the w_t/w_c/w_p delta *is* the speaker's feature vector, and a
server holding public recordings of candidate speakers can match it. This module measures that attack
(a) on raw updates, (b) on locally clipped + noised updates (DP), (c) on what SecAgg+ leaves the server:
the sum of a round's m updates (optionally with central noise on the sum), against chance.

Everything is plain numpy. ``update_fn(features[n, 262], global_weights) -> [w_t, b_t, w_p, w_c, b_p]``
deltas is the client's real local step (e.g. ``fit_tuner_update_fn`` around
``fedtts.train.tuner.fit_tuner``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np

from fedtts.voice.tuner import TunerWeights

__all__ = [
    "AuditConfig",
    "AuditReport",
    "update_matrix",
    "top_right_singular",
    "estimate_direction",
    "match_scores",
    "clip_and_noise",
    "attack_single",
    "attack_sum",
    "run_audit",
    "fit_tuner_update_fn",
    "shared_view",
]

N_EMB, N_PROSODY = 256, 6
N_FEATURES = N_EMB + N_PROSODY
UpdateFn = Callable[[np.ndarray, object], Sequence[np.ndarray]]
TRAINABLE = TunerWeights.TRAINABLE  # order of an update's arrays
SHARED = {"all": TRAINABLE, "federated": TunerWeights.FEDERATED}


def shared_view(delta: Sequence[np.ndarray], shared: str = "federated") -> list[np.ndarray]:
    """The update as the server sees it: arrays that are not exchanged are zero."""
    keep = SHARED[shared]
    return [
        a if k in keep else np.zeros_like(a) for k, a in zip(TRAINABLE, _check_update(delta), strict=True)
    ]


@dataclass
class AuditConfig:
    """clip / noise_multiplier: the DP setting audited in (b) (std = noise_multiplier * clip per
    coordinate); round_size: m updates summed under SecAgg+ in (c); central_noise: noise multiplier
    on the SecAgg+ sum (0 = SecAgg+ alone)."""

    clip: float = 1.0
    noise_multiplier: float = 1.0
    round_size: int = 10
    central_noise: float = 0.0
    method: str = "svd"
    seed: int = 0
    # what the server receives: "federated" = only TunerWeights.FEDERATED (b_t, w_p, b_p, as the
    # Flower apps exchange), the rest zero; "all" = every trainable array (a full-tuner exchange)
    shared: str = "federated"

    def validate(self) -> AuditConfig:
        if self.shared not in SHARED:
            raise ValueError(f"shared must be one of {sorted(SHARED)}, got {self.shared!r}")
        if self.clip <= 0:
            raise ValueError(f"clip must be > 0, got {self.clip}")
        if self.noise_multiplier < 0 or self.central_noise < 0:
            raise ValueError("noise multipliers must be >= 0")
        if self.round_size < 1:
            raise ValueError(f"round_size must be >= 1, got {self.round_size}")
        if self.method not in ("svd", "bias"):
            raise ValueError(f"method must be 'svd' or 'bias', got {self.method!r}")
        return self


def _check_update(delta: Sequence[np.ndarray]) -> list[np.ndarray]:
    shapes = [(128, N_EMB), (128,), (128, N_PROSODY), (128, N_EMB), (128,)]
    arrs = [np.asarray(a, np.float64) for a in delta]
    if [a.shape for a in arrs] != shapes:
        raise ValueError(f"expected update shapes {shapes}, got {[a.shape for a in arrs]}")
    return arrs


def update_matrix(delta: Sequence[np.ndarray]) -> np.ndarray:
    """The delta as one linear map [256 outputs, 262 inputs]: [[w_t, 0], [w_c, w_p]]."""
    w_t, _, w_p, w_c, _ = _check_update(delta)
    top = np.concatenate([w_t, np.zeros((128, N_PROSODY))], axis=1)
    bottom = np.concatenate([w_c, w_p], axis=1)
    return np.concatenate([top, bottom], axis=0)


def estimate_direction(delta: Sequence[np.ndarray], method: str = "svd") -> np.ndarray:
    """Unit vector [262] the update reveals about the client's (standardised) features.

    svd: top right-singular vector (sign-free, robust to multi-step optimisers).
    bias: least squares of weight rows against bias entries (x = dW_i / db_i for one SGD step).
    """
    m = update_matrix(delta)
    if method == "bias":
        _, b_t, _, _, b_p = _check_update(delta)
        b = np.concatenate([b_t, b_p])
        v = np.zeros(N_FEATURES)
        if float(b @ b) > 0:
            v[:N_EMB] = (b @ m[:, :N_EMB]) / float(b @ b)  # every row sees the embedding
        if float(b_p @ b_p) > 0:
            v[N_EMB:] = (b_p @ m[128:, N_EMB:]) / float(b_p @ b_p)  # only prosody rows see prosody
    else:
        v = top_right_singular(m, 1)[0][0]
    n = np.linalg.norm(v)
    return v / n if n > 0 else v


def top_right_singular(m: np.ndarray, k: int = 1, iters: int = 60) -> tuple[np.ndarray, np.ndarray]:
    """Top-k right-singular vectors [k, n] and values by subspace iteration (a full SVD per update
    costs ~100x more on a busy 2-core machine and the attack only needs the top)."""
    k = max(1, min(k, *m.shape))
    q = np.linalg.qr(np.random.default_rng(0).normal(size=(m.shape[1], k)))[0]
    for _ in range(iters):
        q = np.linalg.qr(m.T @ (m @ q))[0]
    b = m @ q  # [rows, k]; its SVD orders and rotates the basis
    u, s, vt = np.linalg.svd(b, full_matrices=False)
    return (q @ vt.T).T, s


def _unit_rows(x: np.ndarray) -> np.ndarray:
    x = np.atleast_2d(np.asarray(x, np.float64))
    n = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(n > 0, n, 1.0)


def match_scores(direction: np.ndarray, candidates: np.ndarray) -> np.ndarray:
    """|cosine| between the revealed direction and each candidate's normalised features."""
    return np.abs(_unit_rows(candidates) @ np.asarray(direction, np.float64))


def clip_and_noise(
    delta: Sequence[np.ndarray], clip: float, noise_multiplier: float, rng: np.random.Generator
) -> list[np.ndarray]:
    """DP on one update: scale to global L2 norm <= clip, add N(0, (noise_multiplier * clip)^2)."""
    arrs = [np.asarray(a, np.float64) for a in delta]
    norm = float(np.sqrt(sum(float(np.sum(a * a)) for a in arrs)))
    scale = min(1.0, clip / norm) if norm > 0 else 1.0
    return [a * scale + rng.normal(0.0, noise_multiplier * clip, a.shape) for a in arrs]


def attack_single(delta: Sequence[np.ndarray], candidates: np.ndarray, method: str = "svd") -> int:
    """Index of the candidate that best explains one client's update."""
    return int(np.argmax(match_scores(estimate_direction(delta, method), candidates)))


def attack_sum(total: Sequence[np.ndarray], candidates: np.ndarray, m: int) -> list[int]:
    """Candidates the attacker believes are in a sum of m updates: the m whose features carry the most
    energy of the summed map (projection onto its top-m right-singular subspace)."""
    mat = update_matrix(total)
    vt, s = top_right_singular(mat, max(1, m))
    basis = vt * s[:, None]
    energy = np.linalg.norm(_unit_rows(candidates) @ basis.T, axis=1)
    return [int(i) for i in np.argsort(-energy)[:m]]


@dataclass
class AuditReport:
    """Attack accuracies; chance = 1 / candidates. For SecAgg+ the server cannot see which node sent
    which update, so linking a node to a speaker is the round-membership guess divided by m."""

    candidates: int
    clients: int
    chance: float
    raw_accuracy: float
    dp_accuracy: float
    secagg_link_accuracy: float
    secagg_membership_recall: float
    membership_chance: float
    config: dict = field(default_factory=dict)

    def lines(self) -> list[str]:
        c = self.chance
        return [
            f"candidates {self.candidates}, clients {self.clients}, chance {c:.3f}",
            f"(a) raw updates:   accuracy {self.raw_accuracy:.3f} ({self.raw_accuracy / c:.1f}x chance)",
            f"(b) DP (clip {self.config.get('clip')}, z {self.config.get('noise_multiplier')}): "
            f"accuracy {self.dp_accuracy:.3f} ({self.dp_accuracy / c:.1f}x chance)",
            f"(c) SecAgg+ sum of {self.config.get('round_size')}: node->speaker link accuracy "
            f"{self.secagg_link_accuracy:.3f} ({self.secagg_link_accuracy / c:.1f}x chance); "
            f"round membership recall {self.secagg_membership_recall:.3f} (chance {self.membership_chance:.3f})",
        ]

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1)


def run_audit(
    update_fn: UpdateFn,
    candidates: np.ndarray,
    global_weights: object = None,
    private_features: Sequence[np.ndarray] | None = None,
    cfg: AuditConfig | None = None,
) -> AuditReport:
    """Each candidate i is also a client training on private_features[i] ([n, 262]; default: its
    public features). The attacker knows candidates' public features and global_weights (feat_mean /
    feat_std, if present, standardise the candidates as the model does)."""
    cfg = (cfg or AuditConfig()).validate()
    cand = np.atleast_2d(np.asarray(candidates, np.float64))
    if cand.shape[1] != N_FEATURES:
        raise ValueError(f"candidates must be [C, {N_FEATURES}], got {cand.shape}")
    mean = getattr(global_weights, "feat_mean", None)
    std = getattr(global_weights, "feat_std", None)
    cand_n = (cand - mean) / std if mean is not None and std is not None else cand
    priv = [cand[i : i + 1] for i in range(len(cand))] if private_features is None else private_features
    if len(priv) != len(cand):
        raise ValueError("need one private feature set per candidate")
    rng = np.random.default_rng(cfg.seed)
    deltas = [
        shared_view(update_fn(np.atleast_2d(np.asarray(f, np.float32)), global_weights), cfg.shared)
        for f in priv
    ]

    def noised(d: list[np.ndarray], z: float) -> list[np.ndarray]:  # only exchanged arrays get noise
        return shared_view(clip_and_noise(d, cfg.clip, z, rng), cfg.shared)

    n = len(deltas)
    raw = np.mean([attack_single(d, cand_n, cfg.method) == i for i, d in enumerate(deltas)])
    dp = np.mean(
        [
            attack_single(noised(d, cfg.noise_multiplier), cand_n, cfg.method) == i
            for i, d in enumerate(deltas)
        ]
    )
    m = min(cfg.round_size, n)
    order = rng.permutation(n)
    links, recalls = [], []
    for start in range(0, n - m + 1, m):
        members = [int(i) for i in order[start : start + m]]
        if cfg.central_noise > 0:  # DP-FedAvg: each update clipped on the device, noise on the sum
            parts = [clip_and_noise(deltas[i], cfg.clip, 0.0, rng) for i in members]
            total = [sum(p[k] for p in parts) for k in range(5)]
            total = shared_view(
                [a + rng.normal(0.0, cfg.central_noise * cfg.clip, a.shape) for a in total], cfg.shared
            )
        else:
            total = [sum(deltas[i][k] for i in members) for k in range(5)]
        guess = attack_sum(total, cand_n, m)
        hit = len(set(guess) & set(members))
        recalls.append(hit / m)
        # the server knows which m nodes took part but not who sent what: it can only pair a node
        # with one of its m guesses at random
        links.append(hit / m / m)
    return AuditReport(
        candidates=len(cand),
        clients=n,
        chance=1.0 / len(cand),
        raw_accuracy=float(raw),
        dp_accuracy=float(dp),
        secagg_link_accuracy=float(np.mean(links)) if links else float("nan"),
        secagg_membership_recall=float(np.mean(recalls)) if recalls else float("nan"),
        membership_chance=m / len(cand),
        config=asdict(cfg),
    )


def fit_tuner_update_fn(targets_fn: Callable[[np.ndarray], np.ndarray], fit_cfg: object = None) -> UpdateFn:
    """update_fn around the real local step: fit_tuner(global, features, targets_fn(features)) - global."""
    from fedtts.train.tuner import FitConfig, fit_tuner  # training code: not loaded by every `fedtts` call

    cfg = fit_cfg or FitConfig(epochs=5)

    def update(features: np.ndarray, weights: object) -> list[np.ndarray]:
        assert isinstance(weights, TunerWeights)
        new, _ = fit_tuner(weights, features, targets_fn(features), cfg)
        return [np.asarray(getattr(new, k)) - np.asarray(getattr(weights, k)) for k in TunerWeights.TRAINABLE]

    return update
