"""The Core API: hparams, report, checkpoint/latest_checkpoint, stop and preempt."""

from __future__ import annotations

import json
import os
import signal
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

import shipyard
from shipyard.errors import InvalidArgumentError
from shipyard.train import init
from shipyard.types import RunStatus


def test_hparams_defaults_env_and_params(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Defaults < SHIPYARD_HPARAMS; the result is logged as the run's params."""
    monkeypatch.setenv("SHIPYARD_HPARAMS", json.dumps({"lr": 0.5}))
    with init({"lr": 0.1, "epochs": 3}) as ctx:
        assert ctx.hparams == {"lr": 0.5, "epochs": 3}
        run_id = ctx.run_id
    run = shipyard.get_run(run_id)  # type: ignore[arg-type]
    assert run.params == {"lr": 0.5, "epochs": 3}
    assert run.status is RunStatus.FINISHED


def test_hparams_file_yaml(home: Path, tmp_path: Path) -> None:
    """A YAML file of hyperparameters overrides the defaults."""
    f = tmp_path / "hp.yaml"
    f.write_text("lr: 0.01\nlayers: [8, 4]\n")
    with init({"lr": 0.1}, hparams_file=f) as ctx:
        assert ctx.hparams == {"lr": 0.01, "layers": [8, 4]}


@pytest.mark.parametrize(
    ("env", "match"),
    [("[1, 2]", "mapping"), ("{bad json", "JSON object"), ('{"x": {"y": [1, {}]}}', None)],
)
def test_bad_hparams_env(
    home: Path, monkeypatch: pytest.MonkeyPatch, env: str, match: str | None
) -> None:
    """SHIPYARD_HPARAMS that is not a JSON object is refused with what was expected."""
    monkeypatch.setenv("SHIPYARD_HPARAMS", env)
    if match is None:
        with init() as ctx:
            assert ctx.hparams == {"x": {"y": [1, {}]}}
        return
    with pytest.raises(InvalidArgumentError, match=match):
        init()


def test_report_logs_metrics(home: Path) -> None:
    """report() logs each metric at the given step."""
    with init() as ctx:
        for step in range(3):
            ctx.report(step, {"loss": 1.0 / (step + 1)})
        run_id = ctx.run_id
    history = shipyard.get_metric_history(run_id, "loss")  # type: ignore[arg-type]
    assert list(history.steps) == [0, 1, 2]
    with init() as ctx, pytest.raises(InvalidArgumentError, match="step"):
        ctx.report(-1, {"loss": 1.0})


def test_resume_from_latest_checkpoint(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A run continued through SHIPYARD_RUN_ID gets its latest checkpoint back."""
    with init() as ctx:
        assert ctx.latest_checkpoint() is None
        ctx.checkpoint({"epoch": 1, "w": np.ones(3)}, step=10)
        ctx.checkpoint({"epoch": 2, "w": np.full(3, 2.0)}, step=20)
        run_id = ctx.run_id
    monkeypatch.setenv("SHIPYARD_RUN_ID", run_id)  # type: ignore[arg-type]
    with init() as ctx:
        assert ctx.run_id == run_id
        state = ctx.latest_checkpoint()
        assert state is not None
        assert state["epoch"] == 2
        assert list(state["w"]) == [2.0] * 3


def test_warm_start_from_another_run(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """SHIPYARD_RESUME_FROM starts a new run from another run's latest checkpoint."""
    with init() as ctx:
        ctx.checkpoint({"epoch": 4}, step=4)
        source = ctx.run_id
    monkeypatch.setenv("SHIPYARD_RESUME_FROM", source)  # type: ignore[arg-type]
    with init() as ctx:
        assert ctx.run_id != source
        assert ctx.latest_checkpoint() == {"epoch": 4}


def test_stop_through_control_tag(home: Path) -> None:
    """The scheduler's 'stop' tag makes should_stop true; 'pause' makes should_preempt true."""
    with init(poll_interval=0) as ctx:
        assert not ctx.should_stop()
        assert not ctx.should_preempt()
        shipyard.get_client().store.set_tag(ctx.run_id, "shipyard.control", "stop")  # type: ignore[arg-type]
        assert ctx.should_stop()
    with init(poll_interval=0) as ctx:
        shipyard.get_client().store.set_tag(ctx.run_id, "shipyard.control", "pause")  # type: ignore[arg-type]
        assert ctx.should_preempt()
        run_id = ctx.run_id
    assert shipyard.get_run(run_id).status is RunStatus.KILLED  # type: ignore[arg-type]


def test_pause_after_counts_distinct_steps_across_segments(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SHIPYARD_PAUSE_AFTER=val_loss:N: should_preempt turns true once val_loss was
    reported at N distinct steps, earlier segments of the run included; the run
    ends KILLED (resumable). Other metrics and a repeated step do not count."""
    monkeypatch.setenv("SHIPYARD_PAUSE_AFTER", "val_loss:2")
    with init(poll_interval=1e9) as ctx:
        assert ctx.pause_armed
        ctx.report(0, {"loss": 1.0})
        ctx.report(1, {"val_loss": 1.0})
        ctx.report(1, {"val_loss": 0.9})  # the same step again
        assert not ctx.should_preempt()
        ctx.report(2, {"val_loss": 0.8})
        assert ctx.should_preempt()
        run_id = ctx.run_id
    assert shipyard.get_run(run_id).status is RunStatus.KILLED  # type: ignore[arg-type]
    monkeypatch.setenv("SHIPYARD_RUN_ID", run_id)  # type: ignore[arg-type]
    monkeypatch.setenv("SHIPYARD_PAUSE_AFTER", "val_loss:3")
    with init(poll_interval=1e9) as ctx:
        assert not ctx.should_preempt()
        ctx.report(3, {"val_loss": 0.7})
        assert ctx.should_preempt()
    monkeypatch.setenv("SHIPYARD_PAUSE_AFTER", "val_loss")
    with pytest.raises(InvalidArgumentError, match="METRIC:N"):
        init()


def test_promotion_in_place_at_the_pause_point(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With SHIPYARD_PAUSE_WAIT, a trial at its pause point tags itself and waits:
    'continue:N' moves the pause point and training goes on in this process;
    'pause' (or no answer in time) pauses it."""
    import threading

    monkeypatch.setenv("SHIPYARD_PAUSE_AFTER", "val_loss:1")
    monkeypatch.setenv("SHIPYARD_PAUSE_WAIT", "20")
    store = shipyard.get_client().store
    answers = iter(["continue:2", "pause"])

    def scheduler(run_id: str) -> None:
        for answer in answers:
            while store.get_run(run_id).tags.get("shipyard.search.at") is None:
                time.sleep(0.02)
            store.set_tag(run_id, "shipyard.control", answer)
            while (
                store.get_run(run_id).tags.get("shipyard.control") == answer and answer != "pause"
            ):
                time.sleep(0.02)

    with init(poll_interval=1e9) as ctx:
        run_id = ctx.run_id
        helper = threading.Thread(target=scheduler, args=(run_id,), daemon=True)
        helper.start()
        ctx.report(0, {"val_loss": 1.0})
        assert not ctx.should_preempt()  # promoted in place to 2 reports
        assert "shipyard.search.at" not in store.get_run(run_id).tags  # type: ignore[arg-type]
        ctx.report(1, {"val_loss": 0.5})
        assert ctx.should_preempt()  # the scheduler said pause
        helper.join(10)
    assert shipyard.get_run(run_id).status is RunStatus.KILLED  # type: ignore[arg-type]
    monkeypatch.setenv("SHIPYARD_PAUSE_WAIT", "0.3")
    with init(poll_interval=1e9) as ctx:
        ctx.report(0, {"val_loss": 1.0})
        started = time.monotonic()
        assert ctx.should_preempt()  # nobody answered: pause
        assert time.monotonic() - started >= 0.3


def test_request_stop(home: Path) -> None:
    """A loop's own early-stopping decision is seen by should_stop."""
    with init() as ctx:
        ctx.request_stop()
        assert ctx.should_stop()


def test_sigterm_preempts(home: Path) -> None:
    """SIGTERM sets should_preempt instead of killing; the run ends KILLED (resumable)."""
    with init() as ctx:
        os.kill(os.getpid(), signal.SIGTERM)
        assert ctx.should_preempt()
        run_id = ctx.run_id
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    assert shipyard.get_run(run_id).status is RunStatus.KILLED  # type: ignore[arg-type]


def test_active_run_is_used_and_left_open(home: Path) -> None:
    """Inside start_run, init logs to that run and does not end it."""
    with shipyard.start_run() as run:
        with init({"a": 1}) as ctx:
            assert ctx.run_id == run.id
        assert shipyard.active_run() is run
    assert shipyard.get_run(run.id).params == {"a": 1}


def test_exception_fails_the_run(home: Path) -> None:
    """An exception in the loop ends the run FAILED and propagates."""
    ctx = init()
    with pytest.raises(RuntimeError, match="diverged"), ctx:
        raise RuntimeError("diverged")
    run_id = ctx.run_id
    assert shipyard.get_run(run_id).status is RunStatus.FAILED  # type: ignore[arg-type]


SCRIPT = textwrap.dedent(
    """
    import numpy as np
    import shipyard

    with shipyard.train.init({"alpha": 1.0, "epochs": 4}) as ctx:
        state = ctx.latest_checkpoint() or {"epoch": 0, "coef": np.zeros(2)}
        for epoch in range(state["epoch"], ctx.hparams["epochs"]):
            state["coef"] = state["coef"] + ctx.hparams["alpha"]
            state["epoch"] = epoch + 1
            ctx.report(epoch, {"norm": float(np.linalg.norm(state["coef"]))})
            ctx.checkpoint(state, step=epoch)
        print(ctx.run_id, "torch" in __import__("sys").modules)
    """
)


@pytest.mark.slow
def test_script_runs_standalone_and_under_train(home: Path, tmp_path: Path, train_cli) -> None:  # type: ignore[no-untyped-def]
    """A Core API script runs with plain python, and under ``shipyard train`` with --set."""
    script = tmp_path / "train.py"
    script.write_text(SCRIPT)
    import subprocess

    env = {**os.environ, "SHIPYARD_HOME": str(home)}
    out = subprocess.run([sys.executable, str(script)], env=env, capture_output=True,
                         text=True, check=True)  # fmt: skip
    run_id, used_torch = out.stdout.split()
    assert used_torch == "False"  # a NumPy loop never loads torch
    run = shipyard.get_run(run_id)
    assert run.summaries["norm"].last == pytest.approx(np.sqrt(2) * 4)
    out = train_cli("train", str(script), "--set", "alpha=2", "--experiment", "core")
    assert out.returncode == 0, out.stderr
    run = shipyard.get_run(out.stdout.split()[0])
    assert run.params["alpha"] == 2
    assert run.summaries["norm"].last == pytest.approx(np.sqrt(2) * 8)
