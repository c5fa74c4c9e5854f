"""Walk a file or folder and digest its files, hashing only what the stat cache cannot vouch for.

The walk follows the tree rules of :mod:`shipyard.blobs` (a link to a file inside
the tree stands for that file; other links and special files are refused, named),
and digests are blob digests, so :meth:`ScanResult.manifest` is the manifest
:meth:`~shipyard.blobs.BlobStore.put_tree` would write.

An unchanged file costs one ``stat``: when the walk's paths and stat data equal the
folder's cache snapshot, the entries come from the snapshot; otherwise each file is
compared with the cache's rows, bulk-loaded in one query. Small files are hashed in
the calling thread (on 1 KiB files threads lose to GIL hand-offs), files of
``POOLED_FILE`` bytes or more in a thread pool (blake3 and reads release the GIL),
files of ``LARGE_FILE`` or more memory-mapped, one at a time, on all cores.
"""

from __future__ import annotations

import fnmatch
import gc
import mmap
import os
import re
import stat
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import repeat
from operator import attrgetter, itemgetter
from typing import NamedTuple, cast

import blake3

from shipyard.blobs import Manifest, ManifestEntry
from shipyard.data._statcache import INODE_MASK, CachedRow, Snapshot, StatCache, stat_key
from shipyard.errors import InvalidArgumentError, NotFoundError, StoreError
from shipyard.validation import describe

__all__ = ["LARGE_FILE", "POOLED_FILE", "FileEntry", "ScanResult", "scan"]

#: Files this big are memory-mapped and hashed one at a time with all cores.
LARGE_FILE = 8 << 20
FILE_MODE, EXEC_MODE = 0o644, 0o755
#: Files this big are hashed in a thread pool; smaller ones in the calling thread.
POOLED_FILE = 128 << 10
#: Bytes per thread-pool task (amortises the pool's overhead, keeps every thread busy).
_BATCH_BYTES = 4 << 20
#: Large files are hashed in slices this big, with progress reported after each.
_SLICE = 64 << 20
_RETRIES = 3
_AUTO: int = blake3.blake3.AUTO
#: An empty, '.' or '..' segment, or a backslash, in NUL-delimited relative paths.
_BAD_PARTS = ("\\", *(a + seg + b for seg in ("", ".", "..") for a in "/\x00" for b in "/\x00"))

_O_READ = os.O_RDONLY | getattr(os, "O_BINARY", 0) | getattr(os, "O_CLOEXEC", 0)
_O_ROOT = _O_READ | getattr(os, "O_DIRECTORY", 0)
#: O_NOFOLLOW: a folder swapped for a link after the walk saw it is not followed.
_O_FOLDER = _O_ROOT | getattr(os, "O_NOFOLLOW", 0)

Progress = Callable[[int, int], None]
_Miss = tuple[str, str, os.stat_result]  # (relative path, absolute path, stat)
_STAT_KEY = attrgetter("st_size", "st_mtime_ns", "st_ino", "st_ctime_ns")


class FileEntry(NamedTuple):
    """One file found by :func:`scan`; the fields of :class:`~shipyard.blobs.ManifestEntry`."""

    path: str
    size: int
    digest: str
    mode: int = FILE_MODE

    def to_manifest_entry(self) -> ManifestEntry:
        """The same file as a (validated) manifest entry."""
        return ManifestEntry(self.path, self.size, self.digest, self.mode)


@dataclass(frozen=True, slots=True)
class ScanResult:
    """The files under a scanned root, sorted by path, and what the scan cost."""

    entries: tuple[FileEntry, ...]
    #: Files that missed the stat cache and were read and hashed.
    files_hashed: int
    bytes_hashed: int
    seconds: float

    @property
    def files_total(self) -> int:
        return len(self.entries)

    @property
    def bytes_total(self) -> int:
        return sum(e.size for e in self.entries)

    def manifest(self) -> Manifest:
        """The entries as a :class:`~shipyard.blobs.Manifest` (its digest names the tree)."""
        return Manifest(tuple(e.to_manifest_entry() for e in self.entries))


