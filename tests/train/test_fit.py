"""The Trial API through fit(): the loop, its options, exact resume, the final model."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from trials import Regression, toy_data

import shipyard
from shipyard.errors import InvalidArgumentError
from shipyard.train import Checkpoints, fit
from shipyard.types import RunStatus


def _weights(run_id: str) -> dict[str, torch.Tensor]:
    ckpts = Checkpoints(shipyard.get_client(), run_id)
    return ckpts.load()["model"]  # type: ignore[no-any-return]


def test_fit_trains_logs_and_packages(home: Path) -> None:
    """fit logs params, loss and validation metrics, checkpoints each epoch, and logs a
    model package whose predictions match the trained module."""
    result = fit(Regression, log_every=2, progress=False)
    run = shipyard.get_run(result.run_id)  # type: ignore[arg-type]
    assert run.status is RunStatus.FINISHED
    assert run.params["lr"] == 0.05
    assert run.params["epochs"] == 3
    assert result.step == 18
    assert result.epoch == 3
    assert {"loss", "lr", "val_loss"} <= set(run.summaries)
    assert list(shipyard.get_metric_history(run.id, "val_loss").steps) == [6, 12, 18]
    assert [i.step for i in Checkpoints(run.client if False else shipyard.get_client(),
                                        run.id).list()] == [6, 12, 18]  # fmt: skip
    model = shipyard.load_model(result.model_uri)  # type: ignore[arg-type]
    x = toy_data(4).tensors[0].numpy()
    trained = Regression(Regression.default_hparams).build_model()
    trained.load_state_dict(_weights(run.id))
    trained.eval()
    with torch.no_grad():
        expected = trained(torch.from_numpy(x)).numpy()
    assert np.allclose(np.asarray(model.predict(x)), expected, atol=1e-6)
    # the package's drift reference is the whole training input, not the 5-row example
    profile = model.manifest["profile"]
    assert profile["source"] == "profile_data"
    assert profile["rows"] == len(toy_data())


def test_validation_loss_goes_down(home: Path) -> None:
    """Training does what it says: validation loss falls over the epochs."""
    result = fit(Regression, {"epochs": 6}, progress=False, log_model=None)
    history = shipyard.get_metric_history(result.run_id, "val_loss")  # type: ignore[arg-type]
    assert history.values[-1] < history.values[0] / 2


def test_same_seed_same_weights(home: Path) -> None:
    """Two runs with the same hparams end bit-identical; another seed does not."""
    a = fit(Regression, progress=False, log_model=None, deterministic=True)
    b = fit(Regression, progress=False, log_model=None, deterministic=True)
    c = fit(Regression, {"seed": 8}, progress=False, log_model=None, deterministic=True)
    wa, wb, wc = (_weights(r.run_id) for r in (a, b, c))  # type: ignore[arg-type]
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    assert not all(torch.equal(wa[k], wc[k]) for k in wa)


def test_max_steps_stops_mid_epoch(home: Path) -> None:
    """max_steps ends the loop mid-epoch with a final validation and checkpoint."""
    result = fit(Regression, max_steps=4, progress=False, log_model=None)
    assert (result.step, result.epoch) == (4, 0)
    assert "val_loss" in result.metrics
    assert Checkpoints(shipyard.get_client(), result.run_id).latest().step == 4  # type: ignore[arg-type, union-attr]


def test_early_stopping(home: Path) -> None:
    """With patience, a metric that stops improving ends the run early."""

    class Stuck(Regression):
        def evaluate(self, model: Any, batch: Any) -> dict[str, Any]:
            return {"val_loss": 1.0}

    result = fit(Stuck, {"epochs": 10}, monitor="val_loss", patience=2, progress=False,
                 log_model=None)  # fmt: skip
    assert result.stopped_early
    assert result.epoch == 3  # first validation sets the best, two more without improvement


def test_accumulation_matches_a_bigger_batch(home: Path) -> None:
    """Two accumulated batches of 8 step like one batch of 16 (up to rounding)."""

    class Plain(Regression):
        def build_model(self) -> Any:
            return torch.nn.Linear(4, 1)

        def build_optimizer(self, model: Any) -> Any:
            return torch.optim.SGD(model.parameters(), lr=0.05)

    torch.manual_seed(0)
    big = fit(Plain, {"batch_size": 16, "epochs": 1}, progress=False, log_model=None)
    small = fit(Plain, {"batch_size": 8, "epochs": 1}, accumulate=2, progress=False,
                log_model=None)  # fmt: skip
    assert big.step == small.step == 6
    # same seed -> same permutation of samples; consecutive pairs of 8 form the 16s
    wb, ws = _weights(big.run_id), _weights(small.run_id)  # type: ignore[arg-type]
    assert all(torch.allclose(wb[k], ws[k], atol=1e-6) for k in wb)


@pytest.mark.parametrize("precision", ["bf16", "16"])
def test_mixed_precision_on_cpu(home: Path, precision: str) -> None:
    """bf16 autocast, and fp16 with a gradient scaler, train and checkpoint the scaler."""
    result = fit(Regression, {"epochs": 1}, precision=precision, clip_grad_norm=1.0,  # type: ignore[arg-type]
                 progress=False, log_model=None)  # fmt: skip
    state = Checkpoints(shipyard.get_client(), result.run_id).load()  # type: ignore[arg-type]
    assert ("scaler" in state) == (precision == "16")
    assert state["hparams"]["epochs"] == 1
    assert set(state["rng"]) >= {"python", "numpy", "torch"}
    assert np.isfinite(result.metrics["val_loss"])


def test_warm_start_from_checkpoint_and_safetensors(home: Path, tmp_path: Path) -> None:
    """init_from loads weights from a run's checkpoint or a safetensors file."""
    from safetensors.torch import save_file

    first = fit(Regression, {"epochs": 1}, progress=False, log_model=None)
    trained = _weights(first.run_id)  # type: ignore[arg-type]
    seen: dict[str, Any] = {}

    class Probe(Regression):
        def build_optimizer(self, model: Any) -> Any:
            seen["w"] = {k: v.clone() for k, v in model.state_dict().items()}
            return super().build_optimizer(model)

    fit(Probe, {"epochs": 1}, init_from=f"runs:/{first.run_id}", progress=False, log_model=None)
    assert all(torch.equal(seen["w"][k], trained[k]) for k in trained)
    path = tmp_path / "w.safetensors"
    save_file({k: torch.zeros_like(v) for k, v in trained.items()}, str(path))
    fit(Probe, {"epochs": 1}, init_from=str(path), progress=False, log_model=None)
    assert all(not v.any() for v in seen["w"].values())
    save_file({"other": torch.zeros(1)}, str(path))
    with pytest.raises(InvalidArgumentError, match="none of its weights"):
        fit(Probe, {"epochs": 1}, init_from=str(path), progress=False, log_model=None)


