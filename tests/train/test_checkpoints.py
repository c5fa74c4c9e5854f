"""Checkpoints in the store: save, list, load, retention, the CLI listing."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import shipyard
from shipyard.errors import InvalidArgumentError, NotFoundError
from shipyard.train import Checkpoints


def _saved(ckpts: Checkpoints, steps: list[int], losses: list[float]) -> None:
    for step, loss in zip(steps, losses, strict=True):
        ckpts.save({"w": torch.full((2,), float(step))}, step=step, epoch=step // 10,
                   metrics={"val_loss": loss})  # fmt: skip


def test_save_list_load(home: Path) -> None:
    """A saved state is listed with its step, epoch and metrics, and loads back equal."""
    with shipyard.start_run() as run:
        ckpts = Checkpoints(run.client, run.id, keep_last=None)
        info = ckpts.save({"w": torch.ones(3), "n": np.arange(2)}, step=5, epoch=1,
                          metrics={"val_loss": 0.5})  # fmt: skip
        assert info.uri == f"runs:/{run.id}/checkpoints/step-0000000005"
        (listed,) = ckpts.list()
        assert (listed.step, listed.epoch, dict(listed.metrics)) == (5, 1, {"val_loss": 0.5})
        state = ckpts.load()
        assert torch.equal(state["w"], torch.ones(3))
        assert list(state["n"]) == [0, 1]


def test_keep_last_and_best(home: Path) -> None:
    """Retention keeps the newest N and the best K by the monitored metric."""
    with shipyard.start_run() as run:
        ckpts = Checkpoints(run.client, run.id, keep_last=2, keep_best=1, monitor="val_loss")
        _saved(ckpts, [10, 20, 30, 40, 50], [0.9, 0.2, 0.5, 0.6, 0.7])
        assert [i.step for i in ckpts.list()] == [20, 40, 50]
        assert ckpts.best() is not None
        assert ckpts.best().step == 20
        # a fresh manager (another process) sees and prunes the same set
        again = Checkpoints(run.client, run.id, keep_last=1)
        _saved(again, [60], [0.1])
        assert [i.step for i in again.list()] == [60]


def test_max_mode_keeps_highest(home: Path) -> None:
    """mode='max' ranks the highest metric best."""
    with shipyard.start_run() as run:
        ckpts = Checkpoints(run.client, run.id, keep_last=1, keep_best=1, monitor="acc",
                            mode="max")  # fmt: skip
        for step, acc in [(1, 0.7), (2, 0.9), (3, 0.8)]:
            ckpts.save({"x": step}, step=step, metrics={"acc": acc})
        assert [i.step for i in ckpts.list()] == [2, 3]


def test_same_step_replaces(home: Path) -> None:
    """Saving a step again (a resumed run) replaces that checkpoint."""
    with shipyard.start_run() as run:
        ckpts = Checkpoints(run.client, run.id)
        ckpts.save({"x": 1}, step=3)
        ckpts.save({"x": 2}, step=3)
        assert len(ckpts.list()) == 1
        assert ckpts.load()["x"] == 2


def test_no_checkpoint_is_not_found(home: Path) -> None:
    """Loading from a run without checkpoints says so."""
    with shipyard.start_run() as run:
        ckpts = Checkpoints(run.client, run.id)
        assert ckpts.latest() is None
        with pytest.raises(NotFoundError, match="no checkpoint"):
            ckpts.load()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"keep_last": 0}, "keep_last"),
        ({"keep_best": 1}, "monitor"),
        ({"mode": "up"}, "mode"),
        ({"keep_best": -1}, "keep_best"),
    ],
)
def test_bad_retention_settings(home: Path, kwargs: dict, match: str) -> None:
    """Invalid retention settings are refused with what was expected."""
    with shipyard.start_run() as run, pytest.raises(InvalidArgumentError, match=match):
        Checkpoints(run.client, run.id, **kwargs)


def test_cli_lists_checkpoints(home: Path, shipyard_cli) -> None:  # type: ignore[no-untyped-def]
    """``shipyard checkpoints list RUN`` shows steps and metrics, and JSON for scripts."""
    with shipyard.start_run() as run:
        _saved(Checkpoints(run.client, run.id), [1, 2], [0.5, 0.25])
    out = shipyard_cli("checkpoints", "list", run.id)
    assert out.returncode == 0, out.stderr
    assert "val_loss" in out.stdout
    assert "0.25" in out.stdout
    data = json.loads(shipyard_cli("checkpoints", "list", run.id, "--json").stdout)
    assert [d["step"] for d in data] == [1, 2]
    assert data[1]["uri"].endswith("checkpoints/step-0000000002")
    with shipyard.start_run() as empty:
        pass
    out = shipyard_cli("checkpoints", "list", empty.id)
    assert out.returncode == 0
    assert "no checkpoints" in out.stderr
