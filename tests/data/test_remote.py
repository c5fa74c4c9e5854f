"""push and pull: moving blobs between a local store and a folder or S3 remote."""

from __future__ import annotations

import os
import socket
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from shipyard.blobs import LocalBlobStore, hash_bytes
from shipyard.data._packs import (
    PackEntry,
    PackIndex,
    Remote,
    coalesce,
    decode_index,
    encode_index,
    plan_packs,
)
from shipyard.data._remote import TransferReport, pull, push
from shipyard.errors import CorruptBlobError, InvalidArgumentError, NotFoundError, StoreError

BIG = 2 << 20  # above the default 1 MiB pack threshold


@dataclass
class Target:
    """A remote under test, with a back door to its raw files."""

    url: str
    options: dict[str, Any] = field(default_factory=dict)

    def fs(self) -> Any:
        remote = Remote(self.url, self.options)
        return remote.fs, remote.root

    def files(self, under: str = "") -> list[str]:
        fs, root = self.fs()
        fs.invalidate_cache()
        try:
            return sorted(str(p)[len(root) + 1 :] for p in fs.find(f"{root}/{under}"))
        except FileNotFoundError:
            return []

    def read(self, rel: str) -> bytes:
        fs, root = self.fs()
        return bytes(fs.cat_file(f"{root}/{rel}"))

    def write(self, rel: str, data: bytes) -> None:
        fs, root = self.fs()
        fs.pipe_file(f"{root}/{rel}", data)

    def delete(self, rel: str) -> None:
        fs, root = self.fs()
        fs.rm_file(f"{root}/{rel}")


def _s3_options(endpoint: str) -> dict[str, Any]:
    return {"client_kwargs": {"endpoint_url": endpoint}, "key": "x", "secret": "y"}


@pytest.fixture(params=["folder", "s3"])
def target(request: pytest.FixtureRequest, tmp_path: Path) -> Target:
    """A fresh empty remote: a local folder, or a prefix in a new bucket on the S3 server."""
    if request.param == "folder":
        return Target(str(tmp_path / "remote"))
    endpoint = request.getfixturevalue("s3_endpoint")
    options = _s3_options(endpoint)
    bucket = f"shipyard-{uuid.uuid4().hex[:12]}"
    fs, _ = Target(f"s3://{bucket}", options).fs()
    fs.mkdir(bucket)
    return Target(f"s3://{bucket}/datasets", options)


@pytest.fixture
def folder(tmp_path: Path) -> Target:
    """A fresh empty folder remote."""
    return Target(str(tmp_path / "remote"))


def _store(tmp_path: Path) -> LocalBlobStore:
    return LocalBlobStore(tmp_path / f"store-{uuid.uuid4().hex[:8]}", fsync=False)


def _fill(store: LocalBlobStore, n: int, size: int = 100, tag: str = "") -> list[str]:
    return [store.put_bytes(f"{tag}{i:08d}".encode().ljust(size, b".")) for i in range(n)]


def _push(local: LocalBlobStore, digests: list[str], t: Target, **kw: Any) -> TransferReport:
    return push(local, digests, t.url, storage_options=t.options, **kw)


def _pull(local: LocalBlobStore, digests: list[str], t: Target, **kw: Any) -> TransferReport:
    return pull(local, digests, t.url, storage_options=t.options, **kw)


# -- round trips -----------------------------------------------------------------------


def test_tree_round_trips_through_the_remote(tmp_path: Path, target: Target) -> None:
    """A tree pushed from one store and pulled into another comes back byte for byte."""
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "a.txt").write_bytes(b"alpha")
    (src / "sub" / "b.bin").write_bytes(os.urandom(BIG))
    (src / "empty").write_bytes(b"")
    a, b = _store(tmp_path), _store(tmp_path)
    manifest = a.put_tree(src)
    digests = [manifest, *(e.digest for e in a.read_manifest(manifest).entries)]

    pushed = _push(a, digests, target)
    assert (pushed.objects_moved, pushed.objects_skipped, pushed.packs_written) == (4, 0, 1)
    assert pushed.bytes_moved == sum(a.size(d) for d in digests)
    pulled = _pull(b, digests, target)
    assert (pulled.objects_moved, pulled.bytes_moved) == (4, pushed.bytes_moved)
    b.get_tree(manifest, tmp_path / "out")
    assert (tmp_path / "out" / "sub" / "b.bin").read_bytes() == (src / "sub" / "b.bin").read_bytes()
    assert (tmp_path / "out" / "a.txt").read_bytes() == b"alpha"
    assert (tmp_path / "out" / "empty").read_bytes() == b""


