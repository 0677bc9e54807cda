"""Fit the render-spectrum map (``fedtts train spectrum``): style → long-term spectrum of its renders.

Why apart from :mod:`fedtts.voice.spectral_match`: cloning only applies the shipped map; fitting it
renders style-bank entries and the stock packs (public model and styles, no recordings), which no
runtime path needs.
"""

from __future__ import annotations

import numpy as np
from tqdm import tqdm

from fedtts.base.tuner_weights import pack_to_style, style_to_pack
from fedtts.engine import EngineConfig, KokoroEngine
from fedtts.voice.bank import default_bank
from fedtts.voice.profile import Voice, stock_voice, stock_voice_names
from fedtts.voice.resolve import render_phonemes
from fedtts.voice.spectral_match import SPECTRUM_FILE, RenderSpectrum, ltas_db

__all__ = ["SPECTRUM_FILE", "fit_render_spectrum", "train_render_spectrum"]


def fit_render_spectrum(styles: np.ndarray, ltas: np.ndarray, ridge: float = 3.0) -> RenderSpectrum:
    """Fit the map on (style, measured render LTAS) pairs (ridge on centred styles)."""
    x = np.asarray(styles, np.float64)
    y = np.asarray(ltas, np.float64)
    mean = x.mean(0)
    xc = x - mean
    w = np.linalg.solve(xc.T @ xc + ridge * np.eye(x.shape[1]), xc.T @ (y - y.mean(0)))
    return RenderSpectrum(w, y.mean(0), mean)


def train_render_spectrum(
    n_styles: int = 120, seed: int = 0, ridge: float = 3.0, progress: bool = True
) -> tuple[RenderSpectrum, dict[str, float]]:
    """Render ``n_styles`` style-bank entries and the stock packs on the calibration sentence,
    measure their LTAS, fit the map. Public model and styles only (no recordings)."""
    bank = default_bank()
    pick = np.random.default_rng(seed).permutation(len(bank.styles))[: int(n_styles)]
    voices = [Voice("bank", style_to_pack(bank.styles[i])) for i in pick]
    voices += [stock_voice(n) for n in stock_voice_names()]
    styles, ltas = [], []
    engine = KokoroEngine(EngineConfig())  # training: its own model, not a runtime's
    for v in tqdm(voices, desc="render spectrum", disable=not progress):
        styles.append(pack_to_style(v.pack))
        ltas.append(ltas_db(render_phonemes(v, engine=engine)))
    styles_a, ltas_a = np.stack(styles), np.stack(ltas)
    # held-out check: fit on all but every 5th voice, report the error on those
    test = np.arange(len(voices)) % 5 == 0
    held = fit_render_spectrum(styles_a[~test], ltas_a[~test], ridge)
    err = held.predict(styles_a[test]) - ltas_a[test]
    err -= err.mean(1, keepdims=True)  # curves are level-free
    base = ltas_a[test] - ltas_a[~test].mean(0)
    base -= base.mean(1, keepdims=True)
    stats = {
        "voices": len(voices),
        "heldout_rms_db": float(np.sqrt(np.mean(err**2))),
        "constant_rms_db": float(np.sqrt(np.mean(base**2))),
    }
    return fit_render_spectrum(styles_a, ltas_a, ridge), stats
