"""The output folder the UI and the API write to and serve from: names, caps and cleaning.

Every file either front door writes gets a fresh ``<UTC time>_<stem>_<random>`` name inside it, is
served only by plain name (:func:`safe_child`), and counts toward the folder's size and age caps;
``fedtts outputs clean`` uses the same rules by hand.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import secrets
import stat
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from fedtts.app.errors import ServiceError
from fedtts.pipeline.audio_io import write_audio

__all__ = [
    "MB",
    "OutputFolder",
    "OutputsInfo",
    "PruneReport",
    "check_output_root",
    "is_service_output",
    "parse_duration",
    "plain_name",
    "prune_outputs",
    "safe_child",
]

log = logging.getLogger(__name__)

MB = 1024 * 1024
_OUTPUT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,200}$")


def safe_child(root: Path, name: str) -> Path:
    """``root/name`` for a plain file name only; anything that could leave ``root`` is refused."""
    if not isinstance(name, str) or not _OUTPUT_NAME.match(name) or ".." in name:
        raise ServiceError(
            f"invalid file name {name!r}: plain names only (no folders or '..')", 400, "invalid_name"
        )
    root = Path(root).resolve()
    path = (root / name).resolve()
    if path.parent != root:
        raise ServiceError(f"{name!r} is outside the output folder", 400, "invalid_name")
    return path


# ---------------------------------------------------------------------- output folder cap

# what output_path() names: <UTC time>_<stem>_<6 hex> (+ suffix); batch jobs are such folders
_SERVICE_OUTPUT = re.compile(r"^\d{8}-\d{6}_[A-Za-z0-9_.\-]*_[0-9a-f]{6}(\.[A-Za-z0-9]{1,9})?$")
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$", re.IGNORECASE)
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400, "": 86400}


def parse_duration(text: str) -> float:
    """'7d', '12h', '30m', '90s', '2w' (a bare number is days) → seconds; ValueError names the input."""
    m = _DURATION.match(str(text))
    if not m:
        raise ValueError(f"invalid duration {text!r}: use a number and a unit, like 7d, 12h, 30m or 90s")
    return float(m.group(1)) * _UNIT_S[m.group(2).lower()]


def is_service_output(name: str) -> bool:
    """Whether a top-level entry of the output folder was written by the UI/API (output_path)."""
    return bool(_SERVICE_OUTPUT.match(name))


def check_output_root(root: Path) -> Path:
    """Refuse to clean a folder that holds more than outputs: /, the home folder, or an ancestor of
    the current folder or of home (a mistyped --dir must not empty a user's files)."""
    r = Path(root).expanduser().resolve()
    home = Path.home().resolve()
    cwd = Path.cwd().resolve()
    if r == Path(r.anchor) or r == home or home.is_relative_to(r) or cwd.is_relative_to(r):
        raise ValueError(
            f"{root}: refusing to clean this folder (it is /, the home folder or holds the current "
            "folder); give the output folder itself"
        )
    return r


@dataclass
class PruneReport:
    """What :func:`prune_outputs` removed (or would remove with ``dry_run``) and what is left."""

    removed: list[Path] = field(default_factory=list)
    removed_bytes: int = 0
    kept_files: int = 0
    kept_bytes: int = 0


def _output_files(root: Path, everything: bool) -> list[tuple[float, int, Path]]:
    """(mtime, size, path) of regular files under ``root``; links are neither followed nor touched.

    Only entries named like the service's outputs unless ``everything``."""
    out = []
    for top in sorted(root.iterdir()):
        if not everything and not is_service_output(top.name):
            continue
        if top.is_symlink():
            continue
        walk = [(str(root), [], [top.name])] if top.is_file() else os.walk(top, followlinks=False)
        for dirpath, _dirs, names in walk:
            for name in names:
                p = Path(dirpath) / name
                try:
                    st = os.lstat(p)
                except OSError:
                    continue
                if stat.S_ISREG(st.st_mode):
                    out.append((st.st_mtime, st.st_size, p))
    return out


def prune_outputs(
    root: Path,
    max_bytes: int | None = None,
    max_age_s: float | None = None,
    keep: tuple[Path, ...] = (),
    everything: bool = False,
    dry_run: bool = False,
    now: float | None = None,
) -> PruneReport:
    """Delete output files older than ``max_age_s``, then the oldest until the rest fit ``max_bytes``.

    Never outside ``root`` (paths are checked after resolving, links are skipped), never a path in
    ``keep`` (the file just written, a running batch job); emptied job folders are removed too.
    """
    root = Path(root).resolve()
    report = PruneReport()
    if not root.is_dir():
        return report
    now = time.time() if now is None else now
    kept_roots = [Path(k).resolve() for k in keep]
    files = sorted(_output_files(root, everything))  # oldest first
    victims: list[tuple[int, Path]] = []
    rest: list[tuple[int, Path]] = []
    for mtime, size, p in files:
        protected = any(p == k or p.is_relative_to(k) for k in kept_roots)
        if not p.resolve().is_relative_to(root) or protected:
            report.kept_files += 1
            report.kept_bytes += size
            continue
        if max_age_s is not None and now - mtime > max_age_s:
            victims.append((size, p))
        else:
            rest.append((size, p))
    total = sum(s for s, _ in rest) + report.kept_bytes
    if max_bytes is not None:
        while rest and total > max_bytes:
            size, p = rest.pop(0)
            victims.append((size, p))
            total -= size
    for size, p in victims:
        if not dry_run:
            try:
                p.unlink()
            except OSError as e:
                log.warning("could not remove %s: %s", p, e)
                continue
        report.removed.append(p)
        report.removed_bytes += size
    report.kept_files += len(rest)
    report.kept_bytes += sum(s for s, _ in rest)
    if not dry_run:
        _remove_empty_dirs(root, {p.parent for _, p in victims})
    return report


def _remove_empty_dirs(root: Path, dirs: set[Path]) -> None:
    """Remove emptied folders below ``root`` (never ``root`` itself), deepest first."""
    todo = set()
    for d in dirs:
        while d != root and d.is_relative_to(root):
            todo.add(d)
            d = d.parent
    for d in sorted(todo, key=lambda x: len(x.parts), reverse=True):
        if not d.is_symlink():
            with contextlib.suppress(OSError):
                d.rmdir()  # fails (kept) when not empty


def plain_name(name: str) -> str:
    """The last part of an uploaded file's name, if it is a plain one (no hidden or odd names)."""
    base = Path(str(name).replace("\\", "/")).name
    if not base or base.startswith(".") or not _OUTPUT_NAME.match(base):
        raise ServiceError(f"unusable file name {name!r}", 400, "invalid_name")
    return base


@dataclass
class OutputsInfo:
    """The output folder's size and caps (the System tab, ``GET /v1/cache``)."""

    files: int
    bytes: int
    path: str
    max_bytes: int | None
    max_age_s: float | None


class OutputFolder:
    """The service's output folder: fresh names, the only files served, the caps, and the batch-job
    folders being written (never pruned while they run)."""

    def __init__(self, root: Path, max_bytes: int | None = None, max_age_s: float | None = None):
        self.root = Path(root)
        self.max_bytes = max_bytes
        self.max_age_s = max_age_s
        self._lock = threading.Lock()
        self._active: set[Path] = set()

    @property
    def dir(self) -> Path:
        self.root.mkdir(parents=True, exist_ok=True)
        return self.root.resolve()

    def path(self, stem: str, suffix: str = ".wav") -> Path:
        """A fresh, unique file in the output folder: ``<UTC time>_<stem>_<random>.<suffix>``."""
        stem = re.sub(r"[^A-Za-z0-9_.\-]+", "-", stem or "speech").strip("-.")[:40] or "speech"
        ts = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
        return safe_child(self.dir, f"{ts}_{stem}_{secrets.token_hex(3)}{suffix}")

    def file(self, name: str) -> Path:
        """An existing regular file inside the output folder (the only files ever served)."""
        path = safe_child(self.dir, name)
        if not path.is_file() or path.is_symlink():
            raise ServiceError(f"no output file named {name!r}", 404, "not_found")
        return path

    def save_audio(
        self, audio: np.ndarray, sr: int, stem: str, fmt: str = "wav", tags: dict[str, str] | None = None
    ) -> Path:
        """Write one result under a fresh name, then apply the caps (never to that file)."""
        path = self.path(stem, f".{fmt}")
        write_audio(path, audio, sr, tags=tags)
        self.enforce_cap(keep=(path,))
        return path

    def protect(self, job: Path) -> None:
        """A batch-job folder being written: the caps leave it alone until :meth:`release`."""
        with self._lock:
            self._active.add(job)

    def release(self, job: Path) -> None:
        with self._lock:
            self._active.discard(job)

    def enforce_cap(self, keep: tuple[Path, ...] = ()) -> PruneReport:
        """Apply ``max_bytes``/``max_age_s`` to the files this service wrote."""
        if self.max_bytes is None and self.max_age_s is None:
            return PruneReport()
        with self._lock:
            keep = (*keep, *self._active)
        report = prune_outputs(self.dir, self.max_bytes, self.max_age_s, keep=keep)
        if report.removed:
            log.info(
                "output cap: removed %d old file(s), %.1f MB, from %s",
                len(report.removed),
                report.removed_bytes / MB,
                self.dir,
            )
        return report

    def info(self) -> OutputsInfo:
        files = [p for p in self.dir.rglob("*") if p.is_file()]
        return OutputsInfo(
            files=len(files),
            bytes=sum(p.stat().st_size for p in files),
            path=str(self.dir),
            max_bytes=self.max_bytes,
            max_age_s=self.max_age_s,
        )
