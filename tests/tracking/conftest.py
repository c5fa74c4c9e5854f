"""Fixtures for tracking tests: a fresh SHIPYARD_HOME and a clean fluent state."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from shipyard.tracking import _fluent


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """An empty SHIPYARD_HOME with the embedded SQLite store; fluent state reset."""
    monkeypatch.setenv("SHIPYARD_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("SHIPYARD_TRACKING_URI", raising=False)
    monkeypatch.delenv("SHIPYARD_BLOB_URI", raising=False)
    _fluent.set_tracking_uri(None)
    yield tmp_path / "home"
    while _fluent._stack:
        _fluent.end_run()
    _fluent.set_tracking_uri(None)
    _fluent._experiment = None
