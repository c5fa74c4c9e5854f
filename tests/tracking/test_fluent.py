"""The fluent tracking API, end to end on the embedded SQLite store."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import shipyard
from shipyard import ConflictError, InvalidArgumentError, RunStatus, StateError


def test_run_records_params_metrics_tags_and_status(home: Path) -> None:
    """A context-managed run stores params (typed), metrics, tags and ends FINISHED."""
    with shipyard.start_run(experiment="rides", run_name="baseline") as run:
        shipyard.log_params({"alpha": 0.1, "features": 12, "model": "ridge", "bn": True})
        for epoch in range(5):
            shipyard.log_metric("val_rmse", 3.0 - epoch * 0.1, step=epoch)
        shipyard.set_tag("team", "pricing")
    got = shipyard.get_run(run.id)
    assert got.status is RunStatus.FINISHED
    assert got.name == "baseline"
    assert got.end_time is not None
    assert got.end_time >= got.start_time
    assert got.params == {"alpha": 0.1, "features": 12, "model": "ridge", "bn": True}
    assert isinstance(got.params["features"], int)
    assert got.tags["team"] == "pricing"
    assert got.metrics["val_rmse"] == pytest.approx(2.6)
    s = got.summaries["val_rmse"]
    assert (s.count, s.last_step, s.min, s.max) == (5, 4, pytest.approx(2.6), 3.0)


def test_exception_marks_run_failed(home: Path) -> None:
    """An exception inside the run's block ends it FAILED and propagates."""
    with pytest.raises(RuntimeError), shipyard.start_run() as run:
        raise RuntimeError("boom")
    assert shipyard.get_run(run.id).status is RunStatus.FAILED


def test_step_none_continues_from_last_step(home: Path) -> None:
    """log_metric without a step numbers points 0, 1, 2... and continues after explicit steps."""
    with shipyard.start_run() as run:
        shipyard.log_metric("a", 1.0)
        shipyard.log_metric("a", 2.0)
        shipyard.log_metric("a", 3.0, step=10)
        shipyard.log_metric("a", 4.0)
    hist = shipyard.get_metric_history(run.id, "a")
    assert hist.steps.tolist() == [0, 1, 10, 11]
    assert hist.values.tolist() == [1.0, 2.0, 3.0, 4.0]


def test_nan_inf_and_out_of_order_steps_are_kept(home: Path) -> None:
    """NaN and inf are stored as such; out-of-order steps come back sorted by step."""
    with shipyard.start_run() as run:
        shipyard.log_metric("loss", 0.5, step=3)
        shipyard.log_metric("loss", math.nan, step=1)
        shipyard.log_metric("loss", math.inf, step=2)
        shipyard.log_metric("loss", -math.inf, step=0)
    hist = shipyard.get_metric_history(run.id, "loss")
    assert hist.steps.tolist() == [0, 1, 2, 3]
    assert hist.values[0] == -math.inf
    assert math.isnan(hist.values[1])
    assert hist.values[2] == math.inf
    summary = shipyard.get_run(run.id).summaries["loss"]
    assert summary.last == 0.5
    assert summary.last_step == 3
    assert summary.count == 4


def test_numpy_and_tensor_like_values_are_accepted(home: Path) -> None:
    """NumPy scalars work as values, steps and params."""
    with shipyard.start_run() as run:
        shipyard.log_metric("acc", np.float32(0.75), step=np.int64(2))
        shipyard.log_param("depth", np.int64(4))
    got = shipyard.get_run(run.id)
    assert got.metrics["acc"] == 0.75
    assert got.params["depth"] == 4


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: shipyard.log_metric("bad key!", 1.0), "invalid metric key"),
        (lambda: shipyard.log_metric("", 1.0), "invalid metric key"),
        (lambda: shipyard.log_metric("a", "high"), "expected a number"),
        (lambda: shipyard.log_metric("a", 1.0, step=1.5), "expected an integer"),
        (lambda: shipyard.log_metric("a", 1.0, step=2**70), "64-bit"),
        (lambda: shipyard.log_param("p", object()), "expected str, int, float, bool or None"),
        (lambda: shipyard.log_param("p", "x" * 7000), "too long"),
        (lambda: shipyard.set_tag("t", 5), "expected a string"),
        (lambda: shipyard.log_metrics([1, 2]), "expected a mapping"),
    ],
)
def test_bad_input_raises_clear_error_and_stores_nothing(home: Path, call, message) -> None:  # type: ignore[no-untyped-def]
    """Bad input raises InvalidArgumentError naming the problem; nothing of it is stored."""
    with shipyard.start_run() as run, pytest.raises(InvalidArgumentError, match=message):
        call()
    got = shipyard.get_run(run.id)
    assert not got.summaries
    assert not got.params
    assert got.tags == {}


