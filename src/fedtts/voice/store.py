"""Saved voice profiles under ``data_dir()/voices/<name>/``: ``pack.npy`` + ``meta.json`` (+ clip).

A profile is the cloned style pack and how it was made (clip sha256, creation time, tuner
version, method, consent). The reference clip itself is copied only when asked (``keep_clip``),
because it is the most sensitive thing the user gave us. Export/import is one ``.fedvoice`` file
(a zip of the same files) so a voice can move between machines without the clip.
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import tempfile
import zipfile
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from fedtts.base.tuner_weights import TUNER_VERSION
from fedtts.engine.assets import data_dir
from fedtts.voice.profile import PACK_SHAPE, Voice, VoiceError, stock_voice_names

__all__ = [
    "CONSENT_STATEMENT",
    "ConsentRecord",
    "ProfileStore",
    "ProfileInfo",
    "consent_status",
    "validate_name",
    "FORMAT_VERSION",
    "EXPORT_SUFFIX",
]

FORMAT_VERSION = 1
EXPORT_SUFFIX = ".fedvoice"
_NAME = re.compile(r"^[A-Za-z0-9\u4e00-\u9fff][A-Za-z0-9_.\-\u4e00-\u9fff]{0,63}$")
_MAX_IMPORT_BYTES = 60 * 1024 * 1024


# What the person enrolling a voice confirms (the CLI's --consent, the UI's checkbox, the API's field).
CONSENT_STATEMENT = (
    "The person whose voice is in this clip agreed to have it cloned with fedtts; outputs made with "
    "the clone are synthetic and carry a watermark."
)
CONSENT_VIA = ("cli", "ui", "api", "confirmed")


@dataclass
class ConsentRecord:
    """Who agreed to be cloned, the statement they agreed to, when, for which clip, and how it was
    given: so a voice file says on whose authority it exists, and carries that when exported."""

    name: str  # the person who consented (free text)
    statement: str
    time: str  # ISO 8601, UTC
    clip_sha256: str
    via: str  # cli | ui | api | confirmed (after an import without a record)

    def to_dict(self) -> dict[str, str]:
        return asdict(self)

    @classmethod
    def from_meta(cls, meta: dict[str, Any]) -> ConsentRecord | None:
        """The profile's record, or None when it has none (or a malformed one)."""
        rec = meta.get("consent_record")
        if not isinstance(rec, dict):
            return None
        try:
            out = cls(**{k: str(rec[k]) for k in ("name", "statement", "time", "clip_sha256", "via")})
        except KeyError:
            return None
        return out if out.name.strip() and out.statement.strip() else None


def consent_status(meta: dict[str, Any]) -> str:
    """``recorded`` (a full record), ``legacy`` (``--consent`` given before records existed) or
    ``unknown`` (imported without a record: unusable until the user confirms consent)."""
    if ConsentRecord.from_meta(meta) is not None and meta.get("consent") is True:
        return "recorded"
    if meta.get("consent") is True and meta.get("consent_status") != "unknown":
        return "legacy"
    return "unknown"


def validate_name(name: str) -> str:
    """Profile names are file names: letters, digits, CJK, ``_ . -``; no paths, no blend syntax."""
    if not isinstance(name, str) or not _NAME.match(name) or ".." in name:
        raise VoiceError(
            f"invalid voice name {name!r}: use 1-64 letters, digits, CJK characters, '_', '.' or '-', "
            "starting with a letter or digit (no '/', '..', ':' or ',')"
        )
    if name in stock_voice_names():
        raise VoiceError(f"voice name {name!r} is a stock voice; choose another name")
    return name


@dataclass
class ProfileInfo:
    name: str
    meta: dict[str, Any]
    path: Path

    @property
    def has_clip(self) -> bool:
        return bool(self.meta.get("clip_file"))


