"""DP, clipping, aggregation and robustness of the federated tuner, on real Flower objects (no mocks).

Random features/targets stand in for enrollments here: these tests check the maths of clipping,
noise and bounds, not the training objective.
"""

from __future__ import annotations

import numpy as np
import pytest
from flwr.app import ArrayRecord, Context, Message, RecordDict
from flwr.app.message_type import MessageType
from flwr.common import Code, FitIns, FitRes, Status, ndarrays_to_parameters, parameters_to_ndarrays
from flwr.compat.common import recorddict_compat as compat
from flwr.server.compat.grid_client_proxy import GridClientProxy
from flwr.server.strategy import DifferentialPrivacyClientSideFixedClipping, FedAvg

from fedtts.federated.client_app import STATE_KEY, SimulatedDropout, app, local_fit
from fedtts.federated.config import FLConfig
from fedtts.federated.robust import update_norm
from fedtts.federated.strategy import build_strategy

pytestmark = pytest.mark.federated

# Aggregation maths is shape-agnostic: 1 024 numbers make the noise-std estimates below tight. What a
# device really sends is SUBSPACE_DIMS coordinates per style dim group (`_exchange()`).
SHAPES = [(128,), (128, 6), (128,)]


def _Proxy(cid: str) -> GridClientProxy:  # noqa: N802 - reads like the class it builds
    """Flower's own proxy type (no grid needed: the strategy only reads node_id)."""
    return GridClientProxy(abs(hash(cid)) % 10_000, None, 1)  # type: ignore[arg-type]


def _global(seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.normal(0, 0.1, s).astype(np.float32) for s in SHAPES]


def _exchange(seed: int = 0) -> list[np.ndarray]:
    """A global model in the layout the ClientApp receives (public-subspace coordinates)."""
    from fedtts.federated.model import SUBSPACE_DIMS

    rng = np.random.default_rng(seed)
    return [
        rng.normal(0, 0.1, s).astype(np.float32)
        for s in ((SUBSPACE_DIMS,), (SUBSPACE_DIMS, 6), (SUBSPACE_DIMS,))
    ]


