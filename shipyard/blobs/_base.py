"""The one storage interface for content-addressed blobs.

Contract (every implementation; the tests in ``tests/blobs`` run over each):

* **Naming.** A blob is named by the BLAKE3 digest of its bytes: 64 lowercase
  hex characters. A digest that is not of that form raises
  :class:`~shipyard.errors.InvalidArgumentError`. Objects live at
  ``<root>/objects/<first 2 hex>/<other 62 hex>``.
* **Thread safety.** One store object may be used from many threads at once,
  and several processes may share one root. Writers of the same blob race
  harmlessly: both write identical bytes and one atomic rename wins.
* **Atomicity.** A write goes to a temporary name (``<root>/tmp/<uuid>``) and
  is renamed into place, so a blob is either absent or complete under its final
  name; a crash leaves at most a stray temporary file, never a blob. (Object
  stores whose uploads are atomic may write the final key directly.) A blob that
  exists is never rewritten: storing the same content twice is free.
* **Verification.** Reads recompute the digest unless ``verify=False``; a
  mismatch raises :class:`~shipyard.errors.CorruptBlobError` naming the blob and
  where it lives. :meth:`BlobStore.open` checks when a read reaches the end.
* **Missing digests** raise :class:`~shipyard.errors.NotFoundError` naming the
  digest and the store URL. Backend failures (OS or fsspec errors) raise
  :class:`~shipyard.errors.StoreError` chained to the original exception.
* **Trees.** A directory is stored as a :class:`Manifest` blob (see
  :mod:`shipyard.blobs._manifest`). Regular files are stored; a symbolic link
  to a file inside the tree is stored as that file's content; a link that
  leaves the tree, dangles, or points at a directory, and any special file,
  raises :class:`~shipyard.errors.InvalidArgumentError` naming it. Empty
  directories are not recorded.

A backend implements the small abstract core (``exists``, ``size``, ``delete``,
``iter_digests``, ``_location``, ``_open_raw``, ``_store_bytes``,
``_store_file``); everything else is derived here and may be overridden for speed.
"""

from __future__ import annotations

import abc
import os
import shutil
import stat
import tempfile
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import IO

from shipyard.blobs._hashing import (
    CHUNK_SIZE,
    check_digest,
    hash_bytes,
    hash_file,
    new_hasher,
    verifying_reader,
)
from shipyard.blobs._manifest import Manifest, ManifestEntry, scan_tree
from shipyard.errors import (
    CorruptBlobError,
    InvalidArgumentError,
    NotFoundError,
    ShipyardError,
    StoreError,
)

__all__ = ["BlobStore", "PathLike"]

PathLike = str | os.PathLike[str]


@contextmanager
def os_errors(action: str, hint: str) -> Iterator[None]:
    """Turn an ``OSError`` into a :class:`StoreError` saying what failed and what to do."""
    try:
        yield
    except ShipyardError:
        raise
    except OSError as e:
        raise StoreError(f"{action} failed: {e}; {hint}") from e


def tmp_path_next_to(dest: Path) -> Path:
    """A fresh temporary name in ``dest``'s folder, so ``os.replace`` is atomic."""
    return dest.with_name(f".{dest.name}.{uuid.uuid4().hex}.tmp")


#: Blobs up to this size are read into memory whole when written out or stored.
SMALL_BLOB = 1 << 20


def read_small_file(path: PathLike) -> bytes | None:
    """The file's bytes if it has at most ``SMALL_BLOB`` of them, else None: plain
    ``os`` calls sized by ``fstat`` (no 1 MiB read buffer, no ``isatty``/``lseek``)."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_BINARY", 0))
    try:
        size = os.fstat(fd).st_size
        if size > SMALL_BLOB:
            return None
        data = os.read(fd, size + 1)  # a regular file reads whole; one byte more shows growth
        while len(data) > size and len(data) <= SMALL_BLOB:
            more = os.read(fd, SMALL_BLOB + 1 - len(data))
            if not more:
                break
            data += more
        return data if len(data) <= SMALL_BLOB else None
    finally:
        os.close(fd)


def _write_new(path: Path, data: bytes, mode: int) -> None:
    """Create ``path`` (it must not exist) holding ``data``; ``mode`` before the umask."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), mode)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
    finally:
        os.close(fd)


