"""Consent records on voice profiles: made, shown, carried by export/import, required when missing."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest

from fedtts.voice import VoiceError, load_reference, stock_voice
from fedtts.voice.profile import Voice
from fedtts.voice.store import CONSENT_STATEMENT, ConsentRecord, ProfileStore, consent_status


@pytest.fixture
def store(tmp_path):
    return ProfileStore(tmp_path / "voices")


@pytest.fixture(scope="module")
def ref(dev_manifest):
    row = next(r for r in dev_manifest if r["role"] == "prompt" and r["lang"] == "en")
    return load_reference(row["abspath"])


def _voice() -> Voice:
    return Voice("x", stock_voice("jf_alpha").pack.copy(), meta={"method": "nearest"})


def test_profile_records_who_what_when_which_clip_and_how(store, ref):
    info = store.add("anna", _voice(), consent=True, reference=ref, consent_name="Anna Li", consent_via="ui")
    rec = ConsentRecord.from_meta(info.meta)
    assert rec is not None and rec.name == "Anna Li" and rec.via == "ui"
    assert rec.statement == CONSENT_STATEMENT and rec.clip_sha256 == ref.sha256 and rec.time
    assert consent_status(store.meta("anna")) == "recorded"
    assert store.get("anna").meta["kind"] == "profile"


def test_export_import_carries_the_record(store, ref, tmp_path):
    store.add("anna", _voice(), consent=True, reference=ref, consent_name="Anna Li")
    out = store.export("anna", tmp_path / "anna.fedvoice")
    info = store.import_(out, name="anna2")
    assert ConsentRecord.from_meta(info.meta) == ConsentRecord.from_meta(store.meta("anna"))
    np.testing.assert_array_equal(store.get("anna2").pack, store.get("anna").pack)


def test_import_without_record_is_unusable_until_confirmed(store, ref, tmp_path):
    store.add("anna", _voice(), consent=True, reference=ref, consent_name="Anna Li")
    src = tmp_path / "anna.fedvoice"
    store.export("anna", src)
    bare = tmp_path / "bare.fedvoice"
    with zipfile.ZipFile(src) as z, zipfile.ZipFile(bare, "w") as w:
        meta = json.loads(z.read("meta.json"))
        meta.pop("consent_record")
        w.writestr("meta.json", json.dumps(meta))
        w.writestr("pack.npy", z.read("pack.npy"))
    info = store.import_(bare, name="bob")
    assert consent_status(info.meta) == "unknown"
    with pytest.raises(VoiceError, match="consent unknown.*fedtts voice consent bob"):
        store.get("bob")
    with pytest.raises(VoiceError, match="name of the person"):
        store.confirm_consent("bob", "  ")
    rec = store.confirm_consent("bob", "Bob Wu")
    assert rec.via == "confirmed" and rec.clip_sha256 == ref.sha256
    assert store.get("bob").meta["consent_record"]["name"] == "Bob Wu"


def test_legacy_profiles_stay_usable(store, ref):
    info = store.add("old", _voice(), consent=True, reference=ref)
    meta = dict(info.meta)
    meta.pop("consent_record")
    (info.path / "meta.json").write_text(json.dumps(meta), encoding="utf-8")
    assert consent_status(store.meta("old")) == "legacy"
    store.get("old")


def test_cli_voice_show_and_consent(ref, tmp_path, capsys, monkeypatch):
    from fedtts.app.cli import main

    monkeypatch.setenv("FEDTTS_DATA_DIR", str(tmp_path / "data"))
    args = ["voice", "add", "cara", str(ref.path), "--consent", "--consent-name", "Cara Diaz"]
    assert main([*args, "--method", "nearest"]) == 0
    capsys.readouterr()
    assert main(["voice", "show", "cara"]) == 0
    out = capsys.readouterr().out
    assert "consent: recorded" in out and "who: Cara Diaz" in out and "how: cli" in out
    assert ref.sha256 in out and "watermarked" in out
    assert main(["voice", "show", "nobody"]) == 2
    exported = tmp_path / "cara.fedvoice"
    assert main(["voice", "export", "cara", str(exported)]) == 0
    with zipfile.ZipFile(exported) as z, zipfile.ZipFile(tmp_path / "bare.fedvoice", "w") as w:
        meta = json.loads(z.read("meta.json"))
        meta.pop("consent_record")
        w.writestr("meta.json", json.dumps(meta))
        w.writestr("pack.npy", z.read("pack.npy"))
    capsys.readouterr()
    assert main(["voice", "import", str(tmp_path / "bare.fedvoice"), "--name", "dana"]) == 0
    assert "no consent record" in capsys.readouterr().err
    assert main(["say", "hi", "--voice", "dana", "--out", str(tmp_path / "d.wav")]) == 2
    assert "consent" in capsys.readouterr().err
    capsys.readouterr()
    assert main(["voice", "consent", "nobody", "--name", "Dana"]) == 2  # the missing voice is named first
    assert "no saved voice 'nobody'" in capsys.readouterr().err
    assert main(["voice", "consent", "dana", "--name", "Dana"]) == 2  # needs --yes
    assert main(["voice", "consent", "dana", "--name", "Dana", "--yes"]) == 0
    assert main(["voice", "show", "dana"]) == 0
    assert "how: confirmed" in capsys.readouterr().out
