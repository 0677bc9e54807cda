"""What a federated round exchanges (FEDERATED arrays as public-subspace coordinates), the start-model check, complete version files,
and inference using the installed version (registry current → rollback changes it; broken → shipped)."""

from __future__ import annotations

import logging
from dataclasses import replace

import numpy as np
import pytest

from fedtts.federated.config import FLConfig
from fedtts.federated.model import (
    SUBSPACE_DIMS,
    _subspace,
    federated_arrays,
    frozen_digest,
    load_start_model,
    merge_federated,
    same_frozen,
    version_named,
    weights_from_version,
)
from fedtts.federated.versions import VersionRegistry
from fedtts.voice.tuner import TunerWeights, _weights_path, default_tuner

pytestmark = pytest.mark.federated


def _version(w0: TunerWeights, shift: float, name: str) -> TunerWeights:
    return replace(w0, b_t=w0.b_t + shift, w_p=w0.w_p + shift, b_p=w0.b_p + shift, version=name)


def test_only_federated_arrays_travel_as_public_subspace_coordinates_from_the_start_model():
    w0 = load_start_model("")
    k = SUBSPACE_DIMS
    assert [a.shape for a in federated_arrays(w0, w0)] == [(k,), (k, 6), (k,)]
    assert all(not a.any() for a in federated_arrays(w0, w0))  # the start model is the origin
    rng = np.random.default_rng(0)
    coords = [rng.normal(0, 1, a.shape).astype(np.float32) for a in federated_arrays(w0, w0)]
    w1 = merge_federated(w0, coords, version="x")
    for got, want in zip(federated_arrays(w1, w0), coords, strict=True):  # exact round trip
        np.testing.assert_allclose(got, want, atol=1e-4)
    assert same_frozen(w1, w0) and np.array_equal(w1.w_t, w0.w_t) and not np.allclose(w1.b_t, w0.b_t)
    assert frozen_digest(w1) != frozen_digest(w0)  # a different origin is a different start model
    # a change along a bank direction is exchanged (in prior std); one orthogonal to the subspace is not
    basis, scale = _subspace()["b_t"]
    along = replace(w0, b_t=w0.b_t + 0.5 * scale * basis[:, 0])
    assert float(federated_arrays(along, w0)[0][0]) == pytest.approx(0.5, abs=1e-4)
    v = rng.normal(size=128)
    off = replace(w0, b_t=w0.b_t + scale * (v - basis @ (basis.T @ v)))
    assert float(np.abs(federated_arrays(off, w0)[0]).max()) < 1e-4
    other = replace(w0, w_c=w0.w_c + 1e-3)
    assert not same_frozen(other, w0) and frozen_digest(other) != frozen_digest(w0)
    with pytest.raises(ValueError, match="federated arrays"):
        merge_federated(w0, [w0.w_t, w0.b_t, w0.w_p, w0.w_c, w0.b_p])
    with pytest.raises(ValueError, match="expected shape"):
        merge_federated(w0, [w0.b_t, w0.w_p, w0.b_p])  # full-size arrays are not coordinates


def test_client_refuses_a_start_model_with_other_frozen_arrays(tmp_path):
    from fedtts.federated.client_app import LocalData, local_fit, start_model
    from fedtts.federated.model import StartModelMismatch

    w0 = load_start_model("")
    good = FLConfig(local_epochs=2, lr=0.01).fit_instructions(1, frozen_digest(w0)).to_config()
    assert frozen_digest(start_model(good)) == frozen_digest(w0)
    other = replace(w0, w_t=w0.w_t * 1.01).save(tmp_path / "other.npz")
    with pytest.raises(StartModelMismatch, match="refusing"):
        start_model({**good, "start-model": str(other)})
    with pytest.raises(StartModelMismatch):
        start_model({"start-model": ""})  # no hash sent: nothing to check against, refuse
    rng = np.random.default_rng(0)
    style = (np.concatenate([w0.b_t, w0.b_p]) + 0.05).astype(np.float32)
    data = LocalData("s", rng.normal(size=(3, 262)).astype(np.float32), style)
    new, m = local_fit(federated_arrays(w0, w0), data, good)
    assert [a.shape for a in new] == [(SUBSPACE_DIMS,), (SUBSPACE_DIMS, 6), (SUBSPACE_DIMS,)]
    assert m["train_loss"] < m["start_loss"] and any(a.any() for a in new)


