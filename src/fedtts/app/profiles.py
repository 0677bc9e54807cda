"""Saved voice profiles as the UI and the API manage them: enrol with recorded consent, list, delete,
export. The store itself (:class:`fedtts.voice.store.ProfileStore`) is the runtime's, shared with the CLI."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from fedtts.app.errors import ServiceError
from fedtts.app.outputs import OutputFolder
from fedtts.voice import VoiceError, stock_voice_names
from fedtts.voice.store import ProfileInfo, ProfileStore, consent_status, validate_name

__all__ = ["Profiles", "SavedVoice"]


@dataclass
class SavedVoice:
    """One saved profile as listed to users (no pack, no clip)."""

    name: str
    method: str | None
    base: str | None
    created: str | None
    speech_s: float | None
    tuner_version: str | None
    clip_kept: bool
    consent: bool
    consent_status: str
    consent_record: dict[str, Any] | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Profiles:
    """``clone(clip, text) -> (Voice, Reference)`` is the service's cached cloning; ``outputs`` is
    where an export is written (and served from)."""

    def __init__(self, store: ProfileStore, clone: Callable, outputs: OutputFolder):
        self.store = store
        self._clone = clone
        self._outputs = outputs

    def check_name(self, name: str) -> str:
        try:
            return validate_name(name)
        except VoiceError as e:
            raise ServiceError(str(e), 400, "invalid_name", "name") from e

    def names(self) -> list[str]:
        return self.store.names()

    def enroll(
        self,
        name: str,
        clip: Path,
        consent: bool,
        ref_text: str | None = None,
        keep_clip: bool = False,
        consent_name: str = "",
        via: str = "api",
    ) -> ProfileInfo:
        """Clone ``clip`` and save it as profile ``name``: consent and who gave it are required and
        recorded (with the statement, the time, the clip's sha256 and ``via``)."""
        if consent is not True:
            raise ServiceError(
                "cloning a voice needs the speaker's consent: confirm that the person speaking in the "
                "clip agreed to have their voice cloned",
                400,
                "consent_required",
                "consent",
            )
        self.check_name(name)
        if not str(consent_name or "").strip():
            raise ServiceError(
                "field 'consent_name' is required: the name of the person who agreed to be cloned",
                400,
                "consent_required",
                "consent_name",
            )
        if self.store.exists(name):
            raise ServiceError(f"voice '{name}' already exists; delete it first", 409, "exists", "name")
        voice, ref = self._clone(clip, ref_text)
        try:
            return self.store.add(
                name,
                voice,
                consent=True,
                reference=ref,
                keep_clip=keep_clip,
                consent_name=consent_name,
                consent_via=via,
            )
        except VoiceError as e:
            raise ServiceError(str(e), 400, "invalid_voice", "name") from e

    def list(self) -> list[SavedVoice]:
        out = []
        for info in self.store.list():
            m = info.meta
            out.append(
                SavedVoice(
                    name=info.name,
                    method=m.get("method"),
                    base=m.get("base"),
                    created=m.get("created"),
                    speech_s=m.get("speech_s"),
                    tuner_version=m.get("tuner_version"),
                    clip_kept=bool(m.get("clip_file")),
                    consent=bool(m.get("consent")),
                    consent_status=consent_status(m),
                    consent_record=m.get("consent_record"),
                )
            )
        return out

    def delete(self, name: str) -> None:
        if name in stock_voice_names():
            raise ServiceError(f"'{name}' is a stock voice and cannot be deleted", 400, "stock_voice", "name")
        self._require(name)
        try:
            self.store.remove(name)
        except VoiceError as e:
            raise ServiceError(str(e), 404, "not_found", "name") from e

    def export(self, name: str) -> Path:
        """One ``.fedvoice`` file in the output folder (counted by its caps, served by name)."""
        self._require(name)
        out = Path(self.store.export(name, self._outputs.path(f"voice-{name}", ".fedvoice")))
        self._outputs.enforce_cap(keep=(out,))
        return out

    def _require(self, name: str) -> None:
        self.check_name(name)
        if not self.store.exists(name):
            raise ServiceError(f"no saved voice '{name}'", 404, "not_found", "name")
