"""Reference → Voice with one of the cloning methods of :data:`METHODS`; ``--voice NAME`` → Voice.

``resolve_reference(ref)`` uses the best available method (``$FEDTTS_CLONE_METHOD`` or the
``method`` argument override). The methods are a static table, not resolvers that register
themselves when imported: which methods exist is visible here, and importing this module is enough
to have all of them (no import order to get right). ``resolve_voice_name(name)`` is what
``--voice NAME`` uses: stock packs first, then saved profiles, and blends ``"a:0.7,b:0.3"`` of either.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from fedtts.engine import EngineConfig, KokoroEngine
from fedtts.engine.assets import MODEL_SHA256, cache_dir, load_stock_packs
from fedtts.voice.bank import bank_available
from fedtts.voice.enroll import bank_voice
from fedtts.voice.profile import Voice, VoiceError, parse_voice_spec, stock_voice, stock_voice_names
from fedtts.voice.prosody import measure_prosody
from fedtts.voice.reference import Reference
from fedtts.voice.speaker import embed
from fedtts.voice.spectral_match import spectral_match as match_spectrum
from fedtts.voice.store import ProfileStore
from fedtts.voice.tuner import tuner_available, tuner_voice

__all__ = [
    "METHODS",
    "Method",
    "Resolver",
    "resolvers",
    "resolve_reference",
    "resolve_voice_name",
    "StockProfile",
    "stock_profiles",
    "nearest_stock",
    "render_phonemes",
    "clear_stock_profiles",
    "CALIBRATION_PHONEMES",
]

log = logging.getLogger(__name__)

Resolver = Callable[[Reference, "KokoroEngine | None"], Voice]


@dataclass(frozen=True)
class Method:
    """A cloning method: the function, its rank among available ones, and whether it can run here."""

    fn: Resolver
    priority: int
    available: Callable[[], bool]


def _always() -> bool:
    return True


def resolvers() -> list[str]:
    """Method names, default first."""
    return [n for n, _ in sorted(METHODS.items(), key=lambda kv: -kv[1].priority)]


def resolve_reference(
    ref: Reference, method: str | None = None, spectral_match: float = 1.0, engine: KokoroEngine | None = None
) -> Voice:
    """Make a Voice from a cleaned reference with ``method`` (default: best available).

    ``spectral_match`` (0–1.5) equalises the clone toward the reference's long-term spectrum
    (:mod:`fedtts.voice.spectral_match`); 0 leaves the model's own colour. ``engine``: the caller's
    model, for a method that renders (``nearest`` the first time on a machine).
    """
    method = method or os.environ.get("FEDTTS_CLONE_METHOD") or None
    if method:
        if method not in METHODS:
            raise VoiceError(f"unknown clone method '{method}'; available: {', '.join(resolvers())}")
        entry = METHODS[method]
        if not entry.available():
            raise VoiceError(f"clone method '{method}' is not available (missing weights or packages)")
    else:
        method = next(n for n in resolvers() if METHODS[n].available())
        entry = METHODS[method]
    voice = entry.fn(ref, engine)
    voice.meta.setdefault("method", method)
    voice.meta.setdefault("clip_sha256", ref.sha256)
    if spectral_match:
        voice = match_spectrum(voice, ref, spectral_match)
    return voice


# ------------------------------------------------------------------ stock profiles

# "The quick brown fox jumps over the lazy dog. She sells seashells by the seashore, and then she
# goes home to read a book." — espeak-ng en-us IPA, all symbols in Kokoro's vocabulary.
CALIBRATION_PHONEMES = (
    "ðə kwˈɪk bɹˈaʊn fˈɑːks dʒˈʌmps ˌoʊvɚ ðə lˈeɪzi dˈɑːɡ. ʃiː sˈɛlz sˈiːʃɛlz baɪ ðə sˈiːʃoːɹ, "
    "ænd ðˈɛn ʃiː ɡoʊz hˈoʊm tə ɹˈiːd ɐ bˈʊk."
)


def render_phonemes(
    voice: Voice, phonemes: str = CALIBRATION_PHONEMES, *, engine: KokoroEngine, speed: float = 1.0
):
    """24 kHz audio of ``phonemes`` in ``voice`` with the caller's ONNX engine."""
    tokens = engine.tokenize(phonemes)
    return engine.infer(tokens, voice.style_for(len(tokens)), speed)


@dataclass
class StockProfile:
    name: str
    embedding: np.ndarray  # GE2E of the pack rendered on the calibration sentence
    f0_median_st: float
    prosody: np.ndarray


def _stock_key() -> str:
    h = hashlib.sha256(MODEL_SHA256.encode())
    h.update(CALIBRATION_PHONEMES.encode())
    for name, pack in sorted(load_stock_packs().items()):
        h.update(name.encode())
        h.update(np.ascontiguousarray(pack, np.float32).tobytes())
    return h.hexdigest()[:16]


