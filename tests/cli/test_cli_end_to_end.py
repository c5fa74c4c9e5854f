"""The CLI on runs recorded by the fluent API in another process, in a git repository."""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from cli_support import Home
from git_support import git

SCRIPT = textwrap.dedent(
    """
    import shipyard

    with shipyard.start_run(experiment="e2e", run_name="first") as run:
        shipyard.log_params({"lr": 0.01, "model": "mlp"})
        for step in range(5):
            shipyard.log_metric("loss", 1.0 / (step + 1), step=step)
    print(run.id)
    """
)


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_fluent_run_in_a_dirty_git_tree(tmp_path: Path) -> None:
    """list, show and show --diff report what start_run recorded: params, metrics, code."""
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "train.py").write_text(SCRIPT)
    (repo / "config.txt").write_text("lr = 1\n")
    git(repo, "init", "-q")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "start")
    (repo / "config.txt").write_text("lr = 2\n")
    (repo / "notes.txt").write_text("untracked\n")
    home = Home(tmp_path / "home")
    proc = subprocess.run(
        [sys.executable, "train.py"], cwd=repo, env=home.env(), capture_output=True,
        text=True, check=True, timeout=120,
    )  # fmt: skip
    run_id = proc.stdout.strip().splitlines()[-1]

    listed = home("runs", "list", "--json").json()
    assert [(r["id"], r["name"], r["status"]) for r in listed] == [(run_id, "first", "FINISHED")]
    assert listed[0]["metrics"]["loss"]["count"] == 5

    shown = home("runs", "show", run_id[-6:])
    assert shown.code == 0
    commit = git(repo, "rev-parse", "HEAD").strip()
    for text in (commit, "dirty            yes", "untracked files  1", "loss", "mlp", "python"):
        assert text in shown.out, text

    diff = home("runs", "show", "first", "--diff")
    assert diff.out == git(repo, "diff", "HEAD", "--no-color", "--no-ext-diff")
    assert "+lr = 2" in diff.out