def test_second_push_and_pull_move_nothing(tmp_path: Path, target: Target) -> None:
    """Repeating a push lists the remote once and moves nothing; a repeated pull makes no
    request at all."""
    a, b = _store(tmp_path), _store(tmp_path)
    digests = [*_fill(a, 50), a.put_bytes(os.urandom(BIG))]
    _push(a, digests, target)
    again = _push(a, digests, target)
    assert (again.objects_moved, again.objects_skipped, again.bytes_moved) == (0, 51, 0)
    assert again.requests == 1  # the listing; the pack index is cached locally
    _pull(b, digests, target)
    again = _pull(b, digests, target)
    assert (again.objects_moved, again.objects_skipped, again.requests) == (0, 51, 0)


def test_push_sends_only_what_the_remote_lacks(tmp_path: Path, target: Target) -> None:
    """Blobs pushed earlier, from any store, are skipped."""
    a, b = _store(tmp_path), _store(tmp_path)
    first = _fill(a, 10)
    _push(a, first, target)
    both = first + _fill(b, 5, tag="new") + _fill(b, 10)  # b holds the first ten too
    report = _push(b, both, target)
    assert (report.objects_moved, report.objects_skipped) == (5, 10)
    assert report.requests <= 7  # listing, its index, a pack, its index (+ mkdir, renames)


@pytest.mark.parametrize("n", [2000])
def test_many_small_blobs_take_a_handful_of_requests(
    tmp_path: Path, target: Target, n: int
) -> None:
    """2,000 small blobs go up in one pack and come back in one ranged read."""
    a, b = _store(tmp_path), _store(tmp_path)
    digests = _fill(a, n, size=1024)
    pushed = _push(a, digests, target)
    assert pushed.packs_written == 1
    assert pushed.requests <= 8  # listing + pack + index (+ rename/mkdir on a folder)
    files = target.files()
    assert len(files) == 2  # the pack and its index; no loose object, no temporary left
    assert all(f.startswith("packs/") for f in files)
    pulled = _pull(b, digests, target)
    assert pulled.requests <= 8
    assert pulled.objects_moved == n
    assert all(b.get_bytes(d) == a.get_bytes(d) for d in digests)


def test_pack_target_bounds_pack_size(tmp_path: Path, folder: Target) -> None:
    """Packs close before they pass pack_target bytes."""
    a = _store(tmp_path)
    digests = _fill(a, 100, size=1000)
    report = _push(a, digests, folder, pack_target=10_000)
    assert report.packs_written == 10
    packs = [f for f in folder.files("packs") if f.endswith(".pack")]
    assert len(packs) == 10
    assert all(len(folder.read(p)) <= 10_000 for p in packs)


def test_large_blob_is_stored_unpacked(tmp_path: Path, target: Target) -> None:
    """A blob of pack_threshold bytes or more becomes objects/ab/<rest> on the remote."""
    a, b = _store(tmp_path), _store(tmp_path)
    data = os.urandom(BIG)
    digest = a.put_bytes(data)
    report = _push(a, [digest], target)
    assert report.packs_written == 0
    assert f"objects/{digest[:2]}/{digest[2:]}" in target.files()
    assert target.read(f"objects/{digest[:2]}/{digest[2:]}") == data
    _pull(b, [digest], target)
    assert b.get_bytes(digest) == data


def test_very_large_blob_is_pulled_through_a_file(tmp_path: Path, folder: Target) -> None:
    """A loose blob above the in-memory limit is downloaded to a file, checked, then stored."""
    a, b = _store(tmp_path), _store(tmp_path)
    digest = a.put_bytes(os.urandom(17 << 20))
    _push(a, [digest], folder)
    _pull(b, [digest], folder)
    assert b.get_bytes(digest) == a.get_bytes(digest)
    assert os.listdir(b.root / "tmp") == []


def test_progress_reaches_the_total(tmp_path: Path, folder: Target) -> None:
    """The progress callback sees byte counts rise to the total of what moves."""
    a = _store(tmp_path)
    digests = [*_fill(a, 30, size=1000), a.put_bytes(os.urandom(BIG))]
    seen: list[tuple[int, int]] = []
    report = _push(
        a, digests, folder, pack_target=10_000, progress=lambda d, t: seen.append((d, t))
    )
    assert seen[0] == (0, report.bytes_moved)
    assert seen[-1] == (report.bytes_moved, report.bytes_moved)
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)
    seen.clear()
    _pull(_store(tmp_path), digests, folder, progress=lambda d, t: seen.append((d, t)))
    assert seen[-1] == (report.bytes_moved, report.bytes_moved)


# -- damage and interruptions ------------------------------------------------------------


