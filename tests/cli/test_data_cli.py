"""``shipyard data ...``: the real console script on a temporary SHIPYARD_HOME."""

from __future__ import annotations

import io
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from cli_support import Home
from rich.console import Console

from shipyard.cli._data_render import ByteProgress

HEAVY = ("sqlalchemy", "numpy", "rich", "psutil", "alembic", "fsspec", "blake3")

USE_SCRIPT = textwrap.dedent(
    """
    import shipyard, shipyard.data

    with shipyard.start_run(experiment="pricing", run_name="trainer") as run:
        path = shipyard.data.use("rides@1", role="train")
        shipyard.data.use("rides@1", role="validation")
        assert (path / "a.csv").read_text() == "a,b\\n1,2\\n", path
        out = path.parent.parent.parent / "features.txt"
        out.write_text("derived")
        shipyard.data.add(out, name="features", run_id=run.id)
    print(run.id)
    """
)


@pytest.fixture
def src(tmp_path: Path) -> Path:
    """A small folder: a.csv, sub/b.bin and an executable run.sh."""
    root = tmp_path / "rides"
    (root / "sub").mkdir(parents=True)
    (root / "a.csv").write_text("a,b\n1,2\n")
    (root / "sub" / "b.bin").write_bytes(bytes(range(256)) * 4)
    (root / "run.sh").write_text("#!/bin/sh\necho hi\n")
    (root / "run.sh").chmod(0o755)
    return root


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def _added(home: Home, src: Path) -> Home:
    result = home("data", "add", str(src), "-m", "first")
    assert result.code == 0, result.err
    return home


# -- help ------------------------------------------------------------------------------


def test_data_help_imports_no_heavy_module() -> None:
    """``shipyard data --help`` lists the commands without loading rich, SQLAlchemy or blake3."""
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "shipyard.cli", "data", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    modules = {
        line.rsplit("|", 1)[1].strip()
        for line in proc.stderr.splitlines()
        if line.startswith("import time:") and "|" in line
    }
    assert not {m for m in modules if m.split(".")[0] in HEAVY}
    for name in ("add", "status", "ls", "log", "diff", "checkout", "lineage", "push", "pull"):
        assert f"  {name} " in proc.stdout


# -- add / status / diff -----------------------------------------------------------------


def test_add_then_re_add_unchanged(empty_home: Home, src: Path) -> None:
    """The first add makes rides@1; adding the same content again reports it unchanged."""
    first = empty_home("data", "add", str(src), "-m", "first")
    assert first.code == 0, first.err
    assert first.out.startswith("added rides@1 (3 files")
    assert "3 added, 0 modified, 0 deleted" in first.out
    again = empty_home("data", "add", str(src))
    assert again.code == 0
    assert again.out.startswith("unchanged: rides@1")
    assert again.err == ""


def test_modified_folder_shows_in_status_new_version_and_diff(empty_home: Home, src: Path) -> None:
    """After edits, status lists them, add -v makes rides@2 naming them, diff agrees."""
    home = _added(empty_home, src)
    clean = home("data", "status")
    assert clean.code == 0
    assert clean.out.splitlines() == [f"rides@1  {src}", "  clean"]
    (src / "a.csv").write_text("a,b\n1,3\n")
    (src / "new.txt").write_text("new")
    (src / "run.sh").unlink()
    status = home("data", "status", "rides").out.splitlines()
    assert status[1] == "  1 added, 1 modified, 1 deleted, 1 unchanged"
    assert status[2:] == ["  A new.txt", "  M a.csv", "  D run.sh"]
    added = home("data", "add", str(src), "-v", "-m", "second")
    assert added.out.splitlines() == [
        "added rides@2 (3 files, 1.0 KiB): 1 added, 1 modified, 1 deleted, 1 unchanged",
        "  A new.txt",
        "  M a.csv",
        "  D run.sh",
    ]
    for args in (["rides@2"], ["rides@1", "rides@latest"]):
        diff = home("data", "diff", *args)
        assert diff.code == 0
        assert diff.out.splitlines() == [
            "rides@1 -> rides@2: 1 added, 1 modified, 1 deleted, 1 unchanged",
            "A new.txt",
            "M a.csv",
            "D run.sh",
        ]
    assert home("data", "diff", "rides@1").out.startswith("(nothing) -> rides@1: 3 added")
    assert home("data", "status").out.splitlines()[1] == "  clean"


def test_status_json_and_truncation(empty_home: Home, src: Path) -> None:
    """Status lists 20 paths of a kind then '... and N more'; --json lists them all."""
    home = _added(empty_home, src)
    for i in range(25):
        (src / f"extra{i:02d}.txt").write_text(str(i))
    lines = home("data", "status").out.splitlines()
    assert sum(line.startswith("  A ") for line in lines) == 20
    assert lines[-1] == "    ... and 5 more added"
    (data,) = home("data", "status", "--json").json()
    assert data["ref"] == "rides@1"
    assert data["source"] == str(src)
    assert data["clean"] is False
    assert len(data["changes"]["added"]) == 25
    assert data["changes"]["modified"] == data["changes"]["deleted"] == []


