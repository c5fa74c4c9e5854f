"""Batch publishing: many puts, one durability cost; names appear only at the end.

The local store writes each object of a batch to a temporary file, flushes the
filesystem once, then renames them all into place (and flushes again). These
tests check what callers rely on: nothing is visible under its name before the
batch ends, a failed batch publishes nothing, nesting publishes once, a killed
process leaves no object, and every backend honours the same contract.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from shipyard.blobs import BlobStore, LocalBlobStore, hash_bytes


def test_objects_appear_when_the_batch_ends(tmp_path: Path) -> None:
    """Inside a batch a blob exists and reads back, but has no name yet; after, it does."""
    store = LocalBlobStore(tmp_path / "blobs")
    with store.batch():
        digest = store.put_bytes(b"alpha")
        assert store.exists(digest)
        assert store.get_bytes(digest) == b"alpha"
        assert not store._path(digest).exists()
        assert store.put_bytes(b"alpha") == digest  # the same content once
    assert store._path(digest).read_bytes() == b"alpha"
    assert list(store.iter_digests()) == [digest]
    assert os.listdir(tmp_path / "blobs" / "tmp") == []
    assert oct(store._path(digest).stat().st_mode & 0o777) == oct(0o444)


def test_a_failed_batch_publishes_nothing(tmp_path: Path) -> None:
    """An exception inside the block discards every blob written in it."""
    store = LocalBlobStore(tmp_path / "blobs")
    kept = store.put_bytes(b"before")
    lost = ""

    def fail() -> None:
        nonlocal lost
        with store.batch():
            lost = store.put_bytes(b"lost")
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        fail()
    assert store.exists(kept)
    assert not store.exists(lost)
    assert os.listdir(tmp_path / "blobs" / "tmp") == []


def test_nested_batches_publish_once_at_the_outermost(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path / "blobs")
    with store.batch():
        with store.batch():
            inner = store.put_bytes(b"inner")
        assert not store._path(inner).exists()
        outer = store.put_bytes(b"outer")
    assert store._path(inner).exists()
    assert store._path(outer).exists()


def test_threads_share_one_batch(tmp_path: Path) -> None:
    """Puts from a thread pool inside one batch are all published, each once."""
    store = LocalBlobStore(tmp_path / "blobs")
    payloads = [str(i % 50).encode() * 100 for i in range(400)]
    with store.batch():
        threads = [
            threading.Thread(
                target=lambda chunk=payloads[i::4]: [store.put_bytes(p) for p in chunk]
            )
            for i in range(4)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert sorted(store.iter_digests()) == sorted({hash_bytes(p) for p in payloads})
    assert os.listdir(tmp_path / "blobs" / "tmp") == []


def test_files_put_in_a_batch(tmp_path: Path) -> None:
    """put_file_as (what data add uses) publishes at the end, verified as usual."""
    store = LocalBlobStore(tmp_path / "blobs")
    paths = []
    for i in range(20):
        path = tmp_path / f"f{i}.bin"
        path.write_bytes(os.urandom(100))
        paths.append(path)
    with store.batch():
        digests = [store.put_file_as(p, hash_bytes(p.read_bytes())) for p in paths]
    for p, d in zip(paths, digests, strict=True):
        assert store.get_bytes(d) == p.read_bytes()


_KILLED = """
import sys, time
from shipyard.blobs import LocalBlobStore
store = LocalBlobStore(sys.argv[1])
with store.batch():
    for i in range(200):
        store.put_bytes(b"blob %d" % i)
    print("written", flush=True)
    time.sleep(60)
"""


@pytest.mark.slow
def test_a_killed_batch_leaves_no_object(tmp_path: Path) -> None:
    """SIGKILL before the batch ends: no blob has a name (only temporary files remain,
    which the next writer ignores), and putting the same content again works."""
    root = tmp_path / "blobs"
    with subprocess.Popen(
        [sys.executable, "-c", _KILLED, str(root)], stdout=subprocess.PIPE, text=True
    ) as proc:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "written"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    store = LocalBlobStore(root)
    assert list(store.iter_digests()) == []
    assert len(os.listdir(root / "tmp")) == 200
    digest = store.put_bytes(b"blob 7")
    assert store.get_bytes(digest) == b"blob 7"


def test_every_backend_accepts_a_batch(store: BlobStore) -> None:
    """Stores without a bulk path publish at once; the contract is the same."""
    with store.batch():
        digest = store.put_bytes(b"in a batch %f" % time.time())
        assert store.exists(digest)
    assert store.get_bytes(digest).startswith(b"in a batch")
