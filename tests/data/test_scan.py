"""Scanning trees for data versioning: digests, the stat cache, and the walk's rules."""

from __future__ import annotations

import os
import re
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest

from shipyard.blobs import LocalBlobStore, hash_file
from shipyard.data._scan import LARGE_FILE, POOLED_FILE, FileEntry, scan
from shipyard.data._statcache import StatCache, stat_key
from shipyard.errors import InvalidArgumentError, NotFoundError

HOUR_NS = 3600 * 10**9


def _write(path: Path, data: bytes, *, age_ns: int = HOUR_NS) -> Path:
    """Write ``data`` with an mtime ``age_ns`` in the past, so cache entries are not racy."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    then = time.time_ns() - age_ns
    os.utime(path, ns=(then, then))
    return path


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "tree"
    _write(root / "a.txt", b"alpha")
    _write(root / "sub" / "b.bin", b"\x00" * 1000)
    _write(root / "sub" / "deeper" / "c.csv", b"x,y\n1,2\n")
    _write(root / "empty.txt", b"")
    return root


@pytest.fixture
def cache(tmp_path: Path) -> Iterator[StatCache]:
    with StatCache(tmp_path / "cache" / "stat.db") as cache:
        yield cache


def _changed(st: os.stat_result, **fields: int) -> os.stat_result:
    """``st`` with some fields replaced (``st_*_ns`` fields are not in the tuple part)."""
    values = {name: fields.get(name, getattr(st, name)) for name in _STAT_FIELDS}
    return os.stat_result(
        [values[name] for name in _STAT_FIELDS[:10]],
        {name: values[name] for name in _STAT_FIELDS[10:]},
    )


_STAT_FIELDS = (
    *("st_mode", "st_ino", "st_dev", "st_nlink", "st_uid", "st_gid", "st_size"),
    *("st_atime", "st_mtime", "st_ctime", "st_atime_ns", "st_mtime_ns", "st_ctime_ns"),
)


def test_digests_equal_blob_store_hashing(tree: Path, tmp_path: Path) -> None:
    """Every digest is the blob digest, and the manifest is the one put_tree writes."""
    _write(tree / "mid.bin", os.urandom(POOLED_FILE + 1))
    _write(tree / "big.bin", os.urandom(LARGE_FILE + 12345))
    result = scan(tree, cache=None)
    assert [e.path for e in result.entries] == [
        "a.txt",
        "big.bin",
        "empty.txt",
        "mid.bin",
        "sub/b.bin",
        "sub/deeper/c.csv",
    ]
    for entry in result.entries:
        assert entry.digest == hash_file(tree / entry.path)
        assert entry.size == (tree / entry.path).stat().st_size
    store = LocalBlobStore(tmp_path / "blobs", fsync=False)
    assert result.manifest().digest() == store.put_tree(tree)
    assert result.files_total == result.files_hashed == 6
    assert result.bytes_hashed == result.bytes_total


def test_cache_hit_avoids_rehashing(tree: Path, cache: StatCache) -> None:
    """A second scan of an unchanged tree hashes nothing and returns the same entries."""
    first = scan(tree, cache=cache)
    second = scan(tree, cache=cache)
    assert first.files_hashed == 4
    assert second.files_hashed == 0
    assert second.bytes_hashed == 0
    assert second.entries == first.entries


def test_modified_file_is_rehashed(tree: Path, cache: StatCache) -> None:
    """Rewriting a file with the same size and a new mtime re-hashes that file only."""
    before = scan(tree, cache=cache)
    _write(tree / "a.txt", b"ALPHA", age_ns=HOUR_NS // 2)
    after = scan(tree, cache=cache)
    assert after.files_hashed == 1
    assert [e.path for e in after.entries if e not in before.entries] == ["a.txt"]
    assert after.entries[0].digest == hash_file(tree / "a.txt") != before.entries[0].digest


def test_racy_entry_is_rehashed(tmp_path: Path, cache: StatCache) -> None:
    """An entry recorded within the granularity of the file's mtime is not trusted."""
    path = _write(tmp_path / "t" / "f.txt", b"new content", age_ns=0)
    stale = "0" * 64  # as if hashed just before a same-size write within the same tick
    cache.store_many([(path, os.stat(path), stale)])
    assert cache.lookup(path, os.stat(path)) is None
    result = scan(path.parent, cache=cache)
    assert result.files_hashed == 1
    assert result.entries[0].digest == hash_file(path)
    # The same stale entry for a file whose mtime is well before the recording is trusted:
    # that is exactly what makes the racy rule necessary.
    then = time.time_ns() - HOUR_NS
    os.utime(path, ns=(then, then))
    cache.store_many([(path, os.stat(path), stale)])
    assert cache.lookup(path, os.stat(path)) == stale
    assert scan(path.parent, cache=cache).files_hashed == 0


