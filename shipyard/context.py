"""Process-wide context that domain packages share without importing each other.

``shipyard.tracking`` registers the active run and the tracking URI chosen
with ``set_tracking_uri``; ``shipyard.data`` (``data.use`` records an input of
the active run) reads them. Siblings in one layer never import each other, so
this small registry lives at the bottom.
"""

from __future__ import annotations

import threading

from shipyard.config import settings

__all__ = ["active_run_id", "pop_run", "push_run", "set_tracking_uri", "tracking_uri"]

_lock = threading.Lock()
_run_ids: list[str] = []
_tracking_uri: str | None = None


def push_run(run_id: str) -> None:
    with _lock:
        _run_ids.append(run_id)


def pop_run(run_id: str) -> None:
    with _lock:
        if run_id in _run_ids:
            _run_ids.remove(run_id)


def active_run_id() -> str | None:
    """The id of the run logging calls go to, or None."""
    return _run_ids[-1] if _run_ids else None


def set_tracking_uri(uri: str | None) -> None:
    global _tracking_uri
    _tracking_uri = uri


def tracking_uri() -> str:
    """The store URI in use: set_tracking_uri's, else the environment's."""
    return _tracking_uri or settings().tracking_uri
