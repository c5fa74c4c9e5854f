"""Blob store fixtures: every behaviour test runs on each backend."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

from shipyard.blobs import BlobStore, FsspecBlobStore, LocalBlobStore, open_blob_store

BACKENDS = ["local", "memory", "memory-direct", "s3"]


class Backdoor:
    """Reaches past the interface to damage or inspect a store's raw objects."""

    def __init__(self, store: BlobStore) -> None:
        self.store = store

    def read_object(self, digest: str) -> bytes:
        if isinstance(self.store, LocalBlobStore):
            return self.store._path(digest).read_bytes()
        assert isinstance(self.store, FsspecBlobStore)
        return bytes(self.store._fs.cat_file(self.store._path(digest)))

    def write_object(self, digest: str, data: bytes) -> None:
        if isinstance(self.store, LocalBlobStore):
            path = self.store._path(digest)
            path.parent.mkdir(parents=True, exist_ok=True)
            if path.exists():
                os.chmod(path, 0o644)
            path.write_bytes(data)
            return
        assert isinstance(self.store, FsspecBlobStore)
        self.store._fs.pipe_file(self.store._path(digest), data)

    def flip_byte(self, digest: str, index: int = 0) -> None:
        data = bytearray(self.read_object(digest))
        data[index] ^= 0xFF
        self.write_object(digest, bytes(data))

    def write_tmp(self, name: str, data: bytes) -> None:
        """Leave a temporary file behind, as a writer that crashed would."""
        if isinstance(self.store, LocalBlobStore):
            (self.store.root / "tmp").mkdir(parents=True, exist_ok=True)
            (self.store.root / "tmp" / name).write_bytes(data)
            return
        assert isinstance(self.store, FsspecBlobStore)
        self.store._fs.pipe_file(f"{self.store._root}/tmp/{name}", data)

    def tmp_files(self) -> list[str]:
        if isinstance(self.store, LocalBlobStore):
            tmp = self.store.root / "tmp"
            return sorted(os.listdir(tmp)) if tmp.exists() else []
        assert isinstance(self.store, FsspecBlobStore)
        fs, root = self.store._fs, self.store._root
        return sorted(fs.find(f"{root}/tmp/")) if fs.exists(f"{root}/tmp") else []


@pytest.fixture(params=BACKENDS)
def store(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[BlobStore]:
    """A fresh, empty blob store of each backend (outside the test's ``tmp_path``)."""
    if request.param == "local":
        yield open_blob_store(str(tmp_path_factory.mktemp("blobs") / "store"))
        return
    if request.param == "s3":  # a real S3 protocol server (moto) on loopback
        options = request.getfixturevalue("s3_storage_options")
        bucket = f"blobs-{uuid.uuid4().hex[:12]}"
        s3 = FsspecBlobStore(f"s3://{bucket}/store", **options)
        s3._fs.mkdir(bucket)
        yield s3
        return
    url = f"memory://shipyard-tests/{uuid.uuid4().hex}"
    store = FsspecBlobStore(url, direct_put=request.param == "memory-direct")
    try:
        yield store
    finally:
        if store._fs.exists(store._root):
            store._fs.rm(store._root, recursive=True)


@pytest.fixture
def backdoor(store: BlobStore) -> Backdoor:
    """Raw access to the objects of ``store``."""
    return Backdoor(store)
