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


@pytest.mark.torch
@pytest.mark.slow
def test_device_enrollment_by_inversion_is_cached_apart_from_the_bank_match(dev_manifest):
    """`enroll-refine` N: the device's target is the bank match polished by N inversion steps (the best
    step is kept; step 0 is the match itself), in its own cache file; a second call reads it back."""
    from fedtts.federated.client_app import _cache_file, enroll_cached

    clips = [next(r["abspath"] for r in dev_manifest if r["speaker"] == "ls909" and r["role"] == "prompt")]
    feats0, bank, spent0 = enroll_cached(clips, 0)
    feats1, refined, spent1 = enroll_cached(clips, 3)
    assert spent0 > 0 and spent1 > spent0  # computed, and inversion costs more than the match
    assert _cache_file(clips, 0) != _cache_file(clips, 3) and _cache_file(clips, 3).is_file()
    np.testing.assert_array_equal(feats0, feats1)
    assert float(np.abs(refined - bank).max()) > 1e-4  # the inversion step moved the target
    again, style, spent = enroll_cached(clips, 3)
    assert spent == 0.0
    np.testing.assert_array_equal(style, refined)


def test_enrollment_cache_follows_clip_content_not_path_or_mtime(dev_manifest, tmp_path):
    """A device whose folder is restored from a backup (new paths, new mtimes) keeps its enrollment;
    a changed recording gets a new one."""
    import os
    import shutil

    from fedtts.federated.client_app import _cache_file

    src = next(r["abspath"] for r in dev_manifest if r["speaker"] == "ls909" and r["role"] == "prompt")
    a, b = tmp_path / "a.flac", tmp_path / "restored" / "b.flac"
    b.parent.mkdir()
    shutil.copyfile(src, a)
    shutil.copyfile(src, b)
    os.utime(b, ns=(1, 1))
    assert _cache_file([str(a)]) == _cache_file([str(b)]) == _cache_file([src])
    b.write_bytes(b.read_bytes()[:-1] + b"\0")
    assert _cache_file([str(b)]) != _cache_file([str(a)])


def test_enrollment_cache_follows_the_style_bank(dev_manifest, tmp_path, monkeypatch):
    """The target is a style-bank match: a new bank must not reuse targets matched in the old one."""
    from fedtts.federated.client_app import _cache_file
    from fedtts.voice import bank

    clip = next(r["abspath"] for r in dev_manifest if r["speaker"] == "ls909" and r["role"] == "prompt")
    before = _cache_file([clip])
    other = tmp_path / "bank.npz"
    other.write_bytes(bank._bank_path().read_bytes() + b"\0")
    monkeypatch.setattr(bank, "_bank_path", lambda: other)
    bank.bank_digest.cache_clear()
    try:
        assert _cache_file([clip]) != before
    finally:
        monkeypatch.undo()
        bank.bank_digest.cache_clear()
    assert _cache_file([clip]) == before
