"""What the System tab and ``GET /v1/system`` report: versions, the federated model, memory.

Read-only views of the process and the registry, kept apart from the model host so that a corrupt
weights file or an empty registry is reported, never raised into a request.
"""

from __future__ import annotations

import contextlib
import ctypes
import resource
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import fedtts
from fedtts.engine.assets import MODEL_FILENAME, MODEL_SHA256, registry_dir
from fedtts.federated.versions import VersionError, VersionRegistry
from fedtts.frontend import FRONTEND_VERSION
from fedtts.voice import resolvers, tuner

__all__ = [
    "FederationStatus",
    "dist_version",
    "federation_status",
    "malloc_trim",
    "memory_mb",
    "tuner_version",
    "versions",
]


def memory_mb() -> float:
    """Resident memory of this process in MB (/proc; peak RSS where /proc is missing)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def malloc_trim() -> None:
    """Give freed heap back to the OS (glibc), so "free memory" shows in the RSS figure."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def dist_version(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "not installed"


def tuner_version() -> str:
    """The installed tuner's version, or why cloning falls back to the nearest stock pack."""
    if not tuner.tuner_available():
        return f"not available yet (no {tuner.WEIGHTS_FILE}; cloning uses the nearest stock pack)"
    try:
        return str(tuner.default_tuner().version)
    except Exception as e:  # corrupt weights must not break the System tab
        return f"error loading tuner weights: {e}"


def versions() -> dict[str, str]:
    """Component → version: fedtts, the model file, front end, tuner, clone methods, runtimes."""
    out = {"fedtts": getattr(fedtts, "__version__", dist_version("fedtts"))}
    out["model"] = f"Kokoro-82M int8 ONNX ({MODEL_FILENAME}, sha256 {MODEL_SHA256[:12]})"
    out["frontend"] = FRONTEND_VERSION
    out["tuner"] = tuner_version()
    ok = "not available yet" not in out["tuner"]
    out["clone_methods"] = ", ".join(
        m if m != "tuner" or ok else "tuner (no weights yet)" for m in resolvers()
    )
    for lib in ("onnxruntime", "gradio", "fastapi"):
        out[lib] = dist_version(lib)
    return out


@dataclass
class FederationStatus:
    """The federated registry as users see it: the current global model, ε spent, each version's
    metrics and the release gate's verdict. ``available`` False with ``message`` when there is none."""

    available: bool
    message: str = ""
    registry: str = ""
    current: int | None = None
    epsilon: float | None = None
    delta: float | None = None
    history: list[dict[str, Any]] = field(default_factory=list)
    versions: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        if not self.available:
            return {"available": False, "message": self.message}
        return {
            "available": True,
            "registry": self.registry,
            "current": self.current,
            "epsilon": self.epsilon,
            "delta": self.delta,
            "history": self.history,
            "versions": self.versions,
        }


def federation_status(root: Path | None = None) -> FederationStatus:
    """Global model versions, ε spent and the metric history, from the registry at ``root`` (default:
    the one cloning reads its tuner from, ``$FEDTTS_FL_REGISTRY`` or the data folder's)."""
    root = Path(root) if root is not None else registry_dir()
    if not (root / "index.json").is_file():
        return FederationStatus(False, f"no federated rounds yet (registry {root} is empty)")
    try:
        reg = VersionRegistry(root)
        listed = reg.list()
        current = reg.current()
    except VersionError as e:
        return FederationStatus(False, str(e))
    cur = next((v for v in listed if v.version == current), None)
    # privacy is spent by every round, also one whose model the release gate rejected
    spent = max((v for v in listed if v.epsilon is not None), key=lambda v: v.epsilon, default=cur)
    return FederationStatus(
        available=True,
        registry=str(root),
        current=current,
        epsilon=spent.epsilon if spent else None,
        delta=spent.delta if spent else None,
        history=[
            {"version": v.version, "epsilon": v.epsilon, "created": v.created, **_numeric(v.metrics)}
            for v in listed
        ],
        # the release gate's verdict on each version and why (rejected ones are never current)
        versions=[
            {"version": v.version, "parent": v.parent, "status": v.status, "reason": v.reason} for v in listed
        ],
    )


def _numeric(d: dict) -> dict[str, float]:
    return {
        k: float(v) for k, v in (d or {}).items() if isinstance(v, (int, float)) and not isinstance(v, bool)
    }