def scan(
    root: str | os.PathLike[str],
    *,
    cache: StatCache | None,
    workers: int | None = None,
    progress: Progress | None = None,
    exclude: Sequence[str] = (),
) -> ScanResult:
    """Digest every file under ``root`` (a folder, or one file), reusing ``cache``.

    Args:
        root: A folder (entries are relative to it) or a file (one entry, its name).
        cache: Digests of unchanged files are taken from it and new ones recorded
            in it; entries of files no longer under ``root`` are dropped. ``None``
            hashes everything.
        workers: Threads hashing files of ``POOLED_FILE`` to ``LARGE_FILE`` bytes
            (default: CPU count + 4, at most 16).
        progress: Called as ``progress(bytes_hashed, bytes_to_hash)`` from the
            calling thread while files are hashed.
        exclude: Glob patterns (``fnmatch``) of files and folders to leave out. A
            pattern without a ``/`` matches a name at any depth; one with a ``/``
            (or starting with ``/``) matches the path from ``root``, where ``*``
            also crosses folders; a trailing ``/`` matches folders only. An
            excluded folder is not entered. Not applied when ``root`` is a file.

    Returns:
        The entries sorted by path, and the scan's costs.

    Raises:
        NotFoundError: ``root`` does not exist.
        InvalidArgumentError: a refused entry (see the module docstring), a path
            that cannot be stored, or invalid ``exclude`` patterns.
        StoreError: reading failed, or a file kept changing while it was hashed.
    """
    started = time.perf_counter()
    skip = _excluder(exclude)
    top = os.path.abspath(root)
    with _gc_paused():
        hits, misses, cached, walked = _find(top, cache, skip)
        _check_paths(top, [m[0] for m in misses])  # hits were checked before they were cached
        hashed = _hash_all(misses, workers, progress)
        entries = hits + _entries(
            (rel, size, digest, EXEC_MODE if st.st_mode & 0o111 else FILE_MODE)
            for (rel, _, _), (digest, st, size) in hashed
        )
        entries.sort(key=itemgetter(0))
        if cache is not None:
            cache.store_many((path, st, digest) for (_, path, _), (digest, st, _) in hashed)
            cache.forget_many(cached)  # what the walk did not find is gone
            if walked is not None and all(
                stat_key(walk_st) == stat_key(st) for (_, _, walk_st), (_, st, _) in hashed
            ):  # (a file that changed while hashed is saved with its later stat: no snapshot)
                cache.save_snapshot(
                    top,
                    walked._replace(
                        entries=cast(list[tuple[str, int, str, int]], list(map(tuple, entries)))
                    ),
                )
    return ScanResult(
        entries=tuple(entries),
        files_hashed=len(hashed),
        bytes_hashed=sum(size for _, (_, _, size) in hashed),
        seconds=time.perf_counter() - started,
    )


def _find(
    top: str, cache: StatCache | None, skip: _Skip | None
) -> tuple[list[FileEntry], list[_Miss], dict[str, CachedRow], Snapshot | None]:
    """Cache hits, files to hash, the cache entries under ``top`` the walk did not
    find, and the walk to save as a snapshot (``None``: nothing new to save)."""
    try:
        st = os.stat(top)
        if stat.S_ISDIR(st.st_mode):
            return _find_tree(top, cache, skip)
        if not stat.S_ISREG(st.st_mode):
            raise InvalidArgumentError(
                f"cannot scan {top}: expected a file or a folder, got a special file"
            )
        digest = cache.lookup(top, st) if cache is not None else None
        rel = os.path.basename(top)
        if digest is None:
            return [], [(rel, top, st)], {}, None
        return [FileEntry(rel, st.st_size, digest, _mode(st))], [], {}, None
    except FileNotFoundError as e:
        if e.filename not in (top, None):
            raise _read_failed(e.filename, e) from e  # vanished during the walk
        raise NotFoundError(f"cannot scan {top}: no such file or directory") from None
    except OSError as e:
        raise _read_failed(e.filename or top, e) from e


