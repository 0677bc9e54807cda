"""Cloning: style bank, on-device enrollment, tuner training and the clone evaluation, on real speech."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

from fedtts.train.tuner import FitConfig, feature_stats, fit_tuner, tuner_loss
from fedtts.voice.bank import StyleBank, default_bank
from fedtts.voice.tuner import N_FEATURES, TunerWeights, VoiceTuner, stock_prior


def _bank() -> StyleBank:
    return default_bank()


def test_fit_config_validation():
    FitConfig().validate()
    for bad in (dict(epochs=0), dict(lr=0), dict(batch_size=0), dict(l2=-1), dict(prox_mu=-1)):
        with pytest.raises(ValueError):
            FitConfig(**bad).validate()


def test_bank_is_consistent_and_matches_its_own_renders():
    bank = _bank()
    assert bank.styles.shape[1] == 256 and bank.features.shape == (len(bank.styles), N_FEATURES)
    assert len(bank.styles) >= 100 and np.isfinite(bank.features).all()
    # F0 coverage: the pitch knob reaches male voices (median F0 below ~130 Hz = 4.5 st re 100 Hz)
    assert bank.features[:, 256].min() < 4.5 < bank.features[:, 256].max()
    hits = sum(int(bank.match(bank.features[i], k=1)[1][0] == i) for i in range(0, len(bank.styles), 7))
    assert hits >= 0.9 * len(range(0, len(bank.styles), 7))


def test_fit_tuner_learns_the_bank_and_prox_keeps_close():
    bank = _bank()
    n = len(bank.styles)
    tr, va = np.arange(n) % 5 != 0, np.arange(n) % 5 == 0
    mean, std = feature_stats(bank.features[tr])
    w0 = TunerWeights.init(mean, std)
    start_val = tuner_loss(w0, bank.features[va], bank.styles[va])
    start_train = tuner_loss(w0, bank.features[tr], bank.styles[tr])
    w, curve = fit_tuner(w0, bank.features[tr], bank.styles[tr], FitConfig(epochs=25))
    assert len(curve) == 25 and curve[-1] < curve[0] < start_train and curve[-1] < 0.7 * start_train
    assert tuner_loss(w, bank.features[va], bank.styles[va]) < 0.9 * start_val  # generalises
    # the input is not modified, and FedProx keeps the local model nearer the global one
    assert np.all(w0.w_t == 0)
    wp, _ = fit_tuner(w0, bank.features[tr], bank.styles[tr], FitConfig(epochs=25, prox_mu=5.0))
    dist = [float(np.linalg.norm(x.w_t - w0.w_t)) for x in (w, wp)]
    assert dist[1] < dist[0], dist
    with pytest.raises(ValueError, match="NaN"):
        bad = bank.features[:4].copy()
        bad[0, 0] = np.nan
        fit_tuner(w0, bad, bank.styles[:4])
    with pytest.raises(ValueError, match="features"):
        fit_tuner(w0, bank.features[:4, :10], bank.styles[:4])


def test_tuner_weights_roundtrip_and_federated_exchange(tmp_path):
    w = TunerWeights.init()
    w = replace(w, w_t=np.random.default_rng(0).normal(0, 0.01, w.w_t.shape).astype(np.float32))
    w.save(tmp_path / "t.npz")
    back = TunerWeights.load(tmp_path / "t.npz")
    np.testing.assert_array_equal(back.w_t, w.w_t)
    t = VoiceTuner(back)
    arrays = t.get_weights()
    arrays[0] = arrays[0] + 1.0
    t.set_weights(arrays)
    np.testing.assert_allclose(t.weights.w_t, w.w_t + 1.0)
    with pytest.raises(ValueError, match="finite"):
        t.set_weights([np.full_like(a, np.nan) for a in arrays])


def test_enrollment_of_a_real_speaker(dev_manifest):
    from fedtts.voice.enroll import enroll_speaker

    clips = [r["abspath"] for r in dev_manifest if r["speaker"] == "ls909"]
    e = enroll_speaker(clips)
    assert e.features.shape == (len(clips), N_FEATURES)
    assert e.pack.shape == (510, 256) and np.isfinite(e.pack).all()
    mean, std, _ = stock_prior()
    assert np.abs((e.style - mean) / std).max() < 6  # a style near real packs, not noise
    # a male speaker: his target's median F0 (bank) is in the male range, unlike most stock packs
    _, top = default_bank().match(e.features, k=1)
    assert default_bank().features[top[0], 256] < 8.0
    with pytest.raises(ValueError, match="no usable clip"):
        enroll_speaker([])


def test_shipped_tuner_clones_closer_than_the_untrained_one(dev_manifest, engine):
    """The shipped weights were fitted; on a held-out (dev) speaker their style renders nearer by GE2E."""
    from fedtts.voice import load_reference
    from fedtts.voice.resolve import render_phonemes
    from fedtts.voice.speaker import embed
    from fedtts.voice.tuner import default_tuner

    tuner = default_tuner()
    assert json.loads(tuner.weights.info).get("train_speakers", 0) > 100
    sims = {}
    for spk in ("ls909", "ls4853"):
        prompt = next(r for r in dev_manifest if r["speaker"] == spk and r["role"] == "prompt")
        other = next(r for r in dev_manifest if r["speaker"] == spk and r["role"] == "gt")
        ref = load_reference(prompt["abspath"])
        target = embed(load_reference(other["abspath"]).audio, 24000)
        for name, t in (("trained", tuner), ("init", VoiceTuner(TunerWeights.init()))):
            audio = render_phonemes(t.voice(ref), engine=engine)
            sims.setdefault(name, []).append(float(embed(audio, 24000) @ target))
    assert np.mean(sims["trained"]) > np.mean(sims["init"]) + 0.02, sims


def test_tuner_learns_the_timbre_of_reconstruction_targets(train_manifest, tmp_path):
    """With reconstruction targets the tuner's timbre half moves toward each speaker's fitted style."""
    from fedtts.train.tuner import speaker_dataset, train_tuner

    speakers = sorted({r["speaker"] for r in train_manifest})[:6]
    rows = [r for r in train_manifest if r["speaker"] in speakers]
    manifest = tmp_path / "manifest.jsonl"
    manifest.write_text("".join(json.dumps({**r, "path": r["abspath"]}) + "\n" for r in rows))
    data = speaker_dataset(manifest)
    mean, std, _ = stock_prior()
    rng = np.random.default_rng(0)
    # a speaker-specific timbre: the bank match's timbre shifted by one prior std in a random direction
    shift = {s: np.concatenate([std[:128] * rng.choice([-1, 1], 128), np.zeros(128)]) for s in data}
    recon = {s: (t + shift[s]).astype(np.float32) for s, (_, t) in data.items()}
    cfg = FitConfig(epochs=60)
    info = train_tuner(manifest, tmp_path / "t.npz", tmp_path / "plots", cfg, recon_targets=recon)
    w = TunerWeights.load(tmp_path / "t.npz")
    assert w.version == "tuner-v2-recon" and info["targets"] == f"reconstruction ({len(data)} speakers)"
    tuner = VoiceTuner(w)
    base = VoiceTuner(TunerWeights.init(*feature_stats(np.concatenate([f for f, _ in data.values()]))))
    err = {
        name: np.mean(
            [np.abs((t.predict(f).mean(0) - recon[s]) / std)[:128].mean() for s, (f, _) in data.items()]
        )
        for name, t in (("trained", tuner), ("init", base))
    }
    assert err["trained"] < 0.8 * err["init"], err  # the timbre half learned the targets
    assert (tmp_path / "plots" / "tuner-v2-recon_curve.png").is_file()


def test_train_tuner_refuses_to_replace_the_shipped_weights_with_bank_targets(capsys):
    from fedtts.app.cli import main

    assert main(["train", "tuner"]) == 2
    assert "--recon-targets" in capsys.readouterr().err


@pytest.mark.slow
def test_clone_eval_reports_normalised_similarity(dev_manifest, tmp_path, repo_root):
    from fedtts.eval.clone_eval import CloneEvalConfig, run_clone_eval

    man = tmp_path / "m.jsonl"
    keep = {"ls909", "ls4853", "a3_SSB0073", "a3_SSB0080"}
    rows = [r for r in dev_manifest if r["speaker"] in keep]
    man.write_text("\n".join(json.dumps({**r, "path": r["abspath"]}) for r in rows))
    report = run_clone_eval(
        CloneEvalConfig(
            manifest=man,
            methods=("bank", "nearest"),
            out=tmp_path / "o",
            asr=False,
            mos=False,
            ablation=False,
        ),
        progress=False,
    )
    summ = report["summary"]
    assert set(summ) == {"bank/en", "bank/zh", "nearest/en", "nearest/zh"}
    assert summ["bank/en"]["speakers"] == 2 and summ["bank/zh"]["speakers"] == 2
    for r in report["speakers"]:
        ex = r["extra"]
        assert ex["mfcc_ceiling"] > ex["mfcc_stranger"]  # a second real recording beats a stranger
        assert np.isfinite(r["mfcc_norm"]) and -1.5 < r["ge2e"] <= 1
        assert r["ge2e_norm"] is None or np.isfinite(r["ge2e_norm"])
    assert (tmp_path / "o" / "clone_report.json").is_file() and (
        tmp_path / "o" / "clone_similarity.png"
    ).is_file()
    with pytest.raises(ValueError, match="unknown clone method"):
        CloneEvalConfig(manifest=man, methods=("magic",)).validate()


@pytest.mark.slow
def test_server_side_scores_for_a_method_and_bad_method(dev_manifest):
    """`evaluate_method` scores the server's held-back speakers like `evaluate_tuner` does, so a
    benchmark can set the devices' targets (bank match) beside the tuner learning from them."""
    from fedtts.eval.clone_eval import evaluate_method

    plain, matched = evaluate_method("nearest", limit=3), evaluate_method("nearest+match", limit=3)
    assert plain["speakers"] == matched["speakers"] == 3
    assert all(np.isfinite(v) for v in (*plain.values(), *matched.values()))
    assert matched["similarity"] > plain["similarity"]  # spectral match brings the timbre closer
    with pytest.raises(ValueError, match="method 'refine'"):
        evaluate_method("refine")
