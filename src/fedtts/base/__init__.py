"""Base layer: what several layers share, importing nothing of fedtts above it.

Why: when the DSP helpers, the tuner's weight format and the model-version registry lived in the
modules that first needed them (``eval.metrics``, ``voice.tuner``, ``federated.versions``), the
engine imported evaluation code and the voice layer imported the federated layer, which imported it
back. Here they depend only on numpy (and, for the tuner's prior, on the stock packs of
``fedtts.engine.assets``, itself a leaf).

- :mod:`fedtts.base.dsp`: resampling, framing, mel filters, YIN F0, long-term spectrum;
- :mod:`fedtts.base.tuner_weights`: the voice tuner's weights file, its stock prior and version files;
- :mod:`fedtts.base.versions`: the registry of global tuner versions (save, list, pull, roll back).
"""