def unlink_quietly(path: PathLike) -> None:
    """Remove a file if it is there."""
    with suppress(FileNotFoundError):
        os.unlink(path)


class BlobStore(abc.ABC):
    """Content-addressed blobs: put bytes, files and trees; get them back verified."""

    #: Where the blobs live (a local path or an fsspec URL), for messages.
    url: str = ""

    def close(self) -> None:  # noqa: B027 - optional hook, most stores hold nothing
        """Release resources. The store must not be used afterwards."""

    def __enter__(self) -> BlobStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.url!r})"

    @contextmanager
    def batch(self) -> Iterator[None]:
        """Group many writes so their durability costs once, not once per blob.

        Blobs put inside become visible under their names when the block exits
        without an exception (at once, for stores without a cheaper bulk path);
        callers record anything that refers to them only after that. Nesting is
        allowed: the outermost block publishes.
        """
        yield

    # -- the abstract core ------------------------------------------------------

    @abc.abstractmethod
    def exists(self, digest: str) -> bool:
        """Whether the blob is stored (its content is not checked)."""

    @abc.abstractmethod
    def size(self, digest: str) -> int:
        """The blob's size in bytes. NotFoundError if it is not stored."""

    @abc.abstractmethod
    def delete(self, digest: str) -> None:
        """Remove a blob (for garbage collection). NotFoundError if it is not stored."""

    @abc.abstractmethod
    def iter_digests(self) -> Iterator[str]:
        """Every stored digest, in no particular order."""

    @abc.abstractmethod
    def _location(self, digest: str) -> str:
        """Where the blob's object lives, for messages (a path or URL)."""

    @abc.abstractmethod
    def _open_raw(self, digest: str) -> IO[bytes]:
        """The object opened for binary reading. NotFoundError if it is not stored."""

    @abc.abstractmethod
    def _store_bytes(self, digest: str, data: bytes) -> None:
        """Store ``data``, which hashes to ``digest``, atomically."""

    @abc.abstractmethod
    def _store_file(self, digest: str, path: Path) -> None:
        """Store the local file ``path``, hashed as ``digest``, atomically.

        Must raise StoreError rather than store anything under ``digest`` if the
        file changed since it was hashed.
        """

    # -- writing ----------------------------------------------------------------

    def put_bytes(self, data: bytes) -> str:
        """Store ``data``; return its digest. Free if the blob already exists."""
        if not isinstance(data, bytes | bytearray | memoryview):
            raise InvalidArgumentError(
                f"invalid blob data: expected bytes, got {type(data).__name__}"
            )
        digest = hash_bytes(data)
        if not self.exists(digest):
            self._store_bytes(digest, bytes(data))
        return digest

    def put_file(self, path: PathLike) -> str:
        """Store a local file without reading it all into memory; return its digest.

        Raises:
            NotFoundError: ``path`` does not exist.
            InvalidArgumentError: ``path`` is not a regular file.
            StoreError: reading or writing failed, or the file changed meanwhile.
        """
        source = Path(path)
        digest, _ = self._hash_source(source)
        if not self.exists(digest):
            self._store_file(digest, source)
        return digest

    def put_file_as(self, path: PathLike, digest: str) -> str:
        """Store a local file whose digest the caller already knows (from a stat
        cache, say): one hash fewer than :meth:`put_file`. The stored copy is still
        hashed, and a mismatch raises StoreError; a blob that exists is not rewritten.
        """
        check_digest(digest)
        if not self.exists(digest):
            self._store_file(digest, Path(path))
        return digest

    def put_stream(self, stream: IO[bytes]) -> str:
        """Store everything read from a binary stream; return its digest.

        The stream is spooled to a local temporary file while it is hashed.
        """
        fd, name = tempfile.mkstemp(prefix="shipyard-blob-")
        try:
            hasher = new_hasher()
            with (
                os_errors("spooling a stream to a temporary file", "check free disk space"),
                os.fdopen(fd, "wb") as out,
            ):
                while chunk := stream.read(CHUNK_SIZE):
                    hasher.update(chunk)
                    out.write(chunk)
            digest = str(hasher.hexdigest())
            if not self.exists(digest):
                self._store_file(digest, Path(name))
            return digest
        finally:
            unlink_quietly(name)

    def put_tree(self, directory: PathLike, *, max_workers: int | None = None) -> str:
        """Store every file under ``directory``; return the digest of its manifest.

        Files are hashed in a thread pool; blobs already stored are not uploaded.

        Raises:
            NotFoundError: ``directory`` does not exist.
            InvalidArgumentError: it is not a directory, or holds a symlink leaving
                the tree, a dangling or directory symlink, or a special file.
        """
        root = Path(directory)
        with os_errors(f"listing {root}", "check that it is readable"):
            files = scan_tree(root)
        with ThreadPoolExecutor(max_workers, thread_name_prefix="shipyard-blobs") as pool:
            hashed = list(pool.map(lambda f: self._hash_source(f[1]), files))
            # Build (and so validate) the manifest before uploading anything.
            manifest = Manifest(
                tuple(
                    ManifestEntry(path=rel, size=size, digest=digest, mode=mode)
                    for (rel, _, mode), (digest, size) in zip(files, hashed, strict=True)
                )
            )
            sources: dict[str, Path] = {}
            for (_, source, _), (digest, _) in zip(files, hashed, strict=True):
                sources.setdefault(digest, source)

            def upload(item: tuple[str, Path]) -> None:
                if not self.exists(item[0]):
                    self._store_file(*item)

            with self.batch():  # the files, then the manifest naming them, flushed once
                list(pool.map(upload, sources.items()))
                return self.put_bytes(manifest.to_bytes())

    # -- reading ----------------------------------------------------------------

    def get_bytes(self, digest: str, *, verify: bool = True) -> bytes:
        """The blob's content, checked against its digest unless ``verify=False``."""
        check_digest(digest)
        with self._open_raw(digest) as f:
            data = f.read()
        if verify:
            self._check(digest, hash_bytes(data))
        return data

    def open(self, digest: str) -> IO[bytes]:
        """The blob opened for binary reading; reading it to the end verifies it."""
        check_digest(digest)
        return verifying_reader(self._open_raw(digest), digest, self._location(digest))

    def get_file(self, digest: str, dest: PathLike, *, verify: bool = True) -> None:
        """Write the blob to the local file ``dest`` (replaced atomically).

        The content goes to a temporary file next to ``dest``, is verified, then
        renamed over ``dest``; a failure leaves ``dest`` as it was.
        """
        self._get_file(digest, Path(dest), verify=verify, executable=False)

    def verify(self, digest: str) -> None:
        """Check a stored blob against its digest.

        Raises:
            CorruptBlobError: the content does not match.
            NotFoundError: the blob is not stored.
        """
        check_digest(digest)
        hasher = new_hasher()
        with self._open_raw(digest) as f:
            while chunk := f.read(CHUNK_SIZE):
                hasher.update(chunk)
        self._check(digest, str(hasher.hexdigest()))

    def read_manifest(self, digest: str, *, verify: bool = True) -> Manifest:
        """The manifest of a tree stored with :meth:`put_tree`.

        Raises:
            InvalidArgumentError: the blob is not a manifest.
        """
        return Manifest.from_bytes(self.get_bytes(digest, verify=verify))

    def get_tree(
        self,
        digest: str,
        dest_dir: PathLike,
        *,
        verify: bool = True,
        max_workers: int | None = None,
        fresh: bool = False,
    ) -> Manifest:
        """Write the tree named by a manifest digest under ``dest_dir``; return the manifest.

        Each file is replaced atomically and gets its executable bit back. Files
        already in ``dest_dir`` that the manifest does not list are left alone.
        ``fresh``: ``dest_dir`` is a new folder no one else reads until the caller
        renames it into place (a staging folder), so files are written in place
        instead of through a temporary file each -- half the file creations.
        """
        manifest = self.read_manifest(digest, verify=verify)
        dest = Path(dest_dir)
        with os_errors(f"creating the folders of tree {digest} under {dest}", "check permissions"):
            dest.mkdir(parents=True, exist_ok=True)
            real_dest = dest.resolve()
            for parent in sorted({(dest / e.path).parent for e in manifest.entries}):
                parent.mkdir(parents=True, exist_ok=True)
                if not parent.resolve().is_relative_to(real_dest):
                    raise InvalidArgumentError(
                        f"cannot write tree {digest} to {dest}: {parent} is a link leading "
                        "outside it; remove the link or choose an empty folder"
                    )

        def fetch(entry: ManifestEntry) -> None:
            self._get_file(
                entry.digest,
                dest / entry.path,
                verify=verify,
                executable=entry.executable,
                in_place=fresh,
                make_parent=False,  # made above
            )

        with ThreadPoolExecutor(max_workers, thread_name_prefix="shipyard-blobs") as pool:
            list(pool.map(fetch, manifest.entries))
        return manifest

    # -- overridable helpers ----------------------------------------------------

    def _download(self, digest: str, dest: Path) -> None:
        """Copy the object's bytes into the (new) local file ``dest``."""
        with self._open_raw(digest) as src, open(dest, "wb") as out:
            shutil.copyfileobj(src, out, CHUNK_SIZE)

    def _missing(self, digest: str) -> NotFoundError:
        return NotFoundError(
            f"blob {digest} not found in blob store {self.url}; check the digest, or fetch "
            "it from the store that has it"
        )

    def _check(self, digest: str, actual: str) -> None:
        if actual != digest:
            raise CorruptBlobError(digest, self._location(digest), actual)

    def _get_file(
        self,
        digest: str,
        dest: Path,
        *,
        verify: bool,
        executable: bool,
        in_place: bool = False,
        make_parent: bool = True,
    ) -> None:
        """Write a blob to ``dest``: through a temporary file renamed over it, or
        (``in_place``, for a staging folder) straight to it. Blobs up to
        ``SMALL_BLOB`` bytes are read whole, checked in memory and written with one
        call: no second read of what was just written."""
        check_digest(digest)
        target = dest if in_place else tmp_path_next_to(dest)
        try:
            with os_errors(f"writing blob {digest} to {dest}", "check free space and permissions"):
                if make_parent:
                    dest.parent.mkdir(parents=True, exist_ok=True)
                data = self._read_small(digest)
                if data is not None:
                    if verify:
                        self._check(digest, hash_bytes(data))
                    _write_new(target, data, 0o777 if executable else 0o666)
                else:
                    self._download(digest, target)
                    if verify:
                        self._check(digest, hash_file(target))
                    if executable:
                        mode = os.stat(target).st_mode
                        os.chmod(target, mode | ((mode & 0o444) >> 2))
                if not in_place:
                    os.replace(target, dest)
        except BaseException:
            unlink_quietly(target)
            raise

    def _read_small(self, digest: str) -> bytes | None:
        """The blob's bytes if it has at most ``SMALL_BLOB`` of them, else None."""
        with self._open_raw(digest) as src:
            data = src.read(SMALL_BLOB + 1)
        return data if len(data) <= SMALL_BLOB else None

    def _hash_source(self, path: Path) -> tuple[str, int]:
        """Digest and size of a local file, refusing a file that changes meanwhile."""
        with os_errors(f"reading {path}", "check that it is readable"):
            try:
                before = os.stat(path)
            except FileNotFoundError as e:
                raise NotFoundError(f"cannot store {path}: no such file") from e
            if not stat.S_ISREG(before.st_mode):
                raise InvalidArgumentError(
                    f"cannot store {path}: expected a regular file, got "
                    f"{'a directory' if stat.S_ISDIR(before.st_mode) else 'a special file'}"
                )
            digest = hash_file(path)
            after = os.stat(path)
        if (before.st_size, before.st_mtime_ns) != (after.st_size, after.st_mtime_ns):
            raise StoreError(
                f"{path} changed while it was being stored; store it again once nothing "
                "writes to it"
            )
        return digest, after.st_size
