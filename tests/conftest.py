"""Shared fixtures: the real model (session-scoped, loaded once) and the real dev speech data."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("FEDTTS_SHARED", REPO.parent / "shared"))
DEV = SHARED / "data" / "dev"
TRAIN = SHARED / "data" / "train"


def pytest_configure(config) -> None:
    """User data (voice profiles, federated registry, enrollment caches) goes to a fresh folder, so a
    developer's own voices or model versions neither change test results nor get written by tests."""
    import tempfile

    os.environ["FEDTTS_DATA_DIR"] = tempfile.mkdtemp(prefix="fedtts-test-data-")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Keep each phase's report on the test item (`item.rep_call`), so a fixture's teardown can tell
    whether its test failed and print what it knows (the browser tests print the server log)."""
    outcome = yield
    rep = outcome.get_result()
    setattr(item, f"rep_{rep.when}", rep)


def _manifest(root: Path) -> list[dict]:
    path = root / "manifest.jsonl"
    if not path.is_file():
        pytest.skip(f"shared speech data not found at {root} (set FEDTTS_SHARED)")
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    for row in rows:
        row["abspath"] = str(root / row["path"])
    return rows


@pytest.fixture(scope="session")
def dev_manifest() -> list[dict]:
    return _manifest(DEV)


@pytest.fixture(scope="session")
def train_manifest() -> list[dict]:
    return _manifest(TRAIN)


@pytest.fixture(scope="session")
def engine():
    from fedtts.engine import EngineConfig, KokoroEngine

    return KokoroEngine(EngineConfig(threads=2))


@pytest.fixture(scope="module")
def synth(engine):
    """A synthesizer on the shared engine, fresh per test module (modules may set its resolver)."""
    from fedtts.pipeline import Synthesizer

    return Synthesizer(engine=engine)


@pytest.fixture(scope="module")
def voice():
    """The stock voice most tests speak with."""
    from fedtts.voice import stock_voice

    return stock_voice("jf_alpha")


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO
