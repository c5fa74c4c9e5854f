"""The parts of ``shipyard reproduce`` that need no re-run: comparing metrics, naming
environment differences, restoring code from what ``capture_code`` records, and the
command line that re-runs an entry point."""

from __future__ import annotations

import math
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest
from git_support import git

from shipyard.errors import InvalidArgumentError, NotFoundError, StateError
from shipyard.tracking._context import capture_code
from shipyard.train._reproduce import compare_metrics
from shipyard.train._restore import Notes, command_for, environment_notes, restore_code
from shipyard.types import MetricSummary

needs_git = pytest.mark.skipif(shutil.which("git") is None, reason="needs git")


def _s(key: str, last: float, step: int = 9) -> MetricSummary:
    return MetricSummary(key, last, step, 0.0, last, last, step + 1)


def _text(notes: Notes) -> tuple[str, str]:
    return (
        "\n".join(f"{n.what}: {n.detail}" for n in notes.restored),
        "\n".join(f"{n.what}: {n.detail}" for n in notes.missing),
    )


def test_metrics_agree_within_an_absolute_then_relative_tolerance() -> None:
    """|b - a| <= tol * max(1, |a|): absolute for small values, relative for large ones."""
    rec = {"big": _s("big", 1000.0), "small": _s("small", 0.001), "nan": _s("nan", math.nan)}
    new = {"big": _s("big", 1000.5), "small": _s("small", 0.0015), "nan": _s("nan", math.nan)}
    loose = {m.key: m.agrees for m in compare_metrics(rec, new, 1e-3)}
    assert loose == {"big": True, "nan": True, "small": True}
    exact = {m.key: m.agrees for m in compare_metrics(rec, new)}
    assert exact == {"big": False, "nan": True, "small": False}
    (row,) = compare_metrics({"x": _s("x", 1.0)}, {"x": _s("x", math.inf)}, 10.0)
    assert not row.agrees


def test_missing_keys_and_other_last_steps_disagree_by_name() -> None:
    """A key on one side only, or a last value from another step, disagrees; system/* is
    not compared."""
    rec = {"a": _s("a", 1.0), "b": _s("b", 2.0, step=9), "system/cpu": _s("system/cpu", 5.0)}
    new = {"b": _s("b", 2.0, step=4), "c": _s("c", 3.0), "system/cpu": _s("system/cpu", 7.0)}
    rows = compare_metrics(rec, new)
    assert [(m.key, m.agrees, m.note) for m in rows] == [
        ("a", False, "missing in the re-run"),
        ("b", False, "last step 9 recorded, 4 reproduced"),
        ("c", False, "missing in the original run"),
    ]
    assert (rows[0].recorded, rows[0].reproduced, rows[0].abs_diff) == (1.0, None, None)


@pytest.mark.parametrize("tolerance", [-0.1, math.nan, math.inf])
def test_a_tolerance_must_be_finite_and_not_negative(tolerance: float) -> None:
    """Negative, NaN and infinite tolerances are refused."""
    with pytest.raises(InvalidArgumentError, match="expected a finite number >= 0"):
        compare_metrics({}, {}, tolerance)


def test_environment_differences_are_named() -> None:
    """Python, and packages changed, gone or new since the run, are named (names compared
    as PEP 503 does)."""
    notes = Notes()
    environment_notes(
        {"python": "3.11.7", "packages": {"NumPy": "2.0", "torch": "2.4", "gone_pkg": "1"}},
        {"python": "3.12.1", "packages": {"numpy": "2.1", "torch": "2.4", "new.pkg": "3"}},
        notes,
    )
    _, missing = _text(notes)
    assert missing.splitlines() == [
        "Python: recorded 3.11.7, now 3.12.1",
        "package versions: recorded -> now: numpy 2.0 -> 2.1",
        "packages: installed then, missing now: gone-pkg 1",
        "packages: installed now, not then: new-pkg 3",
    ]
    same = Notes()
    environment_notes({"python": "3.11.7", "packages": {"a": "1"}}, {"python": "3.11.7",
                      "packages": {"a": "1"}}, same)  # fmt: skip
    assert not same.missing
    assert "packages: the 1 recorded packages" in _text(same)[0]
    none = Notes()
    environment_notes({}, {"python": "3.11.7"}, none)
    assert "the run recorded none" in _text(none)[1]


@pytest.fixture
def dirty_repo(tmp_path: Path) -> Path:
    """A repository whose tree changes a text file and a binary file after its commit."""
    repo = tmp_path / "repo"
    (repo / "src").mkdir(parents=True)
    (repo / "src" / "train.py").write_text("X = 1\n")
    (repo / "w.bin").write_bytes(b"\0\1")
    git(repo, "init", "-q")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "one")
    (repo / "src" / "train.py").write_text("X = 2\n")
    (repo / "w.bin").write_bytes(b"\0\2")
    return repo