def test_corrupted_pack_fails_pull_naming_the_blob(tmp_path: Path, folder: Target) -> None:
    """A flipped byte in a pack raises CorruptBlobError naming the blob and the pack, and
    stores nothing damaged."""
    a, b = _store(tmp_path), _store(tmp_path)
    digests = _fill(a, 20)
    _push(a, digests, folder)
    (pack,) = [f for f in folder.files("packs") if f.endswith(".pack")]
    data = bytearray(folder.read(pack))
    data[5 * 100 + 3] ^= 0xFF  # inside the sixth blob in digest order
    folder.write(pack, bytes(data))
    victim = sorted(digests)[5]
    with pytest.raises(CorruptBlobError) as info:
        _pull(b, digests, folder)
    assert info.value.digest == victim
    assert pack in info.value.location
    assert victim in str(info.value)
    assert not b.exists(victim)


def test_corrupted_loose_object_fails_pull(tmp_path: Path, folder: Target) -> None:
    """A damaged unpacked object raises CorruptBlobError naming it."""
    a, b = _store(tmp_path), _store(tmp_path)
    digest = a.put_bytes(os.urandom(BIG))
    _push(a, [digest], folder)
    rel = f"objects/{digest[:2]}/{digest[2:]}"
    folder.write(rel, b"\x00" + folder.read(rel)[1:])
    with pytest.raises(CorruptBlobError, match=digest):
        _pull(b, [digest], folder)
    assert not b.exists(digest)


def test_damaged_pack_index_is_reported(tmp_path: Path, folder: Target) -> None:
    """A truncated pack index raises StoreError naming it and saying what to do."""
    a = _store(tmp_path)
    digests = _fill(a, 5)
    _push(a, digests, folder)
    (idx,) = [f for f in folder.files("packs") if f.endswith(".idx")]
    folder.write(idx, folder.read(idx)[:-1])
    with pytest.raises(StoreError, match=r"damaged.*delete it"):
        _pull(_store(tmp_path), digests, folder)


def test_damaged_cached_index_is_read_again(tmp_path: Path, folder: Target) -> None:
    """A local copy of a pack index that got damaged is replaced from the remote."""
    a = _store(tmp_path)
    digests = _fill(a, 5)
    _push(a, digests, folder)
    (cached,) = (a.root / "packidx").glob("*.idx")
    cached.write_bytes(b"garbage")
    report = _push(a, digests, folder)
    assert (report.objects_moved, report.requests) == (0, 2)  # listing + the index
    assert cached.read_bytes() == folder.read(f"packs/{cached.name}")