def _find_tree(
    top: str, cache: StatCache | None, skip: _Skip | None
) -> tuple[list[FileEntry], list[_Miss], dict[str, CachedRow], Snapshot | None]:
    rels, stats = _walk(top, skip)
    keys = list(map(_STAT_KEY, stats))
    if cache is None:
        prefix = top if top.endswith(os.sep) else top + os.sep
        return [], [(r, prefix + r, s) for r, s in zip(rels, stats, strict=True)], {}, None
    snap = cache.load_snapshot(top)
    if snap is not None and snap.rels == rels and snap.keys == keys:
        return _entries(snap.entries), [], {}, None  # the same walk as last time
    cached = cache.load_tree(top)
    hits, misses = _match(top, rels, stats, cached)
    return hits, misses, cached, Snapshot(rels, keys, [])


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause the cyclic GC: each 100,000 new tuples trigger collections that walk every
    live one again (10% of a warm scan, 20% of a full re-hash), and none form cycles."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _mode(st: os.stat_result) -> int:
    return EXEC_MODE if st.st_mode & 0o111 else FILE_MODE


def _walk(top: str, skip: _Skip | None) -> tuple[list[str], list[os.stat_result]]:
    """The relative path and ``stat`` of every file, in walk order.

    This loop is most of the cost of ``status`` on an unchanged tree: one ``stat``
    per file (relative to an open folder, which saves the kernel a path walk) and
    two appends; comparing with the cache happens afterwards, in C where possible.
    """
    real_top = os.path.realpath(top)
    inside = real_top if real_top.endswith("/") else real_top + "/"
    rels: list[str] = []
    stats: list[os.stat_result] = []
    rel, put = rels.append, stats.append
    folders = [(top, "")]
    while folders:
        folder, base = folders.pop()
        prefix = folder if folder.endswith(os.sep) else folder + os.sep
        with _listing(folder, _O_ROOT if folder == top else _O_FOLDER) as it:
            for e in it:
                name = e.name
                if skip is not None and skip(name, base + name, e.is_dir(follow_symlinks=False)):
                    continue
                if e.is_file(follow_symlinks=False):
                    try:
                        st = e.stat()
                    except FileNotFoundError:  # deleted since listed: it is gone
                        continue
                elif e.is_dir(follow_symlinks=False):
                    folders.append((prefix + name, base + name + "/"))
                    continue
                else:
                    st = _link_target(top, inside, e, prefix + name)
                rel(base + name)
                put(st)
    return rels, stats


def _match(
    top: str, rels: list[str], stats: list[os.stat_result], cached: dict[str, CachedRow]
) -> tuple[list[FileEntry], list[_Miss]]:
    """Cache hits as entries, and the files to hash; ``cached`` loses every path found."""
    prefix = top if top.endswith(os.sep) else top + os.sep
    sep = os.sep != "/"
    hits: list[tuple[str, int, str, int]] = []
    misses: list[_Miss] = []
    pop, hit, miss = cached.pop, hits.append, misses.append
    for r, st in zip(rels, stats, strict=True):
        path = prefix + (r.replace("/", os.sep) if sep else r)
        c = pop(path, None)
        if (
            c is not None
            and c[1] == st.st_size
            and c[2] == st.st_mtime_ns
            and c[3] == st.st_ino & INODE_MASK
            and c[4] == st.st_ctime_ns
        ):
            hit((r, c[1], c[5], EXEC_MODE if st.st_mode & 0o111 else FILE_MODE))
        else:
            miss((r, path, st))
    return _entries(hits), misses


def _entries(fields: Iterable[tuple[str, int, str, int]]) -> list[FileEntry]:
    """FileEntry objects made in C (``tuple.__new__``), not by a Python ``__new__`` per entry."""
    return cast(list[FileEntry], list(map(tuple.__new__, repeat(FileEntry), fields)))


@contextmanager
def _listing(folder: str, flags: int) -> Iterator[Iterator[os.DirEntry[str]]]:
    """``os.scandir`` of an open folder where supported, so ``stat`` needs no path walk."""
    if os.scandir not in os.supports_fd:
        with os.scandir(folder) as it:
            yield it
        return
    fd = os.open(folder, flags)
    try:
        with os.scandir(fd) as it:
            yield it
    finally:
        os.close(fd)