def test_granularity_is_configurable(tmp_path: Path) -> None:
    """A file older than the granularity is trusted; one inside it is hashed every time."""
    path = _write(tmp_path / "t" / "f.txt", b"data", age_ns=10 * 10**9)
    for granularity_s, hashed in ((60, 1), (1, 0)):
        with StatCache(tmp_path / f"{granularity_s}.db", granularity_s=granularity_s) as cache:
            scan(path.parent, cache=cache)
            assert scan(path.parent, cache=cache).files_hashed == hashed
    with pytest.raises(InvalidArgumentError, match="granularity_s"):
        StatCache(tmp_path / "x.db", granularity_s=-1)


def test_inode_change_is_rehashed(tree: Path, cache: StatCache) -> None:
    """A file replaced by rename, with the same size and mtime, is hashed again."""
    scan(tree, cache=cache)
    old = os.stat(tree / "a.txt")
    _write(tree / "replacement", b"ALPHA")
    os.utime(tree / "replacement", ns=(old.st_atime_ns, old.st_mtime_ns))
    os.replace(tree / "replacement", tree / "a.txt")
    assert os.stat(tree / "a.txt").st_ino != old.st_ino
    result = scan(tree, cache=cache)
    assert result.files_hashed == 1
    assert result.entries[0] == FileEntry("a.txt", 5, hash_file(tree / "a.txt"), 0o644)


def test_lookup_checks_every_stat_field(tmp_path: Path, cache: StatCache) -> None:
    """lookup returns the digest only when size, mtime, inode and ctime all match."""
    path = _write(tmp_path / "f", b"abc")
    st = os.stat(path)
    cache.store_many([(path, st, "1" * 64)])
    assert cache.lookup(path, st) == "1" * 64
    assert cache.lookup(tmp_path / "other", st) is None
    assert cache.lookup(path, _changed(st, st_atime_ns=1)) == "1" * 64  # atime is ignored
    huge = _changed(st, st_ino=2**64 - 5)  # inodes are unsigned 64-bit; SQLite's are signed
    cache.store_many([(path, huge, "2" * 64)])
    assert cache.lookup(path, huge) == "2" * 64
    assert cache.lookup(path, st) is None
    cache.store_many([(path, st, "1" * 64)])
    for name in ("st_size", "st_mtime_ns", "st_ino", "st_ctime_ns"):
        changed = _changed(st, **{name: getattr(st, name) + 1})
        assert stat_key(changed) != stat_key(st)
        assert cache.lookup(path, changed) is None, name


def test_deleted_files_are_forgotten(tree: Path, cache: StatCache) -> None:
    """Entries of files that disappeared are dropped from the cache."""
    scan(tree, cache=cache)
    (tree / "a.txt").unlink()
    result = scan(tree, cache=cache)
    assert "a.txt" not in {e.path for e in result.entries}
    assert str(tree / "a.txt") not in cache.load_tree(tree)
    assert len(cache.load_tree(tree)) == 3


