"""A SQLite cache of file digests keyed by path and ``stat`` data, so unchanged files
are not hashed again.

An entry maps an absolute path to ``(size, mtime_ns, inode, ctime_ns, digest,
recorded_at_ns)``. It is trusted only while all four stat fields still match and
the entry is not *racy* (git's rule): a file whose mtime is not strictly older
than ``recorded_at_ns - granularity`` may have been written again within the same
timestamp tick after it was hashed, so its stat data cannot prove it unchanged
and it is hashed again. Re-recording it later, once the tick has passed, makes the
entry trustworthy.

The database uses WAL and a busy timeout, so several processes may share one
file; one object may be used from many threads (calls are serialised on a lock).
It is only a cache: deleting the file loses nothing but time.

Besides per-file rows it keeps one *snapshot* per scanned folder: the walk's paths
and stat keys in walk order plus the resulting entries, saved only when none of
them is racy. A snapshot is a set of facts of the same kind as the rows ("these
stat data meant these digests"), so it needs no invalidation: a walk that finds
exactly the same paths and stat data takes the entries from it in a few C-level
comparisons instead of loading and probing 100,000 rows (half the cost of an
unchanged ``status``); any difference falls back to the rows.
"""

from __future__ import annotations

import marshal
import os
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from operator import itemgetter
from pathlib import Path
from typing import NamedTuple

from shipyard.errors import InvalidArgumentError, StoreError

__all__ = [
    "DEFAULT_GRANULARITY_S",
    "INODE_MASK",
    "CachedRow",
    "Snapshot",
    "StatCache",
    "prefix_range",
    "stat_key",
]

#: Covers filesystems with coarse timestamps (FAT: 2 s; ext3, HFS+: 1 s).
DEFAULT_GRANULARITY_S = 2.0
_SCHEMA_VERSION = 2
#: SQLite integers are signed 64-bit; inodes are unsigned and may use the top bit.
INODE_MASK = (1 << 63) - 1

