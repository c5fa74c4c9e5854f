"""``shipyard reproduce`` of a Trial trained by ``shipyard train``: the Trial alone is
re-run from the recorded commit and diff with the recorded hparams and loop options."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from git_support import git

import shipyard

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("git") is None, reason="needs git"),
]

TRIAL = textwrap.dedent(
    """
    import torch
    from torch.utils.data import TensorDataset

    import shipyard

    SCALE = 1.0


    class Line(shipyard.Trial):
        default_hparams = {"lr": 0.1, "batch_size": 8, "epochs": 2, "layers": [4, 1]}

        def build_training_data(self):
            g = torch.Generator().manual_seed(0)
            x = torch.randn(32, 4, generator=g)
            return TensorDataset(x, x.sum(dim=1, keepdim=True) * SCALE)

        def build_model(self):
            return torch.nn.Linear(*self.hparams["layers"])

        def build_optimizer(self, model):
            return torch.optim.SGD(model.parameters(), lr=self.hparams["lr"])

        def train_step(self, model, batch):
            x, y = batch
            return torch.nn.functional.mse_loss(model(x), y)
    """
)


def _run(args: list[str], cwd: Path, home: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHIPYARD_")}
    env["SHIPYARD_HOME"] = str(home)
    return subprocess.run(
        [sys.executable, "-m", "shipyard.cli", *args], cwd=cwd, env=env, capture_output=True,
        text=True, timeout=300, check=False,
    )  # fmt: skip


def test_reproduce_a_trial_run(home: Path, tmp_path: Path) -> None:
    """A run of ``shipyard train trial.py:Line`` (uncommitted change included) is
    reproduced exactly, even after the working tree moved on."""
    repo = tmp_path / "project"
    repo.mkdir()
    (repo / "trial.py").write_text(TRIAL)
    git(repo, "init", "-q")
    git(repo, "add", ".")
    git(repo, "commit", "-qm", "trial")
    (repo / "trial.py").write_text(TRIAL.replace("SCALE = 1.0", "SCALE = 3.0"))  # the diff
    out = _run(["train", "trial.py:Line", "--set", "lr=0.05", "--log-every", "1",
                "--deterministic", "--no-progress"], repo, home)  # fmt: skip
    assert out.returncode == 0, out.stderr
    run_id = out.stdout.split()[1]
    (repo / "trial.py").write_text(TRIAL.replace("SCALE = 1.0", "SCALE = 9.0"))  # moved on
    again = _run(["reproduce", run_id], repo, home)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "trial.py:Line" in again.stdout
    (new,) = [r for r in shipyard.search_runs() if r.tags.get("shipyard.reproduces") == run_id]
    original = shipyard.get_run(run_id)
    assert new.params == original.params
    assert new.summaries["loss"].last == original.summaries["loss"].last
    assert new.tags["shipyard.hparams"] == original.tags["shipyard.hparams"]