def test_status_reports_a_missing_source(empty_home: Home, src: Path) -> None:
    """A source folder that was removed is reported, not an error."""
    home = _added(empty_home, src)
    shutil.rmtree(src)
    result = home("data", "status")
    assert result.code == 0
    assert "source missing" in result.out


def test_add_json_and_exclude(empty_home: Home, src: Path) -> None:
    """--exclude leaves paths out; --json reports the version, creation and changes."""
    data = empty_home(
        "data", "add", str(src), "--name", "trips", "-x", "*.sh", "-x", "sub/*", "--json"
    ).json()
    assert data["ref"] == "trips@1"
    assert data["created"] is True
    assert data["num_files"] == 1
    assert data["changes"]["added"] == ["a.csv"]
    assert len(data["digest"]) == 64


def test_add_of_a_missing_path_is_a_usage_error(empty_home: Home, tmp_path: Path) -> None:
    """A PATH that does not exist is refused before anything is created."""
    result = empty_home("data", "add", str(tmp_path / "nowhere"))
    assert result.code == 2
    assert "does not exist" in result.err
    assert not (empty_home.path / "shipyard.db").exists()


# -- inspect -----------------------------------------------------------------------------


def test_ls_log_and_list(empty_home: Home, src: Path) -> None:
    """ls lists paths, sizes and short digests; log and list show the versions."""
    home = _added(empty_home, src)
    (src / "a.csv").write_text("changed")
    assert home("data", "add", str(src), "-m", "second").code == 0
    ls = home("data", "ls", "rides@1")
    rows = {line.split()[0]: line.split()[1:] for line in ls.out.splitlines()[2:]}
    assert set(rows) == {"a.csv", "run.sh", "sub/b.bin"}
    assert rows["sub/b.bin"][:2] == ["1.0", "KiB"]
    assert len(rows["a.csv"][-1]) == 12
    assert ls.err.strip() == "rides@1: 3 files, 1.0 KiB"
    entries = home("data", "ls", "rides", "--json").json()
    assert [(e["path"], e["size"], e["mode"]) for e in entries] == [
        ("a.csv", 7, "644"),
        ("run.sh", 18, "755"),
        ("sub/b.bin", 1024, "644"),
    ]
    log = home("data", "log", "rides", "--json").json()
    assert [(v["version"], v["message"], v["num_files"]) for v in log] == [
        (2, "second", 3),
        (1, "first", 3),
    ]
    table = home("data", "log", "rides").out.splitlines()
    assert table[2].split()[:2] == ["2", log[0]["digest"][:12]]
    assert "second" in table[2]
    listed = home("data", "list").out.splitlines()
    assert listed[2].split()[:3] == ["rides", "2", log[0]["digest"][:12]]
    assert home("data", "list", "--json").json()[0]["latest"]["version"] == 2


def test_read_commands_do_not_create_a_store(empty_home: Home) -> None:
    """Where nothing was tracked, list and status hint; the others fail; no db appears."""
    for args in (["list"], ["status"], ["list", "--json"]):
        result = empty_home("data", *args)
        assert result.code == 0
        assert "shipyard data add PATH" in result.err or result.out.strip() == "[]"
    result = empty_home("data", "ls", "rides")
    assert result.code == 1
    assert result.err.startswith("error: no store at ")
    assert not (empty_home.path / "shipyard.db").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["ls", "rides@0"], "invalid dataset reference 'rides@0'"),
        (["ls", "nope@1"], "dataset 'nope' not found"),
        (["ls", "rides@x"], "invalid dataset reference 'rides@x'"),
        (["diff", "rides@9"], "has no version 9"),
        (["checkout", "nope@1", "out"], "dataset 'nope' not found"),
        (["lineage", "rides@2"], "has no version 2"),
        (["log", "rides@1"], "expected NAME without a version"),
        (["push", "--remote", "REMOTE", "nope"], "dataset 'nope' not found"),
    ],
)
def test_bad_refs_are_clear_errors(
    empty_home: Home, src: Path, args: list[str], message: str
) -> None:
    """Malformed references and unknown datasets or versions print one error line, exit 1."""
    home = _added(empty_home, src)
    args = [a.replace("REMOTE", str(src.parent / "remote")) for a in args]
    result = home("data", *args)
    assert result.code == 1
    assert result.err.startswith("error: ")
    assert message in result.err
    assert "Traceback" not in result.err


# -- checkout / push / pull --------------------------------------------------------------


def test_checkout_restores_exact_bytes(empty_home: Home, src: Path, tmp_path: Path) -> None:
    """A checkout into a missing or empty folder holds the version's bytes and modes."""
    home = _added(empty_home, src)
    original = _files(src)
    (src / "a.csv").write_text("later")
    assert home("data", "add", str(src)).code == 0
    dest = tmp_path / "empty"
    dest.mkdir()
    result = home("data", "checkout", "rides@1", str(dest))
    assert result.code == 0, result.err
    assert result.out.strip() == f"checked out rides@1 (3 files, 1.0 KiB) into {dest}"
    assert _files(dest) == original
    assert (dest / "run.sh").stat().st_mode & 0o111
    assert home("data", "checkout", "rides", str(tmp_path / "new" / "dir")).code == 0
    assert (tmp_path / "new" / "dir" / "a.csv").read_text() == "later"