def _capture(repo: Path) -> tuple[dict[str, Any], dict[str, bytes]]:
    blobs: dict[str, bytes] = {}

    def put(data: bytes) -> str:
        blobs[f"d{len(blobs)}"] = data
        return f"d{len(blobs) - 1}"

    return capture_code(cwd=repo, put_blob=put), blobs


def _get(blobs: dict[str, bytes]) -> Any:
    def get(digest: str) -> bytes:
        if digest not in blobs:
            raise NotFoundError(f"blob {digest} not found")
        return blobs[digest]

    return get


@needs_git
def test_the_commit_and_text_diff_are_restored_and_binary_changes_named(
    dirty_repo: Path, tmp_path: Path
) -> None:
    """The recorded commit plus the full diff (from its blob) is checked out; a binary
    change, which the diff cannot carry, keeps its committed content and is named."""
    code, blobs = _capture(dirty_repo)
    notes = Notes()
    dest = restore_code("r1", code, tmp_path / "work", _get(blobs), notes, lambda _: None)
    assert dest == tmp_path / "work" / "repo"
    assert (dest / "src" / "train.py").read_text() == "X = 2\n"
    assert (dest / "w.bin").read_bytes() == b"\0\1"
    restored, missing = _text(notes)
    assert "uncommitted diff: applied" in restored
    assert missing == "binary changes: the diff says only that these files changed, not how; " \
        "their committed content was used: w.bin"  # fmt: skip


@needs_git
def test_a_truncated_diff_without_its_blob_is_named(dirty_repo: Path, tmp_path: Path) -> None:
    """Without the full diff's blob, a truncated diff is not applied, and the report says so."""
    code, _ = _capture(dirty_repo)
    code["git_diff_truncated"] = True
    notes = Notes()
    dest = restore_code("r1", code, tmp_path / "w", _get({}), notes, lambda _: None)
    assert dest is not None
    assert (dest / "src" / "train.py").read_text() == "X = 1\n"
    assert "only its first" in _text(notes)[1]
    assert "blob d0 not found" in _text(notes)[1]


@needs_git
def test_a_commit_that_is_gone_or_a_diff_that_does_not_apply_is_an_error(
    dirty_repo: Path, tmp_path: Path
) -> None:
    """A commit no source holds, or a diff git cannot apply, stops with what went wrong."""
    code, _ = _capture(dirty_repo)
    gone = {**code, "git_commit": "0" * 40, "git_diff_digest": None}
    with pytest.raises(NotFoundError, match=r"commit 000000000000 is not in .*repo"):
        restore_code("r1", gone, tmp_path / "a", _get({}), Notes(), lambda _: None)
    bad = {**code, "git_diff_digest": None, "git_diff": "diff --git a/x b/x\nnonsense\n"}
    with pytest.raises(StateError, match="cannot apply the uncommitted diff of run r1"):
        restore_code("r1", bad, tmp_path / "b", _get({}), Notes(), lambda _: None)


def test_command_lines_for_scripts_and_the_shipyard_command(tmp_path: Path) -> None:
    """A script runs from the folder its relative argv[0] implies, with repository paths in
    argv moved to the fresh folder; the shipyard command runs as python -m shipyard.cli."""
    root, dest = tmp_path / "orig", tmp_path / "new"
    (dest / "src").mkdir(parents=True)
    (dest / "src" / "train.py").write_text("")
    code = {
        "git_root": str(root),
        "git_commit": "a" * 40,
        "entry_point": str(root / "src" / "train.py"),
        "argv": ["src/train.py", "--config", str(root / "conf.yaml"), "-v"],
    }
    cmd, cwd = command_for("r1", code, dest, Notes())
    assert cmd == [sys.executable, str(dest / "src" / "train.py"), "--config",
                   str(dest / "conf.yaml"), "-v"]  # fmt: skip
    assert cwd == dest
    cmd, cwd = command_for("r1", {**code, "argv": [code["entry_point"]]}, dest, Notes())
    assert cwd == dest / "src"
    cli = {**code, "entry_point": "/venv/bin/shipyard", "argv": ["/venv/bin/shipyard", "train"]}
    assert command_for("r1", cli, dest, Notes()) == (
        [sys.executable, "-m", "shipyard.cli", "train"],
        dest,
    )
    with pytest.raises(StateError, match="is outside its repository"):
        command_for("r1", {**code, "entry_point": "/elsewhere/t.py"}, dest, Notes())
    kernel = "/venv/lib/python3.11/site-packages/ipykernel_launcher.py"
    with pytest.raises(StateError, match="an installed program"):
        command_for("r1", {**code, "entry_point": kernel}, dest, Notes())