def test_warm_start_from_registered_model(home: Path) -> None:
    """init_from=models:/NAME@alias loads the weights of a registered torch package."""
    first = fit(Regression, {"epochs": 1}, progress=False)
    mv = shipyard.register_model(first.model_uri, "toy")  # type: ignore[arg-type]
    shipyard.registry.client().set_alias("toy", "candidate", mv.version, reason="test")
    seen: dict[str, Any] = {}

    class Probe(Regression):
        def build_optimizer(self, model: Any) -> Any:
            seen["w"] = {k: v.clone() for k, v in model.state_dict().items()}
            return super().build_optimizer(model)

    fit(Probe, {"epochs": 1}, init_from="models:/toy@candidate", progress=False, log_model=None)
    trained = _weights(first.run_id)  # type: ignore[arg-type]
    assert all(torch.equal(seen["w"][k], trained[k]) for k in trained)


def test_pause_checkpoints_and_resume_continues(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A scheduler's pause ends the run KILLED with a checkpoint; resuming finishes it."""

    class Pausing(Regression):
        def train_step(self, model: Any, batch: Any) -> Any:
            self.n = getattr(self, "n", 0) + 1
            if self.n == 3:
                run = shipyard.active_run()
                run.client.store.set_tag(run.id, "shipyard.control", "pause")  # type: ignore[union-attr]
            return super().train_step(model, batch)

    import shipyard.train._fit as fit_module
    import shipyard.train._loop as loop_module

    real_init = fit_module.init
    monkeypatch.setattr(fit_module, "init", lambda *a, **k: real_init(*a, **k, poll_interval=0))
    monkeypatch.setattr(loop_module, "_CONTROL_EVERY", 1)
    paused = fit(Pausing, progress=False, log_model=None)
    assert paused.preempted
    assert paused.step < 18
    assert shipyard.get_run(paused.run_id).status is RunStatus.KILLED  # type: ignore[arg-type]
    shipyard.get_client().store.delete_tag(paused.run_id, "shipyard.control")  # type: ignore[arg-type]
    monkeypatch.setenv("SHIPYARD_RUN_ID", paused.run_id)  # type: ignore[arg-type]
    done = fit(Regression, progress=False, log_model=None)
    assert done.run_id == paused.run_id
    assert done.step == 18
    assert not done.preempted


def test_pause_after_rungs_then_promote(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """SHIPYARD_PAUSE_AFTER (an ASHA rung) pauses at the n-th validation with a
    checkpoint; continuing with a higher pause point, then none, ends exactly like
    an uninterrupted run."""
    whole = fit(Regression, hparams={"epochs": 5}, progress=False, log_model=None)
    monkeypatch.setenv("SHIPYARD_PAUSE_AFTER", "val_loss:1")
    first = fit(Regression, hparams={"epochs": 5}, progress=False, log_model=None)
    assert first.preempted
    assert first.epoch == 1
    assert shipyard.get_run(first.run_id).status is RunStatus.KILLED  # type: ignore[arg-type]
    monkeypatch.setenv("SHIPYARD_RUN_ID", first.run_id)  # type: ignore[arg-type]
    monkeypatch.setenv("SHIPYARD_PAUSE_AFTER", "val_loss:3")
    second = fit(Regression, hparams={"epochs": 5}, progress=False, log_model=None)
    assert second.preempted
    assert second.epoch == 3
    monkeypatch.delenv("SHIPYARD_PAUSE_AFTER")
    last = fit(Regression, hparams={"epochs": 5}, progress=False, log_model=None)
    assert not last.preempted
    assert last.epoch == 5
    history = shipyard.get_metric_history(first.run_id, "val_loss")  # type: ignore[arg-type]
    expected = shipyard.get_metric_history(whole.run_id, "val_loss")  # type: ignore[arg-type]
    assert list(history.steps) == list(expected.steps)
    assert list(history.values) == list(expected.values)
    for name, tensor in _weights(whole.run_id).items():
        assert torch.equal(tensor, _weights(first.run_id)[name]), name


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: fit(object), "Trial subclass"),  # type: ignore[arg-type]
        (lambda: fit(Regression, precision="8"), "precision"),  # type: ignore[arg-type]
        (lambda: fit(Regression, accumulate=0), "accumulate"),
        (lambda: fit(Regression, patience=2), "monitor"),
        (lambda: fit(Regression, device="cuda:99"), "CUDA is not available|invalid device"),
    ],
)
def test_bad_arguments(home: Path, call: Any, match: str) -> None:
    """Bad arguments are refused before anything is trained, with what was expected."""
    with pytest.raises(InvalidArgumentError, match=match):
        call()


