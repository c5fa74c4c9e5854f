"""CLI fixtures: a populated SHIPYARD_HOME and an empty one."""

from __future__ import annotations

from pathlib import Path

import pytest
from cli_support import Home, populate


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Home:
    """Experiments rides-pricing (runs baseline, wide), other (lonely, dup, dup,
    the deleted gone), empty-exp, and the deleted old; the CLI runs against it."""
    h = Home(tmp_path_factory.mktemp("shipyard-home"))
    populate(h, tmp_path_factory.mktemp("artifacts"))
    return h


@pytest.fixture
def empty_home(tmp_path: Path) -> Home:
    """A SHIPYARD_HOME where nothing was ever tracked (no database file)."""
    return Home(tmp_path / "home")