def test_param_conflict_raises_at_the_call(home: Path) -> None:
    """Re-logging a param with another value raises ConflictError; the same value is fine."""
    with shipyard.start_run() as run:
        shipyard.log_param("lr", 0.1)
        shipyard.log_param("lr", 0.1)
        with pytest.raises(ConflictError, match=r"already 0\.1"):
            shipyard.log_param("lr", 0.2)
    assert shipyard.get_run(run.id).params == {"lr": 0.1}


def test_second_run_needs_nested(home: Path) -> None:
    """Starting a run while one is active is refused unless nested=True (child run)."""
    with shipyard.start_run() as parent:
        with pytest.raises(StateError, match="already active"):
            shipyard.start_run()
        with shipyard.start_run(nested=True) as child:
            shipyard.log_metric("x", 1.0)
        assert shipyard.active_run() is parent
    assert shipyard.get_run(child.id).parent_run_id == parent.id
    assert "x" not in shipyard.get_run(parent.id).summaries


def test_resume_run_by_id_continues_steps(home: Path) -> None:
    """start_run(run_id=...) resumes a run: status RUNNING again, steps continue."""
    with shipyard.start_run() as run:
        shipyard.log_metric("loss", 1.0)
        shipyard.log_metric("loss", 0.9)
    with shipyard.start_run(run_id=run.id) as again:
        assert shipyard.get_run(run.id).status is RunStatus.RUNNING
        shipyard.log_metric("loss", 0.8)
    assert again.id == run.id
    assert shipyard.get_metric_history(run.id, "loss").steps.tolist() == [0, 1, 2]
    assert shipyard.get_run(run.id).status is RunStatus.FINISHED


def test_log_metric_without_run_starts_one(home: Path) -> None:
    """Logging with no active run starts one, as MLflow does."""
    shipyard.log_metric("x", 1.0)
    run = shipyard.active_run()
    assert run is not None
    shipyard.end_run()
    assert shipyard.get_run(run.id).metrics == {"x": 1.0}


def test_artifacts_file_and_directory_round_trip(home: Path, tmp_path: Path) -> None:
    """log_artifact and log_artifacts store content by digest; download restores it exactly."""
    (tmp_path / "report.txt").write_text("rmse 2.7\n")
    outputs = tmp_path / "outputs"
    (outputs / "plots").mkdir(parents=True)
    (outputs / "plots" / "roc.csv").write_text("0,0\n1,1\n")
    (outputs / "config.json").write_text("{}")
    with shipyard.start_run() as run:
        shipyard.log_artifact(tmp_path / "report.txt")
        shipyard.log_artifacts(outputs, artifact_path="outputs")
        shipyard.log_artifacts(outputs)
    client = shipyard.get_client()
    paths = [a.path for a in client.list_artifacts(run.id)]
    assert paths == ["config.json", "outputs", "plots", "report.txt"]
    dest = tmp_path / "restored"
    client.download_artifacts(run.id, "outputs", dest)
    assert (dest / "outputs" / "plots" / "roc.csv").read_text() == "0,0\n1,1\n"
    inner = client.list_artifacts(run.id, "outputs/plots")
    assert [a.path for a in inner] == ["outputs/plots/roc.csv"]


def test_missing_artifact_path_is_a_clear_error(home: Path, tmp_path: Path) -> None:
    """Logging a path that does not exist raises InvalidArgumentError naming it."""
    with shipyard.start_run(), pytest.raises(InvalidArgumentError, match="no such file"):
        shipyard.log_artifact(tmp_path / "nope.txt")