class ProfileStore:
    """Add/list/get/remove/export/import saved voices; one directory per profile."""

    def __init__(self, root: Path | None = None):
        if root is None:
            root = data_dir() / "voices"
        self.root = Path(root)

    # ------------------------------------------------------------ queries
    def _dir(self, name: str) -> Path:
        return self.root / validate_name(name)

    def exists(self, name: str) -> bool:
        try:
            return (self._dir(name) / "meta.json").is_file()
        except VoiceError:
            return False

    def names(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if (p / "meta.json").is_file())

    def list(self) -> list[ProfileInfo]:
        out = []
        for name in self.names():
            try:
                meta = json.loads((self.root / name / "meta.json").read_text(encoding="utf-8"))
            except ValueError:
                meta = {"error": "corrupt meta.json"}
            out.append(ProfileInfo(name, meta, self.root / name))
        return out

    def get(self, name: str) -> Voice:
        d = self._dir(name)
        if not (d / "meta.json").is_file():
            raise VoiceError(f"no saved voice '{name}' in {self.root}; see `fedtts voice list`")
        try:
            meta = json.loads((d / "meta.json").read_text(encoding="utf-8"))
            pack = np.load(d / "pack.npy", allow_pickle=False)
        except (OSError, ValueError) as e:
            raise VoiceError(f"saved voice '{name}' is corrupt ({d}): {e}") from e
        if consent_status(meta) == "unknown":
            raise VoiceError(
                f"saved voice '{name}' has no consent record (consent unknown, e.g. imported without "
                f"one); confirm the speaker agreed: `fedtts voice consent {name} --name 'FULL NAME' --yes`"
            )
        meta = {**meta, "kind": "profile"}
        return Voice(name=name, pack=pack, meta=meta)

    def meta(self, name: str) -> dict[str, Any]:
        """A profile's metadata as stored (also for profiles that cannot be used yet)."""
        d = self._dir(name)
        if not (d / "meta.json").is_file():
            raise VoiceError(f"no saved voice '{name}' in {self.root}; see `fedtts voice list`")
        try:
            return json.loads((d / "meta.json").read_text(encoding="utf-8"))
        except ValueError as e:
            raise VoiceError(f"saved voice '{name}' is corrupt ({d}): {e}") from e

    def confirm_consent(self, name: str, who: str, via: str = "confirmed") -> ConsentRecord:
        """Record consent for a profile that lacks it (the user vouches for the speaker's agreement)."""
        if not str(who or "").strip():
            raise VoiceError("consent needs the name of the person who agreed to be cloned")
        meta = self.meta(name)
        rec = ConsentRecord(
            name=str(who).strip()[:200],
            statement=CONSENT_STATEMENT,
            time=datetime.now(timezone.utc).isoformat(timespec="seconds"),
            clip_sha256=str(meta.get("clip_sha256") or ""),
            via=via,
        )
        meta.update(consent=True, consent_record=rec.to_dict())
        meta.pop("consent_status", None)
        path = self._dir(name) / "meta.json"
        tmp = path.with_name(".meta.json.tmp")
        tmp.write_text(json.dumps(meta, ensure_ascii=False, indent=1), encoding="utf-8")
        os.replace(tmp, path)
        return rec

    def clip_path(self, name: str) -> Path | None:
        meta = self.get(name).meta
        return self._dir(name) / meta["clip_file"] if meta.get("clip_file") else None

    # ------------------------------------------------------------ changes
    def add(
        self,
        name: str,
        voice: Voice,
        *,
        consent: bool,
        reference=None,
        keep_clip: bool = False,
        overwrite: bool = False,
        extra: dict[str, Any] | None = None,
        consent_name: str = "",
        consent_via: str = "cli",
    ) -> ProfileInfo:
        """Save ``voice`` as ``name``. ``consent`` must be True: the speaker agreed to be cloned;
        ``consent_name`` (who) and ``consent_via`` (how) go into the profile's consent record."""
        if consent is not True:
            raise VoiceError(
                "cloning a voice needs the speaker's consent: confirm with --consent that the person "
                "whose voice is in the clip agreed to have it cloned"
            )
        d = self._dir(name)
        if d.exists() and not overwrite:
            raise VoiceError(f"voice '{name}' already exists ({d}); remove it first or choose another name")
        meta: dict[str, Any] = {
            "format": FORMAT_VERSION,
            "name": name,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "consent": True,
            "method": voice.meta.get("method", "unknown"),
            "tuner_version": voice.meta.get("tuner_version", TUNER_VERSION),
        }
        for key in (
            "base",
            "score",
            "steps",
            "refine_steps",
            "emotion",
            "strength",
            "pace",
            "eq_db",
            "eq_strength",
        ):
            if key in voice.meta:
                meta[key] = voice.meta[key]
        if reference is not None:
            meta.update(
                {
                    "clip_sha256": reference.sha256,
                    "clip_name": reference.path.name if reference.path else None,
                    "speech_s": round(float(reference.speech_s), 2),
                    "ref_text": reference.text,
                    "warnings": list(reference.warnings),
                }
            )
        if extra:
            meta.update(extra)
        meta["consent_record"] = ConsentRecord(
            name=str(consent_name or "").strip()[:200] or "(not named)",
            statement=CONSENT_STATEMENT,
            time=meta["created"],
            clip_sha256=str(meta.get("clip_sha256") or voice.meta.get("clip_sha256") or ""),
            via=consent_via if consent_via in CONSENT_VIA else "cli",
        ).to_dict()
        clip: dict[str, bytes] = {}
        if keep_clip:
            if reference is None or reference.path is None:
                raise VoiceError("--keep-clip needs the reference file")
            clip_file = "clip" + reference.path.suffix.lower()
            clip[clip_file] = reference.path.read_bytes()
            meta["clip_file"] = clip_file
        self._write(name, voice.pack.astype(np.float32), meta, clip)
        return ProfileInfo(name, meta, d)

    def _write(self, name: str, pack: np.ndarray, meta: dict, files: dict[str, bytes]) -> None:
        """Write a profile folder whole or not at all: built beside it, then swapped in."""
        self.root.mkdir(parents=True, exist_ok=True)
        d = self._dir(name)
        tmp = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=self.root))
        try:
            np.save(tmp / "pack.npy", pack)
            for member, data in files.items():
                (tmp / member).write_bytes(data)
            (tmp / "meta.json").write_text(json.dumps(meta, ensure_ascii=False, indent=1), encoding="utf-8")
            if d.exists():
                shutil.rmtree(d)
            os.replace(tmp, d)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)

    def remove(self, name: str) -> None:
        d = self._dir(name)
        if not d.exists():
            raise VoiceError(f"no saved voice '{name}'")
        shutil.rmtree(d)

    # ------------------------------------------------------------ exchange
    def export(self, name: str, path: str | Path) -> Path:
        """Write ``name`` to one zip file (pack, metadata, and the clip only if it was kept)."""
        d = self._dir(name)
        if not (d / "meta.json").is_file():
            raise VoiceError(f"no saved voice '{name}'")
        out = Path(path)
        if out.suffix == "":
            out = out.with_suffix(EXPORT_SUFFIX)
        out.parent.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as z:
            for f in sorted(d.iterdir()):
                z.write(f, f.name)
        return out

    def import_(self, path: str | Path, name: str | None = None, overwrite: bool = False) -> ProfileInfo:
        """Read an exported file; validates every member before anything is written."""
        p = Path(path)
        if not p.is_file():
            raise VoiceError(f"{p}: file not found")
        if p.stat().st_size > _MAX_IMPORT_BYTES:
            raise VoiceError(f"{p}: too large for a voice profile")
        try:
            with zipfile.ZipFile(p) as z:
                members = {i.filename: i for i in z.infolist()}
                allowed = re.compile(r"^(meta\.json|pack\.npy|clip\.[a-z0-9]{1,5})$")
                bad = [m for m in members if not allowed.match(m)]
                if bad:
                    raise VoiceError(f"{p}: unexpected entries {bad}: not a fedtts voice file")
                if "meta.json" not in members or "pack.npy" not in members:
                    raise VoiceError(f"{p}: missing meta.json or pack.npy: not a fedtts voice file")
                meta = json.loads(z.read("meta.json").decode("utf-8"))
                pack = np.load(io.BytesIO(z.read("pack.npy")), allow_pickle=False)
                clip = {m: z.read(m) for m in members if m.startswith("clip.")}
        except zipfile.BadZipFile as e:
            raise VoiceError(f"{p}: not a fedtts voice file ({e})") from e
        except (ValueError, KeyError) as e:
            raise VoiceError(f"{p}: corrupt voice file ({e})") from e
        if pack.shape != PACK_SHAPE or not np.all(np.isfinite(pack)):
            raise VoiceError(f"{p}: style pack must be finite {PACK_SHAPE}, got {pack.shape}")
        if int(meta.get("format", 0)) > FORMAT_VERSION:
            raise VoiceError(f"{p}: voice file format {meta.get('format')} is newer than this fedtts")
        new_name = validate_name(name or str(meta.get("name", "")))
        meta["name"] = new_name
        meta["imported"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
        voice = Voice(name=new_name, pack=pack, meta=dict(meta))
        d = self._dir(new_name)
        if d.exists() and not overwrite:
            raise VoiceError(f"voice '{new_name}' already exists; import with another name")
        if ConsentRecord.from_meta(meta) is None or meta.get("consent") is not True:
            # kept, but unusable until the user confirms the speaker's consent (`fedtts voice consent`)
            meta.update(consent=False, consent_status="unknown")
            meta.pop("consent_record", None)
        self._write(new_name, voice.pack, meta, clip)
        return ProfileInfo(new_name, meta, d)
