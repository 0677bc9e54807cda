"""Phonemes + voice style → 24 kHz audio (Kokoro-82M int8 ONNX on onnxruntime)."""

from fedtts.engine.assets import AssetError, load_stock_packs, load_vocab, model_path
from fedtts.engine.onnx_engine import MAX_TOKENS, SAMPLE_RATE, EngineConfig, KokoroEngine

__all__ = [
    "AssetError",
    "EngineConfig",
    "KokoroEngine",
    "MAX_TOKENS",
    "SAMPLE_RATE",
    "load_stock_packs",
    "load_vocab",
    "model_path",
]