def test_interrupted_push_resumes(
    tmp_path: Path, target: Target, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A push that dies between a pack and its index is finished by running it again."""
    a, b = _store(tmp_path), _store(tmp_path)
    digests = [*_fill(a, 100, size=1000), a.put_bytes(os.urandom(BIG))]
    real_write = Remote.write
    writes = 0

    def crashing_write(self: Remote, rel: str, source: bytes | Path) -> None:
        nonlocal writes
        writes += 1
        if writes == 4:  # pack 1, index 1, pack 2, then the crash before index 2
            raise StoreError("simulated crash")
        real_write(self, rel, source)

    monkeypatch.setattr(Remote, "write", crashing_write)
    with pytest.raises(StoreError, match="simulated crash"):
        _push(a, digests, target, pack_target=20_000)
    monkeypatch.undo()
    assert len([f for f in target.files("packs") if f.endswith(".pack")]) == 2
    resumed = _push(a, digests, target, pack_target=20_000)
    assert (resumed.objects_moved, resumed.objects_skipped) == (81, 20)
    _pull(b, digests, target)
    assert all(b.get_bytes(d) == a.get_bytes(d) for d in digests)


def test_deleted_index_means_its_pack_is_sent_again(tmp_path: Path, folder: Target) -> None:
    """A pack without its index counts as absent: its blobs are pushed again."""
    a = _store(tmp_path)
    digests = _fill(a, 40, size=1000)
    _push(a, digests, folder, pack_target=20_000)
    idx = sorted(f for f in folder.files("packs") if f.endswith(".idx"))[0]
    folder.delete(idx)
    report = _push(a, digests, folder, pack_target=20_000)
    assert (report.objects_moved, report.objects_skipped) == (20, 20)
    b = _store(tmp_path)
    _pull(b, digests, folder)
    assert all(b.exists(d) for d in digests)


def test_failed_write_leaves_no_partial_object(
    tmp_path: Path, folder: Target, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A write that dies halfway leaves at most a temporary file, never a final name."""
    from fsspec.implementations.local import LocalFileSystem

    def half_pipe(self: Any, path: str, value: bytes, **kwargs: Any) -> None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_bytes(value[: len(value) // 2])
        raise OSError(28, "No space left on device")

    a = _store(tmp_path)
    digests = _fill(a, 10)
    monkeypatch.setattr(LocalFileSystem, "pipe_file", half_pipe)
    with pytest.raises(StoreError, match="No space left"):
        _push(a, digests, folder)
    assert not [f for f in folder.files() if not f.startswith("tmp/")]


# -- errors ----------------------------------------------------------------------------


def test_push_of_unknown_digest_names_it(tmp_path: Path, folder: Target) -> None:
    """Pushing a digest the local store lacks raises NotFoundError naming it."""
    missing = hash_bytes(b"never stored")
    with pytest.raises(NotFoundError, match=missing):
        _push(_store(tmp_path), [missing], folder)
    assert folder.files() == []


def test_pull_of_digest_nobody_has_names_it(tmp_path: Path, folder: Target) -> None:
    """Pulling a digest the remote lacks raises NotFoundError naming it and the remote."""
    missing = hash_bytes(b"never stored")
    with pytest.raises(NotFoundError, match=rf"{missing}.*push them"):
        _pull(_store(tmp_path), [missing], folder)


def test_unwritable_folder_remote_raises_store_error(tmp_path: Path) -> None:
    """A remote folder that cannot be created raises StoreError saying what to check."""
    (tmp_path / "file").write_bytes(b"")
    a = _store(tmp_path)
    with pytest.raises(
        StoreError, match=r"creating folder .* on remote .* failed.*check that the remote"
    ):
        push(a, _fill(a, 3), str(tmp_path / "file" / "remote"))


def test_unreachable_s3_remote_raises_store_error(tmp_path: Path) -> None:
    """An S3 endpoint nobody listens on raises StoreError naming the remote."""
    pytest.importorskip("s3fs")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    options = {
        **_s3_options(f"http://127.0.0.1:{port}"),
        "config_kwargs": {"retries": {"max_attempts": 1}, "connect_timeout": 1},
    }
    a = _store(tmp_path)
    with pytest.raises(StoreError, match=r"listing the remote on remote s3://nowhere/x failed"):
        push(a, _fill(a, 1), "s3://nowhere/x", storage_options=options)


def test_missing_bucket_raises_store_error(tmp_path: Path, s3_endpoint: str) -> None:
    """Pushing into a bucket that does not exist raises StoreError, creating nothing."""
    a = _store(tmp_path)
    with pytest.raises(StoreError, match="s3://no-such-bucket/x"):
        push(a, _fill(a, 1), "s3://no-such-bucket/x", storage_options=_s3_options(s3_endpoint))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"digests": "ab" * 32}, "iterable of digests"),
        ({"digests": ["nope"]}, "invalid blob digest"),
        ({"pack_target": 0}, "invalid pack_target"),
        ({"pack_threshold": -1}, "invalid pack_threshold"),
    ],
)
def test_invalid_arguments_are_refused(
    tmp_path: Path, folder: Target, kwargs: dict[str, Any], match: str
) -> None:
    """Bad digests or pack sizes raise InvalidArgumentError before any transfer."""
    args: dict[str, Any] = {"digests": [], **kwargs}
    with pytest.raises(InvalidArgumentError, match=match):
        push(_store(tmp_path), remote_url=folder.url, **args)


# -- packs and indexes ------------------------------------------------------------------


def test_pack_index_round_trips_and_catches_damage() -> None:
    """An encoded index decodes to the same entries; any flipped byte is caught."""
    entries = tuple(PackEntry(hash_bytes(bytes([i])), i * 10, 10) for i in range(5))
    index = PackIndex("f" * 64, 50, entries)
    data = encode_index(index)
    decoded = decode_index(index.pack, data, "here")
    assert sorted(decoded.entries, key=lambda e: e.digest) == sorted(
        entries, key=lambda e: e.digest
    )
    for i in range(len(data)):
        damaged = bytearray(data)
        damaged[i] ^= 1
        with pytest.raises(StoreError, match="pack index here is damaged"):
            decode_index(index.pack, bytes(damaged), "here")


def test_plan_packs_and_coalesce_group_neighbours() -> None:
    """Packs fill up to the target; nearby wanted blobs share one ranged read."""
    assert plan_packs([("a", 4), ("b", 4), ("c", 4), ("d", 20)], 8) == [
        [("a", 4), ("b", 4)],
        [("c", 4)],
        [("d", 20)],
    ]
    entries = [PackEntry("a", 0, 10), PackEntry("b", 15, 5), PackEntry("c", 100, 10)]
    spans = coalesce("p", entries, max_gap=10, max_span=1000)
    assert [(s.start, s.end, len(s.entries)) for s in spans] == [(0, 20, 2), (100, 110, 1)]
    spans = coalesce("p", entries, max_gap=1000, max_span=50)
    assert [(s.start, s.end) for s in spans] == [(0, 20), (100, 110)]
