"""Release gate on real Flower simulations: a round's global model becomes `current` only if its
server-side score is not below its parent's by more than the noise; a worse one is stored as rejected,
the round is undone, and restarts keep the registry consistent.

Real enrollment, real `fit_tuner`, real FedAvg/FedAvgM, real server evaluation on 4 held-back speakers
(deterministic: the same model scores the same). The good round starts from a start model whose timbre
bias was pushed off (+3 prior std along the bank's first timbre direction), so training pulls it back;
the poisoned rounds are FedAvgM with a server learning rate of 1000, which throws the same real client
updates a thousand times too far.
"""

from __future__ import annotations

import numpy as np
import pytest

from fedtts.federated.config import FLConfig
from fedtts.federated.gate import release_gate
from fedtts.federated.model import SUBSPACE_DIMS, federated_arrays, load_start_model, merge_federated
from fedtts.federated.versions import VersionError, VersionRegistry

pytestmark = pytest.mark.federated


@pytest.fixture(scope="module")
def enrollment_ready():
    from fedtts.voice.bank import bank_available

    if not bank_available():
        pytest.skip("enrollment needs the style bank (fedtts train bank) which is not built yet")


def _shifted(scores: dict, changes: tuple[float, ...]) -> dict:
    return {s: {"ge2e_norm": v["ge2e_norm"] + d} for (s, v), d in zip(scores.items(), changes, strict=True)}


def test_gate_verdicts_follow_the_paired_standard_error():
    parent = _shifted({s: {"ge2e_norm": 0.0} for s in "abcd"}, (0.7, 0.4, 0.3, 0.6))
    same = release_gate(parent, parent, 1)
    assert same.status == "accepted" and same.tolerance == 0.0  # deterministic scores: no change, no noise
    mixed = _shifted(parent, (0.03, -0.04, 0.02, -0.03))
    assert release_gate(mixed, parent, 1).status == "accepted"  # -0.005 ± 0.018: within the noise
    worse = _shifted(parent, (-0.3, -0.2, -0.25, -0.35))
    d = release_gate(worse, parent, 1)
    assert d.status == "rejected" and not d.release and "-0.2750" in d.reason and d.speakers == 4
    assert release_gate(worse, parent, 1, sigmas=50).status == "accepted"
    assert release_gate({}, parent, 1).status == "ungated"  # not evaluated this round
    assert release_gate(worse, None, 1).status == "ungated"  # parent never scored
    one = {"a": parent["a"]}
    assert release_gate(one, one, 1).status == "ungated"  # one speaker: no noise estimate
    broken = {s: {"ge2e_norm": float("nan")} for s in parent}
    assert release_gate(broken, parent, 1).status == "rejected"
    assert release_gate(worse, parent, 1, metric="similarity").status == "ungated"  # not scored by it


def _degraded_start(path) -> str:
    """The shipped start model with its timbre bias moved 3 prior std along the first bank direction."""
    w0 = load_start_model("")
    coords = federated_arrays(w0, w0)
    coords[0] = np.eye(SUBSPACE_DIMS, dtype=np.float32)[0] * 3.0
    return str(merge_federated(w0, coords).save(path))


def test_poisoned_rounds_are_rejected_a_good_round_released_and_restarts_stay_consistent(
    tmp_path, monkeypatch, enrollment_ready, train_manifest, capsys
):
    from fedtts.app.cli import main
    from fedtts.federated.simulate import simulate

    monkeypatch.setenv("FEDTTS_DATA_DIR", str(tmp_path / "device"))  # enrollment caches stay in tmp
    cfg = FLConfig(
        num_rounds=1,
        fraction_fit=1.0,
        min_fit_clients=2,
        dp="off",
        secagg=False,
        local_epochs=5,
        lr=0.05,
        eval_every=1,
        eval_limit=4,
        init_model=_degraded_start(tmp_path / "start.npz"),
        registry=str(tmp_path / "models"),
        out_dir=str(tmp_path),
        round_timeout=120.0,
    )
    reg = VersionRegistry(tmp_path / "models")

    # a good round: made current
    (good,) = simulate(cfg, 4)["rows"]
    assert good["gate"] == "accepted", good["gate_reason"]
    assert good["ge2e_norm"] > reg.list()[0].metrics["ge2e_norm"]  # the gate's score (FLConfig default)
    assert reg.current() == 2 and reg.list()[-1].status == "accepted"

    # restart, then two poisoned rounds: stored as rejected, never current, each undone
    poisoned = simulate(cfg.replace(num_rounds=2, strategy="fedavgm", server_lr=1000.0), 4)["rows"]
    assert [r["round"] for r in poisoned] == [2, 3]
    for r in poisoned:
        assert r["gate"] == "rejected" and r["current"] == 2, r["gate_reason"]
        assert "worse than its parent" in r["gate_reason"] and "tolerance" in r["gate_reason"]
    v3, v4 = reg.list()[2:]
    assert (v3.status, v3.parent, v4.status, v4.parent) == ("rejected", 2, "rejected", 2)
    assert reg.current() == 2
    # round 3 started again from v2 (not from the rejected v3): the same real updates, the same model
    (_, a3), (_, a4) = reg.load(3), reg.load(4)
    np.testing.assert_allclose(a4["b_t"], a3["b_t"], atol=1e-4)
    assert v4.metrics["ge2e_norm"] == pytest.approx(v3.metrics["ge2e_norm"], abs=1e-3)

    # restart after a rejected round: round numbers and rounds spent continue from the rejected round,
    # training continues from the current model (no evaluation: released ungated, said so)
    (after,) = simulate(cfg.replace(eval_every=0), 4)["rows"]
    assert after["round"] == 4 and after["dp_rounds"] == 4 and after["parent"] == 2
    assert after["gate"] == "ungated" and reg.current() == 5

    # what the user sees: status and why, and no silent install of a rejected version
    capsys.readouterr()
    assert main(["fl", "--registry", str(tmp_path / "models"), "models"]) == 0
    out = capsys.readouterr().out
    assert "v3 rejected parent=2" in out and "why: worse than its parent: ge2e_norm" in out
    assert "* v5 ungated parent=2" in out
    with pytest.raises(VersionError, match="rejected"):
        reg.rollback(3)
    assert main(["fl", "--registry", str(tmp_path / "models"), "rollback", "3"]) == 2
    assert reg.rollback(3, force=True).version == 3 and reg.current() == 3
