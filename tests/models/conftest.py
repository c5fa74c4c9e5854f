"""Fixtures for model-package tests: a fresh SHIPYARD_HOME, a clean fluent state,
and small fitted models."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
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


@pytest.fixture
def frame() -> Any:
    """Six rides: two numeric columns and one categorical."""
    import pandas as pd

    return pd.DataFrame(
        {
            "distance": [1.0, 2.5, 3.0, 4.2, 5.0, 6.1],
            "passengers": [1, 2, 1, 3, 2, 1],
            "zone": ["north", "south", "north", "east", "south", "north"],
        }
    )


@pytest.fixture
def pipeline(frame: Any) -> Any:
    """A StandardScaler + one-hot ColumnTransformer feeding a LogisticRegression."""
    from model_support import make_pipeline

    return make_pipeline(frame, np.array([0, 1, 0, 1, 1, 0]))
