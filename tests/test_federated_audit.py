"""Privacy audit attack on real least-squares updates of a linear tuner with the tuner's shapes."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from fedtts.federated.audit import (
    AuditConfig,
    attack_single,
    estimate_direction,
    run_audit,
    top_right_singular,
    update_matrix,
)

N_SPK, DIM = 40, 262


def _population(seed: int = 0):
    """Speaker centroids in standardised feature space; a public clip and 4 private clips each."""
    rng = np.random.default_rng(seed)
    centroids = rng.normal(size=(N_SPK, DIM))
    public = centroids + 0.3 * rng.normal(size=(N_SPK, DIM))
    private = [c + 0.3 * rng.normal(size=(4, DIM)) for c in centroids]
    w_true = rng.normal(scale=0.05, size=(256, DIM))
    weights = SimpleNamespace(
        w=rng.normal(scale=0.01, size=(256, DIM)),
        b=np.zeros(256),
        feat_mean=np.zeros(DIM),
        feat_std=np.ones(DIM),
    )
    return public, private, w_true, weights


def _lsq_update_fn(w_true: np.ndarray, steps: int = 5, lr: float = 0.02):
    """Full-batch gradient descent on 0.5 * mean ||W x + b - y||^2 (y = the speaker's target style)."""
    rng = np.random.default_rng(1)

    def update(features: np.ndarray, g: SimpleNamespace) -> list[np.ndarray]:
        x = np.asarray(features, np.float64)
        y = x @ w_true.T + 0.05 * rng.normal(size=(len(x), 256))
        w, b = g.w.copy(), g.b.copy()
        mask = np.ones_like(w)
        mask[:128, 256:] = 0.0  # the timbre half has no prosody inputs
        for _ in range(steps):
            r = (x @ w.T + b - y) / len(x)
            w -= lr * (r.T @ x) * mask
            b -= lr * r.sum(0)
        dw, db = w - g.w, b - g.b
        return [dw[:128, :256], db[:128], dw[128:, 256:], dw[128:, :256], db[128:]]

    return update


def test_single_step_update_reveals_features_exactly():
    public, private, w_true, g = _population()
    fn = _lsq_update_fn(w_true, steps=1)
    x = public[3:4]
    d = fn(x, g)
    assert update_matrix(d).shape == (256, 262)
    u = x[0] / np.linalg.norm(x[0])
    # not exactly rank 1: the timbre rows have no prosody inputs
    assert abs(estimate_direction(d, "svd") @ u) > 0.99
    vt, sv = top_right_singular(update_matrix(d), 3)
    ref = np.linalg.svd(update_matrix(d), compute_uv=False)[:3]
    assert np.allclose(sv, ref, rtol=1e-6) and vt.shape == (3, 262)
    assert estimate_direction(d, "bias") @ u > 0.999  # sign too, from the bias ratio
    assert attack_single(d, public) == 3
    with pytest.raises(ValueError, match="shapes"):
        update_matrix([np.zeros((128, 256))] * 5)


def test_attack_above_chance_raw_at_chance_with_dp_and_secagg_dp():
    public, private, w_true, g = _population()
    fn = _lsq_update_fn(w_true)
    full = dict(shared="all")  # the attack mechanics, on a full-tuner exchange
    raw = run_audit(
        fn, public, g, private, AuditConfig(clip=1.0, noise_multiplier=1.0, round_size=10, **full)
    )
    print("\n".join(raw.lines()))
    chance = 1 / N_SPK
    assert raw.chance == chance
    assert raw.raw_accuracy >= 0.9  # raw updates identify the speaker
    assert raw.dp_accuracy <= 4 * chance  # clip 1 + z=1 noise on each update: chance level
    # SecAgg+ alone: the server cannot pair nodes with updates (link <= 1/m) ...
    assert raw.secagg_link_accuracy <= 1 / 10 + 1e-9
    # ... but the sum still shows who took part in the round; noise on the sum removes that too
    assert raw.secagg_membership_recall >= 0.6
    noisy = run_audit(fn, public, g, private, AuditConfig(round_size=10, central_noise=1.0, **full))
    print("\n".join(noisy.lines()))
    assert noisy.secagg_membership_recall <= 3 * noisy.membership_chance
    assert noisy.secagg_link_accuracy <= 2 * chance
    # weak DP (tiny noise) leaves the attack working: the test can tell the difference
    weak = run_audit(fn, public, g, private, AuditConfig(clip=1.0, noise_multiplier=1e-4, **full))
    assert weak.dp_accuracy >= 0.9


def test_federated_exchange_reveals_only_the_prosody_inputs():
    """The apps send b_t, w_p, b_p only: w_t/w_c (the embedding rows) never reach the server, so the
    feature direction the attack recovers is the 6 prosody inputs, and accuracy falls."""
    from fedtts.federated.audit import shared_view

    public, private, w_true, g = _population()
    fn = _lsq_update_fn(w_true)
    seen = shared_view(fn(public[3:4], g), "federated")
    assert not seen[0].any() and not seen[3].any()  # w_t, w_c zero
    assert seen[1].any() and seen[2].any() and seen[4].any()
    assert not estimate_direction(seen, "svd")[:256].any()
    full = run_audit(fn, public, g, private, AuditConfig(shared="all"))
    fed = run_audit(fn, public, g, private, AuditConfig(shared="federated"))
    print("\n".join(fed.lines()))
    assert fed.raw_accuracy < full.raw_accuracy
    with pytest.raises(ValueError, match="shared"):
        AuditConfig(shared="some").validate()


def test_run_audit_checks_inputs():
    public, private, w_true, g = _population()
    fn = _lsq_update_fn(w_true)
    with pytest.raises(ValueError, match="candidates"):
        run_audit(fn, public[:, :100], g)
    with pytest.raises(ValueError, match="one private"):
        run_audit(fn, public, g, private[:3])
    with pytest.raises(ValueError, match="round_size"):
        AuditConfig(round_size=0).validate()


def test_attack_on_real_fit_tuner_updates():
    """The real local step (Adam on the tuner): the update still points at the speaker."""
    tt = pytest.importorskip("fedtts.train.tuner")
    from fedtts.federated.audit import fit_tuner_update_fn
    from fedtts.voice.tuner import TunerWeights

    try:
        g = TunerWeights.init()
    except Exception as e:  # noqa: BLE001 - needs the stock voice packs
        pytest.skip(f"stock packs unavailable: {e}")
    public, private, w_true, _ = _population(2)
    public, private = public[:12], private[:12]
    mean = np.asarray(g.b_t.tolist() + g.b_p.tolist())
    fn = fit_tuner_update_fn(
        lambda x: (mean + 0.02 * (x @ w_true.T)).astype(np.float32), tt.FitConfig(epochs=3)
    )
    rep = run_audit(
        fn, public, g, private, AuditConfig(round_size=4, noise_multiplier=1.0, clip=1.0, shared="all")
    )
    print("\n".join(rep.lines()))
    assert rep.raw_accuracy >= 0.75 > 4 * rep.chance
