"""Blob stores on any fsspec filesystem (``memory://``, ``s3://``, ``gs://``...),
and :func:`open_blob_store`, which picks the store for a URL."""

from __future__ import annotations

import io
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, suppress
from pathlib import Path
from typing import IO, Any

from shipyard.blobs._base import BlobStore, os_errors
from shipyard.blobs._hashing import check_digest, hash_bytes, hash_file
from shipyard.blobs._local import LocalBlobStore
from shipyard.errors import InvalidArgumentError, StoreError

__all__ = ["FsspecBlobStore", "open_blob_store"]

#: Object stores whose uploads appear whole or not at all, and whose "rename" is a
#: full copy: there the final key is written directly.
ATOMIC_PUT_PROTOCOLS = frozenset({"s3", "s3a", "gs", "gcs", "az", "abfs", "abfss", "oss"})
_LOCAL_PROTOCOLS = ("file", "local")


def open_blob_store(url: str, **options: Any) -> BlobStore:
    """Open the blob store at ``url``.

    A plain path (``~/.shipyard/blobs``) or a ``file://`` URL gives a
    :class:`LocalBlobStore`; any other fsspec URL (``memory://name``,
    ``s3://bucket/prefix``) gives a :class:`FsspecBlobStore`, with ``options``
    passed to fsspec as storage options (``key``, ``secret``, ``endpoint_url``...).

    Raises:
        InvalidArgumentError: ``url`` is empty or names an unknown protocol.
    """
    if not isinstance(url, str) or not url.strip():
        raise InvalidArgumentError(
            f"invalid blob store URL: expected a path or an fsspec URL such as "
            f"'s3://bucket/prefix', got {url!r}"
        )
    protocol, sep, rest = url.partition("://")
    if not sep:
        return LocalBlobStore(url, **options)
    if protocol.lower() in _LOCAL_PROTOCOLS:
        return LocalBlobStore(rest, url=url, **options)
    return FsspecBlobStore(url, **options)


