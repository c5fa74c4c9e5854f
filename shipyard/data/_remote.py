"""Move blobs between a local blob store and a remote: :func:`push` and :func:`pull`.

A remote is any fsspec URL (a folder, ``s3://bucket/prefix``...), laid out as::

    <remote>/objects/ab/<62 hex>     a blob of pack_threshold bytes or more, as is
    <remote>/packs/<digest>.pack     smaller blobs concatenated (see ``_packs``)
    <remote>/packs/<digest>.idx      its index, written after the pack
    <remote>/tmp/<uuid>              writes in progress (folders only)

What the remote holds is learnt from one listing of the remote plus each pack
index not seen before; indexes are cached under ``<local store>/packidx`` (in
memory only for a store that is not a local folder), so finding what is missing
costs a few requests, not one per blob. Every write is atomic: on object stores
(S3, GCS, Azure) an upload appears whole or not at all, so the final key is
written directly; elsewhere the data goes to ``tmp/`` and is renamed into place.
A pack whose index is missing is ignored, so an interrupted transfer is resumed
by running it again: only what is still missing moves.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Protocol, TypeVar

from shipyard.blobs import BlobStore, LocalBlobStore, check_digest, hash_bytes, hash_file
from shipyard.data._packs import (
    PackEntry,
    ReadSpan,
    Remote,
    build_pack,
    cache_index,
    coalesce,
    inventory,
    plan_packs,
)
from shipyard.errors import CorruptBlobError, InvalidArgumentError, NotFoundError, StoreError
from shipyard.validation import describe

__all__ = ["DEFAULT_PACK_TARGET", "DEFAULT_PACK_THRESHOLD", "TransferReport", "pull", "push"]

DEFAULT_PACK_THRESHOLD = 1 << 20
DEFAULT_PACK_TARGET = 64 << 20
#: Pull reads the bytes between two wanted blobs of a pack if the gap is smaller
#: than this (cheaper than another request), in reads of at most _MAX_SPAN bytes.
_MAX_GAP = 256 << 10
_MAX_SPAN = 16 << 20
_BATCH = 512
#: Pull tasks (ranged reads of up to _MAX_SPAN, or one loose blob) per published batch.
_PUBLISH_EVERY = 4
_T = TypeVar("_T")


class ProgressCallback(Protocol):
    """Told how many of the bytes to transfer have moved; called from the calling thread."""

    def __call__(self, done_bytes: int, total_bytes: int) -> None: ...


@dataclass(frozen=True, slots=True)
class TransferReport:
    """What a push or pull did. ``requests`` counts every remote operation issued
    (listings, reads, writes, renames, folder creations)."""

    objects_moved: int
    bytes_moved: int
    objects_skipped: int
    requests: int
    packs_written: int
    seconds: float


class _Meter:
    def __init__(self, progress: ProgressCallback | None, total: int) -> None:
        self.progress, self.total, self.done = progress, total, 0
        self.add(0)

    def add(self, n: int) -> None:
        self.done += n
        if self.progress is not None:
            self.progress(self.done, self.total)


def push(
    local: BlobStore,
    digests: Iterable[str],
    remote_url: str,
    *,
    storage_options: Mapping[str, Any] | None = None,
    progress: ProgressCallback | None = None,
    pack_threshold: int = DEFAULT_PACK_THRESHOLD,
    pack_target: int = DEFAULT_PACK_TARGET,
    max_workers: int | None = None,
) -> TransferReport:
    """Copy to the remote every blob in ``digests`` that it does not have yet.

    Blobs smaller than ``pack_threshold`` bytes travel in packs of about
    ``pack_target`` bytes; larger ones are uploaded as they are.

    Args:
        local: The store holding the blobs.
        digests: Every blob of the versions to push (manifests included).
        remote_url: A folder or fsspec URL, e.g. ``s3://bucket/prefix``.
        storage_options: Passed to fsspec (``key``, ``secret``, ``client_kwargs``...).
        progress: Called with ``(done_bytes, total_bytes)`` as the push proceeds.

    Returns:
        What moved, what was already there and how many remote requests it took.

    Raises:
        NotFoundError: a digest is not in ``local``.
        CorruptBlobError: a local blob no longer matches its digest.
        StoreError: the remote cannot be listed, read or written.
    """
    started = time.perf_counter()
    _check_size("pack_threshold", pack_threshold, 0)
    _check_size("pack_target", pack_target, 1)
    wanted = _unique(digests)
    with ThreadPoolExecutor(max_workers, thread_name_prefix="shipyard-push") as pool:
        sizes = dict(_each(pool, partial(_local_sizes, local), wanted))
        remote = Remote(remote_url, storage_options)
        cache = _cache_dir(local)
        have = inventory(remote, cache, pool)
        missing = sorted(d for d in wanted if d not in have)
        meter = _Meter(progress, sum(sizes[d] for d in missing))
        packs = 0
        small = [(d, sizes[d]) for d in missing if sizes[d] < pack_threshold]
        for group in plan_packs(small, pack_target):
            blobs = list(_each(pool, partial(_read_blobs, local), [d for d, _ in group]))
            name, pack, index = build_pack(blobs)
            remote.write(f"packs/{name}.pack", pack)  # the pack first: an index means complete
            remote.write(f"packs/{name}.idx", index)
            cache_index(cache, name, index)
            packs += 1
            meter.add(len(pack))
        large = [d for d in missing if sizes[d] >= pack_threshold]
        _run_all(pool, [partial(_push_large, local, remote, d, sizes[d]) for d in large], meter)
    return TransferReport(
        objects_moved=len(missing),
        bytes_moved=meter.done,
        objects_skipped=len(wanted) - len(missing),
        requests=remote.requests,
        packs_written=packs,
        seconds=time.perf_counter() - started,
    )


def pull(
    local: BlobStore,
    digests: Iterable[str],
    remote_url: str,
    *,
    storage_options: Mapping[str, Any] | None = None,
    progress: ProgressCallback | None = None,
    max_workers: int | None = None,
) -> TransferReport:
    """Copy from the remote every blob in ``digests`` that ``local`` does not have yet.

    Blobs in packs are fetched with ranged reads, grouped per pack; every blob is
    checked against its digest before it is stored.

    Args: as for :func:`push`.

    Returns:
        What moved, what was already local and how many remote requests it took.

    Raises:
        NotFoundError: a digest is on neither side.
        CorruptBlobError: a remote blob does not match its digest (names both).
        StoreError: the remote cannot be listed or read.
    """
    started = time.perf_counter()
    wanted = _unique(digests)
    requests = bytes_moved = 0
    with ThreadPoolExecutor(max_workers, thread_name_prefix="shipyard-pull") as pool:
        need = list(_each(pool, partial(_lacking, local), wanted))
        if need:
            remote = Remote(remote_url, storage_options)
            have = inventory(remote, _cache_dir(local), pool)
            absent = [d for d in need if d not in have]
            if absent:
                raise NotFoundError(
                    f"cannot pull {len(absent)} blob(s) from remote {remote_url}: neither it nor "
                    f"the local store {local.url} has {', '.join(absent[:3])}"
                    f"{' ...' if len(absent) > 3 else ''}; push them from a machine that has them"
                )
            by_pack: dict[str, list[PackEntry]] = {}
            tasks: list[Callable[[], int]] = []
            for d in need:
                where = have[d]
                if where.pack is None:
                    tasks.append(partial(_pull_loose, local, remote, d, where.length))
                else:
                    by_pack.setdefault(where.pack, []).append(
                        PackEntry(d, where.offset, where.length)
                    )
            for pack, entries in by_pack.items():
                spans = coalesce(pack, entries, max_gap=_MAX_GAP, max_span=_MAX_SPAN)
                tasks.extend(partial(_pull_span, local, remote, span) for span in spans)
            meter = _Meter(progress, sum(have[d].length for d in need))
            # Blobs are published (and the disk flushed once) every _PUBLISH_EVERY
            # tasks: cheap like one batch, and an interrupted pull keeps what it got.
            for start in range(0, len(tasks), _PUBLISH_EVERY):
                with local.batch():
                    _run_all(pool, tasks[start : start + _PUBLISH_EVERY], meter)
            requests, bytes_moved = remote.requests, meter.done
    return TransferReport(
        objects_moved=len(need),
        bytes_moved=bytes_moved,
        objects_skipped=len(wanted) - len(need),
        requests=requests,
        packs_written=0,
        seconds=time.perf_counter() - started,
    )


# -- helpers ------------------------------------------------------------------------


def _unique(digests: Iterable[str]) -> list[str]:
    if isinstance(digests, str | bytes):
        raise InvalidArgumentError(
            f"invalid digests: expected an iterable of digests, got a single {describe(digests)}; "
            "wrap it in a list"
        )
    return list(dict.fromkeys(check_digest(d) for d in digests))


def _check_size(name: str, value: object, minimum: int) -> None:
    if type(value) is not int or value < minimum:
        raise InvalidArgumentError(
            f"invalid {name}: expected an integer >= {minimum} (bytes), got {describe(value)}"
        )


def _each(
    pool: ThreadPoolExecutor, work: Callable[[list[str]], list[_T]], digests: Sequence[str]
) -> Iterator[_T]:
    """``work`` over ``digests`` in batches on the pool (one task per blob costs more
    than a small blob's work), results in order."""
    batches = [list(digests[i : i + _BATCH]) for i in range(0, len(digests), _BATCH)]
    for results in pool.map(work, batches):
        yield from results


def _local_sizes(local: BlobStore, digests: list[str]) -> list[tuple[str, int]]:
    sizes = []
    for d in digests:
        try:
            sizes.append((d, local.size(d)))
        except NotFoundError:
            raise NotFoundError(
                f"cannot push blob {d}: it is not in the local blob store {local.url}; add "
                "the data again or pull it from a remote that has it"
            ) from None
    return sizes


def _read_blobs(local: BlobStore, digests: list[str]) -> list[tuple[str, bytes]]:
    return [(d, local.get_bytes(d)) for d in digests]  # verified: never spread damage


def _lacking(local: BlobStore, digests: list[str]) -> list[str]:
    return [d for d in digests if not local.exists(d)]


def _cache_dir(local: BlobStore) -> Path | None:
    return local.root / "packidx" if isinstance(local, LocalBlobStore) else None


def _run_all(pool: ThreadPoolExecutor, tasks: Sequence[Callable[[], int]], meter: _Meter) -> None:
    """Run tasks returning byte counts; report progress; stop at the first failure."""
    futures: list[Future[int]] = [pool.submit(t) for t in tasks]
    try:
        for future in as_completed(futures):
            meter.add(future.result())
    except BaseException:
        for future in futures:
            future.cancel()
        raise


def _push_large(local: BlobStore, remote: Remote, digest: str, size: int) -> int:
    rel = f"objects/{digest[:2]}/{digest[2:]}"
    if isinstance(local, LocalBlobStore):
        path = Path(local._location(digest))
        with _local_errors(f"reading blob {digest}"):
            actual = hash_file(path)
        if actual != digest:  # never spread a damaged blob to the remote
            raise CorruptBlobError(digest, str(path), actual)
        remote.write(rel, path)
        return size
    with tempfile.TemporaryDirectory(prefix="shipyard-push-") as tmp:
        local.get_file(digest, Path(tmp) / "blob")  # verified
        remote.write(rel, Path(tmp) / "blob")
    return size


def _pull_span(local: BlobStore, remote: Remote, span: ReadSpan) -> int:
    rel = f"packs/{span.pack}.pack"
    data = remote.read(rel, span.start, span.end) if span.end > span.start else b""
    for e in span.entries:
        blob = data[e.offset - span.start : e.offset - span.start + e.length]
        where = f"{remote.location(rel)} (bytes {e.offset}-{e.offset + e.length})"
        _store_checked(local, e.digest, blob, where)
    return sum(e.length for e in span.entries)


def _pull_loose(local: BlobStore, remote: Remote, digest: str, size: int) -> int:
    rel = f"objects/{digest[:2]}/{digest[2:]}"
    if size <= _MAX_SPAN:
        _store_checked(local, digest, remote.read(rel), remote.location(rel))
        return size
    tmp_dir = local.root / "tmp" if isinstance(local, LocalBlobStore) else None
    with _local_errors(f"creating a temporary file for blob {digest}"):
        if tmp_dir is not None:
            tmp_dir.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix="shipyard-pull-", dir=tmp_dir)
        os.close(fd)
    try:
        remote.download(rel, Path(name))
        with _local_errors(f"reading the downloaded blob {digest}"):
            actual = hash_file(name)
        if actual != digest:
            raise CorruptBlobError(digest, remote.location(rel), actual)
        stored = local.put_file(name)
        if stored != digest:  # the temporary file changed under us
            raise CorruptBlobError(digest, remote.location(rel), stored)
    finally:
        with suppress(FileNotFoundError):
            os.unlink(name)
    return size


def _store_checked(local: BlobStore, digest: str, blob: bytes, where: str) -> None:
    """Store a fetched blob if it hashes to ``digest``; never store damaged bytes."""
    actual = hash_bytes(blob)
    if actual != digest:
        raise CorruptBlobError(digest, where, actual)
    stored = local.put_bytes(blob)
    if stored != digest:
        raise CorruptBlobError(digest, where, stored)


@contextmanager
def _local_errors(action: str) -> Iterator[None]:
    """Turn an OSError on the local side into a StoreError saying what failed."""
    try:
        yield
    except OSError as e:
        raise StoreError(f"{action} failed: {e}; check free disk space and permissions") from e