def test_checkout_into_a_non_empty_folder_needs_force(
    empty_home: Home, src: Path, tmp_path: Path
) -> None:
    """A non-empty DEST is refused with a clear error; --force makes it match exactly."""
    home = _added(empty_home, src)
    dest = tmp_path / "busy"
    dest.mkdir()
    (dest / "keep.txt").write_text("mine")
    result = home("data", "checkout", "rides@1", str(dest))
    assert result.code == 1
    assert result.err.startswith("error: cannot check out into")
    assert "not empty" in result.err
    assert "--force" in result.err
    assert (dest / "keep.txt").read_text() == "mine"
    assert home("data", "checkout", "rides@1", str(dest), "--force").code == 0
    assert _files(dest) == _files(src)


def test_push_then_pull_restores_deleted_blobs(empty_home: Home, src: Path, tmp_path: Path) -> None:
    """Blobs pushed to a folder remote come back by pull after the local copies are lost."""
    home = _added(empty_home, src)
    remote = tmp_path / "remote"
    pushed = home("data", "push", "--remote", str(remote), "--json")
    assert pushed.code == 0, pushed.err
    report = pushed.json()
    assert report["objects_moved"] == 4  # three files and the manifest
    assert report["objects_skipped"] == 0
    again = home("data", "push", "--remote", str(remote), "rides")
    assert again.out.startswith(f"pushed 0 objects (0 B) to {remote}")
    assert "4 already there" in again.out
    shutil.rmtree(home.path / "blobs" / "objects")
    shutil.rmtree(home.path / "datasets", ignore_errors=True)
    lost = home("data", "checkout", "rides@1", str(tmp_path / "lost"))
    assert lost.code == 1
    pulled = home("data", "pull", "--remote", str(remote), "rides@1")
    assert pulled.code == 0, pulled.err
    assert pulled.out.startswith("pulled 4 objects (")
    dest = tmp_path / "back"
    assert home("data", "checkout", "rides@1", str(dest)).code == 0
    assert _files(dest) == _files(src)


# -- lineage -----------------------------------------------------------------------------


@pytest.mark.slow
def test_lineage_and_runs_show_name_the_runs_that_used_a_version(
    empty_home: Home, src: Path, tmp_path: Path
) -> None:
    """A run that called shipyard.data.use appears in lineage and its inputs in runs show."""
    home = _added(empty_home, src)
    script = tmp_path / "train.py"
    script.write_text(USE_SCRIPT)
    proc = subprocess.run(
        [sys.executable, str(script)],
        env=home.env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    run_id = proc.stdout.strip()
    lineage = home("data", "lineage", "rides")
    assert lineage.code == 0, lineage.err
    assert lineage.out.startswith("rides@1  ")
    assert "produced by: no run" in lineage.out
    rows = [line.split() for line in lineage.out.splitlines() if line.startswith(run_id)]
    assert sorted(r[4] for r in rows) == ["train", "validation"]
    assert rows[0][1:4] == ["trainer", "FINISHED", "pricing"]
    data = home("data", "lineage", "rides@1", "--json").json()
    assert data["produced_by"] is None
    assert {(u["id"], u["name"], u["experiment"], u["role"]) for u in data["used_by"]} == {
        (run_id, "trainer", "pricing", "train"),
        (run_id, "trainer", "pricing", "validation"),
    }
    made = home("data", "lineage", "features").out
    assert f"produced by: {run_id} trainer FINISHED (pricing)" in made
    assert "Used by: no runs yet" in made
    show = home("runs", "show", run_id)
    assert "Data inputs" in show.out
    assert any(line.split()[:2] == ["rides@1", "train"] for line in show.out.splitlines())
    inputs = home("runs", "show", run_id, "--json").json()["inputs"]
    assert {(i["dataset"], i["version"], i["role"]) for i in inputs} == {
        ("rides", 1, "train"),
        ("rides", 1, "validation"),
    }


# -- progress ----------------------------------------------------------------------------


def test_progress_bar_draws_only_on_a_terminal_for_large_work() -> None:
    """The bar is drawn on a terminal once the work is large; pipes and small work see nothing."""
    piped = io.StringIO()
    with ByteProgress("adding", console=Console(file=piped), min_bytes=10) as bar:
        bar(50, 100)
    assert piped.getvalue() == ""
    tty = io.StringIO()
    with ByteProgress(
        "adding", console=Console(file=tty, force_terminal=True), min_bytes=10
    ) as bar:
        bar(5, 5)
        assert bar._progress is None
        bar(0, 100)
        bar(50, 100)
        bar(10, 200)  # a new phase with its own total
        assert bar._progress is not None
        assert bar._progress.tasks[0].total == 200
        assert bar._progress.tasks[0].completed == 10
    assert "adding" in tty.getvalue()
    assert bar._progress is None
