"""The Lightning logger and checkpoint callback, on a tiny module and Lightning's Trainer."""

from __future__ import annotations

import logging
import signal
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("lightning")

import lightning.pytorch as pl
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import shipyard
from shipyard.errors import InvalidArgumentError, NotFoundError, StateError
from shipyard.tracking import get_client
from shipyard.train import Checkpoints
from shipyard.train.lightning import (
    DROPPED_KEY,
    ShipyardCheckpoint,
    ShipyardLogger,
    _storable,
    resume_path,
)
from shipyard.types import RunStatus

pytestmark = [
    # Lightning's advice for real jobs; a 64-row dataset needs no worker processes
    pytest.mark.filterwarnings("ignore:The 'train_dataloader' does not have many workers"),
    # torch deprecates a pytree class that Lightning 2.6 still uses when logging values
    pytest.mark.filterwarnings("ignore:`isinstance\\(treespec, LeafSpec\\)` is deprecated"),
]

STEPS_PER_EPOCH = 4  # 64 rows, batches of 16


def activation(x: torch.Tensor) -> torch.Tensor:
    """A picklable function: Lightning keeps it in hparams, JSON and the codec cannot."""
    return torch.tanh(x)


class Tiny(pl.LightningModule):
    """Linear 4 -> 1 on random data; ``fail_at`` raises in that global step."""

    def __init__(
        self,
        lr: float = 0.1,
        optim: dict[str, Any] | None = None,
        act: Any = None,
        fail_at: int = -1,
        interrupt_at: int = -1,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.layer = nn.Linear(4, 1)

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        if self.global_step == self.hparams["fail_at"]:
            raise RuntimeError("boom")
        if self.global_step == self.hparams["interrupt_at"]:
            raise KeyboardInterrupt
        x, y = batch
        loss = nn.functional.mse_loss(self.layer(x), y)
        self.log("train_loss", loss)
        self.log("score", float(self.global_step))  # grows: the first checkpoint is best
        return loss

    def configure_optimizers(self) -> torch.optim.Optimizer:
        momentum = (self.hparams["optim"] or {}).get("momentum", 0.0)
        return torch.optim.SGD(self.parameters(), lr=self.hparams["lr"], momentum=momentum)

    def train_dataloader(self) -> DataLoader[Any]:
        g = torch.Generator().manual_seed(0)
        data = TensorDataset(torch.randn(64, 4, generator=g), torch.randn(64, 1, generator=g))
        return DataLoader(data, batch_size=16)


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Lightning's default_root_dir is the working directory: keep it out of the repo."""
    monkeypatch.chdir(tmp_path)


def trainer(*callbacks: pl.Callback, logger: Any = None, max_epochs: int = 2) -> pl.Trainer:
    return pl.Trainer(
        max_epochs=max_epochs,
        logger=ShipyardLogger() if logger is None else logger,
        callbacks=list(callbacks),
        enable_progress_bar=False,
        enable_model_summary=False,
        accelerator="cpu",
        devices=1,
        log_every_n_steps=1,
    )


def steps(run_id: str) -> list[int]:
    return [c.step for c in Checkpoints(get_client(), run_id).list()]


class TestLogger:
    def test_a_fit_is_one_finished_run_with_hparams_and_metrics(self, home: Path) -> None:
        """A fit starts a run, records the module's hparams (nested ones flattened),
        logs train_loss at every optimizer step, and ends the run FINISHED."""
        logger = ShipyardLogger(experiment="lit", run_name="tiny")
        trainer(ShipyardCheckpoint(), logger=logger).fit(Tiny(optim={"momentum": 0.9}))
        run = shipyard.get_run(logger.version or "")
        assert run.status is RunStatus.FINISHED
        assert run.name == "tiny"
        assert logger.name == "lit"
        assert run.params["lr"] == 0.1
        assert run.params["optim.momentum"] == 0.9
        assert run.params["fail_at"] == -1
        history = shipyard.get_metric_history(run.id, "train_loss")
        assert history.steps.tolist() == list(range(2 * STEPS_PER_EPOCH))
        assert shipyard.active_run() is None

    def test_the_active_run_is_used_and_left_open(self, home: Path) -> None:
        """Inside start_run, the logger logs to that run and only flushes it."""
        with shipyard.start_run() as run:
            logger = ShipyardLogger()
            trainer(ShipyardCheckpoint(), logger=logger).fit(Tiny())
            assert logger.version == run.id
            assert logger.experiment is run
            assert not run.ended
            assert len(shipyard.get_metric_history(run.id, "train_loss")) == 8
        assert shipyard.get_run(run.id).status is RunStatus.FINISHED

    def test_a_failing_training_step_marks_the_run_failed(self, home: Path) -> None:
        """An exception in training_step ends the logger's run FAILED."""
        logger = ShipyardLogger()
        with pytest.raises(RuntimeError, match="boom"):
            trainer(logger=logger).fit(Tiny(fail_at=5))
        assert shipyard.get_run(logger.version or "").status is RunStatus.FAILED
        assert shipyard.active_run() is None

    def test_ctrl_c_marks_the_run_killed(self, home: Path) -> None:
        """A KeyboardInterrupt (which Lightning turns into exit 1) ends the run KILLED."""
        logger = ShipyardLogger()
        previous = signal.getsignal(signal.SIGINT)
        try:
            with pytest.raises(SystemExit):
                trainer(logger=logger).fit(Tiny(interrupt_at=2))
        finally:
            signal.signal(signal.SIGINT, previous)  # Lightning ignores SIGINT from then on
        assert shipyard.get_run(logger.version or "").status is RunStatus.KILLED

    @pytest.mark.filterwarnings("ignore:Attribute 'act' removed from hparams")
    @pytest.mark.parametrize("act", [activation, lambda x: x], ids=["function", "lambda"])
    def test_an_unstorable_hparam_does_not_stop_training(self, home: Path, act: Any) -> None:
        """A function in hparams is left out of params and checkpoints; training runs."""
        logger = ShipyardLogger()
        trainer(ShipyardCheckpoint(), logger=logger).fit(Tiny(act=act))
        run = shipyard.get_run(logger.version or "")
        assert run.status is RunStatus.FINISHED
        assert "act" not in run.params
        assert run.params["lr"] == 0.1
        assert steps(run.id) == [4, 8]
        state = Checkpoints(get_client(), run.id).load()
        assert "act" not in state["hyper_parameters"]
        assert state.get(DROPPED_KEY, ["hyper_parameters.act"]) == ["hyper_parameters.act"]

    def test_a_conflicting_param_is_a_warning_not_an_error(
        self, home: Path, caplog: pytest.LogCaptureFixture
    ) -> None:
        """A param that conflicts with the run's is logged as a warning; the rest is kept."""
        with shipyard.start_run() as run:
            run.log_params({"lr": 0.5})
            with caplog.at_level(logging.WARNING, logger="shipyard.train"):
                trainer(logger=ShipyardLogger()).fit(Tiny(lr=0.1))
        assert "param 'lr'" in caplog.text
        params = shipyard.get_run(run.id).params
        assert params["lr"] == 0.5
        assert params["fail_at"] == -1

    def test_metrics_the_store_refuses_are_skipped(self, home: Path) -> None:
        """Keys the store refuses and values that are not numbers are skipped, not raised."""
        logger = ShipyardLogger()
        logger.log_metrics({"ok": torch.tensor(1.5), "bad key!": 1.0, "text": "x"}, step=3)
        logger.log_hyperparams({"sizes": [64, 32], "obj": object(), "nested": {"a": 1}})
        logger.finalize("success")
        run = shipyard.get_run(logger.version or "")
        assert run.params == {"sizes": "[64, 32]", "nested.a": 1}
        assert shipyard.get_metric_history(run.id, "ok").steps.tolist() == [3]
        assert set(run.summaries) == {"ok"}


class TestCheckpoint:
    def test_epoch_end_checkpoints_are_stored_in_the_run(
        self, home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """By default a checkpoint is stored at each epoch end, with step, epoch and the
        logged metrics, and Lightning writes no .ckpt files of its own."""
        monkeypatch.chdir(tmp_path)  # Lightning's default_root_dir
        logger = ShipyardLogger()
        trainer(ShipyardCheckpoint(), logger=logger).fit(Tiny())
        infos = Checkpoints(get_client(), logger.version or "").list()
        assert [(i.step, i.epoch) for i in infos] == [(4, 0), (8, 1)]
        assert set(infos[-1].metrics) >= {"train_loss", "score"}
        assert not list(tmp_path.glob("**/*.ckpt"))

    def test_every_n_steps_with_retention(self, home: Path) -> None:
        """every_n_train_steps saves every N optimizer steps; keep_last plus keep_best by
        the monitor decide what stays."""
        logger = ShipyardLogger()
        cb = ShipyardCheckpoint(
            every_n_train_steps=2, keep_last=2, keep_best=1, monitor="score", mode="min"
        )
        trainer(cb, logger=logger).fit(Tiny())
        assert steps(logger.version or "") == [2, 6, 8]
        assert cb.checkpoints is not None
        best = cb.checkpoints.best()
        assert best is not None
        assert best.step == 2

    def test_the_stored_state_is_lightnings_checkpoint(self, home: Path) -> None:
        """The stored state has the weights, optimizer and loop state Lightning resumes from."""
        logger = ShipyardLogger()
        model = Tiny(optim={"momentum": 0.9})
        trainer(ShipyardCheckpoint(), logger=logger).fit(model)
        state = Checkpoints(get_client(), logger.version or "").load()
        assert state["global_step"] == 8
        assert torch.equal(state["state_dict"]["layer.weight"], model.layer.weight)
        assert "momentum_buffer" in state["optimizer_states"][0]["state"][0]
        assert "fit_loop" in state["loops"]
        assert state["hyper_parameters"]["optim"] == {"momentum": 0.9}
        assert DROPPED_KEY not in state

    @pytest.mark.filterwarnings("ignore:Attribute 'act' removed from hparams")
    def test_resume_continues_from_the_stored_checkpoint(self, home: Path, tmp_path: Path) -> None:
        """A fit from resume_path's file starts at the stored step with the stored
        weights, and continues logging and checkpointing in the same run."""
        first = ShipyardLogger()
        trainer(ShipyardCheckpoint(), logger=first).fit(Tiny())
        run_id = first.version or ""
        saved = Checkpoints(get_client(), run_id).load()["state_dict"]

        class Probe(pl.Callback):
            def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
                self.step = trainer.global_step
                self.weights = {k: v.clone() for k, v in pl_module.state_dict().items()}

        probe = Probe()
        path = resume_path(run_id, tmp_path / "ckpt")
        second = trainer(
            probe, ShipyardCheckpoint(), logger=ShipyardLogger(run_id=run_id), max_epochs=3
        )
        model = Tiny()
        assert not torch.equal(model.layer.weight, saved["layer.weight"])
        second.fit(model, ckpt_path=path)

        assert probe.step == 8
        assert saved.keys() == probe.weights.keys()
        assert all(torch.equal(saved[k], probe.weights[k]) for k in saved)
        assert second.global_step == 12
        assert steps(run_id) == [4, 8, 12]
        assert shipyard.get_run(run_id).status is RunStatus.FINISHED
        assert shipyard.get_metric_history(run_id, "train_loss").steps.tolist() == list(range(12))

    def test_resume_path_of_a_step_and_of_nothing(self, home: Path, tmp_path: Path) -> None:
        """resume_path writes the checkpoint of a given step; a missing one is NotFoundError."""
        logger = ShipyardLogger()
        trainer(ShipyardCheckpoint(), logger=logger).fit(Tiny())
        run_id = logger.version or ""
        path = resume_path(run_id, tmp_path, step=4)
        assert torch.load(path, weights_only=True)["global_step"] == 4
        with pytest.raises(NotFoundError, match="checkpoint steps: 4, 8"):
            resume_path(run_id, tmp_path, step=5)
        with shipyard.start_run() as empty:
            pass
        with pytest.raises(NotFoundError, match="no checkpoint \\(checkpoint steps: none\\)"):
            resume_path(empty.id, tmp_path)

    def test_without_a_run_the_callback_says_what_to_do(self, home: Path) -> None:
        """With no ShipyardLogger and no active run, fit stops before training with a hint."""
        with pytest.raises(StateError, match="ShipyardLogger"):
            trainer(ShipyardCheckpoint(), logger=False).fit(Tiny())

    def test_a_callback_that_never_saves_is_refused(self) -> None:
        """every_n_train_steps must be an integer >= 0, and something must trigger a save."""
        with pytest.raises(InvalidArgumentError, match="every_n_train_steps"):
            ShipyardCheckpoint(every_n_train_steps=-1)
        with pytest.raises(InvalidArgumentError, match="never save"):
            ShipyardCheckpoint(save_on_train_epoch_end=False)


def test_storable_keeps_data_and_names_what_it_drops() -> None:
    """Mappings become dicts, tensors stay, objects are dropped (None inside a list)
    and their paths listed."""
    from lightning.fabric.utilities.data import AttributeDict

    state = {
        "hyper_parameters": AttributeDict(lr=0.1, act=activation),
        "state_dict": {"w": nn.Parameter(torch.ones(2))},
        "optimizer_states": [{"state": {0: {"step": torch.tensor(3.0)}}, "param_groups": []}],
        "items": [1, object(), (2, 3)],
        "weird_keys": {(1, 2): 3},
    }
    clean, dropped = _storable(state)
    assert type(clean["hyper_parameters"]) is dict
    assert clean["hyper_parameters"] == {"lr": 0.1}
    assert type(clean["state_dict"]["w"]) is torch.Tensor
    assert clean["optimizer_states"][0]["state"][0]["step"].item() == 3.0
    assert clean["items"] == [1, None, (2, 3)]
    assert clean["weird_keys"] == {}
    assert dropped == ["hyper_parameters.act", "items[1]", "weird_keys[(1, 2)]"]


def test_lightning_loads_only_with_its_module() -> None:
    """`import shipyard.train` loads no Lightning; the module's __all__ names what exists."""
    import subprocess
    import sys

    import shipyard.train.lightning as module

    code = "import sys, shipyard.train; print('lightning' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
    assert all(hasattr(module, name) for name in module.__all__)
