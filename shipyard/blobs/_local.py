"""The default blob store: a folder on the local disk, with plain ``os`` calls."""

from __future__ import annotations

import functools
import os
import shutil
import sys
import threading
import uuid
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import IO, Any

from shipyard.blobs._base import (
    BlobStore,
    PathLike,
    os_errors,
    read_small_file,
    unlink_quietly,
)
from shipyard.blobs._hashing import CHUNK_SIZE, check_digest, hash_bytes, hash_file, new_hasher
from shipyard.errors import StoreError

__all__ = ["LocalBlobStore"]

_HEX = frozenset("0123456789abcdef")
#: Objects are read-only so a stray write (or a hard-linked checkout) cannot change them.
_OBJECT_MODE = 0o444


class LocalBlobStore(BlobStore):
    """Blobs in ``<root>/objects/ab/cdef...``; temporary files in ``<root>/tmp``.

    Args:
        root: The folder (created on the first write).
        fsync: Flush each object and its folder to disk before and after the
            rename (default ``True``), so a power loss cannot leave a truncated
            blob under its final name. ``False`` is faster for scratch stores.

    Inside :meth:`batch` the per-object flushes are replaced by two flushes of the
    whole filesystem (``syncfs``): objects are written to temporary files, the
    filesystem is flushed, then all are renamed to their names and it is flushed
    again -- git's "batch" fsync method. A name still appears only for content
    that is already on disk, but 100,000 small files cost two flushes instead of
    200,000 (and the journal commits each of those forces).
    """

    def __init__(self, root: PathLike, *, fsync: bool = True, url: str | None = None) -> None:
        self.root = Path(root).expanduser().absolute()
        self.fsync = fsync
        self.url = url or str(self.root)
        self._objects = self.root / "objects"
        self._tmp = self.root / "tmp"
        self._batch_lock = threading.Lock()
        self._batch_depth = 0
        self._pending: dict[str, Path] = {}  # digest -> its complete temporary file

    def _path(self, digest: str) -> Path:
        return self._objects / digest[:2] / digest[2:]

    def _location(self, digest: str) -> str:
        return str(self._path(digest))

    def _io(self, action: str) -> AbstractContextManager[None]:
        return os_errors(
            f"{action} in blob store {self.url}",
            "check that the folder exists, is writable and has free space",
        )

    # -- core -------------------------------------------------------------------

    def exists(self, digest: str) -> bool:
        check_digest(digest)
        return digest in self._pending or self._path(digest).exists()

    @contextmanager
    def batch(self) -> Iterator[None]:
        with self._batch_lock:
            self._batch_depth += 1
        ok = False
        try:
            yield
            ok = True
        finally:
            with self._batch_lock:
                self._batch_depth -= 1
                done = self._batch_depth == 0
                pending = dict(self._pending) if done else {}
                if done:
                    self._pending.clear()
            if done and pending:
                if ok:
                    self._publish_all(pending)
                else:
                    for tmp in pending.values():
                        unlink_quietly(tmp)

    def _publish_all(self, pending: dict[str, Path]) -> None:
        """Flush, rename every pending object into place, flush again."""
        with self._io(f"publishing {len(pending)} blobs"):
            try:
                if self.fsync:
                    _syncfs(self.root)
                made: set[Path] = set()
                for digest, tmp in pending.items():
                    final = self._path(digest)
                    if final.parent not in made:
                        final.parent.mkdir(parents=True, exist_ok=True)
                        made.add(final.parent)
                    os.replace(tmp, final)
                if self.fsync:
                    _syncfs(self.root)
            except BaseException:
                for tmp in pending.values():
                    unlink_quietly(tmp)
                raise

    def size(self, digest: str) -> int:
        path = self._path(check_digest(digest))
        with self._io(f"reading the size of blob {digest}"):
            try:
                return os.stat(path).st_size
            except FileNotFoundError:
                raise self._missing(digest) from None

    def delete(self, digest: str) -> None:
        path = self._path(check_digest(digest))
        with self._io(f"deleting blob {digest}"):
            try:
                os.unlink(path)
            except FileNotFoundError:
                raise self._missing(digest) from None

    def iter_digests(self) -> Iterator[str]:
        with self._io("listing blobs"):
            try:
                fanouts = [e.name for e in os.scandir(self._objects) if e.is_dir()]
            except FileNotFoundError:
                return
            for fanout in sorted(fanouts):
                for entry in os.scandir(self._objects / fanout):
                    digest = fanout + entry.name
                    if len(digest) == 64 and _HEX.issuperset(digest):
                        yield digest

    def _open_raw(self, digest: str) -> IO[bytes]:
        with self._io(f"opening blob {digest}"):
            try:
                return open(self._path(digest), "rb", buffering=0)
            except FileNotFoundError:
                pending = self._pending.get(digest)  # written in a batch not yet published
                if pending is not None:
                    return open(pending, "rb", buffering=0)
                raise self._missing(digest) from None

    def _store_bytes(self, digest: str, data: bytes) -> None:
        with self._io(f"writing blob {digest}"):
            tmp, fd = self._new_tmp(_OBJECT_MODE)  # read-only from birth: no chmod later
            kept = False
            try:
                try:
                    view = memoryview(data)
                    while view:
                        view = view[os.write(fd, view) :]
                finally:
                    os.close(fd)
                kept = self._publish(tmp, digest, chmod=False)
            finally:
                if not kept:
                    unlink_quietly(tmp)

    def _store_file(self, digest: str, path: Path) -> None:
        with self._io(f"writing blob {digest} from {path}"):
            head = read_small_file(path)
            if head is not None:
                # A small file: one read, checked in memory, one write -- instead of a
                # copy and a second read of the copy.
                actual = hash_bytes(head)
                if actual != digest:
                    raise self._changed(path, digest, actual)
                self._store_bytes(digest, head)
                return
            tmp, fd = self._new_tmp()
            os.close(fd)
            kept = False
            try:
                # copyfile uses copy_file_range/sendfile: the data never enters Python.
                shutil.copyfile(path, tmp)
                actual = hash_file(tmp)
                if actual != digest:
                    raise self._changed(path, digest, actual)
                kept = self._publish(tmp, digest)
            finally:
                if not kept:
                    unlink_quietly(tmp)

    # -- faster paths -------------------------------------------------------------

    def put_stream(self, stream: IO[bytes]) -> str:
        """Store everything read from a binary stream; return its digest."""
        with self._io("writing a blob from a stream"):
            tmp, fd = self._new_tmp()
            kept = False
            try:
                hasher = new_hasher()
                with os.fdopen(fd, "wb") as f:
                    while chunk := stream.read(CHUNK_SIZE):
                        hasher.update(chunk)
                        f.write(chunk)
                digest = str(hasher.hexdigest())
                kept = self._publish(tmp, digest)
                return digest
            finally:
                if not kept:
                    unlink_quietly(tmp)

    def _read_small(self, digest: str) -> bytes | None:
        try:
            return read_small_file(self._path(digest))
        except FileNotFoundError:
            pending = self._pending.get(digest)
            if pending is not None:
                return read_small_file(pending)
            raise self._missing(digest) from None

    def _download(self, digest: str, dest: Path) -> None:
        try:
            shutil.copyfile(self._path(digest), dest)
        except FileNotFoundError:
            if not self._path(digest).exists():
                raise self._missing(digest) from None
            raise

    # -- helpers ------------------------------------------------------------------

    def _new_tmp(self, mode: int = 0o666) -> tuple[Path, int]:
        """A new, empty temporary file in ``<root>/tmp`` and its open (writable) descriptor."""
        tmp = self._tmp / uuid.uuid4().hex
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
        try:
            return tmp, os.open(tmp, flags, mode)
        except FileNotFoundError:
            self._tmp.mkdir(parents=True, exist_ok=True)
            return tmp, os.open(tmp, flags, mode)

    @staticmethod
    def _changed(path: Path, digest: str, actual: str) -> StoreError:
        return StoreError(
            f"{path} changed while it was being stored (hashed as {digest}, "
            f"copied as {actual}); store it again once nothing writes to it"
        )

    def _publish(self, tmp: Path, digest: str, *, chmod: bool = True) -> bool:
        """Rename a complete temporary file to the blob's name, unless it exists
        (inside a batch: keep it for the batch to rename after its flush)."""
        final = self._path(digest)
        if self._batch_depth:
            if chmod:
                os.chmod(tmp, _OBJECT_MODE)
            with self._batch_lock:
                if self._batch_depth:
                    if digest in self._pending:
                        return False  # the same content is already pending
                    self._pending[digest] = tmp
                    return True
        if final.exists():
            return False  # another writer got there first; identical bytes by construction
        if chmod:
            os.chmod(tmp, _OBJECT_MODE)
        if self.fsync:
            _fsync_path(tmp)
        try:
            os.replace(tmp, final)
        except FileNotFoundError:
            final.parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp, final)
        if self.fsync:
            _fsync_path(final.parent)
        return True


def _syncfs(path: Path) -> None:
    """Flush the filesystem holding ``path`` (Linux ``syncfs``; ``sync`` elsewhere)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        libc = _libc()
        if libc is not None and libc.syncfs(fd) == 0:
            return
        os.sync()
    finally:
        os.close(fd)


@functools.cache
def _libc() -> Any:
    """The C library, for ``syncfs`` (Python's ``os`` has only ``sync``); loaded on first use."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes
        import ctypes.util

        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.syncfs.argtypes = [ctypes.c_int]
        return libc
    except (OSError, AttributeError):
        return None


def _fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
