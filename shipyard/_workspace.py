"""The store and blob store a domain client works on, opened on first use.

The data, model and registry clients are siblings that may not import each
other, yet each needs the same handles: the tracking URI in use, the blob
store, the home folder and the project. They share this base class, which sits
in its own layer between the domain packages and storage.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING

from shipyard import context
from shipyard.config import settings
from shipyard.store import DEFAULT_PROJECT, Store, open_store

if TYPE_CHECKING:
    from shipyard.blobs import BlobStore  # imported when first opened: fsspec is not light

__all__ = ["Workspace"]


class Workspace:
    """Lazily opened store and blob store, plus the home folder and the project.

    Args:
        tracking_uri: The metadata store (default: the tracking URI in use:
            ``set_tracking_uri``'s, else ``SHIPYARD_TRACKING_URI``, else the
            embedded SQLite store under ``SHIPYARD_HOME``).
        blob_uri: The blob store (default ``SHIPYARD_BLOB_URI`` or ``$SHIPYARD_HOME/blobs``).
        store, blobs: Already opened ones (override the URIs).
        home: Local caches live here (default ``SHIPYARD_HOME``).
        project: The project (default ``SHIPYARD_PROJECT`` or ``default``).
    """

    def __init__(
        self,
        tracking_uri: str | None = None,
        blob_uri: str | None = None,
        *,
        store: Store | None = None,
        blobs: BlobStore | None = None,
        home: Path | None = None,
        project: str | None = None,
    ) -> None:
        cfg = settings()
        self.tracking_uri = tracking_uri or (store.uri if store else context.tracking_uri())
        self.blob_uri = blob_uri or cfg.blob_uri
        self.home = home or cfg.home
        self.project = project or cfg.project or DEFAULT_PROJECT
        self._store = store
        self._blobs = blobs
        self._open_lock = threading.Lock()

    @property
    def store(self) -> Store:
        with self._open_lock:
            if self._store is None:
                self._store = open_store(self.tracking_uri)
            return self._store

    @property
    def blobs(self) -> BlobStore:
        with self._open_lock:
            if self._blobs is None:
                from shipyard.blobs import open_blob_store

                self._blobs = open_blob_store(self.blob_uri)
            return self._blobs

    def _project_id(self) -> str:
        return self.store.get_or_create_project(self.project).id
