"""Registry of global tuner versions (save, list, pull, roll back): see :mod:`fedtts.base.versions`.

Why a re-export: the registry moved to the base layer so that cloning can read the installed version
without importing the federated package; federated code and users keep this import path.
"""

from __future__ import annotations

from fedtts.base.versions import ModelVersion, VersionError, VersionRegistry

__all__ = ["ModelVersion", "VersionRegistry", "VersionError"]