_STOCK: dict[str, dict[str, StockProfile]] = {}  # key → profiles (memory; the disk cache is below)


def clear_stock_profiles() -> None:
    _STOCK.clear()


def stock_profiles(engine: KokoroEngine | None = None) -> dict[str, StockProfile]:
    """Embedding and F0 of each stock pack, rendered once per machine and cached in cache_dir()/voice.

    Rendering needs the caller's ``engine``; set-up (``python -m fedtts.app.prepare``) does it once.
    """
    key = _stock_key()
    if key in _STOCK:
        return _STOCK[key]
    path = cache_dir() / "voice" / f"stock_profiles_{key}.json"
    if path.is_file():
        try:
            raw = json.loads(path.read_text())
            _STOCK[key] = {
                n: StockProfile(n, np.array(v["embedding"], np.float32), v["f0"], np.array(v["prosody"]))
                for n, v in raw.items()
            }
            return _STOCK[key]
        except (ValueError, KeyError):
            log.warning("ignoring corrupt stock profile cache %s", path)
    if engine is None:
        raise VoiceError(
            f"the stock voices' profiles are not computed on this machine ({path}): "
            "run `python -m fedtts.app.prepare` (or pass the model to compare with)"
        )
    out: dict[str, StockProfile] = {}
    for name in stock_voice_names():
        audio = render_phonemes(stock_voice(name), engine=engine)
        pros = measure_prosody(audio, 24000)
        out[name] = StockProfile(name, embed(audio, 24000), pros.f0_median_st, pros.as_array())
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    tmp.write_text(
        json.dumps(
            {
                n: {"embedding": p.embedding.tolist(), "f0": p.f0_median_st, "prosody": p.prosody.tolist()}
                for n, p in out.items()
            }
        )
    )
    os.replace(tmp, path)
    _STOCK[key] = out
    return out


def prepare() -> str:
    """Set-up step (``fedtts.app.prepare``): the stock profiles the ``nearest`` method compares with."""
    path = cache_dir() / "voice" / f"stock_profiles_{_stock_key()}.json"
    if not path.is_file():
        stock_profiles(KokoroEngine(EngineConfig()))  # set-up, not a request: its own short-lived model
    return str(path)


F0_WEIGHT = 0.02  # score penalty per semitone of median-F0 difference


def nearest_stock(
    ref: Reference, engine: KokoroEngine | None = None
) -> tuple[str, float, list[tuple[str, float]]]:
    """(best pack, its score, all scores) where score = cosine − F0_WEIGHT·|ΔF0 semitones|."""
    e = embed(ref.audio, ref.sample_rate)
    f0 = measure_prosody(ref.audio, ref.sample_rate).f0_median_st
    scores = []
    for name, prof in stock_profiles(engine).items():
        cos = float(np.dot(e, prof.embedding))
        scores.append((name, cos - F0_WEIGHT * abs(f0 - prof.f0_median_st)))
    scores.sort(key=lambda t: -t[1])
    return scores[0][0], scores[0][1], scores


def nearest_voice(ref: Reference, engine: KokoroEngine | None = None) -> Voice:
    """The "nearest" cloning method: the stock pack that sounds closest (always available)."""
    name, score, scores = nearest_stock(ref, engine)
    log.info(
        "nearest stock pack for %s: %s (score %.3f; %s)",
        ref.label,
        name,
        score,
        ", ".join(f"{n} {s:.3f}" for n, s in scores),
    )
    v = stock_voice(name)
    v.meta.update({"kind": "clone", "method": "nearest", "base": name, "score": round(score, 4)})
    return v


METHODS: dict[str, Method] = {
    "tuner": Method(lambda ref, engine: tuner_voice(ref), priority=10, available=tuner_available),
    "bank": Method(lambda ref, engine: bank_voice(ref), priority=5, available=bank_available),
    "nearest": Method(nearest_voice, priority=0, available=_always),
}
"""The cloning methods; the highest-priority available one is the default."""


# ------------------------------------------------------------------ names


def _lookup(name: str, store: ProfileStore) -> Voice:
    if name in stock_voice_names():
        return stock_voice(name)
    if store.exists(name):
        return store.get(name)
    known = stock_voice_names() + store.names()
    raise VoiceError(f"unknown voice '{name}'; known voices: {', '.join(known)}")


def resolve_voice_name(name: str, store: ProfileStore | None = None) -> Voice:
    """``--voice`` value → Voice: a stock pack, a saved profile (in ``store``, default the user's),
    or a weighted blend of them."""
    store = store if store is not None else ProfileStore()
    return parse_voice_spec(name, resolve=lambda n: _lookup(n, store))
