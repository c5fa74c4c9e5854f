"""Importing DVC-tracked data from DVC's cache, in DVC 2 and DVC 3 layouts."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from shipyard.blobs import LocalBlobStore, open_blob_store
from shipyard.data import DataClient
from shipyard.data._dvc import CorruptDvcObjectError, find_dvc_cache, import_dvc
from shipyard.errors import CorruptBlobError, InvalidArgumentError, NotFoundError

LAYOUTS = ["dvc3", "dvc2"]
FILES = {"a.csv": b"1,2\n3,4\n", "sub/b.bin": bytes(range(256)) * 5000, "empty": b""}


class FakeDvcRepo:
    """A DVC repository laid out by hand the way DVC writes it (no DVC needed)."""

    def __init__(self, root: Path, layout: str, cache: Path | None = None) -> None:
        self.root, self.layout = root, layout
        (root / ".dvc").mkdir(parents=True)
        self.cache = cache or root / ".dvc" / "cache"
        if cache is not None:
            rel = os.path.relpath(cache, root / ".dvc")
            (root / ".dvc" / "config").write_text(
                f"[core]\n    autostage = true\n[cache]\n    dir = {rel}\n"
            )

    def object_path(self, md5: str) -> Path:
        base = self.cache / "files" / "md5" if self.layout == "dvc3" else self.cache
        return base / md5[:2] / md5[2:]

    def _write_object(self, md5: str, data: bytes) -> None:
        path = self.object_path(md5)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        os.chmod(path, 0o444)  # DVC keeps its cache read-only

    def _out(self, name: str, md5: str, extra: str) -> Path:
        hash_line = "  hash: md5\n" if self.layout == "dvc3" else ""
        dvc_file = self.root / f"{name}.dvc"
        dvc_file.write_text(f"outs:\n- md5: {md5}\n{extra}{hash_line}  path: {name}\n")
        return dvc_file

    def track_file(self, name: str, data: bytes, *, md5: str | None = None) -> Path:
        """`dvc add NAME` for one file; ``md5`` overrides what DVC recorded."""
        (self.root / name).write_bytes(data)
        recorded = md5 or hashlib.md5(data).hexdigest()
        self._write_object(recorded, data)
        return self._out(name, recorded, f"  size: {len(data)}\n")

    def track_dir(self, name: str, files: dict[str, bytes]) -> Path:
        """`dvc add NAME` for a folder: objects, the .dir listing, the .dvc file."""
        listing = []
        for rel, data in files.items():
            path = self.root / name / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            md5 = hashlib.md5(data).hexdigest()
            self._write_object(md5, data)
            listing.append({"md5": md5, "relpath": rel})
        listing.sort(key=lambda e: e["relpath"])
        body = json.dumps(listing, sort_keys=True).encode()
        dir_md5 = hashlib.md5(body).hexdigest() + ".dir"
        self._write_object(dir_md5, body)
        size = sum(len(d) for d in files.values())
        return self._out(name, dir_md5, f"  size: {size}\n  nfiles: {len(files)}\n")


@pytest.fixture
def client(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> DataClient:
    """A data client on a temporary SHIPYARD_HOME with a local blob store."""
    home = tmp_path / "home"
    monkeypatch.setenv("SHIPYARD_HOME", str(home))
    uri = f"sqlite:///{home}/s.db"
    return DataClient(tracking_uri=uri, blob_uri=str(home / "blobs"), home=home)


@pytest.fixture(params=LAYOUTS)
def repo(request: pytest.FixtureRequest, tmp_path: Path) -> FakeDvcRepo:
    """An empty fake DVC repository in each cache layout."""
    return FakeDvcRepo(tmp_path / "repo", request.param)


def blob_path(client: DataClient, digest: str) -> Path:
    store = client.blobs
    assert isinstance(store, LocalBlobStore)
    return store.root / "objects" / digest[:2] / digest[2:]


def tree_bytes(root: Path) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and not p.name.startswith(".shipyard")
    }


def test_import_file_checks_out_identical_bytes(
    client: DataClient, repo: FakeDvcRepo, tmp_path: Path
) -> None:
    """A tracked file imports as a one-file version whose checkout equals the original."""
    data = b"x,y\n" * 100_000
    dvc_file = repo.track_file("rides.csv", data)
    result = import_dvc(client, dvc_file, message="from dvc")
    assert result.created
    assert result.dataset.name == "rides.csv"
    version = result.version
    assert (version.num_files, version.size, version.message) == (1, len(data), "from dvc")
    assert version.source == str((repo.root / "rides.csv").resolve())
    assert version.metadata["imported_from"] == "dvc"
    assert version.metadata["md5"] == hashlib.md5(data).hexdigest()
    assert version.metadata["dvc_file"] == str(dvc_file.resolve())
    client.checkout("rides.csv@1", tmp_path / "out")
    assert (tmp_path / "out" / "rides.csv").read_bytes() == data
    assert client.use("rides.csv@1").read_bytes() == data


def test_import_dir_checks_out_identical_tree(
    client: DataClient, repo: FakeDvcRepo, tmp_path: Path
) -> None:
    """A tracked folder imports with every file, mode 0o644, and checks out identically."""
    dvc_file = repo.track_dir("data", FILES)
    result = import_dvc(client, dvc_file, name="rides")
    assert result.version.num_files == 3
    assert result.changes.added == ("a.csv", "empty", "sub/b.bin")
    assert {e.mode for e in client.ls("rides@1")} == {0o644}
    client.checkout("rides@1", tmp_path / "out")
    assert tree_bytes(tmp_path / "out") == dict(sorted(FILES.items()))


def test_import_hard_links_instead_of_copying(client: DataClient, repo: FakeDvcRepo) -> None:
    """Each blob of a local store on the same filesystem is the DVC cache file's inode."""
    import_dvc(client, repo.track_dir("data", FILES), name="rides")
    for entry in client.ls("rides@1"):
        md5 = hashlib.md5(FILES[entry.path]).hexdigest()
        ours = blob_path(client, entry.digest)
        assert ours.stat().st_ino == repo.object_path(md5).stat().st_ino
        assert ours.stat().st_mode & 0o777 == 0o444
    assert not list((blob_path(client, "0" * 64).parents[2] / "tmp").iterdir())