def _link_target(top: str, inside: str, e: os.DirEntry[str], path: str) -> os.stat_result:
    """The stat of the file a symbolic link inside the tree points at, or refuse it."""

    def refuse(why: str) -> InvalidArgumentError:
        return InvalidArgumentError(
            f"cannot scan {top}: {path} {why}; replace it with a regular file, remove it, "
            "or exclude it"
        )

    if not e.is_symlink():
        raise refuse("is a special file (socket, pipe or device)")
    try:
        st = e.stat()
    except OSError:
        raise refuse("is a dangling or looping symbolic link") from None
    target = os.path.realpath(path)
    if not target.startswith(inside):
        raise refuse(f"is a symbolic link leaving the tree (to {target})")
    if not stat.S_ISREG(st.st_mode):
        raise refuse("is a symbolic link to a folder or special file")
    return st


def _check_paths(top: str, paths: list[str]) -> None:
    """Refuse paths a manifest cannot hold, in a few passes over all of them joined."""
    if not paths:
        return
    joined = "\x00" + "\x00".join(paths) + "\x00"
    try:
        (top + joined).encode("utf-8")
    except UnicodeEncodeError:
        # Undecodable bytes became lone surrogates, which "replace" turns into "?".
        bad = next((p for p in paths if p.encode("utf-8", "replace").decode() != p), top)
        raise InvalidArgumentError(
            f"cannot scan {top}: the name {bad!r} is not valid UTF-8; rename it"
        ) from None
    # A walk cannot produce these, but a manifest must never hold one.
    if any(s in joined for s in _BAD_PARTS):
        bad = next(p for p in paths if any(s in f"\x00{p}\x00" for s in _BAD_PARTS))
        raise InvalidArgumentError(
            f"cannot scan {top}: expected relative paths without empty, '.' or '..' segments "
            f"or backslashes, got {bad!r}; rename it"
        )


# -- exclusion -------------------------------------------------------------------

_Skip = Callable[[str, str, bool], bool]


def _excluder(patterns: Sequence[str]) -> _Skip | None:
    """``skip(name, relative path, is folder)`` for ``patterns``, or ``None`` if there are none."""
    if isinstance(patterns, str) or not all(isinstance(p, str) and p.strip("/") for p in patterns):
        raise InvalidArgumentError(
            "invalid exclude: expected a list of glob patterns such as ['*.tmp', 'cache/'], "
            f"got {describe(patterns)}"
        )
    if not patterns:
        return None
    groups: dict[tuple[bool, bool], list[str]] = {}
    for p in patterns:
        folders_only = p.endswith("/")
        core = p.strip("/")
        on_path = "/" in p.rstrip("/")
        groups.setdefault((on_path, folders_only), []).append(fnmatch.translate(core))
    tests = [
        (on_path, folders_only, re.compile("|".join(group)).match)
        for (on_path, folders_only), group in groups.items()
    ]

    def skip(name: str, rel: str, is_dir: bool) -> bool:
        return any(
            (is_dir or not folders_only) and match(rel if on_path else name)
            for on_path, folders_only, match in tests
        )

    return skip


# -- hashing ---------------------------------------------------------------------

#: (digest, the stat taken before the read that gave it, bytes hashed)
_Hashed = tuple[str, os.stat_result, int]


class _Meter:
    """Bytes hashed, added from any thread, told to ``progress`` from the caller's."""

    def __init__(self, total: int, progress: Progress | None) -> None:
        self.total, self.progress, self.done, self._lock = total, progress, 0, threading.Lock()

    def add(self, n: int) -> None:
        with self._lock:
            self.done += n

    def tell(self, n: int = 0) -> None:
        self.add(n)
        if self.progress is not None:
            self.progress(min(self.done, self.total), self.total)