class FsspecBlobStore(BlobStore):
    """Blobs on an fsspec filesystem, laid out as ``<root>/objects/ab/cdef...``.

    Args:
        url: An fsspec URL, e.g. ``s3://bucket/prefix``.
        direct_put: Write the final key directly instead of ``<root>/tmp/<uuid>``
            followed by a move. Defaults to ``True`` for object stores (S3, GCS,
            Azure), whose uploads are atomic and whose moves are copies, and
            ``False`` elsewhere. With direct puts, a source file that changes
            during its upload is caught by hashing it again afterwards; the
            object is then deleted, so it is briefly visible (and fails
            verification) in that case only.
        storage_options: Passed to fsspec (credentials, endpoint...).
    """

    def __init__(self, url: str, *, direct_put: bool | None = None, **storage_options: Any):
        from fsspec.core import url_to_fs  # fsspec takes ~0.1 s to import: only when used

        self.url = url
        try:
            self._fs, root = url_to_fs(url, **storage_options)
        except (ValueError, ImportError) as e:
            raise InvalidArgumentError(
                f"cannot open blob store {url!r}: {e}; install the fsspec backend for its "
                "protocol (e.g. pip install s3fs) or fix the URL"
            ) from e
        self._root = root.rstrip("/")
        protocols = self._fs.protocol
        protocols = {protocols} if isinstance(protocols, str) else set(protocols)
        # fsspec's memory backend hands every reader the same file object, so
        # concurrent reads would share one position: read whole values there instead.
        self._shared_handles = "memory" in protocols
        self.direct_put = (
            bool(protocols & ATOMIC_PUT_PROTOCOLS) if direct_put is None else direct_put
        )

    def _path(self, digest: str) -> str:
        return f"{self._root}/objects/{digest[:2]}/{digest[2:]}"

    def _location(self, digest: str) -> str:
        return str(self._fs.unstrip_protocol(self._path(digest)))

    def _io(self, action: str) -> AbstractContextManager[None]:
        return os_errors(
            f"{action} in blob store {self.url}",
            "check that the store is reachable, the credentials allow it and there is space",
        )

    # -- core -------------------------------------------------------------------

    def exists(self, digest: str) -> bool:
        path = self._path(check_digest(digest))
        with self._io(f"looking up blob {digest}"):
            return bool(self._fs.exists(path))

    def size(self, digest: str) -> int:
        path = self._path(check_digest(digest))
        with self._io(f"reading the size of blob {digest}"):
            try:
                return int(self._fs.size(path))
            except FileNotFoundError:
                raise self._missing(digest) from None

    def delete(self, digest: str) -> None:
        path = self._path(check_digest(digest))
        with self._io(f"deleting blob {digest}"):
            # Object stores delete missing keys without complaint (S3's DeleteObject
            # is idempotent), so ask first to keep NotFoundError on every backend.
            if not self._fs.exists(path):
                raise self._missing(digest)
            try:
                self._fs.rm_file(path)
            except FileNotFoundError:
                raise self._missing(digest) from None

    def iter_digests(self) -> Iterator[str]:
        prefix = f"{self._root}/objects/"
        with self._io("listing blobs"):
            try:
                paths = self._fs.find(prefix)
            except FileNotFoundError:
                return
        for path in paths:
            digest = str(path)[len(prefix) :].replace("/", "")
            if len(digest) == 64 and all(c in "0123456789abcdef" for c in digest):
                yield digest

    def _open_raw(self, digest: str) -> IO[bytes]:
        if self._shared_handles:
            return io.BytesIO(self.get_bytes(digest, verify=False))
        with self._io(f"opening blob {digest}"):
            try:
                f: IO[bytes] = self._fs.open(self._path(digest), "rb")
            except FileNotFoundError:
                raise self._missing(digest) from None
            return f

    def get_bytes(self, digest: str, *, verify: bool = True) -> bytes:
        """The blob's content, checked against its digest unless ``verify=False``."""
        path = self._path(check_digest(digest))
        with self._io(f"reading blob {digest}"):
            try:
                data = bytes(self._fs.cat_file(path))
            except FileNotFoundError:
                raise self._missing(digest) from None
        if verify:
            self._check(digest, hash_bytes(data))
        return data

    def _store_bytes(self, digest: str, data: bytes) -> None:
        with self._io(f"writing blob {digest}"):
            target = self._target(digest)
            try:
                self._retry_with_parent(target, lambda: self._fs.pipe_file(target, data))
            except BaseException:
                if not self.direct_put:  # a failed atomic upload leaves nothing behind
                    self._discard(target)
                raise
            self._publish(target, digest)

    def _store_file(self, digest: str, path: Path) -> None:
        with self._io(f"uploading {path} as blob {digest}"):
            target = self._target(digest)
            try:
                self._retry_with_parent(target, lambda: self._fs.put_file(str(path), target))
                # The upload streams the file: hash it again to catch a concurrent change.
                actual = hash_file(path)
            except BaseException:
                if not self.direct_put:  # a failed atomic upload leaves nothing behind
                    self._discard(target)
                raise
            if actual != digest:
                self._discard(target)
                raise StoreError(
                    f"{path} changed while it was being stored (hashed as {digest}, then "
                    f"as {actual}); store it again once nothing writes to it"
                )
            self._publish(target, digest)

    def _download(self, digest: str, dest: Path) -> None:
        if self._shared_handles:
            dest.write_bytes(self.get_bytes(digest, verify=False))
            return
        try:
            self._fs.get_file(self._path(digest), str(dest))
        except FileNotFoundError:
            if not self.exists(digest):
                raise self._missing(digest) from None
            raise

    # -- helpers ------------------------------------------------------------------

    def _target(self, digest: str) -> str:
        """Where a write goes first: the final key, or a fresh temporary name."""
        if self.direct_put:
            return self._path(digest)
        return f"{self._root}/tmp/{uuid.uuid4().hex}"

    def _publish(self, target: str, digest: str) -> None:
        final = self._path(digest)
        if target == final:
            return
        try:
            if self._fs.exists(final):
                return  # another writer got there first; identical bytes by construction
            self._retry_with_parent(final, lambda: self._fs.mv(target, final))
        finally:
            self._discard(target)

    def _discard(self, path: str) -> None:
        """Remove a partial or temporary object if it is there (best effort)."""
        with suppress(FileNotFoundError):
            self._fs.rm_file(path)

    def _retry_with_parent(self, path: str, write: Callable[[], object]) -> None:
        """Run ``write``; if the parent folder is missing (local-like filesystems),
        create it and try once more. Object stores have no folders and never need it."""
        try:
            write()
        except FileNotFoundError:
            self._fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
            write()
