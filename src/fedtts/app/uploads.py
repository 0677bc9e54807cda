"""Uploads: clips and batch files sent to the API or the UI, kept under random ids in a private folder.

An upload is addressed only by its id (``upl_`` + 32 hex), never by a path the client names; the newest
64 are kept, a rejected clip is deleted at once, and the folder goes with the service when it is ours.
"""

from __future__ import annotations

import base64
import binascii
import re
import secrets
import shutil
import tempfile
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

from fedtts.app.errors import ServiceError
from fedtts.app.outputs import MB

__all__ = ["UPLOAD_ID", "Uploads", "UploadsInfo"]

UPLOAD_ID = re.compile(r"^upl_[0-9a-f]{32}$")
KEEP = 64  # uploads kept; older ones are deleted as new ones arrive


@dataclass
class UploadsInfo:
    """The upload folder's contents (the System tab, ``GET /v1/system``)."""

    files: int
    bytes: int


class Uploads:
    """The upload folder (``upload_dir``, or a private temporary one removed by :meth:`close`)."""

    def __init__(self, max_bytes: int, upload_dir: Path | None = None):
        self.max_bytes = int(max_bytes)
        self._own_dir = upload_dir is None
        self.dir = Path(upload_dir or tempfile.mkdtemp(prefix="fedtts-uploads-"))
        self.dir.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._by_id: OrderedDict[str, Path] = OrderedDict()

    def save(self, data: bytes | None = None, src: Path | None = None, suffix: str = "") -> str:
        """Store an upload (bytes or a spooled file) under a random id; keeps the newest 64."""
        if data is not None and len(data) > self.max_bytes:
            raise self.too_large(len(data))
        uid = "upl_" + secrets.token_hex(16)
        suffix = suffix.lower() if re.fullmatch(r"\.[A-Za-z0-9]{1,5}", suffix or "") else ""
        path = self.dir / f"{uid}{suffix}"
        if data is not None:
            path.write_bytes(data)
        elif src is not None:
            shutil.copyfile(src, path)
        else:
            raise ServiceError("empty upload", 400, "empty_upload")
        if path.stat().st_size == 0:
            path.unlink(missing_ok=True)
            raise ServiceError("the uploaded file is empty", 400, "empty_upload")
        with self._lock:
            self._by_id[uid] = path
            while len(self._by_id) > KEEP:
                _, old = self._by_id.popitem(last=False)
                old.unlink(missing_ok=True)
        return uid

    def path(self, uid: str) -> Path:
        """The file of an upload id; an unknown or expired id is a 404."""
        with self._lock:
            path = self._by_id.get(uid)
        if path is None or not path.is_file():
            raise ServiceError(f"unknown or expired upload id {uid!r}", 404, "unknown_upload")
        return path

    def audio_arg(self, value: str | None, param: str) -> Path | None:
        """An API audio argument: an upload id (``upl_…``) or base64 audio (data: URLs too)."""
        if value is None or value == "":
            return None
        if not isinstance(value, str):
            raise ServiceError(
                f"{param} must be a string (upload id or base64 audio)", 400, "invalid_audio", param
            )
        if UPLOAD_ID.match(value):
            return self.path(value)
        payload = value.split(",", 1)[1] if value.startswith("data:") and "," in value else value
        try:
            data = base64.b64decode(payload, validate=True)
        except (binascii.Error, ValueError) as e:
            raise ServiceError(
                f"{param}: not an upload id (upl_…) nor valid base64 audio ({e})", 400, "invalid_audio", param
            ) from e
        if not data:
            raise ServiceError(f"{param}: empty audio", 400, "invalid_audio", param)
        return self.path(self.save(data))

    def discard(self, path: Path | None) -> None:
        """Delete an upload (a rejected clip) now rather than when it ages out of the 64 kept."""
        if path is None:
            return
        p = Path(path)
        with self._lock:
            for uid, up in list(self._by_id.items()):
                if up == p:
                    del self._by_id[uid]
        if p.parent.resolve() == self.dir.resolve() and UPLOAD_ID.match(p.stem):
            p.unlink(missing_ok=True)

    def too_large(self, n: int | None = None) -> ServiceError:
        got = f" ({n / MB:.1f} MB)" if n else ""
        return ServiceError(
            f"upload too large{got}: the limit is {self.max_bytes / MB:g} MB", 413, "too_large"
        )

    def clear(self) -> int:
        """Delete every upload; how many there were."""
        with self._lock:
            n = len(self._by_id)
            for p in self._by_id.values():
                p.unlink(missing_ok=True)
            self._by_id.clear()
        return n

    def info(self) -> UploadsInfo:
        files = [p for p in self.dir.glob("*") if p.is_file()]
        return UploadsInfo(files=len(files), bytes=sum(p.stat().st_size for p in files))

    def close(self) -> None:
        if self._own_dir:
            shutil.rmtree(self.dir, ignore_errors=True)
