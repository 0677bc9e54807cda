"""Style bank: Kokoro renders of many sampled styles, so "how a style sounds" can be looked up.

Why: finding the style that sounds like a person by gradient inversion costs minutes per voice;
rendering a few hundred styles once (public model, no personal data) and measuring their GE2E
embedding and prosody lets a device pick its own target style in milliseconds (the federated
client's enrollment) and gives the tuner synthetic (features → style) pairs to start from.

Styles are drawn around the stock packs two ways: a diagonal Gaussian in prior standard deviations
(new voices) and Dirichlet mixtures of stock-pack rows plus noise (voices near real packs).
Renders that lose voicing are dropped. Built by ``fedtts train bank`` (:mod:`fedtts.train.bank`);
shipped as ``fedtts/data/style_bank_v1.npz``.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.resources as resources
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = [
    "BANK_FILE",
    "StyleBank",
    "default_bank",
    "bank_available",
    "bank_digest",
]

BANK_FILE = "style_bank_v1.npz"


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