def test_symlink_leaving_the_tree_is_refused(tree: Path, tmp_path: Path) -> None:
    """A link to a file outside the root is refused with a message naming the link."""
    outside = _write(tmp_path / "secret.txt", b"secret")
    (tree / "sub" / "leak").symlink_to(outside)
    with pytest.raises(InvalidArgumentError, match=r"sub/leak is a symbolic link leaving the tree"):
        scan(tree, cache=None)
    (tree / "sub" / "leak").unlink()
    (tree / "up").symlink_to("../secret.txt")
    with pytest.raises(InvalidArgumentError, match=r"tree/up is a symbolic link leaving"):
        scan(tree, cache=None)


@pytest.mark.parametrize(
    ("target", "why"),
    [("nowhere", "dangling"), ("sub", "to a folder"), ("loop", "dangling or looping")],
)
def test_bad_symlinks_are_refused(tree: Path, target: str, why: str) -> None:
    """Dangling, looping and folder links are refused, naming the link."""
    (tree / "link").symlink_to(target)
    if target == "loop":
        (tree / "loop").symlink_to("link")
    with pytest.raises(InvalidArgumentError, match=rf"{re.escape(str(tree))}/l\w+ is a .*{why}"):
        scan(tree, cache=None)


def test_symlink_inside_the_tree_is_followed(tree: Path, cache: StatCache) -> None:
    """A link to a file inside the tree is listed with that file's content and size."""
    (tree / "alias.txt").symlink_to("sub/deeper/c.csv")
    entries = {e.path: e for e in scan(tree, cache=cache).entries}
    assert entries["alias.txt"][1:] == entries["sub/deeper/c.csv"][1:]
    assert scan(tree, cache=cache).files_hashed == 0
    (tree / "alias.txt").unlink()
    (tree / "alias.txt").symlink_to("a.txt")
    again = scan(tree, cache=cache)
    assert again.files_hashed == 1
    assert {e.path: e for e in again.entries}["alias.txt"].digest == hash_file(tree / "a.txt")


def test_root_may_be_a_symlink(tree: Path, tmp_path: Path) -> None:
    """A root given as a link to a folder is scanned like the folder itself."""
    (tmp_path / "via").symlink_to(tree)
    assert scan(tmp_path / "via", cache=None).entries == scan(tree, cache=None).entries


def test_executable_bit_is_captured(tree: Path) -> None:
    """Files with any execute bit get mode 0o755, others 0o644."""
    os.chmod(tree / "a.txt", 0o700)
    os.chmod(tree / "sub" / "b.bin", 0o600)
    modes = {e.path: e.mode for e in scan(tree, cache=None).entries}
    assert modes["a.txt"] == 0o755
    assert modes["sub/b.bin"] == 0o644


def test_exclude_patterns(tree: Path, cache: StatCache, tmp_path: Path) -> None:
    """Name patterns match at any depth, path patterns from the root, 'x/' folders only."""

    def paths(*exclude: str) -> list[str]:
        return [e.path for e in scan(tree, cache=cache, exclude=exclude).entries]

    assert paths("*.txt") == ["sub/b.bin", "sub/deeper/c.csv"]
    assert paths("deeper") == ["a.txt", "empty.txt", "sub/b.bin"]
    assert paths("sub/*.bin") == ["a.txt", "empty.txt", "sub/deeper/c.csv"]
    assert paths("/a.txt", "c.csv") == ["empty.txt", "sub/b.bin"]
    assert paths("a.txt/", "sub/deeper/") == ["a.txt", "empty.txt", "sub/b.bin"]
    (tree / "leak").symlink_to(_write(tmp_path / "outside", b""))
    assert "leak" not in paths("leak")
    with pytest.raises(InvalidArgumentError, match="invalid exclude"):
        scan(tree, cache=None, exclude="*.txt")
    with pytest.raises(InvalidArgumentError, match="invalid exclude"):
        scan(tree, cache=None, exclude=["/"])


