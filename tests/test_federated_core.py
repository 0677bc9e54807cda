"""Accountant and version registry: real dp-accounting numbers, real files."""

import numpy as np
import pytest

from fedtts.federated.privacy import AccountantConfig, PrivacyAccountant
from fedtts.federated.versions import VersionError, VersionRegistry


def test_accountant_grows_and_delta_below_inverse_population():
    acc = PrivacyAccountant(AccountantConfig(noise_multiplier=1.0, sampling_rate=0.2, population=50))
    e1, d = acc.step()
    e2, _ = acc.step()
    assert 0 < e1 < e2
    assert d < 1 / 50
    more_noise = PrivacyAccountant(AccountantConfig(noise_multiplier=4.0, sampling_rate=0.2, population=50))
    assert more_noise.epsilon(2) < e2
    with pytest.raises(ValueError, match="delta"):
        AccountantConfig(1.0, 0.2, 50, delta=0.5).validate()


def test_registry_save_load_rollback_and_corruption(tmp_path):
    reg = VersionRegistry(tmp_path)
    a = reg.save([np.zeros(3, np.float32)], {"sim": 0.1}, epsilon=0.5, delta=1e-3)
    b = reg.save([np.ones(3, np.float32)], {"sim": 0.2})
    assert (a.version, b.version, b.parent) == (1, 2, 1)
    assert VersionRegistry(tmp_path).current() == 2  # a restarted server resumes
    reg.rollback(1)
    mv, w = reg.load()
    assert mv.version == 1 and float(w[0].sum()) == 0.0
    assert reg.pull(tmp_path / "out" / "m.npz").exists()
    (tmp_path / "v2.npz").write_bytes(b"garbage")
    with pytest.raises(VersionError, match="sha256"):
        reg.load(2)


def test_cli_models_and_rollback(tmp_path, capsys):
    from fedtts.app.cli import main

    reg = VersionRegistry(tmp_path)
    reg.save([np.zeros(2, np.float32)])
    reg.save([np.ones(2, np.float32)])
    assert main(["fl", "--registry", str(tmp_path), "rollback", "1"]) == 0
    assert main(["fl", "--registry", str(tmp_path), "models"]) == 0
    assert "* v1" in capsys.readouterr().out
    assert main(["fl", "--registry", str(tmp_path), "rollback", "9"]) == 2
