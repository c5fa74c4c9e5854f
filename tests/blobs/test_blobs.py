"""The blob store contract, run on the local folder and on fsspec's memory backend."""

from __future__ import annotations

import io
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

import blake3
import pytest

import shipyard.blobs
import shipyard.blobs._base
import shipyard.blobs._hashing
from shipyard.blobs import BlobStore, FsspecBlobStore, LocalBlobStore, open_blob_store
from shipyard.errors import (
    CorruptBlobError,
    InvalidArgumentError,
    NotFoundError,
    StoreError,
)

if TYPE_CHECKING:
    from conftest import Backdoor

EMPTY_DIGEST = "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262"
MISSING = "0" * 64
BIG = os.urandom(3 << 20)  # above the threshold where hashing goes multithreaded


def _write(path: Path, data: bytes, mode: int | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    if mode is not None:
        os.chmod(path, mode)
    return path


# -- round trips -------------------------------------------------------------------


@pytest.mark.parametrize("data", [b"", b"hello", BIG], ids=["empty", "small", "3MiB"])
def test_put_bytes_round_trip(store: BlobStore, data: bytes) -> None:
    """put_bytes returns the BLAKE3 hex digest and get_bytes returns the same bytes."""
    digest = store.put_bytes(data)
    assert digest == blake3.blake3(data).hexdigest()
    assert store.exists(digest)
    assert store.size(digest) == len(data)
    assert store.get_bytes(digest) == data


def test_digest_of_empty_blob_is_the_blake3_test_vector(store: BlobStore) -> None:
    """The empty blob's digest is BLAKE3's published digest of no input."""
    assert store.put_bytes(b"") == EMPTY_DIGEST


@pytest.mark.parametrize("data", [b"", b"x" * 1000, BIG], ids=["empty", "small", "3MiB"])
def test_put_file_and_get_file_round_trip(store: BlobStore, tmp_path: Path, data: bytes) -> None:
    """A file stored with put_file comes back byte for byte with get_file."""
    digest = store.put_file(_write(tmp_path / "in.bin", data))
    assert digest == store.put_bytes(data)
    store.get_file(digest, tmp_path / "out" / "copy.bin")
    assert (tmp_path / "out" / "copy.bin").read_bytes() == data


def test_get_file_replaces_an_existing_file(store: BlobStore, tmp_path: Path) -> None:
    """get_file overwrites the destination and leaves no temporary file next to it."""
    digest = store.put_bytes(b"new content")
    dest = _write(tmp_path / "dest.txt", b"old content that is longer")
    store.get_file(digest, dest)
    assert dest.read_bytes() == b"new content"
    assert os.listdir(tmp_path) == ["dest.txt"]


def test_put_stream_round_trip(store: BlobStore) -> None:
    """put_stream stores what it reads and returns the same digest as put_bytes."""
    digest = store.put_stream(io.BytesIO(BIG))
    assert digest == blake3.blake3(BIG).hexdigest()
    assert store.get_bytes(digest) == BIG


def test_open_reads_the_blob(store: BlobStore) -> None:
    """open returns a readable binary file with the blob's content."""
    digest = store.put_bytes(BIG)
    with store.open(digest) as f:
        assert f.read(10) == BIG[:10]
        assert f.read() == BIG[10:]


def test_iter_digests_lists_every_blob(store: BlobStore) -> None:
    """iter_digests yields each stored digest once."""
    digests = {store.put_bytes(bytes([i])) for i in range(5)}
    assert set(store.iter_digests()) == digests


def test_delete_removes_the_blob(store: BlobStore) -> None:
    """After delete the blob no longer exists; deleting it again is NotFoundError."""
    digest = store.put_bytes(b"gone soon")
    store.delete(digest)
    assert not store.exists(digest)
    with pytest.raises(NotFoundError):
        store.delete(digest)


# -- dedupe and concurrency --------------------------------------------------------


def test_same_content_is_stored_once(store: BlobStore, tmp_path: Path) -> None:
    """The same content through put_bytes, put_file and put_stream makes one object."""
    digests = {
        store.put_bytes(b"same"),
        store.put_bytes(b"same"),
        store.put_file(_write(tmp_path / "f", b"same")),
        store.put_stream(io.BytesIO(b"same")),
    }
    assert len(digests) == 1
    assert list(store.iter_digests()) == list(digests)


def test_existing_blob_is_not_rewritten(
    store: BlobStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Putting content that is already stored writes nothing."""
    store.put_bytes(b"once")

    def refuse(*args: object) -> None:
        raise AssertionError("rewrote an existing blob")

    monkeypatch.setattr(store, "_store_bytes", refuse)
    monkeypatch.setattr(store, "_store_file", refuse)
    store.put_bytes(b"once")
    store.put_file(_write(tmp_path / "f", b"once"))


def test_concurrent_puts_of_the_same_content(
    store: BlobStore, tmp_path: Path, backdoor: Backdoor
) -> None:
    """Threads storing the same content at once agree on one intact blob."""
    source = _write(tmp_path / "big.bin", BIG)
    barrier = threading.Barrier(8)

    def put(i: int) -> str:
        barrier.wait()
        return store.put_file(source) if i % 2 else store.put_bytes(BIG)

    with ThreadPoolExecutor(8) as pool:
        digests = set(pool.map(put, range(8)))
    assert len(digests) == 1
    digest = digests.pop()
    assert list(store.iter_digests()) == [digest]
    assert store.get_bytes(digest) == BIG
    assert backdoor.tmp_files() == []


# -- atomicity -------------------------------------------------------------------


def test_writes_leave_no_temporary_files(
    store: BlobStore, tmp_path: Path, backdoor: Backdoor
) -> None:
    """Successful writes leave nothing in the temporary folder."""
    store.put_bytes(b"a")
    store.put_file(_write(tmp_path / "f", BIG))
    store.put_stream(io.BytesIO(b"b"))
    store.put_tree(_write(tmp_path / "tree" / "x", b"c").parent)
    assert backdoor.tmp_files() == []


def test_a_crashed_write_does_not_make_the_blob_exist(store: BlobStore, backdoor: Backdoor) -> None:
    """A temporary file left by a crashed writer is not a blob, and the blob can be stored."""
    data = b"half-written"
    digest = blake3.blake3(data).hexdigest()
    backdoor.write_tmp("0123456789abcdef0123456789abcdef", data[:4])
    assert not store.exists(digest)
    assert store.put_bytes(data) == digest
    assert store.get_bytes(digest) == data


def test_a_failed_rename_leaves_no_blob_and_no_temporary_file(
    store: BlobStore, monkeypatch: pytest.MonkeyPatch, backdoor: Backdoor
) -> None:
    """If the final rename fails the write raises StoreError and nothing is left behind."""
    if isinstance(store, FsspecBlobStore) and store.direct_put:
        pytest.skip("direct puts have no rename")

    def broken(*args: object, **kwargs: object) -> None:
        raise OSError(28, "No space left on device")

    if isinstance(store, LocalBlobStore):
        monkeypatch.setattr(os, "replace", broken)
    else:
        assert isinstance(store, FsspecBlobStore)
        monkeypatch.setattr(store._fs, "mv", broken)
    with pytest.raises(StoreError, match="No space left") as info:
        store.put_bytes(b"never stored")
    assert isinstance(info.value.__cause__, OSError)
    assert not store.exists(blake3.blake3(b"never stored").hexdigest())
    assert backdoor.tmp_files() == []


def test_a_file_changing_while_stored_is_refused(
    store: BlobStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """put_file raises StoreError, and stores nothing, if the file changes as it is hashed."""
    source = _write(tmp_path / "growing.log", b"first line\n")
    real_hash = shipyard.blobs._hashing.hash_file

    def hash_then_append(path: Path) -> str:
        digest = real_hash(path)
        with open(path, "ab") as f:
            f.write(b"second line\n")
        return digest

    monkeypatch.setattr(shipyard.blobs._base, "hash_file", hash_then_append)
    with pytest.raises(StoreError, match="changed while it was being stored"):
        store.put_file(source)
    assert list(store.iter_digests()) == []


# -- verification and errors ---------------------------------------------------------


def test_corruption_is_detected_on_read(
    store: BlobStore, tmp_path: Path, backdoor: Backdoor
) -> None:
    """A flipped byte makes every verified read raise CorruptBlobError naming the blob."""
    digest = store.put_bytes(BIG)
    backdoor.flip_byte(digest, 1000)
    with pytest.raises(CorruptBlobError, match=digest) as info:
        store.get_bytes(digest)
    assert info.value.digest == digest
    assert info.value.actual != digest
    assert digest[2:] in info.value.location
    with pytest.raises(CorruptBlobError, match=digest):
        store.verify(digest)
    with pytest.raises(CorruptBlobError, match=digest):
        store.get_file(digest, tmp_path / "out.bin")
    assert not (tmp_path / "out.bin").exists()
    assert os.listdir(tmp_path) == []
    with pytest.raises(CorruptBlobError, match=digest), store.open(digest) as f:
        f.read()
    assert store.get_bytes(digest, verify=False) != BIG


def test_verify_passes_an_intact_blob(store: BlobStore) -> None:
    """verify returns quietly for a blob whose content matches its digest."""
    store.verify(store.put_bytes(BIG))


def test_corrupt_get_file_keeps_the_old_destination(
    store: BlobStore, tmp_path: Path, backdoor: Backdoor
) -> None:
    """A failed verified get_file leaves an existing destination file untouched."""
    digest = store.put_bytes(b"payload")
    backdoor.flip_byte(digest)
    dest = _write(tmp_path / "dest", b"previous")
    with pytest.raises(CorruptBlobError):
        store.get_file(digest, dest)
    assert dest.read_bytes() == b"previous"
    assert os.listdir(tmp_path) == ["dest"]


@pytest.mark.parametrize(
    "call",
    [
        lambda s, p: s.get_bytes(MISSING),
        lambda s, p: s.get_file(MISSING, p / "out"),
        lambda s, p: s.open(MISSING),
        lambda s, p: s.size(MISSING),
        lambda s, p: s.delete(MISSING),
        lambda s, p: s.verify(MISSING),
        lambda s, p: s.read_manifest(MISSING),
        lambda s, p: s.get_tree(MISSING, p / "tree"),
    ],
    ids=["get_bytes", "get_file", "open", "size", "delete", "verify", "read_manifest", "get_tree"],
)
def test_missing_digest_is_not_found(store: BlobStore, tmp_path: Path, call: object) -> None:
    """Reading a digest that is not stored raises NotFoundError naming it and the store."""
    assert callable(call)
    with pytest.raises(NotFoundError, match=MISSING) as info:
        call(store, tmp_path)
    assert store.url in str(info.value)
    assert not store.exists(MISSING)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "digest",
    ["", "abc", "A" * 64, "g" * 64, "0" * 63, "0" * 65, "../" + "0" * 61, 42, None],
)
@pytest.mark.parametrize("method", ["exists", "size", "delete", "get_bytes", "open", "verify"])
def test_invalid_digest_is_refused(store: BlobStore, method: str, digest: object) -> None:
    """A digest that is not 64 lowercase hex characters raises InvalidArgumentError."""
    with pytest.raises(InvalidArgumentError, match="64 lowercase hex"):
        getattr(store, method)(digest)


def test_put_bytes_refuses_text(store: BlobStore) -> None:
    """put_bytes takes bytes, not str."""
    with pytest.raises(InvalidArgumentError, match="expected bytes"):
        store.put_bytes("text")  # type: ignore[arg-type]


def test_put_file_of_a_missing_path_is_not_found(store: BlobStore, tmp_path: Path) -> None:
    """put_file of a path that does not exist raises NotFoundError naming it."""
    with pytest.raises(NotFoundError, match=r"nope\.bin"):
        store.put_file(tmp_path / "nope.bin")


def test_put_file_of_a_directory_is_refused(store: BlobStore, tmp_path: Path) -> None:
    """put_file of a directory raises InvalidArgumentError (use put_tree)."""
    with pytest.raises(InvalidArgumentError, match="regular file"):
        store.put_file(tmp_path)


# -- trees -------------------------------------------------------------------------


def _make_tree(root: Path) -> dict[str, tuple[bytes, bool]]:
    files = {
        "README.md": (b"# model\n", False),
        "bin/run.sh": (b"#!/bin/sh\necho hi\n", True),
        "weights/layer1.bin": (BIG, False),
        "weights/copy-of-layer1.bin": (BIG, False),
        "weights/nested/deep/empty.txt": (b"", False),
        "données/é.txt": (b"unicode names", False),
    }
    for rel, (data, exe) in files.items():
        _write(root / rel, data, 0o755 if exe else 0o644)
    (root / "empty-dir" / "inner").mkdir(parents=True)
    return files


def test_tree_round_trip(store: BlobStore, tmp_path: Path) -> None:
    """put_tree then get_tree recreates nested files, contents and executable bits."""
    files = _make_tree(tmp_path / "src")
    digest = store.put_tree(tmp_path / "src")
    manifest = store.get_tree(digest, tmp_path / "dst")
    assert [e.path for e in manifest.entries] == sorted(files)
    assert manifest.total_size == sum(len(d) for d, _ in files.values())
    for rel, (data, exe) in files.items():
        out = tmp_path / "dst" / rel
        assert out.read_bytes() == data
        assert bool(out.stat().st_mode & 0o100) == exe, rel
    assert not (tmp_path / "dst" / "empty-dir").exists()


def test_tree_files_are_deduplicated(store: BlobStore, tmp_path: Path) -> None:
    """Identical files in a tree share one blob; the manifest is one more."""
    files = _make_tree(tmp_path / "src")
    store.put_tree(tmp_path / "src")
    distinct = {d for d, _ in files.values()}
    assert len(list(store.iter_digests())) == len(distinct) + 1


def test_tree_symlink_inside_is_stored_as_its_target(store: BlobStore, tmp_path: Path) -> None:
    """A symbolic link to a file inside the tree is stored as that file's content."""
    _write(tmp_path / "src" / "real.txt", b"target")
    (tmp_path / "src" / "link.txt").symlink_to("real.txt")
    manifest = store.read_manifest(store.put_tree(tmp_path / "src"))
    assert {e.path: e.digest for e in manifest.entries} == {
        "link.txt": blake3.blake3(b"target").hexdigest(),
        "real.txt": blake3.blake3(b"target").hexdigest(),
    }


@pytest.mark.parametrize("kind", ["outside", "dangling", "directory"])
def test_tree_bad_symlink_is_refused(store: BlobStore, tmp_path: Path, kind: str) -> None:
    """Links that leave the tree, dangle or point at a folder raise InvalidArgumentError."""
    _write(tmp_path / "outside.txt", b"secret")
    (tmp_path / "src" / "sub").mkdir(parents=True)
    link = tmp_path / "src" / "bad-link"
    targets: dict[str, str | Path] = {
        "outside": tmp_path / "outside.txt",
        "dangling": "nope",
        "directory": "sub",
    }
    target = targets[kind]
    link.symlink_to(target)
    with pytest.raises(InvalidArgumentError, match="bad-link"):
        store.put_tree(tmp_path / "src")


def test_put_tree_of_a_missing_or_file_path(store: BlobStore, tmp_path: Path) -> None:
    """put_tree of a missing path is NotFoundError; of a file, InvalidArgumentError."""
    with pytest.raises(NotFoundError, match="nope"):
        store.put_tree(tmp_path / "nope")
    with pytest.raises(InvalidArgumentError, match="expected a directory"):
        store.put_tree(_write(tmp_path / "file", b"x"))


def test_empty_tree_round_trip(store: BlobStore, tmp_path: Path) -> None:
    """An empty folder is a manifest with no entries."""
    (tmp_path / "src" / "only-empty-dirs").mkdir(parents=True)
    digest = store.put_tree(tmp_path / "src")
    assert store.get_tree(digest, tmp_path / "dst").entries == ()
    assert (tmp_path / "dst").is_dir()


def test_tree_digest_ignores_creation_order_and_permissions(
    store: BlobStore, tmp_path: Path
) -> None:
    """Two trees with the same files get the same digest, whatever order they were made in."""
    names = [f"d{i % 3}/f{i}.txt" for i in range(30)]
    for rel in names:
        _write(tmp_path / "a" / rel, rel.encode(), 0o644)
    for rel in reversed(names):
        _write(tmp_path / "b" / rel, rel.encode(), 0o600)  # other read bits: same digest
    assert store.put_tree(tmp_path / "a") == store.put_tree(tmp_path / "b")


def test_read_manifest_of_a_file_blob_is_refused(store: BlobStore) -> None:
    """read_manifest of a blob that is not a manifest raises InvalidArgumentError."""
    digest = store.put_bytes(b"\x89PNG not json")
    with pytest.raises(InvalidArgumentError, match="file rather than a directory"):
        store.read_manifest(digest)


# -- opening stores ------------------------------------------------------------------


def test_open_blob_store_routes_urls(tmp_path: Path) -> None:
    """Paths and file:// give the local store; other fsspec URLs give FsspecBlobStore."""
    assert isinstance(open_blob_store(str(tmp_path)), LocalBlobStore)
    local = open_blob_store(f"file://{tmp_path}", fsync=False)
    assert isinstance(local, LocalBlobStore)
    assert local.root == tmp_path
    assert not local.fsync
    memory = open_blob_store("memory://shipyard-tests/routing")
    assert isinstance(memory, FsspecBlobStore)
    assert not memory.direct_put


@pytest.mark.parametrize("url", ["", "   ", "no-such-protocol-xyz://bucket"])
def test_open_blob_store_refuses_bad_urls(url: str) -> None:
    """An empty URL or an unknown protocol raises InvalidArgumentError."""
    with pytest.raises(InvalidArgumentError, match="blob store"):
        open_blob_store(url)


def test_local_objects_are_read_only_and_fanned_out(tmp_path: Path) -> None:
    """Local objects live at objects/ab/cdef... and are read-only."""
    store = LocalBlobStore(tmp_path)
    digest = store.put_bytes(b"layout")
    path = tmp_path / "objects" / digest[:2] / digest[2:]
    assert path.read_bytes() == b"layout"
    assert path.stat().st_mode & 0o777 == 0o444


def test_facade_all_is_sorted_and_complete() -> None:
    """shipyard.blobs.__all__ is sorted (constants, classes, functions) and complete."""
    names = shipyard.blobs.__all__
    assert names == sorted(names, key=lambda n: (not n.isupper(), not n[0].isupper(), n))
    public = {n for n in vars(shipyard.blobs) if not n.startswith("_")}
    assert set(names) == public


def test_open_after_a_seek_reads_without_false_alarms(store: BlobStore) -> None:
    """Reads after seeking are served as is; only an in-order read to the end is checked."""
    digest = store.put_bytes(BIG)
    with store.open(digest) as f:
        f.seek(100)
        assert f.read() == BIG[100:]
        f.seek(0)
        assert f.read(5) == BIG[:5]


def test_concurrent_reads_of_one_blob(store: BlobStore, tmp_path: Path) -> None:
    """Threads reading the same blob at once each get all of it."""
    digest = store.put_bytes(BIG)

    def read(i: int) -> bytes:
        if i % 3 == 0:
            with store.open(digest) as f:
                return f.read()
        if i % 3 == 1:
            return store.get_bytes(digest)
        store.get_file(digest, tmp_path / f"out{i}")
        return (tmp_path / f"out{i}").read_bytes()

    with ThreadPoolExecutor(8) as pool:
        assert all(data == BIG for data in pool.map(read, range(24)))


def test_get_tree_refuses_a_link_out_of_the_destination(store: BlobStore, tmp_path: Path) -> None:
    """get_tree does not write through a folder link that leads outside the destination."""
    _write(tmp_path / "src" / "sub" / "f.txt", b"x")
    digest = store.put_tree(tmp_path / "src")
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "dst").mkdir()
    (tmp_path / "dst" / "sub").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(InvalidArgumentError, match="outside"):
        store.get_tree(digest, tmp_path / "dst")
    assert os.listdir(tmp_path / "elsewhere") == []
