"""Disk cache of analysis results keyed by text + dictionary + front-end version."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

from fedtts.engine.assets import cache_dir

__all__ = ["cache_info", "cache_clear", "cache_get", "cache_put", "default_cache_dir"]


def default_cache_dir() -> Path:
    return Path(cache_dir()) / "frontend"


def key_for(text: str, dict_key: str, version: str) -> str:
    return hashlib.sha256(f"{version}\0{dict_key}\0{text}".encode()).hexdigest()


def cache_get(key: str, root: Path | None = None):
    p = (root or default_cache_dir()) / f"{key}.json"
    try:
        return json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def cache_put(key: str, value, root: Path | None = None) -> None:
    root = root or default_cache_dir()
    root.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=root, suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(value, f, ensure_ascii=False)
    os.replace(tmp, root / f"{key}.json")


def cache_info(root: Path | None = None) -> dict:
    root = root or default_cache_dir()
    files = list(root.glob("*.json")) if root.is_dir() else []
    return {"entries": len(files), "bytes": sum(f.stat().st_size for f in files), "path": str(root)}


def cache_clear(root: Path | None = None) -> int:
    root = root or default_cache_dir()
    n = 0
    for f in root.glob("*.json") if root.is_dir() else []:
        f.unlink(missing_ok=True)
        n += 1
    return n