def test_scanning_a_single_file(tree: Path, cache: StatCache) -> None:
    """A file root gives one entry named after the file, cached like any other."""
    first = scan(tree / "sub" / "b.bin", cache=cache)
    assert first.entries == (FileEntry("b.bin", 1000, hash_file(tree / "sub" / "b.bin")),)
    assert first.files_hashed == 1
    assert scan(tree / "sub" / "b.bin", cache=cache).files_hashed == 0
    assert scan(tree, cache=cache).files_hashed == 3


def test_missing_root_and_special_files(tmp_path: Path) -> None:
    """A missing root raises NotFoundError; a pipe in the tree is refused by name."""
    with pytest.raises(NotFoundError, match="no such file or directory"):
        scan(tmp_path / "nope", cache=None)
    os.mkfifo(tmp_path / "pipe")
    with pytest.raises(InvalidArgumentError, match=r"pipe is a special file"):
        scan(tmp_path, cache=None)


def test_non_utf8_names_are_refused(tmp_path: Path) -> None:
    """A file name that is not valid UTF-8 is refused before anything is recorded."""
    root = tmp_path / "t"
    root.mkdir()
    (root / os.fsdecode(b"bad\xff")).write_bytes(b"x")
    with StatCache(tmp_path / "c.db") as cache, pytest.raises(InvalidArgumentError, match="UTF-8"):
        scan(root, cache=cache)


def test_progress_reports_bytes(tree: Path) -> None:
    """progress(done, total) ends with done == total == the bytes hashed."""
    _write(tree / "big.bin", b"\x01" * (LARGE_FILE + 1))
    calls: list[tuple[int, int]] = []
    result = scan(tree, cache=None, progress=lambda done, total: calls.append((done, total)))
    assert calls[0] == (0, result.bytes_hashed)
    assert calls[-1] == (result.bytes_hashed, result.bytes_hashed)
    assert [done for done, _ in calls] == sorted(done for done, _ in calls)


@pytest.mark.parametrize("size", [10, POOLED_FILE, LARGE_FILE])
def test_file_changed_after_the_walk_is_hashed_as_it_is_now(tmp_path: Path, size: int) -> None:
    """A file rewritten between the walk and its hashing gets the digest of its new content."""
    path = _write(tmp_path / "t" / "f.bin", b"a" * size)

    def grow(done: int, total: int) -> None:
        if path.stat().st_size == size:  # progress(0, total) comes before any read
            with open(path, "ab") as f:
                f.write(b"more")

    result = scan(path.parent, cache=None, progress=grow)
    assert result.entries == (FileEntry("f.bin", size + 4, hash_file(path)),)


def test_concurrent_scans_share_a_cache(tmp_path: Path, cache: StatCache) -> None:
    """Two threads scanning with one cache (and a second process's connection) agree."""
    for t in range(2):
        for i in range(200):
            _write(tmp_path / f"t{t}" / f"d{i % 7}" / f"f{i}", f"{t}-{i}".encode())
    expected = {t: scan(tmp_path / f"t{t}", cache=None).entries for t in range(2)}
    other = StatCache(cache.path)  # its own connection, like another process
    errors: list[BaseException] = []

    def work(t: int) -> None:
        try:
            for n in range(5):
                use = cache if n % 2 else other
                assert scan(tmp_path / f"t{t % 2}", cache=use, workers=2).entries == expected[t % 2]
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert scan(tmp_path / "t0", cache=cache).files_hashed == 0
    other.close()
    with closing(sqlite3.connect(cache.path)) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_processes_share_a_cache(tmp_path: Path, cache: StatCache) -> None:
    """Scans in other processes and this one write one cache file at once without errors."""
    for i in range(300):
        _write(tmp_path / "t" / f"d{i % 5}" / f"f{i}", str(i).encode())
    child = (
        "import sys; from shipyard.data._scan import scan; "
        "from shipyard.data._statcache import StatCache\n"
        "with StatCache(sys.argv[1]) as c:\n"
        "    for _ in range(5): scan(sys.argv[2], cache=c); c.forget_many(c.load_tree(sys.argv[2]))"
    )
    args = [sys.executable, "-c", child, str(cache.path), str(tmp_path / "t")]
    children = [subprocess.Popen(args) for _ in range(2)]
    for _ in range(5):
        scan(tmp_path / "t", cache=cache)
        cache.forget_many(cache.load_tree(tmp_path / "t"))
    assert [p.wait(timeout=60) for p in children] == [0, 0]
    scan(tmp_path / "t", cache=cache)
    assert scan(tmp_path / "t", cache=cache).files_hashed == 0


