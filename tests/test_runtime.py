"""The composition root: one model session per runtime, shared by its synthesizers, freed by it."""

from __future__ import annotations

import pytest

from fedtts.engine import KokoroEngine
from fedtts.pipeline import SynthesisOptions
from fedtts.pipeline.runtime import Runtime, Settings
from fedtts.voice import VoiceError, stock_voice
from fedtts.voice.resolve import clear_stock_profiles, stock_profiles


def test_one_session_shared_by_every_synthesizer_and_freed_by_the_runtime():
    rt = Runtime()
    before = KokoroEngine.sessions_created
    a, b = rt.synthesizer(), rt.synthesizer()
    assert not rt.engine_loaded()  # nothing loads before it is needed
    for synth in (a, b):
        chunks = list(synth.stream("Hi.", stock_voice("jf_alpha"), SynthesisOptions()))
        assert chunks and len(chunks[0].audio) > 0
    assert a.engine is b.engine is rt.engine
    assert KokoroEngine.sessions_created == before + 1
    rt.free_memory()
    assert not rt.engine_loaded() and a._engine is None and b._engine is None
    list(a.stream("Hi.", stock_voice("jf_alpha"), SynthesisOptions()))
    assert KokoroEngine.sessions_created == before + 2 and a.engine is rt.engine


def test_settings_are_read_once_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("FEDTTS_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("FEDTTS_FL_REGISTRY", str(tmp_path / "reg"))
    rt = Runtime()
    monkeypatch.setenv("FEDTTS_DATA_DIR", str(tmp_path / "elsewhere"))  # later changes do not leak in
    assert rt.settings.registry_dir == tmp_path / "reg"
    assert rt.profiles.root == tmp_path / "data" / "voices"
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match="not a folder"):
        Settings(data_dir=tmp_path / "file").validate()


def test_stock_profiles_render_only_with_the_callers_model(tmp_path, monkeypatch, engine):
    """No hidden engine: on a machine without the set-up cache the caller's model is needed."""
    monkeypatch.setenv("FEDTTS_CACHE_DIR", str(tmp_path / "cache"))
    clear_stock_profiles()
    try:
        with pytest.raises(VoiceError, match="fedtts.app.prepare"):
            stock_profiles()
        profiles = stock_profiles(engine)
        assert set(profiles) >= {"jf_alpha", "jm_kumo"}
        assert list((tmp_path / "cache" / "voice").glob("stock_profiles_*.json"))
    finally:
        clear_stock_profiles()
