"""Style bank: Kokoro renders of many sampled styles, so "how a style sounds" can be looked up.

Why: finding the style that sounds like a person by gradient inversion costs minutes per voice;
rendering a few hundred styles once (public model, no personal data) and measuring their GE2E
embedding and prosody lets a device pick its own target style in milliseconds (the federated
client's enrollment) and gives the tuner synthetic (features → style) pairs to start from.

Styles are drawn around the stock packs two ways: a diagonal Gaussian in prior standard deviations
(new voices) and Dirichlet mixtures of stock-pack rows plus noise (voices near real packs).
Renders that lose voicing are dropped. Built by ``fedtts train bank``; shipped as
``fedtts/data/style_bank_v1.npz``.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.resources as resources
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = [
    "BankConfig",
    "StyleBank",
    "build_bank",
    "default_bank",
    "bank_available",
    "bank_digest",
    "BANK_PHONEMES",
]

log = logging.getLogger(__name__)
BANK_FILE = "style_bank_v1.npz"

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


@dataclass
class StyleBank:
    styles: np.ndarray  # [K, 256]
    features: np.ndarray  # [K, 262] tuner features of each render (GE2E ++ prosody)
    version: str = "bank-v1"

    @property
    def embeddings(self) -> np.ndarray:
        return self.features[:, :256]

    def save(self, path: Path) -> Path:
        np.savez_compressed(
            path,
            styles=self.styles.astype(np.float16),
            features=self.features.astype(np.float32),
            version=np.array(self.version),
        )
        return path

    @classmethod
    def load(cls, path: Path) -> StyleBank:
        with np.load(path, allow_pickle=False) as z:
            return cls(z["styles"].astype(np.float32), z["features"].astype(np.float32), str(z["version"]))

    def match(
        self, features: np.ndarray, k: int = 8, temperature: float = 0.01, f0_weight: float = 0.02
    ) -> tuple[np.ndarray, np.ndarray]:
        """Target style for a voice: softmax-weighted mean of the k best bank styles.

        Score = GE2E cosine − ``f0_weight`` · |median-F0 difference in semitones| (as the nearest
        stock resolver); ``features`` is one [262] vector or several (averaged embedding).
        Returns (style [256], indices of the k best).
        """
        f = np.atleast_2d(np.asarray(features, np.float32))
        emb = f[:, :256].mean(0)
        emb = emb / (np.linalg.norm(emb) + 1e-9)
        f0 = float(np.median(f[:, 256]))
        score = self.embeddings @ emb - f0_weight * np.abs(self.features[:, 256] - f0)
        top = np.argsort(-score)[: max(1, int(k))]
        w = np.exp((score[top] - score[top].max()) / temperature)
        return (w / w.sum()) @ self.styles[top], top


def _sample_styles(cfg: BankConfig, rng: np.random.Generator) -> np.ndarray:
    from fedtts.engine.assets import load_stock_packs
    from fedtts.voice.style import pitch_direction
    from fedtts.voice.tuner import stock_prior

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


def build_bank(cfg: BankConfig | None = None, engine=None, progress: bool = True) -> StyleBank:
    """Render every sampled style on :data:`BANK_PHONEMES` and measure it (minutes on 2 cores)."""
    from tqdm import tqdm

    from fedtts.engine import EngineConfig, KokoroEngine
    from fedtts.voice.profile import stock_voice, stock_voice_names
    from fedtts.voice.tuner import VoiceTuner

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


def _bank_path() -> Path:
    return Path(str(resources.files("fedtts.data") / BANK_FILE))


def bank_available() -> bool:
    return _bank_path().is_file()


@functools.lru_cache(maxsize=1)
def bank_digest() -> str | None:
    """sha256 of the shipped bank file (enrollment targets depend on it); None when it is missing."""
    return hashlib.sha256(_bank_path().read_bytes()).hexdigest() if bank_available() else None


@functools.lru_cache(maxsize=1)
def default_bank() -> StyleBank:
    if not bank_available():
        raise FileNotFoundError(f"style bank {_bank_path()} is missing; build it with `fedtts train bank`")
    return StyleBank.load(_bank_path())
