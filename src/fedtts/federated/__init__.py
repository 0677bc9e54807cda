"""fedtts.federated: train the voice tuner across devices with Flower (SecAgg+, DP), version the results.

Public names are loaded lazily so `fedtts --help` does not import Flower; see docs/federated.md.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "FLConfig": "fedtts.federated.config",
    "fedtts_client_app": "fedtts.federated.client_app",
    "local_fit": "fedtts.federated.client_app",
    "privacy_mod": "fedtts.federated.client_app",
    "load_enrollment": "fedtts.federated.client_app",
    "fedtts_server_app": "fedtts.federated.server_app",
    "make_server_app": "fedtts.federated.server_app",
    "run_server": "fedtts.federated.server_app",
    "CountingGrid": "fedtts.federated.server_app",
    "FedTTSStrategy": "fedtts.federated.strategy",
    "build_strategy": "fedtts.federated.strategy",
    "run_simulated": "fedtts.federated.simulate",
    "node_clips": "fedtts.federated.data",
    "partition_clips": "fedtts.federated.data",
    "PrivacyAccountant": "fedtts.federated.privacy",
    "AccountantConfig": "fedtts.federated.privacy",
    "VersionRegistry": "fedtts.federated.versions",
    "check_update": "fedtts.federated.robust",
    "clip_update": "fedtts.federated.robust",
    "RunLog": "fedtts.federated.report",
    "plot_rounds": "fedtts.federated.report",
}
# (names differ from the module names, which would shadow them once imported)
_ALIASES = {"fedtts_client_app": "app", "fedtts_server_app": "app", "run_simulated": "simulate"}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        mod = importlib.import_module(_EXPORTS[name])
        value = getattr(mod, _ALIASES.get(name, name))
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
