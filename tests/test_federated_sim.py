"""Flower simulation of the tuner federation: 6 speakers as 6 clients, SecAgg+ and central DP on, a client
dropping out mid-round, then a server restart that must resume from the last saved version.

Real enrollment (each client's own clips), real `fit_tuner`, real server-side `evaluate_tuner`.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest

from fedtts.federated.config import FLConfig
from fedtts.federated.versions import VersionRegistry

pytestmark = pytest.mark.federated

SEED = 1  # with dropout 0.2 this drops partition 3 in round 1, 4 in round 2, 0 in round 3 (see below)


def _dropped(rnd: int, n: int = 6, p: float = 0.2) -> list[int]:
    return [i for i in range(n) if np.random.default_rng([SEED, rnd, i]).random() < p]


@pytest.fixture(scope="module")
def enrollment_ready():
    from fedtts.voice.bank import bank_available

    if not bank_available():
        pytest.skip("enrollment needs the style bank (fedtts train bank) which is not built yet")


def test_simulation_secagg_dp_dropout_and_restart(tmp_path, monkeypatch, enrollment_ready, train_manifest):
    from fedtts.federated.simulate import simulate

    monkeypatch.setenv("FEDTTS_DATA_DIR", str(tmp_path / "device"))  # enrollment caches stay in tmp
    cfg = FLConfig(
        num_rounds=2,
        fraction_fit=1.0,
        min_fit_clients=3,
        dp="central",
        noise_multiplier=1.0,
        clip=0.5,
        secagg=True,
        dropout=0.2,
        seed=SEED,
        local_epochs=3,
        eval_every=2,
        eval_limit=2,
        registry=str(tmp_path / "models"),
        out_dir=str(tmp_path),
        round_timeout=120.0,
        progress=False,
    )
    assert [len(_dropped(r)) for r in (1, 2, 3)] == [1, 1, 1]
    res = simulate(cfg, 6)
    rows = res["rows"]
    assert [r["round"] for r in rows] == [1, 2]
    for r in rows:
        assert r["clients_sampled"] == 6
        assert r["failures"] == 1 and r["clients_ok"] == 5, r  # the dropped client did not stall SecAgg+
        assert r["updated"] and r["bytes_up"] > 0 and r["bytes_down"] > 0
        assert np.isfinite(r["train_loss"])
    assert 0 < rows[0]["epsilon"] < rows[1]["epsilon"]
    assert rows[1]["delta"] < 1 / 6
    assert "similarity" in rows[1] and np.isfinite(rows[1]["similarity"])

    reg = VersionRegistry(tmp_path / "models")
    versions = reg.list()
    assert [v.version for v in versions] == [1, 2, 3] and versions[-1].parent == 2
    assert versions[-1].epsilon == pytest.approx(rows[1]["epsilon"])
    from fedtts.federated.model import frozen_digest, load_start_model, same_frozen
    from fedtts.voice.tuner import TunerWeights

    # a version is a complete tuner file (pull → TunerWeights.load); only FEDERATED arrays moved
    w = TunerWeights.load(reg.pull(tmp_path / "pulled.npz"))
    w0 = load_start_model("")
    assert w.version == "fl-v3" and all(np.all(np.isfinite(getattr(w, k))) for k in TunerWeights.TRAINABLE)
    assert same_frozen(w, w0) and not np.allclose(w.b_t, w0.b_t)
    assert versions[0].metrics["start_sha256"] == frozen_digest(w0)
    assert rows[0]["bytes_down"] < 6 * 30_000  # 1 024 floats per client, not 66 304
    assert (tmp_path / "fl_rounds.png").stat().st_size > 10_000
    logged = json.loads((tmp_path / "fl_metrics.json").read_text())["rounds"]
    assert [r["round"] for r in logged] == [0, 1, 2]

    # server restart: a new ServerApp on the same registry continues from v3, round 3, privacy spent so far
    res2 = simulate(cfg.replace(num_rounds=1, eval_every=0), 6)
    (row,) = res2["rows"]
    assert row["round"] == 3 and row["dp_rounds"] == 3 and row["epsilon"] > rows[1]["epsilon"]
    latest = reg.list()[-1]
    assert latest.version == 4 and latest.parent == 3


def test_cli_prints_every_round_row_and_one_line_per_dropout(tmp_path, enrollment_ready, train_manifest):
    """`fedtts fl simulate --no-progress` through the real CLI: a round in which every device drops (no
    new model, the current one kept), then a round with one dropout. Each dropout is one line, never a
    Ray traceback, and the table has both rows (as each round ends, and at the end)."""
    # seed 165, p 0.5: devices 0-3 all drop in round 1, device 1 in round 2
    assert [[i for i in range(4) if np.random.default_rng([165, r, i]).random() < 0.5] for r in (1, 2)] == [
        [0, 1, 2, 3],
        [1],
    ]
    env = {**os.environ, "FEDTTS_DATA_DIR": str(tmp_path / "device"), "OPENBLAS_NUM_THREADS": "1"}
    argv = "fl simulate --clients 4 --rounds 2 --no-progress --dropout 0.5 --seed 165 --min-fit-clients 2"
    argv += f" --fraction 1.0 --eval-every 0 --local-epochs 1 --round-timeout 120 --out {tmp_path / 'run'}"
    proc = subprocess.run(
        [sys.executable, "-m", "fedtts.app.cli", *argv.split()],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    assert "Traceback" not in out
    drops = re.findall(r"client failed: SimulatedDropout: node (\d) dropped out of round (\d)", out)
    assert sorted(drops) == [("0", "1"), ("1", "1"), ("1", "2"), ("2", "1"), ("3", "1")]
    assert out.count("dropped out of round") == 5  # one line each
    assert out.count("round  ver ok/sampled") == 2  # live table, then the summary
    assert len(re.findall(r"^1\s+1\s+0/4\s+4\s+0\s", proc.stdout, re.MULTILINE)) == 2  # all dropped: v1 kept
    assert len(re.findall(r"^2\s+2\s+3/4\s+1\s+0\s", proc.stdout, re.MULTILINE)) == 2
    reg = VersionRegistry(tmp_path / "run" / "models")
    assert [v.version for v in reg.list()] == [1, 2] and reg.current() == 2
