"""Build the style bank (``fedtts train bank``): render sampled styles with Kokoro and measure them.

Why apart from :mod:`fedtts.voice.bank`: synthesis only reads the shipped bank; sampling and
rendering hundreds of styles is training work (minutes on 2 cores) that no runtime path needs.
Styles are drawn around the stock packs two ways: a diagonal Gaussian in prior standard deviations
(new voices) and Dirichlet mixtures of stock-pack rows plus noise (voices near real packs); renders
that lose voicing are dropped.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import numpy as np
from tqdm import tqdm

from fedtts.base.tuner_weights import stock_prior
from fedtts.engine import EngineConfig, KokoroEngine
from fedtts.engine.assets import load_stock_packs
from fedtts.voice.bank import BANK_FILE, StyleBank
from fedtts.voice.profile import stock_voice, stock_voice_names
from fedtts.voice.style import pitch_direction
from fedtts.voice.tuner import VoiceTuner

__all__ = ["BANK_FILE", "BANK_PHONEMES", "BankConfig", "build_bank"]

log = logging.getLogger(__name__)

# "She sells seashells by the seashore, and then she goes home to read a book." (espeak-ng en-us)
BANK_PHONEMES = "ʃiː sˈɛlz sˈiːʃɛlz baɪ ðə sˈiːʃoːɹ, ænd ðˈɛn ʃiː ɡoʊz hˈoʊm tə ɹˈiːd ɐ bˈʊk."


@dataclass
class BankConfig:
    size: int = 400
    seed: int = 0
    sigma: tuple[float, float] = (0.3, 1.1)  # diagonal draws: z ~ N(0, σ²), σ uniform in this range
    mix_share: float = 0.5  # share of draws that are stock-row mixtures
    pitch_st: tuple[float, float] = (-10.0, 3.0)  # F0 shift along the pitch knob (stock packs sit high)
    min_voiced: float = 0.5  # keep renders voiced at least this share of the stock renders' median
    threads: int = 2

    def validate(self) -> BankConfig:
        if int(self.size) < 1:
            raise ValueError(f"size must be >= 1, got {self.size}")
        lo, hi = self.sigma
        if not 0 < lo <= hi:
            raise ValueError(f"sigma range must satisfy 0 < lo <= hi, got {self.sigma}")
        if not 0 <= self.mix_share <= 1:
            raise ValueError(f"mix_share must be in [0, 1], got {self.mix_share}")
        return self


def _sample_styles(cfg: BankConfig, rng: np.random.Generator) -> np.ndarray:
    mean, std, _ = stock_prior()
    packs = np.stack(list(load_stock_packs().values()))[:, 10:250]  # [P, rows, 256]
    out = []
    for _ in range(int(cfg.size)):
        if rng.random() < cfg.mix_share:
            n = int(rng.integers(2, 4))
            who = rng.choice(len(packs), n, replace=False)
            rows = [packs[p, rng.integers(packs.shape[1])] for p in who]
            s = rng.dirichlet(np.ones(n)) @ np.stack(rows) + std * rng.normal(0, 0.3, 256)
        else:
            s = mean + std * rng.normal(0, rng.uniform(*cfg.sigma), 256)
        s[128:] += pitch_direction(float(rng.uniform(*cfg.pitch_st)))
        out.append(s)
    return np.asarray(out, np.float32)


def build_bank(
    cfg: BankConfig | None = None, engine: KokoroEngine | None = None, progress: bool = True
) -> StyleBank:
    """Render every sampled style on :data:`BANK_PHONEMES` and measure it (minutes on 2 cores)."""
    cfg = (cfg or BankConfig()).validate()
    engine = engine or KokoroEngine(EngineConfig(threads=cfg.threads))
    tokens = engine.tokenize(BANK_PHONEMES)
    styles = _sample_styles(cfg, np.random.default_rng(cfg.seed))
    stock_voiced = [
        VoiceTuner.featurize_audio(engine.infer(tokens, stock_voice(n).style_for(len(tokens))), 24000)[258]
        for n in stock_voice_names()
    ]
    floor = cfg.min_voiced * float(np.median(stock_voiced))
    keep_s, keep_f = [], []
    t0 = time.perf_counter()
    for s in tqdm(styles, desc="style bank", disable=not progress):
        audio = engine.infer(tokens, s)
        f = VoiceTuner.featurize_audio(audio, 24000)
        if f[258] >= floor and np.all(np.isfinite(f)):  # 258 = voiced fraction
            keep_s.append(s)
            keep_f.append(f)
    log.info(
        "style bank: kept %d of %d renders in %.0f s", len(keep_s), len(styles), time.perf_counter() - t0
    )
    return StyleBank(np.asarray(keep_s, np.float32), np.asarray(keep_f, np.float32))