def test_build_model_must_return_a_module(home: Path) -> None:
    """A Trial whose build_model returns something else gets a clear error; the run FAILS."""

    class Broken(Regression):
        def build_model(self) -> Any:
            return "not a module"

    with pytest.raises(InvalidArgumentError, match=r"expected a torch\.nn\.Module"):
        fit(Broken, progress=False)
    (run,) = shipyard.search_runs()
    assert run.status is RunStatus.FAILED


def test_exact_hparams_tag(home: Path) -> None:
    """Nested hparams are params as JSON text and exactly in the shipyard.hparams tag."""
    result = fit(Regression, {"layers": [8, 4], "epochs": 1}, progress=False, log_model=None)
    run = shipyard.get_run(result.run_id)  # type: ignore[arg-type]
    assert run.params["layers"] == "[8, 4]"
    assert json.loads(run.tags["shipyard.hparams"])["layers"] == [8, 4]


def test_progress_bar_shows_epoch_and_metrics(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """progress=True draws a bar on stderr with the epoch, steps and latest metrics."""
    fit(Regression, {"epochs": 2}, progress=True, log_every=1, log_model=None)
    err = capsys.readouterr().err
    assert "epoch" in err
    assert "12/12" in err  # 96 rows / 16 per batch * 2 epochs, the final state
