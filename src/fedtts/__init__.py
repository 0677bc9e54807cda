"""fedtts: privacy-first zero-shot voice-cloning TTS for Mandarin and English on CPU.

Data flows text → ``frontend`` (phonemes) → ``engine`` (audio) with a ``voice`` (style pack);
``pipeline`` chunks, streams and resamples; ``app`` holds the CLI, web UI and HTTP API;
``federated`` trains the shared voice tuner with Flower; ``eval`` measures; ``train`` holds the training
code synthesis never imports; ``base`` the DSP helpers, tuner weights format and version registry that
every layer shares.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