def _update(glob: list[np.ndarray], norm: float, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    d = [rng.normal(size=g.shape) for g in glob]
    scale = norm / update_norm(d)
    return [(g + scale * x).astype(np.float32) for g, x in zip(glob, d, strict=True)]


def _res(arrays: list[np.ndarray], n: int = 1) -> FitRes:
    return FitRes(Status(Code.OK, "ok"), ndarrays_to_parameters(arrays), n, {"train_loss": 0.5})


def _strategy(**kw):
    cfg = FLConfig(min_fit_clients=2, fraction_fit=1.0, **kw).validate()
    glob = _global()
    st = build_strategy(cfg, glob, population=10, fit_config=lambda r: {})
    st.configure_fit  # noqa: B018 - the strategy is used directly below
    st.current = glob
    return cfg, st, glob


def test_bad_updates_rejected_without_secagg_and_noise_matches_z_c_over_m():
    cfg, st, glob = _strategy(secagg=False, dp="central", noise_multiplier=1.0, clip=0.5)
    honest = [_update(glob, 0.4, s) for s in range(4)]
    nan = [a.copy() for a in glob]
    nan[1][3, 4] = np.nan
    huge = _update(glob, 1e4, 99)
    results = [(_Proxy(str(i)), _res(u)) for i, u in enumerate([*honest, nan, huge])]
    params, _ = st.aggregate_fit(1, results, [RuntimeError("killed mid-round")])
    assert params is not None, "one dead client must not cancel the round"
    assert st.stats.accepted == 4 and len(st.stats.rejected) == 2 and st.stats.failures == 1
    assert any("NaN" in r for r in st.stats.rejected) and any("exceeds" in r for r in st.stats.rejected)
    mean = [np.mean([h[i] for h in honest], 0) for i in range(len(SHAPES))]
    draws = []
    for rnd in range(10):  # 10 rounds x 1 024 weights: the std estimate's relative s.e. is 0.7 %
        if rnd:
            st.current = glob
            params, _ = st.aggregate_fit(rnd + 1, results, [RuntimeError("killed mid-round")])
        new = parameters_to_ndarrays(params)
        draws.append(np.concatenate([(n - m).ravel() for n, m in zip(new, mean, strict=True)]))
    noise = np.concatenate(draws)
    assert np.all(np.isfinite(noise))
    expected = 1.0 * 0.5 / 4  # z * C / (updates actually averaged)
    assert abs(noise.std() / expected - 1) < 0.03
    assert abs(noise.mean()) < 5 * expected / np.sqrt(noise.size)


def test_flower_dp_wrapper_alone_drops_rounds_with_failures():
    """Why FedTTSStrategy exists: Flower's own wrapper returns no model if any client failed."""
    glob = _global()
    base = FedAvg(initial_parameters=ndarrays_to_parameters(glob))
    dp = DifferentialPrivacyClientSideFixedClipping(base, 1.0, 0.5, 3)
    results = [(_Proxy(str(i)), _res(_update(glob, 0.3, i))) for i in range(2)]
    assert dp.aggregate_fit(1, results, [RuntimeError("dropped")])[0] is None
    _, st, _ = _strategy(secagg=False, dp="central", noise_multiplier=1.0, clip=0.5)
    assert st.aggregate_fit(1, results, [RuntimeError("dropped")])[0] is not None


def test_secagg_aggregate_is_checked_as_a_whole():
    """Under SecAgg+ every FitRes carries the same unmasked sum: a poisoned sum rejects the round."""
    _, st, glob = _strategy(secagg=True, dp="central", noise_multiplier=1.0, clip=0.5)
    good = _update(glob, 0.3, 1)
    out, _ = st.aggregate_fit(1, [(_Proxy(str(i)), _res(good)) for i in range(3)], [])
    assert out is not None and st.stats.aggregate_rejected is None
    _, st, glob = _strategy(secagg=True, dp="central", noise_multiplier=1.0, clip=0.5)
    poisoned = _update(glob, 40.0, 2)  # e.g. a NaN client's garbage after quantisation
    out, _ = st.aggregate_fit(1, [(_Proxy(str(i)), _res(poisoned)) for i in range(3)], [])
    assert out is None and "exceeds" in st.stats.aggregate_rejected


def test_plain_fedavg_weights_by_examples_and_fedadam_moves_toward_average():
    _, st, glob = _strategy(secagg=False, dp="off")
    a, b = _update(glob, 1.0, 1), _update(glob, 1.0, 2)
    out, _ = st.aggregate_fit(1, [(_Proxy("a"), _res(a, 3)), (_Proxy("b"), _res(b, 1))], [])
    got = parameters_to_ndarrays(out)
    assert np.allclose(got[0], (3 * a[0] + b[0]) / 4, atol=1e-6)
    _, st, glob = _strategy(secagg=False, dp="off", strategy="fedadam", server_lr=0.01)
    out, _ = st.aggregate_fit(1, [(_Proxy("a"), _res(a)), (_Proxy("b"), _res(b))], [])
    step = [o - g for o, g in zip(parameters_to_ndarrays(out), glob, strict=True)]
    target = [(x + y) / 2 - g for x, y, g in zip(a, b, glob, strict=True)]
    cos = sum(float((s * t).sum()) for s, t in zip(step, target, strict=True)) / (
        update_norm(step) * update_norm(target)
    )
    assert cos > 0.5  # Adam's sign-like step points toward the average


def test_fedavgm_scales_the_noised_average_and_carries_momentum():
    """Server lr and momentum act on the DP average (post-processing): round 1 = lr x average step,
    round 2 with the same average = lr x (1 + momentum) x it."""
    _, st, glob = _strategy(secagg=False, dp="off", strategy="fedavgm", server_lr=2.0, server_momentum=0.5)
    a, b = _update(glob, 1.0, 1), _update(glob, 1.0, 2)
    avg_step = [(x + y) / 2 - g for x, y, g in zip(a, b, glob, strict=True)]
    out, _ = st.aggregate_fit(1, [(_Proxy("a"), _res(a)), (_Proxy("b"), _res(b))], [])
    got = parameters_to_ndarrays(out)
    for o, g, d in zip(got, glob, avg_step, strict=True):
        assert np.allclose(o - g, 2.0 * d, atol=1e-5)
    a2 = [x + (o - g) for x, o, g in zip(a, got, glob, strict=True)]  # same update relative to the new global
    b2 = [x + (o - g) for x, o, g in zip(b, got, glob, strict=True)]
    out2, _ = st.aggregate_fit(2, [(_Proxy("a"), _res(a2)), (_Proxy("b"), _res(b2))], [])
    for o2, o, d in zip(parameters_to_ndarrays(out2), got, avg_step, strict=True):
        assert np.allclose(o2 - o, 2.0 * 1.5 * d, atol=1e-4)


@pytest.fixture(autouse=True)
def _task_identity():
    """A Flower runtime sets the run/node ids a Message is stamped with; here the test plays that part."""
    from flwr.supercore.task_identity import TaskIdentity

    names = ("_run_id", "_node_id", "_task_id")
    old = {n: getattr(TaskIdentity, n, None) for n in names}
    TaskIdentity.run_id = 1
    TaskIdentity.node_id = 0
    TaskIdentity.task_id = 1
    yield
    for n, v in old.items():
        setattr(TaskIdentity, n, v)


def _train_message(glob: list[np.ndarray], config: dict) -> Message:
    ins = FitIns(ndarrays_to_parameters(glob), config)
    return Message(compat.fitins_to_recorddict(ins, True), dst_node_id=7, message_type=MessageType.TRAIN)


def _context(features: np.ndarray, style: np.ndarray) -> Context:
    state = RecordDict()
    state.array_records[STATE_KEY] = ArrayRecord([features, style])
    return Context(run_id=1, node_id=7, node_config={"partition-id": 0}, state=state, run_config={})


def _fit_config(mode: str, **kw) -> dict:
    """What the server sends for round 1 (every FitKey: devices refuse an incomplete fit config)."""
    from fedtts.federated.model import frozen_digest, load_start_model

    run = FLConfig(local_epochs=3, lr=0.05, seed=0, dp=mode, clip=0.05, local_epsilon=5.0, local_delta=1e-5)
    cfg = run.fit_instructions(1, frozen_digest(load_start_model(""))).to_config()
    cfg.update(kw)
    return cfg


@pytest.mark.parametrize("mode", ["central", "local", "off"])
def test_client_app_clips_or_noises_what_leaves_the_device(mode):
    rng = np.random.default_rng(0)
    feats = rng.normal(size=(3, 262)).astype(np.float32)
    style = rng.normal(0, 0.3, 256).astype(np.float32)
    glob = _exchange()
    config = _fit_config(mode)
    if mode == "central":
        config["clipping_norm"] = 0.05  # what DifferentialPrivacyClientSideFixedClipping sends
    raw, _ = local_fit(
        glob, type("D", (), {"features": feats, "targets": np.repeat(style[None], 3, 0)})(), config
    )
    raw_norm = update_norm([a - g for a, g in zip(raw, glob, strict=True)])
    assert raw_norm > 0.05, "the local fit must move further than the clip for this test to mean anything"
    deltas = []
    for _ in range(20 if mode == "local" else 1):  # 64 numbers a reply: pool replies to estimate the noise
        reply = app(_train_message(glob, config), _context(feats, style))
        assert not reply.has_error(), reply.error if reply.has_error() else ""
        res = compat.recorddict_to_fitres(reply.content, keep_input=True)
        deltas.append([a - g for a, g in zip(parameters_to_ndarrays(res.parameters), glob, strict=True)])
    delta = deltas[0]
    if mode == "central":
        assert update_norm(delta) <= 0.05 * 1.0001
        assert res.num_examples == 1  # every user weighs the same under DP
    elif mode == "local":
        sigma = 0.05 * np.sqrt(2 * np.log(1.25 / 1e-5)) / 5.0
        flat = np.concatenate([d.ravel() for dl in deltas for d in dl])
        assert abs(flat.std() / sigma - 1) < 0.1  # the noise dominates the clipped update
    else:
        assert abs(update_norm(delta) - raw_norm) < 1e-4 and res.num_examples == 3
    assert {"compute_s", "n_clips", "train_loss"} <= set(res.metrics)


def test_client_dropout_raises_so_the_server_sees_no_reply():
    rng = np.random.default_rng(1)
    ctx = _context(rng.normal(size=(2, 262)).astype(np.float32), np.zeros(256, np.float32))
    glob = _exchange()
    dropped = 0
    for seed in range(20):
        try:  # the Flower runtime turns this into an error reply (simulation) or no reply at all
            app(_train_message(glob, _fit_config("off", dropout=0.5, seed=seed)), ctx)
        except SimulatedDropout:
            dropped += 1
    assert 3 <= dropped <= 17  # about half, deterministic per (seed, round, node)


def test_flower_app_declares_every_run_config_key():
    """`flwr run` rejects overrides of keys the app's pyproject does not declare."""
    import tomllib

    from fedtts.federated.deploy import APP_DIR

    declared = tomllib.loads((APP_DIR / "pyproject.toml").read_text())["tool"]["flwr"]["app"]["config"]
    assert set(declared) == set(FLConfig().to_run_config())
    assert FLConfig.from_run_config(declared).secagg and FLConfig(clip=1).to_run_config()["clip"] == 1.0
    with pytest.raises(ValueError, match="unknown run-config key"):
        FLConfig.from_run_config({"no-such-key": 1})