def _hash_all(
    misses: list[_Miss], workers: int | None, progress: Progress | None
) -> list[tuple[_Miss, _Hashed]]:
    """Hash small files here, medium ones in a thread pool, then large ones one at a time."""
    if not misses:
        return []
    meter = _Meter(sum(m[2].st_size for m in misses), progress)
    meter.tell()
    results = _hash_read([m for m in misses if m[2].st_size < POOLED_FILE], meter.tell)
    batches: list[list[_Miss]] = [[]]
    for m in misses:
        if POOLED_FILE <= m[2].st_size < LARGE_FILE:
            if sum(b[2].st_size for b in batches[-1]) >= _BATCH_BYTES:
                batches.append([])
            batches[-1].append(m)
    if batches[0]:
        workers = workers if workers is not None else min(16, (os.cpu_count() or 1) + 4)
        with ThreadPoolExecutor(max(1, workers), thread_name_prefix="shipyard-scan") as pool:
            futures = [pool.submit(_hash_read, batch, meter.add) for batch in batches]
            try:
                for future in as_completed(futures):
                    results += future.result()
                    meter.tell()
            except BaseException:
                for future in futures:
                    future.cancel()
                raise
    for m in misses:
        if m[2].st_size >= LARGE_FILE:
            results.append((m, _retrying(m[1], m[2], lambda p, st: _mapped(p, st, meter.tell))))
    return results


def _hash_read(misses: list[_Miss], done: Callable[[int], None]) -> list[tuple[_Miss, _Hashed]]:
    """Hash files read whole: open, read, close, and no other call per unchanged file."""
    out: list[tuple[_Miss, _Hashed]] = []
    size, path = 0, ""
    try:
        for i, m in enumerate(misses, 1):
            _, path, st = m
            fd = os.open(path, _O_READ)
            try:
                data = os.read(fd, st.st_size + 1)
            finally:
                os.close(fd)
            if len(data) == st.st_size:
                out.append((m, (blake3.blake3(data).hexdigest(), st, st.st_size)))
            else:  # changed since the walk
                out.append((m, _retrying(path, os.stat(path), _read_whole)))
            size += st.st_size
            if i % 1024 == 0 or i == len(misses):
                done(size)
                size = 0
    except OSError as e:
        raise _read_failed(path, e) from e
    return out


def _read_whole(path: str, before: os.stat_result) -> _Hashed:
    with open(path, "rb") as f:
        data = f.read()
    return str(blake3.blake3(data).hexdigest()), before, len(data)


def _mapped(path: str, before: os.stat_result, tell: Callable[[int], None]) -> _Hashed | None:
    """Hash a large file memory-mapped, on all cores, in slices so progress can be told."""
    with open(path, "rb") as f:
        st = os.fstat(f.fileno())
        if stat_key(st) != stat_key(before):
            return None
        if st.st_size < LARGE_FILE:  # shrank since the walk (and mmap refuses 0 bytes)
            return _read_whole(path, st)
        # Like every mmap reader, this assumes nobody truncates the file meanwhile.
        hasher, size = blake3.blake3(max_threads=_AUTO), st.st_size
        with mmap.mmap(f.fileno(), size, access=mmap.ACCESS_READ) as m, memoryview(m) as view:
            for offset in range(0, size, _SLICE):
                hasher.update(view[offset : offset + _SLICE])
                tell(min(_SLICE, size - offset))
    return str(hasher.hexdigest()), st, size


def _retrying(
    path: str, before: os.stat_result, read: Callable[[str, os.stat_result], _Hashed | None]
) -> _Hashed:
    """``read(path, stat before)``, again while the file's stat changes under it."""
    for _ in range(_RETRIES):
        try:
            hashed = read(path, before)
            after = os.stat(path)
        except OSError as e:
            raise _read_failed(path, e) from e
        if hashed is not None and stat_key(after) == stat_key(hashed[1]):
            return hashed
        before = after
    raise StoreError(f"{path} kept changing while it was hashed; scan again once nothing writes")


def _read_failed(path: str, e: OSError) -> StoreError:
    return StoreError(f"reading {path} failed: {e}; check that it exists and is readable")
