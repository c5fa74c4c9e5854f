"""Dataset versions end to end: add, status, diff, checkout, use and lineage."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import shipyard
from shipyard.data import DataClient
from shipyard.errors import (
    CorruptBlobError,
    InvalidArgumentError,
    NotFoundError,
    StateError,
)


@pytest.fixture
def client(home: Path) -> DataClient:
    """The module-level data client on the fresh home."""
    return shipyard.data.client()


def make_tree(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def test_add_creates_versions_only_when_content_changes(client: DataClient, tmp_path: Path) -> None:
    """Adding a folder makes v1; re-adding unchanged returns v1; a change makes v2."""
    data = make_tree(tmp_path / "rides", {"a.csv": "1,2\n", "sub/b.csv": "3,4\n"})
    first = client.add(data, "rides", "initial")
    assert first.created
    assert first.version.version == 1
    assert (first.version.num_files, first.version.size) == (2, 8)
    assert first.changes.added == ("a.csv", "sub/b.csv")
    again = client.add(data, "rides")
    assert not again.created
    assert again.version == first.version
    (data / "a.csv").write_text("1,2\n5,6\n")
    (data / "new.csv").write_text("7\n")
    second = client.add(data, "rides", "more rows")
    assert second.created
    assert second.version.version == 2
    assert second.changes.modified == ("a.csv",)
    assert second.changes.added == ("new.csv",)
    assert [v.message for v in client.log("rides")] == ["initial", "more rows"]


def test_identical_files_are_stored_once(client: DataClient, tmp_path: Path) -> None:
    """Two files with the same bytes share one blob."""
    data = make_tree(tmp_path / "d", {"x.txt": "same", "y.txt": "same"})
    client.add(data, "dup")
    digests = {e.digest for e in client.ls("dup")}
    assert len(digests) == 1


def test_status_reports_added_modified_deleted(client: DataClient, tmp_path: Path) -> None:
    """status compares the source folder with the latest version."""
    data = make_tree(tmp_path / "d", {"keep": "k", "edit": "e", "drop": "d"})
    client.add(data, "ws")
    (report,) = client.status("ws")
    assert report.changes.empty
    (data / "edit").write_text("edited")
    (data / "drop").unlink()
    (data / "fresh").write_text("f")
    (report,) = client.status("ws")
    assert report.changes.modified == ("edit",)
    assert report.changes.deleted == ("drop",)
    assert report.changes.added == ("fresh",)


def test_diff_between_versions(client: DataClient, tmp_path: Path) -> None:
    """diff NAME@N shows what changed from N-1; diff A B compares two versions."""
    data = make_tree(tmp_path / "d", {"a": "1"})
    client.add(data, "ds")
    (data / "b").write_text("2")
    client.add(data, "ds")
    assert client.diff("ds@2").added == ("b",)
    assert client.diff("ds@1").added == ("a",)
    assert client.diff("ds@2", "ds@1").deleted == ("b",)


def test_checkout_restores_exactly(client: DataClient, tmp_path: Path) -> None:
    """checkout writes every file of a version, executable bits included, and verifies it."""
    data = make_tree(tmp_path / "d", {"run.sh": "#!/bin/sh\n", "x/y.txt": "hello"})
    os.chmod(data / "run.sh", 0o755)
    client.add(data, "ds")
    (data / "x" / "y.txt").write_text("changed later")
    client.add(data, "ds")
    dest = tmp_path / "restore"
    client.checkout("ds@1", dest)
    assert (dest / "x" / "y.txt").read_text() == "hello"
    assert os.access(dest / "run.sh", os.X_OK)
    assert sorted(p.name for p in dest.rglob("*") if p.is_file()) == ["run.sh", "y.txt"]


def test_checkout_refuses_a_non_empty_folder(client: DataClient, tmp_path: Path) -> None:
    """A non-empty destination is refused unless force, which makes it match exactly."""
    data = make_tree(tmp_path / "d", {"a": "1"})
    client.add(data, "ds")
    dest = make_tree(tmp_path / "busy", {"other": "x"})
    with pytest.raises(StateError, match="not empty"):
        client.checkout("ds@1", dest)
    assert (dest / "other").exists()
    client.checkout("ds@1", dest, force=True)
    assert sorted(p.name for p in dest.iterdir()) == ["a"]


def test_corrupted_object_is_named_at_checkout(client: DataClient, tmp_path: Path) -> None:
    """A blob whose bytes changed in the cache is detected and named; dest stays absent."""
    data = make_tree(tmp_path / "d", {"a": "precious"})
    client.add(data, "ds")
    (entry,) = client.ls("ds")
    blob = next(p for p in (client.home / "blobs").rglob("*") if p.name == entry.digest[2:])
    os.chmod(blob, 0o644)
    blob.write_text("tampered")
    with pytest.raises(CorruptBlobError, match=entry.digest):
        client.checkout("ds@1", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_paths_escaping_the_root_are_refused(client: DataClient, tmp_path: Path) -> None:
    """A symlink pointing outside the dataset folder is refused with its name."""
    outside = tmp_path / "secret.txt"
    outside.write_text("no")
    data = make_tree(tmp_path / "d", {"a": "1"})
    (data / "link").symlink_to(outside)
    with pytest.raises(InvalidArgumentError, match="link"):
        client.add(data, "ds")
    with pytest.raises(NotFoundError):
        client.resolve("ds")


def test_use_records_input_and_lineage(client: DataClient, tmp_path: Path) -> None:
    """data.use inside a run returns a local copy and records the run in the lineage."""
    data = make_tree(tmp_path / "d", {"train.csv": "x,y\n1,2\n"})
    shipyard.data.add(data, "rides")
    with shipyard.start_run(experiment="e") as run:
        path = shipyard.data.use("rides@latest", role="train")
        assert (path / "train.csv").read_text() == "x,y\n1,2\n"
    lineage = shipyard.data.lineage("rides@1")
    assert [(r.id, role) for r, role in lineage.runs] == [(run.id, "train")]
    inputs = client.store.list_run_inputs(run.id)
    assert [(i.dataset_version_id, i.role) for i in inputs] == [(lineage.version.id, "train")]


def test_single_file_dataset_use_returns_the_file(client: DataClient, tmp_path: Path) -> None:
    """A dataset made from one file is used as that file's path."""
    f = tmp_path / "rides.parquet"
    f.write_bytes(b"PAR1...")
    client.add(f, "rides")
    path = client.use("rides")
    assert path.name == "rides.parquet"
    assert path.read_bytes() == b"PAR1..."


