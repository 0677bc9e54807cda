"""The map of fedtts's own imports stays a layered graph: no cycles, base below all, training apart.

Static (``ast``, no module is imported), so it costs milliseconds; ``scripts/import_graph.py`` prints
the same figures.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

_SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "import_graph.py"

RUNTIME = ("fedtts.base", "fedtts.frontend", "fedtts.engine", "fedtts.voice", "fedtts.pipeline")
# Layers, bottom first: an import may point to its own layer or below (README "Layout").
LAYERS = {
    "base": 0,
    "data": 0,
    "frontend": 1,
    "engine": 1,
    "voice": 2,
    "pipeline": 3,
    "eval": 4,
    "federated": 4,
    "train": 4,
    "app": 5,
    "__main__": 5,  # `python -m fedtts`: the command line, as app.cli
}
UPWARD_ALLOWED = {
    ("fedtts.base.tuner_weights", "fedtts.engine.assets"),  # the stock packs: a leaf, numpy only
}


@pytest.fixture(scope="module")
def graph():
    spec = importlib.util.spec_from_file_location("import_graph", _SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    sys.modules["import_graph"] = mod
    spec.loader.exec_module(mod)
    return mod, mod.scan()


def test_no_import_cycle_among_fedtts_modules(graph):
    mod, scanned = graph
    found = mod.cycles(mod.dependency_edges(scanned))
    assert not found, f"import cycles among fedtts modules (in-function imports included): {found}"
    assert not mod.cycles(mod.import_edges(scanned)), "a cycle at import time"


def test_base_imports_nothing_above_it(graph):
    _, scanned = graph
    for name, info in scanned.items():
        if name.startswith("fedtts.base"):
            deps = info.top | {t for _, t in info.deferred}
            above = {d for d in deps if not d.startswith("fedtts.base") and d != "fedtts.engine.assets"}
            assert not above, f"{name} imports {above}: base modules may use only base and engine.assets"


def test_runtime_never_imports_training(graph):
    _, scanned = graph
    for name, info in scanned.items():
        if name.startswith(RUNTIME):
            deps = info.top | {t for _, t in info.deferred}
            bad = {d for d in deps if d.startswith(("fedtts.train", "fedtts.eval", "fedtts.app"))}
            assert not bad, f"{name} (runtime) imports {bad}"


def _layer(module: str) -> int:
    parts = module.split(".")
    return LAYERS[parts[1]] if len(parts) > 1 else 0  # the root package holds only __version__


def test_imports_point_down_the_layers(graph):
    mod, scanned = graph
    up = [
        (name, target)
        for name, deps in sorted(mod.dependency_edges(scanned).items())
        for target in sorted(deps)
        if _layer(target) > _layer(name) and (name, target) not in UPWARD_ALLOWED
    ]
    assert not up, f"imports pointing up the layers: {up}"


def test_in_function_imports_are_few_and_deliberate(graph):
    mod, scanned = graph
    deferred = [(name, line, t) for name, info in scanned.items() for line, t in info.deferred]
    assert len(deferred) <= mod.MAX_DEFERRED, f"{len(deferred)} fedtts imports inside functions"
    unexplained = [f"{n}:{line} -> {t}" for n, line, t in deferred if mod.deferral_reason(t) is None]
    assert not unexplained, (
        f"imports inside functions that defer no optional extra (move them to the top): {unexplained}"
    )
