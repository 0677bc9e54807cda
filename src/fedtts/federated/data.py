"""Where a node's own recordings come from (they are read locally and never sent anywhere).

Simulation: node `partition-id` p is training speaker p of `../shared/data/train/manifest.jsonl`
(one speaker = one client, the natural split). Deployment: node config `data-dir` is a folder of
the user's own clips.
"""

from __future__ import annotations

import functools
import hashlib
import json
from pathlib import Path

from fedtts.engine.assets import shared_dir

__all__ = [
    "train_speakers",
    "partition_clips",
    "folder_clips",
    "node_clips",
    "files_digest",
    "AUDIO_EXT",
]

AUDIO_EXT = (".wav", ".flac", ".mp3", ".ogg", ".m4a")


def files_digest(paths: list[str], salt: str = "") -> str:
    """sha256 of `salt` and the files' contents, in order: a cache key that survives a folder being
    restored or copied (new paths, new mtimes) and changes when a recording does."""
    h = hashlib.sha256(salt.encode())
    for p in paths:
        one = hashlib.sha256()
        with open(p, "rb") as f:  # streamed: a device folder may hold long recordings
            for block in iter(lambda f=f: f.read(1 << 20), b""):
                one.update(block)
        h.update(one.digest())
    return h.hexdigest()


@functools.lru_cache(maxsize=4)
def train_speakers(root: str | None = None) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """Sorted (speaker, clip paths) of the training manifest."""
    base = Path(root) if root else shared_dir() / "data" / "train"
    manifest = base / "manifest.jsonl"
    if not manifest.is_file():
        raise FileNotFoundError(f"training manifest not found: {manifest} (set FEDTTS_SHARED)")
    by_spk: dict[str, list[str]] = {}
    for line in manifest.read_text(encoding="utf-8").splitlines():
        if line.strip():
            row = json.loads(line)
            by_spk.setdefault(row["speaker"], []).append(str(base / row["path"]))
    return tuple((s, tuple(sorted(p))) for s, p in sorted(by_spk.items()))


def partition_clips(partition_id: int, root: str | None = None) -> tuple[str, list[str]]:
    """Speaker and clips of simulated client `partition_id`."""
    spk = train_speakers(root)
    if not 0 <= partition_id < len(spk):
        raise ValueError(f"partition-id {partition_id} out of range: {len(spk)} training speakers")
    name, clips = spk[partition_id]
    return name, list(clips)


def folder_clips(data_dir: str | Path) -> list[str]:
    d = Path(data_dir).expanduser()
    if not d.is_dir():
        raise FileNotFoundError(f"data-dir {d} is not a folder")
    clips = sorted(str(p) for p in d.iterdir() if p.suffix.lower() in AUDIO_EXT)
    if not clips:
        raise FileNotFoundError(f"data-dir {d} holds no audio clips ({', '.join(AUDIO_EXT)})")
    return clips


def node_clips(node_config: dict) -> tuple[str, list[str]]:
    """(label, clips) for a node: `data-dir` wins, else `partition-id` of the shared training set."""
    if node_config.get("data-dir"):
        d = str(node_config["data-dir"])
        return Path(d).name, folder_clips(d)
    if "partition-id" in node_config:
        return partition_clips(int(node_config["partition-id"]), node_config.get("train-root") or None)
    raise ValueError("node config needs data-dir (deployment) or partition-id (simulation)")