def test_code_and_environment_are_captured(home: Path, tmp_path: Path) -> None:
    """A script in a git repo records commit, branch, diff, untracked files and the environment."""
    repo = tmp_path / "repo"
    repo.mkdir()
    git = ["git", "-C", str(repo), "-c", "user.email=t@t", "-c", "user.name=t"]
    subprocess.run(["git", "init", "-q", "-b", "main", str(repo)], check=True)
    script = repo / "train.py"
    script.write_text(
        "import shipyard\n"
        "with shipyard.start_run(experiment='e') as run:\n"
        "    shipyard.log_metric('x', 1.0)\n"
        "print(run.id)\n"
    )
    subprocess.run([*git, "add", "train.py"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "init"], check=True)
    script.write_text(script.read_text() + "# tweak\n")
    (repo / "notes.txt").write_text("scratch")
    out = subprocess.run(
        [sys.executable, str(script), "--lr", "0.1"], capture_output=True, text=True, check=True
    )
    run = shipyard.get_run(out.stdout.strip())
    code = run.code
    assert len(code["git_commit"]) == 40
    assert code["git_branch"] == "main"
    assert code["git_dirty"] is True
    assert "+# tweak" in code["git_diff"]
    assert code["git_untracked"] == ["notes.txt"]
    assert code["argv"][1:] == ["--lr", "0.1"]
    assert (
        shipyard.get_client().blobs.get_bytes(code["git_diff_digest"]).decode() == code["git_diff"]
    )
    env = run.environment
    assert env["python"] == sys.version.split()[0]
    assert env["cpu_count"] >= 1
    assert "numpy" in {k.lower() for k in env["packages"]}


def test_flush_makes_points_visible_during_the_run(home: Path) -> None:
    """flush() returns once every point logged so far can be read back."""
    with shipyard.start_run() as run:
        for i in range(1000):
            shipyard.log_metric("x", float(i))
        assert shipyard.flush(timeout=30)
        assert len(shipyard.get_metric_history(run.id, "x")) == 1000


def test_interpreter_exit_flushes_and_finishes_the_run(home: Path) -> None:
    """A script that never ends its run still has it FINISHED with every point at exit."""
    code = (
        "import shipyard\n"
        "run = shipyard.start_run()\n"
        "for i in range(50000): shipyard.log_metric('x', float(i))\n"
        "print(run.id)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    run = shipyard.get_run(out.stdout.strip())
    assert run.status is RunStatus.FINISHED
    assert run.summaries["x"].count == 50000


def test_uncaught_exception_at_top_level_marks_failed(home: Path) -> None:
    """A script dying of an uncaught exception leaves its run FAILED."""
    code = (
        "import shipyard\nrun = shipyard.start_run()\n"
        "print(run.id, flush=True)\nraise SystemError('x')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert out.returncode != 0
    assert shipyard.get_run(out.stdout.strip()).status is RunStatus.FAILED


def test_system_metrics_are_sampled_as_metrics(home: Path) -> None:
    """log_system_metrics samples CPU and memory into system/* metrics of the run."""
    from shipyard.tracking._system import SystemMetrics

    with shipyard.start_run(log_system_metrics=True) as run:
        sampler = run._sampler
        assert isinstance(sampler, SystemMetrics)
        sample = sampler.sample()
        assert {"system/cpu_percent", "system/memory_percent"} <= set(sample)
        run.log_metrics(sample, step=0)
    got = shipyard.get_run(run.id)
    assert 0 <= got.metrics["system/memory_percent"] <= 100


def test_new_runs_under_reproduce_are_tagged(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With SHIPYARD_REPRODUCES set, a new run is tagged shipyard.reproduces; a resumed
    one is left as it was."""
    with shipyard.start_run() as before:
        pass
    monkeypatch.setenv("SHIPYARD_REPRODUCES", "ab" * 16)
    with shipyard.start_run() as run:
        pass
    with shipyard.start_run(run_id=before.id):
        pass
    assert shipyard.get_run(run.id).tags["shipyard.reproduces"] == "ab" * 16
    assert "shipyard.reproduces" not in shipyard.get_run(before.id).tags
