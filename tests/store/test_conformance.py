"""Every store passes the conformance suite shipped in :mod:`shipyard.testing`."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from shipyard.store import Store, open_store
from shipyard.testing import StoreConformance


@pytest.fixture(params=["memory", "sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """An empty store of each kind: memory, a SQLite file, a PostgreSQL database."""
    if request.param == "memory":
        uri = "memory:"
    elif request.param == "sqlite":
        uri = f"sqlite:///{tmp_path}/s.db"
    else:
        uri = request.getfixturevalue("postgres_url")
    with open_store(uri) as s:
        yield s


class TestStore(StoreConformance):
    """The Store contract, on every backend."""
