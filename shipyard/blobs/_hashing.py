"""BLAKE3 helpers: digests are 64 lowercase hex characters (256 bits)."""

from __future__ import annotations

import io
import os
import re
from collections.abc import Iterable
from typing import IO, Any

import blake3

from shipyard.errors import CorruptBlobError, InvalidArgumentError
from shipyard.validation import describe

__all__ = [
    "CHUNK_SIZE",
    "DIGEST_LENGTH",
    "check_digest",
    "hash_bytes",
    "hash_chunks",
    "hash_file",
    "new_hasher",
    "verifying_reader",
]

DIGEST_LENGTH = 64
#: Read size for streaming copies; large enough for blake3 to use several threads.
CHUNK_SIZE = 4 << 20
#: Below this, threads cost more than they save.
_THREADED_MIN = 1 << 20

_DIGEST_RE = re.compile(r"[0-9a-f]{64}")
_AUTO: int = blake3.blake3.AUTO


def check_digest(digest: object) -> str:
    """Return ``digest`` if it is a blob digest, else raise.

    Raises:
        InvalidArgumentError: not 64 lowercase hex characters.
    """
    if not isinstance(digest, str) or _DIGEST_RE.fullmatch(digest) is None:
        raise InvalidArgumentError(
            f"invalid blob digest: expected {DIGEST_LENGTH} lowercase hex characters "
            f"(a BLAKE3 digest), got {describe(digest)}"
        )
    return digest


def new_hasher() -> blake3.blake3:
    """A hasher that spreads large updates over all cores (blake3 releases the GIL)."""
    return blake3.blake3(max_threads=_AUTO)


def hash_bytes(data: bytes | bytearray | memoryview) -> str:
    """The BLAKE3 hex digest of ``data``."""
    if len(data) >= _THREADED_MIN:
        return str(blake3.blake3(data, max_threads=_AUTO).hexdigest())
    return str(blake3.blake3(data).hexdigest())


def hash_chunks(chunks: Iterable[bytes | bytearray | memoryview]) -> str:
    """The BLAKE3 hex digest of the concatenation of ``chunks``."""
    hasher = new_hasher()
    for chunk in chunks:
        hasher.update(chunk)
    return str(hasher.hexdigest())


def hash_file(path: str | os.PathLike[str]) -> str:
    """The BLAKE3 hex digest of a local file, without reading it all into memory.

    Large files are memory-mapped and hashed on all cores. Like every mmap reader,
    this assumes nobody truncates the file while it is hashed.

    Raises:
        OSError: the file cannot be read (callers translate it).
    """
    if os.stat(path).st_size >= _THREADED_MIN:
        hasher = new_hasher()
        hasher.update_mmap(os.fspath(path))
        return str(hasher.hexdigest())
    with open(path, "rb") as f:
        return str(blake3.blake3(f.read()).hexdigest())


class _VerifyingRaw(io.RawIOBase):
    """Hashes what is read in order from the start; checks the digest at EOF.

    Reads after a seek elsewhere are passed through unhashed; the check runs when
    a read hits the end and every byte before it was hashed in order.
    """

    def __init__(self, f: IO[bytes], digest: str, location: str) -> None:
        self._f = f
        self._digest = digest
        self._location = location
        self._hasher = new_hasher()
        self._pos = 0
        self._hashed = 0
        self._checked = False

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return bool(self._f.seekable())

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        self._pos = self._f.seek(offset, whence)
        return self._pos

    def tell(self) -> int:
        return self._pos

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        readinto = getattr(self._f, "readinto", None)
        if readinto is not None:
            n = readinto(view) or 0
        else:
            data = self._f.read(len(view))
            n = len(data)
            view[:n] = data
        if n == 0 and len(view) > 0:
            self._at_eof()
        elif self._pos == self._hashed:
            self._hasher.update(view[:n])
            self._hashed += n
        self._pos += n
        return n

    def readall(self) -> bytes:
        # One read of the rest (the file knows its size) hashed in one threaded call,
        # rather than the default 8 KiB at a time.
        data = bytes(self._f.read())
        if self._pos == self._hashed:
            self._hasher.update(data)
            self._hashed += len(data)
        self._pos += len(data)
        self._at_eof()
        return data

    def _at_eof(self) -> None:
        if self._checked or self._hashed != self._pos:
            return
        self._checked = True
        actual = str(self._hasher.hexdigest())
        if actual != self._digest:
            raise CorruptBlobError(self._digest, self._location, actual)

    def close(self) -> None:
        if not self.closed:
            self._f.close()
        super().close()


def verifying_reader(f: IO[bytes], digest: str, location: str) -> io.BufferedReader:
    """Wrap a binary file so that reading it to the end checks it against ``digest``.

    Raises (from the read that reaches EOF):
        CorruptBlobError: the bytes read in order from the start do not hash to
            ``digest``.
    """
    return io.BufferedReader(_VerifyingRaw(f, digest, location), buffer_size=1 << 20)
