"""Metadata storage: one :class:`Store` interface, chosen by URI scheme.

* ``memory:`` -- in-process, for tests and throwaway work;
* ``sqlite:///PATH`` -- the embedded default (``$SHIPYARD_HOME/shipyard.db``);
* ``postgresql://USER@HOST/DB`` -- the team store.
"""

from __future__ import annotations

from shipyard.errors import InvalidArgumentError
from shipyard.store._base import DEFAULT_PROJECT, Store
from shipyard.store._columns import check_series, fold_summary, merge_series, series
from shipyard.store._downsample import downsample, downsample_indices

__all__ = [
    "DEFAULT_PROJECT",
    "Store",
    "check_series",
    "downsample",
    "downsample_indices",
    "fold_summary",
    "merge_series",
    "open_store",
    "series",
]


def open_store(uri: str) -> Store:
    """Open the store a URI names (SQL schemas are migrated on first use)."""
    if not isinstance(uri, str):
        raise InvalidArgumentError(f"store URI: expected a string, got {type(uri).__name__}")
    if uri == "memory:" or uri.startswith("memory:"):
        from shipyard.store._memory import MemoryStore

        return MemoryStore()
    if uri.startswith(("sqlite:", "postgresql:", "postgresql+psycopg:", "postgres:")):
        from shipyard.store._sql._store import SqlStore

        return SqlStore(uri)
    raise InvalidArgumentError(
        f"unsupported store URI {uri!r}: expected 'memory:', 'sqlite:///PATH' or "
        "'postgresql://USER@HOST:PORT/DB' (http(s):// for a team server comes later)"
    )
