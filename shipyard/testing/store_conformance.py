"""The conformance suite for :class:`~shipyard.store.Store` implementations.

Every rule of the contract in :mod:`shipyard.store._base` has a test here, and
every store (memory, SQLite, PostgreSQL, the REST client) runs all of them. A
third-party backend gets the same check by subclassing::

    import pytest
    from shipyard.testing import StoreConformance

    @pytest.fixture
    def store(tmp_path):
        with MyStore(tmp_path) as s:
            yield s

    class TestMyStore(StoreConformance):
        pass

The ``store`` fixture must give each test a store that is empty, or at least
holds nothing the test made (tests use random names, so a shared database
works as long as it is reset between tests). Each test's one-line docstring
states the behaviour it checks, so the report reads as a specification.
"""

from __future__ import annotations

from shipyard.testing._store_datasets import DatasetTests
from shipyard.testing._store_entities import EntityTests
from shipyard.testing._store_logging import LoggingTests
from shipyard.testing._store_registry import RegistryTests
from shipyard.testing._store_robustness import RobustnessTests
from shipyard.testing._store_search import SearchTests

__all__ = ["StoreConformance"]


class StoreConformance(
    EntityTests, LoggingTests, SearchTests, RobustnessTests, DatasetTests, RegistryTests
):
    """Mix into a ``Test...`` class next to a ``store`` fixture to check a store."""
