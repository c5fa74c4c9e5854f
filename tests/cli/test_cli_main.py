"""The ``shipyard`` group: lazy loading, global options, error reporting."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import click
import pytest
from cli_support import Home

from shipyard.cli import LazyGroup, cli

HEAVY = ("sqlalchemy", "numpy", "rich", "psutil", "alembic", "fsspec", "blake3")


def _imported_modules(*args: str) -> set[str]:
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "shipyard.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    names = set()
    for line in proc.stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            names.add(line.rsplit("|", 1)[1].strip())
    assert "Usage:" in proc.stdout
    return names


@pytest.mark.parametrize("args", [["--help"], ["runs", "--help"], ["experiments", "--help"]])
def test_help_imports_no_heavy_module(args: list[str]) -> None:
    """Help for the command and its groups loads neither rich, SQLAlchemy nor NumPy."""
    modules = _imported_modules(*args)
    assert "click" in modules
    loaded = {m for m in modules if m.split(".")[0] in HEAVY}
    assert not loaded


def test_help_lists_groups_and_commands(empty_home: Home) -> None:
    """The listings show every group and command with its one-line help."""
    top = empty_home("--help")
    assert top.code == 0
    for name in ("experiments", "runs", "artifacts", "--tracking-uri", "--version"):
        assert name in top.out
    runs = empty_home("runs", "--help")
    for line in ("compare", "history", "list", "show", "Show everything recorded about a run."):
        assert line in runs.out


def test_static_help_matches_each_command() -> None:
    """The help a lazy group shows without importing equals the command's own."""
    for group in cli.commands.values():
        assert isinstance(group, LazyGroup)
        for name, (_, text) in group.lazy.items():
            command = group.load(name)
            assert command.get_short_help_str(200) == text, f"{group.name} {name}"


def test_a_lazy_target_that_is_not_a_command_is_refused() -> None:
    """A mapping that names something other than a click command fails loudly."""
    group = LazyGroup(lazy={"bad": ("shipyard.cli._render:fmt_float", "Nothing.")})
    with pytest.raises(TypeError, match="not a click command"):
        group.get_command(click.Context(group), "bad")


def test_version(empty_home: Home) -> None:
    """--version prints the package version."""
    import shipyard

    result = empty_home("--version")
    assert result.code == 0
    assert result.out.strip() == f"shipyard, version {shipyard.__version__}"


def test_python_dash_m_runs_the_same_command() -> None:
    """``python -m shipyard.cli`` is the shipyard command."""
    proc = subprocess.run(
        [sys.executable, "-m", "shipyard.cli", "runs", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0
    assert "compare" in proc.stdout


def test_unknown_command_is_a_usage_error(empty_home: Home) -> None:
    """A misspelt command exits 2 with click's usage message."""
    result = empty_home("runs", "lst")
    assert result.code == 2
    assert "No such command 'lst'" in result.err


def test_bad_tracking_uri_is_one_line_error(empty_home: Home) -> None:
    """An unsupported store URI is reported as 'error: ...' with exit 1, no traceback."""
    result = empty_home("--tracking-uri", "ftp://nowhere", "runs", "list")
    assert result.code == 1
    assert result.err.startswith("error: unsupported store URI 'ftp://nowhere'")
    assert "Traceback" not in result.err


def test_bad_environment_is_one_line_error(empty_home: Home) -> None:
    """A malformed SHIPYARD_* variable is reported without a traceback."""
    result = empty_home("runs", "list", SHIPYARD_BUFFER_POLICY="sometimes")
    assert result.code == 1
    assert result.err.startswith("error: environment variable SHIPYARD_BUFFER_POLICY")
    assert "Traceback" not in result.err


def test_tracking_uri_option_picks_the_store(home: Home, empty_home: Home) -> None:
    """--tracking-uri reads another store than SHIPYARD_HOME's."""
    uri = f"sqlite:///{home.path / 'shipyard.db'}"
    result = empty_home("--tracking-uri", uri, "runs", "list", "--json")
    assert result.code == 0
    assert {r["name"] for r in result.json()} >= {"baseline", "wide", "lonely"}


def test_blob_uri_option_picks_the_blob_store(home: Home, empty_home: Home, tmp_path: Path) -> None:
    """--blob-uri goes with --tracking-uri so artifacts of another home download."""
    uri = f"sqlite:///{home.path / 'shipyard.db'}"
    args = ["--tracking-uri", uri, "artifacts", "download", "baseline", "model.txt"]
    missing = empty_home(*args, "--dest", str(tmp_path / "a"))
    assert missing.code == 1
    assert missing.err.startswith("error: ")
    found = empty_home("--blob-uri", str(home.path / "blobs"), *args, "--dest", str(tmp_path))
    assert found.code == 0
    assert (tmp_path / "model.txt").read_text() == "weights"


def test_tracking_uri_environment_variable(home: Home, empty_home: Home) -> None:
    """SHIPYARD_TRACKING_URI is used when --tracking-uri is not given."""
    uri = f"sqlite:///{home.path / 'shipyard.db'}"
    result = empty_home("experiments", "list", "--json", SHIPYARD_TRACKING_URI=uri)
    assert "rides-pricing" in {e["name"] for e in result.json()}
