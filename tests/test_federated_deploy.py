"""Loopback deployment: a real `flower-superlink` (TLS from a generated CA, SuperNode authentication on)
and 3 registered `flower-supernode`s, each on its own data folder, 2 rounds via `flwr run` with SecAgg+
and central DP; a new model version must appear in the registry.

Every process is started in its own session and killed in `finally`; ports are picked free.
"""

from __future__ import annotations

import shutil
import time

import pytest

from fedtts.federated import deploy
from fedtts.federated.versions import VersionRegistry

pytestmark = pytest.mark.federated


@pytest.fixture(scope="module")
def enrollment_ready():
    from fedtts.voice.bank import bank_available

    if not bank_available():
        pytest.skip("enrollment needs the style bank (fedtts train bank) which is not built yet")


@pytest.fixture
def data_dirs(tmp_path, train_manifest):
    """Three 'devices': folders holding the clips of three training speakers."""
    by_spk: dict[str, list[str]] = {}
    for row in train_manifest:
        by_spk.setdefault(row["speaker"], []).append(row["abspath"])
    multi = [s for s in sorted(by_spk) if len(by_spk[s]) >= 2][:3]
    out = []
    for s in multi:
        d = tmp_path / "devices" / s
        d.mkdir(parents=True)
        for c in by_spk[s]:
            shutil.copy(c, d)
        out.append(d)
    return out


def test_superlink_three_supernodes_tls_auth_secagg_dp(tmp_path, data_dirs, enrollment_ready):
    work = tmp_path / "fl"
    env = {"FLWR_HOME": str(work / "flwr_home"), "FEDTTS_DATA_DIR": str(tmp_path / "device_data")}
    pki = deploy.make_pki(work / "pki", ["127.0.0.1", "localhost"])
    procs: list[deploy.Proc] = []
    try:
        link = deploy.start_superlink(work, pki, env=env)
        procs.append(link)
        host, port = link.extra["address"].split(":")
        assert deploy.wait_port(host, int(port), 60), link.log.read_text()[-2000:]
        home = work / "flwr_home"
        deploy.write_flwr_home(home, link.extra["address"], pki.ca_cert)
        for i, d in enumerate(data_dirs):
            priv, pub = deploy.make_node_key(work / "keys", f"node{i}")
            assert "registered" in deploy.register_supernode(pub, home)
            procs.append(
                deploy.start_supernode(work, f"node{i}", link.extra["address"], pki.ca_cert, priv, d, env=env)
            )
        t0 = time.perf_counter()
        run = deploy.flwr_run(
            home,
            {
                "num-rounds": 2,
                "population": 3,
                "fraction-fit": 1.0,
                "min-fit-clients": 3,
                "secagg": True,
                "dp": "central",
                "local-epochs": 3,
                "eval-every": 0,
                "registry": str(work / "models"),
                "out-dir": str(work / "out"),
                "round-timeout": 120.0,
                "progress": False,
            },
            timeout=420,
            log=work / "logs" / "run.log",
            env=env,
        )
        elapsed = time.perf_counter() - t0
        logs = "\n".join(p.log.read_text()[-1500:] for p in procs)
        assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:] + logs
        assert "Secure aggregation completed" in run.stdout
        assert all(p.alive() for p in procs), "a Flower process died during the run"
        reg = VersionRegistry(work / "models")
        vs = reg.list()
        assert [v.version for v in vs] == [1, 2, 3], vs
        assert vs[-1].parent == 2 and vs[-1].epsilon and vs[-1].epsilon > 0
        assert vs[-1].metrics["clients_ok"] == 3 and vs[-1].metrics["bytes_up"] > 0
        print(f"deployment: 2 rounds in {elapsed:.1f} s, eps={vs[-1].epsilon:.3f}")
    finally:
        deploy.stop_all(procs)
    assert not any(p.alive() for p in procs)
