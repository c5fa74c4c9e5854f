"""Exact resume after SIGKILL, the ``shipyard train`` command, and torchrun on CPU."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import shipyard
from shipyard.train import Checkpoints
from shipyard.types import RunStatus

pytestmark = pytest.mark.slow

TRIAL = "trials.py:Regression"
COMMON = ("--deterministic", "--checkpoint-every", "2", "--no-model", "--no-progress")


def _run_id(stdout: str) -> str:
    return stdout.split()[1]


def _final(run_id: str) -> tuple[dict[str, torch.Tensor], dict[str, float]]:
    run = shipyard.get_run(run_id)
    state = Checkpoints(shipyard.get_client(), run_id).load()
    return state["model"], {k: s.last for k, s in run.summaries.items()}


def test_sigkill_mid_epoch_then_resume_is_bit_identical(home: Path, train_cli) -> None:  # type: ignore[no-untyped-def]
    """A run killed with SIGKILL mid-epoch and resumed from its last checkpoint ends
    with exactly the weights and metrics of an uninterrupted run."""
    whole = train_cli("train", TRIAL, *COMMON, "--log-every", "1")
    assert whole.returncode == 0, whole.stderr
    killed = train_cli("train", TRIAL, *COMMON, "--log-every", "1", env={"KILL_AT_BATCH": "9"})
    assert killed.returncode == -9, killed.stderr  # SIGKILL in epoch 1, batch 3 of 6
    (run,) = [r for r in shipyard.search_runs() if r.id != _run_id(whole.stdout)]
    assert [i.step for i in Checkpoints(shipyard.get_client(), run.id).list()] == [4, 6, 8]
    resumed = train_cli("train", TRIAL, *COMMON, "--log-every", "1", "--resume", run.id)
    assert resumed.returncode == 0, resumed.stderr
    assert _run_id(resumed.stdout) == run.id
    assert shipyard.get_run(run.id).status is RunStatus.FINISHED
    w_whole, m_whole = _final(_run_id(whole.stdout))
    w_resumed, m_resumed = _final(run.id)
    assert set(w_whole) == set(w_resumed)
    assert all(torch.equal(w_whole[k], w_resumed[k]) for k in w_whole)
    assert m_whole == m_resumed  # loss, lr and val_loss, exactly


def test_train_command_with_hparams_file(home: Path, tmp_path: Path, train_cli) -> None:  # type: ignore[no-untyped-def]
    """``shipyard train`` reads a YAML file, applies --set over it, and logs a model."""
    hp = tmp_path / "hp.yaml"
    hp.write_text("epochs: 1\nhidden: 4\nlr: 0.01\n")
    out = train_cli("train", TRIAL, "--hparams", str(hp), "--set", "lr=0.02",
                    "--experiment", "toy", "--no-progress")  # fmt: skip
    assert out.returncode == 0, out.stderr
    run = shipyard.get_run(_run_id(out.stdout))
    assert (run.params["hidden"], run.params["lr"], run.params["epochs"]) == (4, 0.02, 1)
    assert "model: runs:/" in out.stdout
    model = shipyard.load_model(f"runs:/{run.id}/model")
    assert model.predict(torch.zeros(2, 4).numpy()).shape == (2, 1)


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("missing.py:T", "no file"),
        ("trials.py:toy_data", "expected a shipyard.Trial subclass"),
        ("no_such_module:T", "cannot import"),
        ("plain", "expected trial.py:MyTrial"),
    ],
)
def test_bad_targets(home: Path, train_cli, target: str, message: str) -> None:  # type: ignore[no-untyped-def]
    """A training target that is not a Trial or a script gets a clear error."""
    out = train_cli("train", target)
    assert out.returncode == 1
    assert message in out.stderr


def test_two_processes_then_resume_on_one(home: Path, train_cli) -> None:  # type: ignore[no-untyped-def]
    """--nproc 2 trains data-parallel (gloo) into one run logged by rank 0; the run
    resumes on one process from its checkpoint."""
    out = train_cli("train", TRIAL, "--nproc", "2", "--max-epochs", "1", "--no-model",
                    "--set", 'notes=["a list", 1]',
                    "--no-progress", "--log-every", "1")  # fmt: skip
    assert out.returncode == 0, out.stderr
    (run,) = shipyard.search_runs()  # only rank 0 made a run
    assert run.status is RunStatus.FINISHED
    ckpts = Checkpoints(shipyard.get_client(), run.id)
    state = ckpts.load()
    assert state["trainer"]["world_size"] == 2
    assert ckpts.latest().step == 3  # type: ignore[union-attr]  # 96 rows / (16 * 2 ranks)
    history = shipyard.get_metric_history(run.id, "loss")
    assert list(history.steps) == [1, 2, 3]  # one point per step: averaged over ranks
    again = train_cli("train", TRIAL, "--resume", run.id, "--max-epochs", "2", "--no-model",
                      "--no-progress")  # fmt: skip
    assert again.returncode == 0, again.stderr
    assert "epoch 2, step 9" in again.stdout  # 3 steps on 2 ranks, then 6 on one
    exact = json.loads(shipyard.get_run(run.id).tags["shipyard.hparams"])
    assert exact["epochs"] == 3
    assert exact["notes"] == ["a list", 1]  # resumed with the exact values, not their text