def test_registry_versions_are_complete_tuner_files(tmp_path):
    w0 = load_start_model("")
    reg = VersionRegistry(tmp_path / "models")
    reg.save(version_named(_version(w0, 0.0, "fl-v1")), {"round": 0})
    mv = reg.save(version_named(_version(w0, 0.2, "fl-v2")), {"round": 1})
    _, named = reg.load()
    assert isinstance(named, dict) and weights_from_version(named).version == "fl-v2"
    pulled = TunerWeights.load(reg.pull(tmp_path / "pulled.npz"))
    assert pulled.version == "fl-v2" and np.allclose(pulled.b_p, w0.b_p + 0.2)
    assert np.array_equal(pulled.feat_mean, w0.feat_mean) and np.array_equal(pulled.feat_std, w0.feat_std)
    assert mv.version == 2 and reg.next_version() == 3
    # older registries (7 positional arrays) still load
    legacy = [getattr(w0, k) for k in (*TunerWeights.TRAINABLE, "feat_mean", "feat_std")]
    reg.save(legacy)
    assert np.array_equal(weights_from_version(reg.load()[1]).w_c, w0.w_c)


def test_inference_uses_the_installed_version_and_rollback_changes_it(tmp_path, monkeypatch, caplog):
    monkeypatch.delenv("FEDTTS_TUNER", raising=False)
    monkeypatch.setenv("FEDTTS_DATA_DIR", str(tmp_path))
    caplog.set_level(logging.INFO, logger="fedtts.voice.tuner")
    shipped = TunerWeights.load(_weights_path()).version
    assert default_tuner().version == shipped  # no registry: the shipped tuner_v2
    w0 = load_start_model("")
    reg = VersionRegistry(tmp_path / "federated" / "models")
    reg.save(version_named(_version(w0, 0.0, "fl-v1")))
    reg.save(version_named(_version(w0, 0.3, "fl-v2")))
    t = default_tuner()
    assert t.version == "fl-v2" and np.allclose(t.weights.b_t, w0.b_t + 0.3)
    assert "registry weights fl-v2" in caplog.text
    reg.rollback(1)
    assert default_tuner().version == "fl-v1"  # `fedtts fl rollback` changes what cloning uses
    # $FEDTTS_TUNER wins over the registry
    f = _version(w0, -0.1, "my-file").save(tmp_path / "mine.npz")
    monkeypatch.setenv("FEDTTS_TUNER", str(f))
    assert default_tuner().version == "my-file"
    monkeypatch.delenv("FEDTTS_TUNER")
    # a corrupt registry: a warning and the shipped weights, never an exception
    (reg.root / "v1.npz").write_bytes(b"garbage")
    (reg.root / "index.json").touch()
    caplog.clear()
    assert default_tuner().version == shipped
    assert "unusable" in caplog.text


def test_cloning_and_the_system_tab_read_the_same_registry(tmp_path, monkeypatch):
    """$FEDTTS_FL_REGISTRY moves both: the tuner cloning uses and the version the System tab names."""
    from fedtts.app.service import ServiceConfig, TTSService
    from fedtts.app.system import federation_status

    monkeypatch.delenv("FEDTTS_TUNER", raising=False)
    monkeypatch.setenv("FEDTTS_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("FEDTTS_FL_REGISTRY", str(tmp_path / "elsewhere"))
    w0 = load_start_model("")
    reg = VersionRegistry(tmp_path / "elsewhere")
    reg.save(version_named(_version(w0, 0.2, "fl-v1")))
    reg.save(version_named(_version(w0, 0.4, "fl-v2")))
    reg.rollback(1)
    svc = TTSService(ServiceConfig(output_dir=tmp_path / "out"))
    try:
        assert federation_status().to_dict()["current"] == 1
        assert default_tuner().version == "fl-v1"
    finally:
        svc.close()
