"""Saved voice profiles: consent, safe names, metadata, export/import, --voice resolution, CLI."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest

from fedtts.voice import VoiceError, blend, resolve_voice_name, stock_voice
from fedtts.voice.reference import load_reference
from fedtts.voice.store import ProfileStore


@pytest.fixture()
def store(tmp_path, monkeypatch):
    monkeypatch.setenv("FEDTTS_DATA_DIR", str(tmp_path / "data"))
    return ProfileStore()


@pytest.fixture(scope="module")
def ref(dev_manifest):
    row = next(r for r in dev_manifest if r["lang"] == "en" and r["role"] == "prompt")
    return load_reference(row["abspath"], text=row["text"])


def _voice():
    v = blend([(stock_voice("jf_alpha"), 0.6), (stock_voice("jm_kumo"), 0.4)], name="x")
    v.meta["method"] = "nearest"
    return v


def test_consent_is_required(store, ref):
    with pytest.raises(VoiceError, match="consent"):
        store.add("anna", _voice(), consent=False, reference=ref)
    assert store.names() == []


@pytest.mark.parametrize("bad", ["../evil", "a/b", "..", "", "x:1", "a,b", "jf_alpha", ".hidden", "a" * 65])
def test_unsafe_names_are_rejected(store, bad):
    with pytest.raises(VoiceError):
        store.add(bad, _voice(), consent=True)
    assert not any(store.root.parent.rglob("pack.npy")) if store.root.parent.exists() else True


def test_add_get_metadata_and_clip_not_copied(store, ref):
    v = _voice()
    info = store.add("anna", v, consent=True, reference=ref)
    meta = json.loads((info.path / "meta.json").read_text())
    assert meta["clip_sha256"] == ref.sha256 and meta["consent"] is True
    assert meta["method"] == "nearest" and meta["tuner_version"] and meta["created"].endswith("+00:00")
    assert sorted(p.name for p in info.path.iterdir()) == ["meta.json", "pack.npy"]
    got = store.get("anna")
    np.testing.assert_array_equal(got.pack, v.pack)
    with pytest.raises(VoiceError, match="already exists"):
        store.add("anna", v, consent=True, reference=ref)


def test_keep_clip_export_import_roundtrip(store, ref, tmp_path):
    store.add("anna", _voice(), consent=True, reference=ref, keep_clip=True)
    assert store.clip_path("anna").read_bytes() == ref.path.read_bytes()
    out = store.export("anna", tmp_path / "anna")
    assert out.suffix == ".fedvoice"
    with pytest.raises(VoiceError, match="already exists"):
        store.import_(out)
    info = store.import_(out, name="anna2")
    np.testing.assert_array_equal(store.get("anna2").pack, store.get("anna").pack)
    assert info.has_clip
    store.remove("anna")
    assert store.names() == ["anna2"]
    with pytest.raises(VoiceError, match="no saved voice"):
        store.remove("anna")


def test_import_rejects_bad_files(store, tmp_path):
    junk = tmp_path / "junk.fedvoice"
    junk.write_text("not a zip")
    with pytest.raises(VoiceError, match="not a fedtts voice file"):
        store.import_(junk)
    evil = tmp_path / "evil.fedvoice"
    with zipfile.ZipFile(evil, "w") as z:
        z.writestr("../../etc/x", "boom")
        z.writestr("meta.json", "{}")
    with pytest.raises(VoiceError, match="unexpected entries"):
        store.import_(evil)
    assert store.names() == []


def test_voice_name_resolution_stock_profile_and_blend(store, ref):
    store.add("anna", _voice(), consent=True, reference=ref)
    assert resolve_voice_name("jf_alpha").meta["kind"] == "stock"
    assert resolve_voice_name("anna").meta["kind"] == "profile"
    mixed = resolve_voice_name("anna:0.5,jm_kumo:0.5")
    expect = 0.5 * store.get("anna").pack + 0.5 * stock_voice("jm_kumo").pack
    np.testing.assert_allclose(mixed.pack, expect, atol=1e-6)
    with pytest.raises(VoiceError, match="unknown voice 'nobody'.*anna"):
        resolve_voice_name("nobody")


@pytest.mark.slow
def test_cli_voice_add_list_rm(store, ref, capsys):
    from fedtts.app.cli import main

    assert main(["voice", "add", "bob", str(ref.path)]) == 2
    assert "consent" in capsys.readouterr().err
    assert main(["voice", "add", "bob", str(ref.path), "--consent", "--method", "nearest"]) == 0
    assert main(["voice", "list"]) == 0
    assert "bob\tnearest" in capsys.readouterr().out
    assert main(["voice", "rm", "bob"]) == 0
    assert main(["voice", "rm", "bob"]) == 2
