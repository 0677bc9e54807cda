"""fedtts.train: training code that synthesis never imports (like piper's ``piper_train``).

Why a package of its own: fitting the tuner, building the style bank, fitting the render-spectrum
map, calibrating the prosody knobs and checking style inversion render hundreds of voices or need
torch; keeping them out of ``voice`` and ``engine`` keeps the runtime modules small and means a
synthesis process never loads them. Nothing under ``fedtts.voice``, ``fedtts.engine``,
``fedtts.pipeline`` or ``fedtts.app``'s synthesis path imports this package (``fedtts train …``
imports it when run).

- :mod:`fedtts.train.tuner`: fit the voice tuner (central; also the local step of a Flower client);
- :mod:`fedtts.train.bank`: render and measure the style bank;
- :mod:`fedtts.train.spectrum`: fit the style → long-term-spectrum map of spectral match;
- :mod:`fedtts.train.knobs`: calibrate the pitch / expressiveness directions;
- :mod:`fedtts.train.inversion`: style inversion toward a dev speaker, evaluated on held-back clips.
"""