def test_an_unchanged_walk_is_served_by_the_snapshot(
    tree: Path, cache: StatCache, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A walk equal to the saved one takes its entries without loading the cache rows;
    any difference (here a same-size rewrite with the old mtime put back) falls back."""
    first = scan(tree, cache=cache)
    assert cache.load_snapshot(tree) is not None

    def refuse(root: object) -> None:
        raise AssertionError("the rows were loaded although the snapshot matched")

    with monkeypatch.context() as m:
        m.setattr(cache, "load_tree", refuse)
        second = scan(tree, cache=cache)
    assert second.entries == first.entries
    assert second.files_hashed == 0
    st = os.stat(tree / "a.txt")
    (tree / "a.txt").write_bytes(b"ALPHA")
    os.utime(tree / "a.txt", ns=(st.st_atime_ns, st.st_mtime_ns))  # only ctime tells
    third = scan(tree, cache=cache)
    assert third.files_hashed == 1
    assert dict((e.path, e.digest) for e in third.entries)["a.txt"] == hash_file(tree / "a.txt")


def test_a_racy_walk_saves_no_snapshot(tmp_path: Path, cache: StatCache) -> None:
    """Stat data of a file written within the granularity cannot vouch for it yet."""
    path = _write(tmp_path / "t" / "f.txt", b"fresh", age_ns=0)
    scan(path.parent, cache=cache)
    assert cache.load_snapshot(path.parent) is None
    then = time.time_ns() - HOUR_NS
    os.utime(path, ns=(then, then))
    scan(path.parent, cache=cache)
    snapshot = cache.load_snapshot(path.parent)
    assert snapshot is not None
    assert snapshot.rels == ["f.txt"]


def test_a_file_changed_while_hashed_saves_no_snapshot(tmp_path: Path, cache: StatCache) -> None:
    """The walk's stat data would not match the digest recorded: no snapshot from it."""
    path = _write(tmp_path / "t" / "f.bin", b"a" * 10)

    def grow(done: int, total: int) -> None:
        if path.stat().st_size == 10:
            with open(path, "ab") as f:
                f.write(b"more")
            os.utime(path, ns=(time.time_ns() - HOUR_NS,) * 2)

    scan(path.parent, cache=cache, progress=grow)
    assert cache.load_snapshot(path.parent) is None
    assert scan(path.parent, cache=cache).entries == (FileEntry("f.bin", 14, hash_file(path)),)


def test_snapshots_follow_the_exclude_patterns(tree: Path, cache: StatCache) -> None:
    """A snapshot made with exclusions does not hide files from a walk without them."""
    partial = scan(tree, cache=cache, exclude=["sub/"])
    assert [e.path for e in partial.entries] == ["a.txt", "empty.txt"]
    full = scan(tree, cache=cache)
    assert [e.path for e in full.entries] == [
        "a.txt",
        "empty.txt",
        "sub/b.bin",
        "sub/deeper/c.csv",
    ]
    assert scan(tree, cache=cache, exclude=["sub/"]).entries == partial.entries


def test_an_unreadable_snapshot_is_ignored(tree: Path, cache: StatCache) -> None:
    """A snapshot that does not unmarshal (another Python wrote it) is treated as absent."""
    first = scan(tree, cache=cache)
    with closing(sqlite3.connect(cache.path)) as db, db:
        db.execute("UPDATE tree_snapshot SET data = x'00ff'")
    assert cache.load_snapshot(tree) is None
    assert scan(tree, cache=cache).entries == first.entries
