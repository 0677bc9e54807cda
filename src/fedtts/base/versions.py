"""Registry of global tuner versions: save each round, list, pull, roll back.

Why: every global model must be traceable (parent, hash, metrics, privacy spent)
and a bad round must be undoable; a restarted server resumes from the latest. In the base layer
because cloning (``voice.tuner``) reads the installed version as much as federated training writes it.
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

__all__ = ["ModelVersion", "VersionRegistry", "VersionError"]


class VersionError(ValueError):
    """A missing/corrupt version or a bad registry path."""


@dataclass
class ModelVersion:
    version: int
    parent: int | None
    sha256: str
    created: float
    metrics: dict = field(default_factory=dict)
    epsilon: float | None = None
    delta: float | None = None
    status: str = "accepted"  # or "rejected" (stored, never made current: see the federated release gate)
    reason: str = ""  # why (the gate's scores and tolerance)


Arrays = list[np.ndarray] | dict[str, np.ndarray]


def _pack(weights: Arrays) -> bytes:
    buf = io.BytesIO()
    if isinstance(weights, dict):  # named (a tuner version: the keys TunerWeights.save writes)
        np.savez(buf, **{k: np.asarray(v) for k, v in weights.items()})
    else:
        np.savez(buf, *[np.asarray(w) for w in weights])
    return buf.getvalue()


class VersionRegistry:
    """Directory of v<N>.npz + index.json; `current` marks the installed version."""

    def __init__(self, root: Path) -> None:
        # created on the first save only: listing/pulling from a missing registry must not make one
        self.root = Path(root)
        self._index = self.root / "index.json"

    def exists(self) -> bool:
        """Whether the registry holds an index (a saved version at some point)."""
        return self._index.is_file()

    def _load(self) -> dict:
        if not self._index.exists():
            return {"current": None, "versions": []}
        try:
            return json.loads(self._index.read_text())
        except json.JSONDecodeError as e:
            raise VersionError(f"{self._index}: corrupt index ({e})") from e

    def _save(self, data: dict) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = self._index.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=1))
        tmp.replace(self._index)  # atomic: a crash never leaves a half index

    def list(self) -> list[ModelVersion]:
        return [ModelVersion(**v) for v in self._load()["versions"]]

    def current(self) -> int | None:
        return self._load()["current"]

    def server_state(self) -> dict:
        """What a training server keeps beside the versions (e.g. rounds run, privacy spent), so a
        restart continues from it even when its last rounds stored no version."""
        return dict(self._load().get("server", {}))

    def save_server_state(self, state: dict) -> None:
        data = self._load()
        data["server"] = dict(state)
        self._save(data)

    def next_version(self) -> int:
        """The number the next `save` will get."""
        return 1 + max((v["version"] for v in self._load()["versions"]), default=0)

    def save(
        self,
        weights: Arrays,
        metrics: dict | None = None,
        epsilon: float | None = None,
        delta: float | None = None,
        *,
        make_current: bool = True,
        status: str = "accepted",
        reason: str = "",
    ) -> ModelVersion:
        """Store a new version whose parent is the current one; it becomes current unless
        `make_current` is False (a rejected version stays listed, with `status` and `reason`)."""
        data = self._load()
        blob = _pack(weights)
        num = 1 + max((v["version"] for v in data["versions"]), default=0)
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / f"v{num}.npz").write_bytes(blob)
        mv = ModelVersion(
            num,
            data["current"],
            hashlib.sha256(blob).hexdigest(),
            time.time(),
            dict(metrics or {}),
            epsilon,
            delta,
            status,
            reason,
        )
        data["versions"].append(asdict(mv))
        if make_current:
            data["current"] = num
        self._save(data)
        return mv

    def load(self, version: int | None = None) -> tuple[ModelVersion, Arrays]:
        """Weights of `version` (default current), hash-checked: a list if saved as a list, else a dict."""
        data = self._load()
        num = data["current"] if version is None else version
        rows = [v for v in data["versions"] if v["version"] == num]
        if not self.exists():
            raise VersionError(
                f"no model registry at {self.root}: give --registry DIR (e.g. outputs/fl_sim/models) "
                "or run `fedtts fl simulate` first"
            )
        if num is None:
            raise VersionError(f"{self.root}: no current model version (the registry is empty)")
        if not rows:
            have = ", ".join(f"v{v['version']}" for v in data["versions"]) or "none"
            raise VersionError(f"{self.root}: no version {num} (versions: {have})")
        mv = ModelVersion(**rows[0])
        try:
            blob = (self.root / f"v{num}.npz").read_bytes()
        except OSError as e:
            raise VersionError(f"{self.root}/v{num}.npz: missing ({e})") from e
        if hashlib.sha256(blob).hexdigest() != mv.sha256:
            raise VersionError(f"{self.root}/v{num}.npz: sha256 mismatch (corrupt file)")
        try:
            with np.load(io.BytesIO(blob), allow_pickle=False) as z:
                if all(f"arr_{i}" in z.files for i in range(len(z.files))):
                    return mv, [z[f"arr_{i}"] for i in range(len(z.files))]
                return mv, {k: z[k] for k in z.files}
        except (OSError, ValueError) as e:
            raise VersionError(f"{self.root}/v{num}.npz: unreadable ({e})") from e

    def rollback(self, version: int, force: bool = False) -> ModelVersion:
        """Make `version` current again (later versions stay listed); a rejected one only with `force`."""
        mv, _ = self.load(version)
        if mv.status == "rejected" and not force:
            raise VersionError(
                f"v{version} was rejected ({mv.reason or 'no reason recorded'}); `rollback --force` installs it anyway"
            )
        data = self._load()
        data["current"] = version
        self._save(data)
        return mv

    def pull(self, dest: Path, version: int | None = None) -> Path:
        """Copy a verified version file to `dest` (a client installing it)."""
        mv, _ = self.load(version)
        dest = Path(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(self.root / f"v{mv.version}.npz", dest)
        return dest