def test_import_copies_into_other_stores(
    repo: FakeDvcRepo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A blob store that is not a local folder receives verified copies."""
    home = tmp_path / "home"
    monkeypatch.setenv("SHIPYARD_HOME", str(home))
    blobs = open_blob_store(f"memory://dvc-{os.getpid()}-{repo.layout}")
    client = DataClient(tracking_uri=f"sqlite:///{tmp_path}/s.db", blobs=blobs, home=home)
    import_dvc(client, repo.track_dir("data", FILES), name="rides")
    client.checkout("rides@1", tmp_path / "out")
    assert tree_bytes(tmp_path / "out") == dict(sorted(FILES.items()))


def test_import_again_makes_no_new_version(client: DataClient, repo: FakeDvcRepo) -> None:
    """Importing the same .dvc file twice returns the first version."""
    dvc_file = repo.track_dir("data", FILES)
    first = import_dvc(client, dvc_file)
    again = import_dvc(client, dvc_file)
    assert not again.created
    assert again.version == first.version


def test_import_matches_add_of_the_workspace(client: DataClient, repo: FakeDvcRepo) -> None:
    """The imported version has the digest `add` gives the workspace, so status is clean."""
    dvc_file = repo.track_dir("data", FILES)
    imported = import_dvc(client, dvc_file, name="rides")
    (report,) = client.status("rides")
    assert report.changes.empty
    assert not report.missing
    added = client.add(repo.root / "data", name="rides")
    assert not added.created
    assert added.version == imported.version


def test_corrupt_object_names_the_file(client: DataClient, repo: FakeDvcRepo) -> None:
    """A cache object whose bytes do not match its md5 fails with the file's name."""
    dvc_file = repo.track_dir("data", FILES)
    bad = repo.object_path(hashlib.md5(FILES["a.csv"]).hexdigest())
    os.chmod(bad, 0o644)
    bad.write_bytes(b"tampered")
    with pytest.raises(CorruptDvcObjectError, match=r"'a\.csv'.*dvc pull") as info:
        import_dvc(client, dvc_file)
    assert isinstance(info.value, CorruptBlobError)
    assert info.value.location == str(bad)
    assert client.store.list_datasets(client.store.get_or_create_project("default").id) == []


def test_missing_object_suggests_dvc_pull(client: DataClient, repo: FakeDvcRepo) -> None:
    """A cache object that is not there is a NotFoundError naming its md5 and `dvc pull`."""
    dvc_file = repo.track_dir("data", FILES)
    md5 = hashlib.md5(FILES["sub/b.bin"]).hexdigest()
    os.unlink(repo.object_path(md5))
    with pytest.raises(NotFoundError, match=rf"{md5}.*dvc pull"):
        import_dvc(client, dvc_file)


def test_missing_dir_listing_suggests_dvc_pull(client: DataClient, repo: FakeDvcRepo) -> None:
    """A .dir listing absent from the cache is a NotFoundError suggesting `dvc pull`."""
    dvc_file = repo.track_dir("data", FILES)
    dir_md5 = dvc_file.read_text().split("md5: ")[1].split()[0]
    os.unlink(repo.object_path(dir_md5))
    with pytest.raises(NotFoundError, match=r"\.dir.*dvc pull"):
        import_dvc(client, dvc_file)


def test_cache_dir_from_config(client: DataClient, tmp_path: Path) -> None:
    """`cache.dir` in .dvc/config (relative to .dvc/) moves the cache."""
    repo = FakeDvcRepo(tmp_path / "repo", "dvc3", cache=tmp_path / "shared-cache")
    assert find_dvc_cache(repo.root / "sub" / "x.dvc") == (tmp_path / "shared-cache").resolve()
    result = import_dvc(client, repo.track_file("model.bin", b"\x00\x01" * 10))
    assert result.version.num_files == 1


def test_legacy_md5_of_crlf_text(client: DataClient, tmp_path: Path) -> None:
    """DVC 2 hashed text with CRLF turned into LF; such objects still verify."""
    repo = FakeDvcRepo(tmp_path / "repo", "dvc2")
    data = b"a,b\r\n1,2\r\n"
    dvc_file = repo.track_file(
        "t.csv", data, md5=hashlib.md5(data.replace(b"\r\n", b"\n")).hexdigest()
    )
    import_dvc(client, dvc_file)
    client.checkout("t.csv@1", tmp_path / "out")
    assert (tmp_path / "out" / "t.csv").read_bytes() == data


def test_not_a_dvc_file_is_invalid(client: DataClient, tmp_path: Path) -> None:
    """A YAML file without exactly one committed output is refused with a clear message."""
    (tmp_path / ".dvc").mkdir()
    bad = tmp_path / "x.dvc"
    bad.write_text("outs: []\n")
    with pytest.raises(InvalidArgumentError, match="exactly one entry under 'outs'"):
        import_dvc(client, bad)
    bad.write_text("outs:\n- path: x\n")
    with pytest.raises(InvalidArgumentError, match="dvc commit"):
        import_dvc(client, bad)


def test_outside_a_dvc_repo_is_not_found(client: DataClient, tmp_path: Path) -> None:
    """A .dvc file with no .dvc folder above it says so."""
    lone = tmp_path / "lone"
    lone.mkdir()
    (lone / "x.dvc").write_text(f"outs:\n- md5: {'0' * 32}\n  path: x\n")
    with pytest.raises(NotFoundError, match="no DVC repository"):
        find_dvc_cache(lone / "x.dvc")
