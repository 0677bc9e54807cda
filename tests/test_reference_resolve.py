"""Nearest-stock resolution of real references (renders the stock packs once: slow)."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from fedtts.voice import load_reference, resolve_reference, resolvers
from fedtts.voice.speaker import SpeakerEncoder


def test_numpy_ge2e_is_unit_norm_and_speaker_sensitive(dev_manifest):
    enc = SpeakerEncoder()
    en = [
        r
        for r in dev_manifest
        if r["lang"] == "en" and r["speaker"].startswith("ls") and not r["speaker"].startswith("lsto")
    ]
    a, b = [r for r in en if r["speaker"] == en[0]["speaker"]][:2]
    other = next(r for r in en if r["speaker"] != a["speaker"] and r.get("gender") == a.get("gender"))
    e = [enc.embed(*sf.read(r["abspath"], dtype="float32")) for r in (a, b, other)]
    assert all(abs(np.linalg.norm(x) - 1) < 1e-4 for x in e)
    assert float(e[0] @ e[1]) > float(e[0] @ e[2])


@pytest.mark.slow
def test_nearest_stock_matches_gender(dev_manifest):
    assert "nearest" in resolvers()
    picks = {}
    for gender in ("M", "F"):
        rows = [r for r in dev_manifest if r.get("gender") == gender and r["role"] == "prompt"][:2]
        for r in rows:
            v = resolve_reference(load_reference(r["abspath"]), method="nearest")
            assert v.meta["method"] == "nearest" and v.pack.shape == (510, 256)
            picks.setdefault(gender, []).append(v.meta["base"])
    assert any(p == "jm_kumo" for p in picks["M"]), picks
    assert any(p.startswith("jf_") for p in picks["F"]), picks
