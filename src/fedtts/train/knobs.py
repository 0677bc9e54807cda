"""Calibrate the prosody knobs (pitch, expressiveness) that :mod:`fedtts.voice.style` applies.

Why apart from the style module: synthesis only reads the shipped directions
(``fedtts/data/prosody_knobs.npz``); measuring them renders dozens of perturbed packs with the ONNX
model (:func:`calibrate_knobs`) or differentiates the torch rebuild (:func:`calibrate_knobs_torch`),
training work no runtime path needs.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np

from fedtts.engine import EngineConfig, KokoroEngine
from fedtts.engine.assets import load_stock_packs
from fedtts.voice.profile import PROSODY, Voice, stock_voice_names
from fedtts.voice.prosody import measure_prosody
from fedtts.voice.resolve import CALIBRATION_PHONEMES, render_phonemes
from fedtts.voice.style import knobs_path, reload_knobs

__all__ = ["calibrate_knobs", "calibrate_knobs_torch"]

log = logging.getLogger(__name__)


def calibrate_knobs(n: int = 48, scale: float = 0.8, seed: int = 0, out: Path | None = None) -> dict:
    """Render ``n`` random prosody perturbations, regress F0 level/range on them, save directions."""
    packs = load_stock_packs()
    rows = np.stack([p[10:250, PROSODY] for p in packs.values()]).reshape(-1, 128)
    mean, std = rows.mean(0), rows.std(0) + 1e-4
    rng = np.random.default_rng(seed)
    names = stock_voice_names()
    engine = KokoroEngine(EngineConfig())  # training: its own model, not a runtime's
    Z, Y = [], []
    for i in range(n):
        base = Voice(name="b", pack=packs[names[i % len(names)]])
        dz = rng.normal(0, scale, 128).astype(np.float32)
        pack = base.pack.copy()
        pack[:, PROSODY] = pack[:, PROSODY] + dz * std
        audio = render_phonemes(Voice(name="p", pack=pack), engine=engine)
        pr = measure_prosody(audio, 24000)
        z_row = (pack[100, PROSODY] - mean) / std
        Z.append(z_row)
        Y.append([pr.f0_median_st, pr.f0_range_st])
        log.info("calibration %d/%d: F0 %.1f st, range %.1f st", i + 1, n, *Y[-1])
    Z, Y = np.array(Z), np.array(Y)
    lam = 5.0
    Zc = np.hstack([np.ones((n, 1)), Z])
    reg = lam * np.eye(129)
    reg[0, 0] = 0
    coef = np.linalg.solve(Zc.T @ Zc + reg, Zc.T @ Y)  # [129, 2]
    pred = Zc @ coef
    r2 = 1 - ((Y - pred) ** 2).sum(0) / ((Y - Y.mean(0)) ** 2).sum(0)
    # leave-one-out style check: 4-fold CV R²
    folds = np.arange(n) % 4
    cv = np.zeros_like(Y)
    for f in range(4):
        tr = folds != f
        c = np.linalg.solve(Zc[tr].T @ Zc[tr] + reg, Zc[tr].T @ Y[tr])
        cv[~tr] = Zc[~tr] @ c
    cv_r2 = 1 - ((Y - cv) ** 2).sum(0) / ((Y - Y.mean(0)) ** 2).sum(0)
    info = {"n": n, "scale": scale, "seed": seed, "r2": r2.tolist(), "cv_r2": cv_r2.tolist()}
    out = out or knobs_path()
    np.savez_compressed(
        out,
        mean=mean.astype(np.float32),
        std=std.astype(np.float32),
        a_level=np.float32(coef[0, 0]),
        a_range=np.float32(coef[0, 1]),
        b_level=coef[1:, 0].astype(np.float32),
        b_range=coef[1:, 1].astype(np.float32),
        info=np.array(json.dumps(info)),
    )
    reload_knobs()
    return info


def calibrate_knobs_torch(out: Path | None = None) -> dict:
    """Knob directions from the differentiable model: Jacobian of F0 level / range (semitones) w.r.t.
    the standardised prosody half, through the predictor only (durations fixed), averaged over the
    stock packs and two sentences. Needs torch (training-time only); the result ships as npz."""
    import torch  # the [train] extra

    from fedtts.engine.torch_model import load_torch_model  # imports torch

    torch.set_num_threads(2)
    model = load_torch_model()
    net = model.net
    packs = load_stock_packs()
    rows = np.stack([p[10:250, PROSODY] for p in packs.values()]).reshape(-1, 128)
    mean, std = rows.mean(0), rows.std(0) + 1e-4
    texts = [CALIBRATION_PHONEMES, "aɪ θˈɪŋk wiː ʃˈʊd ɡˈoʊ tə ðə pˈɑːɹk tədˈeɪ, ɪts sˈʌni ænd wˈɔːɹm."]
    jac, ranges = [], []
    for name, pack in packs.items():
        for ph in texts:
            ids = model.tokenize(ph)
            row = pack[len(ids) - 1]
            z = torch.from_numpy(((row[PROSODY] - mean) / std).astype(np.float32)).requires_grad_(True)
            s_pro = (torch.from_numpy(mean) + torch.from_numpy(std) * z)[None]
            tok = model._tokens(ids)
            bert = net.bert(tok)
            d_en = net.bert_encoder(bert).transpose(1, 2)
            d = net.predictor.text_encoder(d_en, s_pro)
            raw = net.predictor.durations(d)[0]
            dur = torch.round(raw.detach()).clamp(min=1).long()
            frames = int(dur.sum())
            idx = torch.repeat_interleave(torch.arange(tok.shape[1]), dur)
            aln = torch.zeros(tok.shape[1], frames)
            aln[idx, torch.arange(frames)] = 1.0
            f0, _ = net.predictor.f0n(d.transpose(1, 2) @ aln[None], s_pro)
            f0 = f0[0]
            voiced = f0.detach() > 40
            st = 12 * torch.log2(f0[voiced].clamp(min=1.0) / 100.0)
            level = st.mean()
            rng = 2.563 * st.std()  # p90 − p10 of a normal ≈ 2.563 σ
            g_level = torch.autograd.grad(level, z, retain_graph=True)[0].numpy()
            g_range = torch.autograd.grad(rng, z)[0].numpy()
            jac.append(np.stack([g_level, g_range]))
            ranges.append(float(rng))
            log.info("%s: level %.1f st, range %.1f st", name, float(level), float(rng))
    J = np.mean(jac, axis=0)  # [2, 128]
    cos = [float(np.dot(j[0], J[0]) / (np.linalg.norm(j[0]) * np.linalg.norm(J[0]))) for j in jac]
    info = {
        "method": "torch-jacobian",
        "n": len(jac),
        "mean_range_st": float(np.mean(ranges)),
        "level_direction_agreement": cos,
    }
    out = out or knobs_path()
    np.savez_compressed(
        out,
        mean=mean.astype(np.float32),
        std=std.astype(np.float32),
        a_level=np.float32(0.0),
        a_range=np.float32(np.mean(ranges)),
        b_level=J[0].astype(np.float32),
        b_range=J[1].astype(np.float32),
        info=np.array(json.dumps(info)),
    )
    reload_knobs()
    return info