#: ``(path, size, mtime_ns, inode & INODE_MASK, ctime_ns, digest)``: a row as
#: :meth:`StatCache.load_tree` returns it (whole, since slicing 100,000 rows costs).
CachedRow = tuple[str, int, int, int, int, str]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS tree_snapshot (
    root TEXT PRIMARY KEY NOT NULL,
    data BLOB NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS stat_cache (
    path TEXT PRIMARY KEY NOT NULL,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    inode INTEGER NOT NULL,
    ctime_ns INTEGER NOT NULL,
    digest TEXT NOT NULL,
    recorded_at_ns INTEGER NOT NULL
) WITHOUT ROWID
"""
_COLUMNS = "size, mtime_ns, inode, ctime_ns, digest"
_ERRORS = (sqlite3.Error, OSError)  # OSError: creating the folder
_TRUSTED = "mtime_ns < recorded_at_ns - ?"


def stat_key(st: os.stat_result) -> tuple[int, int, int, int]:
    """The fields of ``st`` an entry must match: ``(size, mtime_ns, inode, ctime_ns)``."""
    return (st.st_size, st.st_mtime_ns, st.st_ino & INODE_MASK, st.st_ctime_ns)


def _key(path: str | os.PathLike[str]) -> str:
    """``os.path.abspath(path)``, skipped (it costs a microsecond) when ``path`` is clean."""
    p = os.fspath(path)
    if p[:1] == "/" and p[-1:] != "/" and "//" not in p and "/." not in p:
        return p
    return os.path.abspath(p)


def prefix_range(root: str) -> tuple[str, str]:
    """Bounds ``lo <= path < hi`` selecting every path strictly under folder ``root``."""
    prefix = root if root.endswith(os.sep) else root + os.sep
    return prefix, prefix[:-1] + chr(ord(os.sep) + 1)


class StatCache:
    """Digests of local files, reused while their ``stat`` data is unchanged.

    Args:
        path: The SQLite file (created, with its folder, on first use).
        granularity_s: How far before the time an entry was recorded a file's
            mtime must lie for the entry to be trusted (default 2 s).
        timeout_s: How long to wait for another process holding the write lock.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        granularity_s: float = DEFAULT_GRANULARITY_S,
        timeout_s: float = 30.0,
    ) -> None:
        if granularity_s < 0:
            raise InvalidArgumentError(
                f"invalid granularity_s: expected a number >= 0, got {granularity_s!r}"
            )
        self.path = Path(path)
        self.granularity_ns = int(granularity_s * 1e9)
        self.timeout_s = timeout_s
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None

    def __repr__(self) -> str:
        return f"StatCache({str(self.path)!r})"

    def __enter__(self) -> StatCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the database connection (reopened if the cache is used again)."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def _connect(self) -> sqlite3.Connection:
        if self._conn is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(
                self.path, timeout=self.timeout_s, isolation_level=None, check_same_thread=False
            )
            try:
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=NORMAL")
                if _version(conn) != _SCHEMA_VERSION:
                    with _transaction(conn):
                        if _version(conn) != _SCHEMA_VERSION:  # another process may have won
                            conn.execute("DROP TABLE IF EXISTS stat_cache")
                            conn.execute("DROP TABLE IF EXISTS tree_snapshot")
                            for statement in _SCHEMA.split(";"):
                                conn.execute(statement)
                            conn.execute(f"PRAGMA user_version={_SCHEMA_VERSION}")
            except BaseException:
                conn.close()
                raise
            self._conn = conn
        return self._conn

    def _failed(self, action: str, e: Exception) -> StoreError:
        return StoreError(
            f"stat cache {self.path}: {action} failed: {e}; check that the folder is writable, "
            "or delete the file (it is only a cache)"
        )

    def lookup(self, path: str | os.PathLike[str], st: os.stat_result) -> str | None:
        """The cached digest of ``path`` if ``st`` matches its entry and the entry is not racy.

        Args:
            path: The file (made absolute; symbolic links are not resolved).
            st: Its current ``os.stat`` result.

        Returns:
            The digest, or ``None`` when the file must be hashed.
        """
        key = _key(path)
        try:
            with self._lock:
                row = (
                    self._connect()
                    .execute(
                        f"SELECT {_COLUMNS} FROM stat_cache WHERE path = ? AND {_TRUSTED}",
                        (key, self.granularity_ns),
                    )
                    .fetchone()
                )
        except _ERRORS as e:
            raise self._failed(f"looking up {key}", e) from e
        if row is None or row[:4] != stat_key(st):
            return None
        return str(row[4])

    def load_tree(self, root: str | os.PathLike[str]) -> dict[str, CachedRow]:
        """Every trusted (non-racy) entry under folder ``root``, keyed by absolute path.

        One range query, so a scan compares stat tuples in memory instead of
        querying per file.
        """
        lo, hi = prefix_range(_key(root))
        try:
            with self._lock:
                cursor = self._connect().execute(
                    f"SELECT path, {_COLUMNS} FROM stat_cache "
                    f"WHERE path >= ? AND path < ? AND {_TRUSTED}",
                    (lo, hi, self.granularity_ns),
                )
                rows = cursor.fetchall()
        except _ERRORS as e:
            raise self._failed(f"loading the entries under {lo}", e) from e
        return {row[0]: row for row in rows}

    def load_snapshot(self, root: str | os.PathLike[str]) -> Snapshot | None:
        """The snapshot saved for folder ``root``, or ``None`` (none, or unreadable)."""
        key = _key(root)
        try:
            with self._lock:
                row = (
                    self._connect()
                    .execute("SELECT data FROM tree_snapshot WHERE root = ?", (key,))
                    .fetchone()
                )
        except _ERRORS as e:
            raise self._failed(f"loading the snapshot of {key}", e) from e
        if row is None:
            return None
        try:
            rels, keys, entries = marshal.loads(row[0])
        except (ValueError, EOFError, TypeError):  # written by another Python: ignore it
            return None
        return Snapshot(rels, keys, entries)

    def save_snapshot(self, root: str | os.PathLike[str], snapshot: Snapshot) -> bool:
        """Save ``snapshot`` as the one of folder ``root`` unless an entry is racy.

        Returns:
            Whether it was saved (a racy file's stat data cannot vouch for it yet).
        """
        key = _key(root)
        if snapshot.keys and max(map(itemgetter(1), snapshot.keys)) >= (
            time.time_ns() - self.granularity_ns
        ):
            return False
        data = marshal.dumps((snapshot.rels, snapshot.keys, snapshot.entries))
        try:
            with self._lock:
                conn = self._connect()
                with _transaction(conn):
                    conn.execute(
                        "INSERT OR REPLACE INTO tree_snapshot (root, data) VALUES (?, ?)",
                        (key, data),
                    )
        except _ERRORS as e:
            raise self._failed(f"saving the snapshot of {key}", e) from e
        return True

    def store_many(
        self, entries: Iterable[tuple[str | os.PathLike[str], os.stat_result, str]]
    ) -> None:
        """Record ``(path, stat result taken before hashing, digest)`` triples in one transaction.

        The stat result must be one taken *before* the file was read, so a write
        during hashing shows up as a mismatch (or a racy entry) next time.
        """
        now = time.time_ns()
        mask = INODE_MASK
        rows = [
            (_key(p), st.st_size, st.st_mtime_ns, st.st_ino & mask, st.st_ctime_ns, d, now)
            for p, st, d in entries
        ]
        if not rows:
            return
        try:
            with self._lock:
                conn = self._connect()
                with _transaction(conn):
                    conn.executemany(
                        "INSERT OR REPLACE INTO stat_cache "
                        f"(path, {_COLUMNS}, recorded_at_ns) VALUES (?, ?, ?, ?, ?, ?, ?)",
                        rows,
                    )
        except _ERRORS as e:
            raise self._failed(f"recording {len(rows)} digests", e) from e

    def forget_many(self, paths: Iterable[str | os.PathLike[str]]) -> None:
        """Drop the entries of ``paths`` (files that are gone), in one transaction."""
        rows = [(_key(p),) for p in paths]
        if not rows:
            return
        try:
            with self._lock:
                conn = self._connect()
                with _transaction(conn):
                    conn.executemany("DELETE FROM stat_cache WHERE path = ?", rows)
        except _ERRORS as e:
            raise self._failed(f"forgetting {len(rows)} entries", e) from e


class Snapshot(NamedTuple):
    """A folder's walk as :func:`~shipyard.data._scan.scan` saw it.

    Attributes:
        rels: Relative paths of the files, in walk order.
        keys: ``(size, mtime_ns, inode, ctime_ns)`` of each, in the same order.
        entries: The resulting ``(path, size, digest, mode)`` tuples, sorted by path.
    """

    rels: list[str]
    keys: list[tuple[int, int, int, int]]
    entries: list[tuple[str, int, str, int]]


def _version(conn: sqlite3.Connection) -> int:
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


@contextmanager
def _transaction(conn: sqlite3.Connection) -> Iterator[None]:
    """``BEGIN IMMEDIATE`` takes the write lock up front, so two writers wait on the busy
    timeout instead of failing on a lock upgrade."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
