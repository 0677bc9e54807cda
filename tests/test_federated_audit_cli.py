"""`fedtts fl audit` on real training speakers: the curious-server attack works on raw updates and is at
chance once updates are clipped + noised, alone or summed under SecAgg+ with the central noise."""

from __future__ import annotations

import json

import pytest

from fedtts.app.cli import main

pytestmark = pytest.mark.federated

N, M, SEEDS = 12, 4, "0-4"


def _run_audit(tmp_path_factory, shared: str) -> dict:
    from fedtts.voice.bank import bank_available

    if not bank_available():
        pytest.skip("style bank src/fedtts/data/style_bank_v1.npz not built (fedtts train bank)")
    out = tmp_path_factory.mktemp("audit") / "audit.json"
    # an empty registry: the shipped start weights, not whatever a local `fl simulate` left installed
    reg = tmp_path_factory.mktemp("registry")
    argv = [
        "fl",
        "--registry",
        str(reg),
        "audit",
        "--clients",
        str(N),
        "--cohort",
        str(M),
        "--seeds",
        SEEDS,
        "--no-progress",
    ]
    assert main([*argv, "--shared", shared, "--json", str(out)]) == 0
    return json.loads(out.read_text())


@pytest.fixture(scope="module")
def audit(train_manifest, tmp_path_factory) -> dict:
    """The attack on full-tuner updates: the strongest case, where its mechanics show."""
    return _run_audit(tmp_path_factory, "all")


@pytest.fixture(scope="module")
def audit_deployed(train_manifest, tmp_path_factory) -> dict:
    """The attack on what the Flower apps really send (b_t, w_p, b_p)."""
    return _run_audit(tmp_path_factory, "federated")


def _row(result: dict, key: str) -> dict:
    return next(r for r in result["summary"] if r["key"] == key)


def test_raw_updates_identify_the_speaker(audit):
    raw, clip = _row(audit, "raw"), _row(audit, "clip")
    assert len(audit["clients"]) == N and raw["chance"] == pytest.approx(1 / N)
    # a broken attack (or updates that do not depend on the speaker) would sit near 1/12
    assert raw["accuracy"]["mean"] >= max(0.5, 5 * raw["chance"])
    # clipping only rescales an update: what the server sees under central DP without SecAgg+
    assert clip["accuracy"]["mean"] == pytest.approx(raw["accuracy"]["mean"])


def test_noise_brings_the_attack_to_chance(audit):
    dp, sa, sadp = _row(audit, "dp"), _row(audit, "secagg"), _row(audit, "secagg_dp")
    chance = dp["chance"]
    # 5 seeds x 12 guesses at p = 1/12: mean 0.083, sd 0.036; broken noise would give the raw accuracy
    assert dp["accuracy"]["mean"] <= 3 * chance
    # SecAgg+ alone: nodes cannot be paired with updates (<= 1/m) but the sum shows who took part ...
    assert sa["accuracy"]["mean"] <= 1 / M + 1e-9
    assert sa["membership_recall"]["mean"] >= sa["membership_chance"] + 0.15  # measured 0.63 vs 0.33
    # ... and the central noise on the sum removes that too (15 sums: chance 1/3, sd of the mean ~0.05)
    # (measured 0.38 vs 0.63 without noise; z = 1e-6 on the sum gives 0.53 and fails here)
    assert sadp["membership_recall"]["mean"] <= sadp["membership_chance"] + 0.15
    assert sadp["membership_recall"]["mean"] <= sa["membership_recall"]["mean"] - 0.15
    assert sadp["accuracy"]["mean"] <= 1.5 * chance


def test_deployed_exchange_leaks_less_and_noise_still_reaches_chance(audit, audit_deployed):
    full, fed = _row(audit, "raw"), _row(audit_deployed, "raw")
    assert audit_deployed["config"]["shared"] == "federated"
    # without the embedding rows the raw update says less about the speaker (measured 0.25 vs 1.0) ...
    assert fed["accuracy"]["mean"] <= full["accuracy"]["mean"] - 0.3
    # ... but still something: the prosody rows and biases depend on the speaker (not a dead attack)
    assert fed["accuracy"]["mean"] >= 2 * fed["chance"]
    sadp = _row(audit_deployed, "secagg_dp")
    assert sadp["accuracy"]["mean"] <= 1.5 * sadp["chance"]


def test_bad_input_exits_2(tmp_path, capsys):
    assert main(["fl", "audit", "--manifest", str(tmp_path / "none.jsonl")]) == 2
    assert "manifest not found" in capsys.readouterr().err
    assert main(["fl", "audit", "--clients", "4", "--cohort", "5"]) == 2
    assert "--cohort" in capsys.readouterr().err
    assert main(["fl", "audit", "--noise-multiplier", "0"]) == 2
