"""Where things live, from the environment.

``SHIPYARD_HOME`` (default ``~/.shipyard``) holds the embedded store
``shipyard.db`` and the blob folder ``blobs/``. ``SHIPYARD_TRACKING_URI``
points at another store (``sqlite:///path``, ``postgresql://...``,
``memory:``, later ``http(s)://...``); ``SHIPYARD_BLOB_URI`` at another blob
store (a folder or any fsspec URL).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from shipyard.errors import InvalidArgumentError

__all__ = ["Settings", "settings"]


def _float_env(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise InvalidArgumentError(
            f"environment variable {name}={raw!r}: expected a number of seconds"
        ) from None
    if value <= 0:
        raise InvalidArgumentError(
            f"environment variable {name}={raw!r}: expected a positive number"
        )
    return value


def _int_env(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise InvalidArgumentError(
            f"environment variable {name}={raw!r}: expected an integer"
        ) from None
    if value <= 0:
        raise InvalidArgumentError(
            f"environment variable {name}={raw!r}: expected a positive integer"
        )
    return value


@dataclass(frozen=True, slots=True)
class Settings:
    """Resolved configuration. Build with :func:`settings` (reads the environment)."""

    home: Path
    tracking_uri: str
    blob_uri: str
    project: str
    #: Every logged point reaches the store at most this long after it was logged.
    flush_interval: float
    #: Points waiting in memory before the buffer policy applies.
    max_buffered_points: int
    #: ``block``: wait up to ``buffer_block_timeout`` for room, then drop;
    #: ``drop``: drop new points at once. Dropped points are counted and reported.
    buffer_policy: str
    buffer_block_timeout: float
    #: How long interpreter exit waits for the last flush.
    exit_flush_timeout: float
    #: A running run whose heartbeat is older than this is shown as KILLED.
    heartbeat_timeout: float


def settings() -> Settings:
    """Read the configuration from the environment (cheap; call it when needed)."""
    home = Path(os.environ.get("SHIPYARD_HOME") or Path.home() / ".shipyard").expanduser()
    tracking_uri = os.environ.get("SHIPYARD_TRACKING_URI") or f"sqlite:///{home / 'shipyard.db'}"
    blob_uri = os.environ.get("SHIPYARD_BLOB_URI") or str(home / "blobs")
    policy = os.environ.get("SHIPYARD_BUFFER_POLICY", "block")
    if policy not in ("block", "drop"):
        raise InvalidArgumentError(
            f"environment variable SHIPYARD_BUFFER_POLICY={policy!r}: expected 'block' or 'drop'"
        )
    return Settings(
        home=home,
        tracking_uri=tracking_uri,
        blob_uri=blob_uri,
        project=os.environ.get("SHIPYARD_PROJECT") or "default",
        flush_interval=_float_env("SHIPYARD_FLUSH_INTERVAL", 1.0),
        max_buffered_points=_int_env("SHIPYARD_MAX_BUFFERED_POINTS", 5_000_000),
        buffer_policy=policy,
        buffer_block_timeout=_float_env("SHIPYARD_BUFFER_BLOCK_TIMEOUT", 5.0),
        exit_flush_timeout=_float_env("SHIPYARD_EXIT_FLUSH_TIMEOUT", 60.0),
        heartbeat_timeout=_float_env("SHIPYARD_HEARTBEAT_TIMEOUT", 300.0),
    )