@pytest.mark.parametrize("ref", ["rides@0", "rides@x", "@1", ""])
def test_bad_references_are_clear(client: DataClient, ref: str) -> None:
    """Malformed dataset references raise InvalidArgumentError."""
    with pytest.raises(InvalidArgumentError):
        client.resolve(ref)


def test_unknown_dataset_and_version(client: DataClient, tmp_path: Path) -> None:
    """Unknown datasets and versions raise NotFoundError naming them."""
    with pytest.raises(NotFoundError, match="nope"):
        client.resolve("nope@1")
    client.add(make_tree(tmp_path / "d", {"a": "1"}), "ds")
    with pytest.raises(NotFoundError, match="no version 7"):
        client.resolve("ds@7")


def test_clean_status_does_not_read_the_manifest(
    client: DataClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An unchanged folder is reported clean from the tree signature alone."""
    data = make_tree(tmp_path / "d", {"a": "1", "b/c": "2"})
    client.add(data, "ds")

    def no_manifest(*args: object) -> None:
        raise AssertionError("the manifest was read")

    monkeypatch.setattr(DataClient, "entries", no_manifest)
    (report,) = client.status("ds")
    assert report.changes.empty
    assert report.changes.unchanged == 2
    monkeypatch.undo()
    (data / "a").write_text("changed")
    (report,) = client.status("ds")
    assert report.changes.modified == ("a",)


def test_data_pins_fix_references_without_a_version(
    client: DataClient,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Under SHIPYARD_DATA_PINS, NAME and NAME@latest mean the pinned version; an explicit
    other version is used as asked, with a warning; unpinned datasets are untouched."""
    for text in ("1\n", "2\n", "3\n"):
        client.add(make_tree(tmp_path / "d", {"a.csv": text}), "rides")
    client.add(make_tree(tmp_path / "o", {"b.csv": "x\n"}), "other")
    monkeypatch.setenv("SHIPYARD_DATA_PINS", '{"rides": 2}')
    assert client.resolve("rides").version == 2
    assert client.resolve("rides@latest").version == 2
    assert client.resolve("other").version == 1
    assert not caplog.records
    with caplog.at_level("WARNING", logger="shipyard.data"):
        assert client.resolve("rides@3").version == 3
        assert client.resolve("rides@v2").version == 2
    assert [r.getMessage() for r in caplog.records] == [
        "dataset rides: using version 3 as asked, though SHIPYARD_DATA_PINS pins version 2 "
        "(the version the reproduced run read)"
    ]
    with shipyard.start_run(experiment="e") as run:
        assert (shipyard.data.use("rides") / "a.csv").read_text() == "2\n"
    (used,) = client.store.list_run_inputs(run.id)
    assert client.store.get_dataset_version_by_id(used.dataset_version_id).version == 2


@pytest.mark.parametrize(
    "raw", ["[1]", '{"rides": "2"}', '{"rides": 0}', "{bad", '{"rides": true}']
)
def test_malformed_data_pins_are_refused(
    client: DataClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, raw: str
) -> None:
    """SHIPYARD_DATA_PINS must be a JSON object of dataset name to version number."""
    client.add(make_tree(tmp_path / "d", {"a.csv": "1\n"}), "rides")
    monkeypatch.setenv("SHIPYARD_DATA_PINS", raw)
    with pytest.raises(InvalidArgumentError, match="SHIPYARD_DATA_PINS must hold a JSON object"):
        client.resolve("rides")
