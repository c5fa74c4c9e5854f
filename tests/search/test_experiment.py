"""The experiment driver end to end: real trial processes, the real store.

Trials are ``tests/search/trials/quadratic.py``, a NumPy Core API script, so a
segment costs a process start, not a model.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

import shipyard
from shipyard.errors import InvalidArgumentError, NotFoundError, StateError
from shipyard.search import (
    LocalExecutor,
    parse_config,
    read_state,
    resume_experiment,
    run_experiment,
)
from shipyard.types import RunStatus

TRIALS = Path(__file__).parent / "trials"
SHIPYARD = [sys.executable, "-m", "shipyard.cli"]


def config(**over: Any) -> Any:
    base: dict[str, Any] = {
        "name": "quad",
        "trial": "quadratic.py",
        "workdir": str(TRIALS),
        "space": {"x": {"type": "float", "low": -1.0, "high": 1.0}},
        "metric": "val_loss",
        "mode": "min",
        "resource": {"hparam": "epochs", "max": 3},
        "searcher": {"name": "random", "max_trials": 4, "seed": 1},
        "max_concurrent": 2,
    }
    base.update(over)
    return parse_config(base)


def history(run_id: str, key: str = "val_loss") -> list[int]:
    try:
        return [int(s) for s in shipyard.get_metric_history(run_id, key).steps]
    except NotFoundError:  # nothing reported yet
        return []


def test_random_search_tracks_every_trial(home: Path) -> None:
    """Every trial is a child run with its hparams, metrics and code version; the
    state names the best trial, the one closest to x=0.3."""
    exp_id, state = run_experiment(config())
    assert state.status == "finished"
    assert len(state.trials) == 4
    assert all(t.state == "completed" and t.resource == 3 for t in state.trials.values())
    xs = {t.trial_id: t.config["x"] for t in state.trials.values()}
    assert state.best == min(xs, key=lambda i: abs(xs[i] - 0.3))
    for t in state.trials.values():
        run = shipyard.get_run(t.run_id)
        assert run.status is RunStatus.FINISHED
        assert run.parent_run_id == exp_id
        assert run.params["x"] == t.config["x"]
        assert run.params["epochs"] == 3
        assert history(t.run_id) == [0, 1, 2]
        assert t.values["val_loss"] == pytest.approx((t.config["x"] - 0.3) ** 2 + 1 / 3)
    search_run = shipyard.get_run(exp_id)
    assert search_run.status is RunStatus.FINISHED
    assert search_run.tags["shipyard.search.best_run"] == state.trials[state.best].run_id  # type: ignore[index]
    assert read_state(shipyard.get_client(), exp_id).to_json() == state.to_json()


def test_asha_promotes_from_checkpoints(home: Path) -> None:
    """ASHA pauses trials at rungs and continues the promoted ones from their
    checkpoint: a promoted trial's history has each step once, no restart."""
    cfg = config(
        resource={"hparam": "epochs", "max": 9, "min": 1},
        searcher={"name": "asha", "max_trials": 9, "seed": 0, "divisor": 3, "mode": "aggressive"},
    )
    _, state = run_experiment(cfg)
    assert state.status == "finished"
    reached = sorted(t.resource for t in state.trials.values())
    assert reached.count(9) >= 1, reached
    assert reached.count(1) >= 3, reached  # most trials stop at the first rung
    for t in state.trials.values():
        steps = history(t.run_id)
        assert steps == list(range(int(t.resource))), (t.trial_id, steps)
        if t.resource == 9:
            assert t.segments >= 3
            assert t.state == "completed"
        else:
            assert t.state == "stopped"
    best = state.trials[state.best]  # type: ignore[index]
    assert best.resource == 9
    # promotions decided while the trial waited at its rung went on in its process
    assert sum(t.processes for t in state.trials.values()) < sum(
        t.segments for t in state.trials.values()
    )


def test_crashed_trial_is_retried_from_its_checkpoint(home: Path, tmp_path: Path) -> None:
    """A crash is retried (from the checkpoint, same run); a trial that keeps
    crashing fails alone and the experiment goes on."""
    marker = tmp_path / "crashed"
    cfg = config(
        hparams={"crash_at": 1, "crash_marker": str(marker)},
        searcher={"name": "random", "max_trials": 2, "seed": 3},
        retries=1,
    )
    _, state = run_experiment(cfg)
    assert marker.exists()
    assert all(t.state == "completed" for t in state.trials.values()), state.trials
    crashed = [t for t in state.trials.values() if t.segments == 2]
    assert len(crashed) == 1
    assert history(crashed[0].run_id) == [0, 1, 2]

    _, state = run_experiment(config(hparams={"crash_at": 0}, retries=1,
                                     searcher={"name": "random", "max_trials": 2}))  # fmt: skip
    assert state.status == "finished"
    assert all(t.state == "failed" for t in state.trials.values())
    t = next(iter(state.trials.values()))
    assert "status 3" in (t.error or "")
    assert shipyard.get_run(t.run_id).status is RunStatus.FAILED
    logs = shipyard.get_client().list_artifacts(t.run_id, "logs")
    assert logs, "the failed trial's log is kept with its run"


def test_config_errors_name_the_field() -> None:
    with pytest.raises(InvalidArgumentError, match=r"searcher.max_trials"):
        config(searcher={"name": "random", "max_trials": 0})
    with pytest.raises(InvalidArgumentError, match=r"space.x.typ.*unknown setting"):
        config(space={"x": {"typ": "float", "low": 0, "high": 1}})
    with pytest.raises(InvalidArgumentError, match=r"needs resource"):
        config(resource=None, searcher={"name": "asha"})
    with pytest.raises(InvalidArgumentError, match=r"metric"):
        config(metric=None)
    with pytest.raises(InvalidArgumentError, match=r"both searched"):
        config(hparams={"x": 1})
    with pytest.raises(InvalidArgumentError, match=r"contract"):
        config(contract={"latency_p99": 5})


def test_multi_objective_returns_the_pareto_front(home: Path) -> None:
    """Two objectives in tension (val_loss wants x near 0.3, x_abs wants x near 0):
    the front is the trials no other trial beats on both."""
    cfg = config(
        metric=None,
        objectives=[{"metric": "val_loss", "mode": "min"}, {"metric": "x_abs", "mode": "min"}],
        searcher={"name": "grid", "max_trials": 20, "float_points": 5},
        space={"x": {"type": "float", "low": -0.5, "high": 0.5}},
    )
    _, state = run_experiment(cfg)
    xs = {t.trial_id: t.config["x"] for t in state.trials.values()}
    front = sorted(xs[i] for i in state.front)
    assert front == pytest.approx([0.0, 0.25])  # -0.5 and -0.25 are dominated by 0, 0.5 by 0.25


def _start_cli(home: Path, *args: str) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHIPYARD_")}
    env.update(SHIPYARD_HOME=str(home), COLUMNS="200", NO_COLOR="1")
    return subprocess.Popen(
        [*SHIPYARD, *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def _wait_for(predicate: Any, timeout: float = 120.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError("timed out")


def _reported(client: Any, exp_id: str, n: int) -> bool:
    """Some trial reported its metric at least ``n`` times."""
    try:
        trials = read_state(client, exp_id).trials.values()
    except Exception:
        return False
    return any(len(history(t.run_id)) >= n for t in trials)


def _experiment_id(home: Path) -> str:
    client = shipyard.get_client()

    def found() -> str | None:
        try:
            runs = client.search_runs(filter="tags.`shipyard.search` = 'experiment'")
        except Exception:
            return None
        return runs.items[0].id if runs.items else None

    return str(_wait_for(found))


@pytest.mark.slow
def test_pause_and_resume_from_another_terminal(home: Path, tmp_path: Path, shipyard_cli) -> None:  # type: ignore[no-untyped-def]
    """`experiment pause` checkpoints the running trials and stops the driver;
    `resume` continues them (no step twice) to the end."""
    yaml_file = tmp_path / "search.yaml"
    cfg = config(hparams={"sleep": 0.25}, resource={"hparam": "epochs", "max": 20},
                 searcher={"name": "random", "max_trials": 3, "seed": 2})  # fmt: skip
    yaml_file.write_text(json.dumps(cfg.model_dump(mode="json")))
    driver = _start_cli(home, "experiment", "run", str(yaml_file), "--no-progress")
    exp_id = _experiment_id(home)
    client = shipyard.get_client()
    _wait_for(
        lambda: any(len(history(t.run_id)) >= 1 for t in read_state(client, exp_id).trials.values())
    )
    done = shipyard_cli("experiment", "pause", exp_id)
    assert done.returncode == 0, done.stderr
    out, err = driver.communicate(timeout=120)
    assert driver.returncode == 0, err
    state = read_state(client, exp_id)
    assert state.status == "paused"
    assert "resume" in out + err
    assert any(t.resource < 20 for t in state.trials.values())
    resumed = shipyard_cli("experiment", "resume", exp_id, "--no-progress", "--json")
    assert resumed.returncode == 0, resumed.stderr
    final = json.loads(resumed.stdout)
    assert final["status"] == "finished"
    assert len(final["trials"]) == 3
    for t in final["trials"]:
        assert t["state"] == "completed"
        assert history(t["run_id"]) == list(range(20))
    shown = shipyard_cli("experiment", "show", exp_id[-10:])
    assert shown.returncode == 0, shown.stderr
    assert "finished" in shown.stdout


@pytest.mark.slow
def test_crashed_driver_resumes_where_it_stood(home: Path, tmp_path: Path, shipyard_cli) -> None:  # type: ignore[no-untyped-def]
    """SIGKILL the driver mid-search: resume finds its trials (still running ones
    are asked to pause first) and finishes with every trial complete."""
    yaml_file = tmp_path / "search.yaml"
    cfg = config(hparams={"sleep": 0.3}, resource={"hparam": "epochs", "max": 5},
                 searcher={"name": "random", "max_trials": 3, "seed": 4})  # fmt: skip
    yaml_file.write_text(json.dumps(cfg.model_dump(mode="json")))
    driver = _start_cli(home, "experiment", "run", str(yaml_file), "--no-progress")
    exp_id = _experiment_id(home)
    client = shipyard.get_client()
    _wait_for(
        lambda: any(len(history(t.run_id)) >= 2 for t in read_state(client, exp_id).trials.values())
    )
    os.kill(driver.pid, signal.SIGKILL)
    driver.communicate(timeout=30)
    busy = shipyard_cli("experiment", "resume", exp_id, "--no-progress", "--json")
    assert busy.returncode == 0, busy.stderr
    final = json.loads(busy.stdout)
    assert final["status"] == "finished"
    assert sorted(t["state"] for t in final["trials"]) == ["completed"] * 3
    for t in final["trials"]:
        steps = history(t["run_id"])
        assert sorted(set(steps)) == list(range(5))


def test_resume_refuses_a_finished_experiment(home: Path) -> None:
    exp_id, _ = run_experiment(config(searcher={"name": "random", "max_trials": 1}))
    with pytest.raises(StateError, match="finished"):
        resume_experiment(exp_id)


def _launch(i: int, code: str, where: Path, *, cpus: float = 1, gpus: int = 0) -> Any:
    from shipyard.search._executor import Launch

    argv = [sys.executable, "-c", code]
    return Launch(i, f"run{i}", argv, {}, str(where), cpus=cpus, gpus=gpus,
                  log_path=str(where / f"{i}.log"))  # fmt: skip


def _wait_all(ex: LocalExecutor, n: int) -> dict[int, Any]:
    ended: dict[int, Any] = {}
    deadline = time.monotonic() + 60
    while len(ended) < n and time.monotonic() < deadline:
        ended.update({e.trial_id: e for e in ex.wait(5)})
    return ended


def test_local_executor_slots_and_gpus(tmp_path: Path) -> None:
    """Slots count CPUs and GPUs; each GPU trial gets its own devices; a trial
    without GPUs sees none."""
    ex = LocalExecutor(cpus=2, gpus=["0", "1"])
    show = "import os, time; print(repr(os.environ['CUDA_VISIBLE_DEVICES'])); time.sleep(0.5)"
    try:
        assert ex.free_slots(1, 1) == 2
        ex.start(_launch(0, show, tmp_path, gpus=1))
        ex.start(_launch(1, show, tmp_path, gpus=1))
        assert ex.free_slots(1, 0) == 0
        assert ex.free_slots(0.5, 1) == 0
        ended = _wait_all(ex, 2)
        assert [ended[i].returncode for i in (0, 1)] == [0, 0]
        seen = sorted((tmp_path / f"{i}.log").read_text().strip() for i in (0, 1))
        assert seen == ["'0'", "'1'"]
        ex.start(_launch(2, show, tmp_path, cpus=0.5))
        assert _wait_all(ex, 1)[2].returncode == 0
        assert (tmp_path / "2.log").read_text().strip() == "''"
        with pytest.raises(InvalidArgumentError, match="GPUs"):
            ex.check_fits(1, 3)
        with pytest.raises(InvalidArgumentError, match="CPUs"):
            ex.check_fits(4, 0)
    finally:
        ex.close()


def test_local_executor_terminate_and_kill(tmp_path: Path) -> None:
    """terminate() is SIGTERM to the trial's process group, kill() SIGKILL."""
    ex = LocalExecutor(max_concurrent=2, cpus=2, gpus=[])
    marker = tmp_path / "term"
    graceful = (
        "import signal, sys, time, pathlib\n"
        "def on_term(*a):\n"
        f"    pathlib.Path({str(marker)!r}).write_text('x')\n"
        "    sys.exit(0)\n"
        "signal.signal(signal.SIGTERM, on_term)\n"
        "print('ready', flush=True)\n"
        "time.sleep(60)\n"
    )
    stubborn = (
        "import signal, time\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "print('ready', flush=True)\n"
        "time.sleep(60)\n"
    )

    def ready(i: int) -> bool:
        log = tmp_path / f"{i}.log"
        return log.exists() and "ready" in log.read_text()

    try:
        ex.start(_launch(0, graceful, tmp_path))
        ex.start(_launch(1, stubborn, tmp_path))
        _wait_for(lambda: ready(0) and ready(1), 30)
        ex.terminate(0)
        ex.kill(1)
        ended = _wait_all(ex, 2)
        assert ended[0].returncode == 0
        assert marker.exists()
        assert ended[1].returncode == -signal.SIGKILL
        assert "ready" in ended[1].log_tail
    finally:
        ex.close()


@pytest.mark.slow
def test_contract_checked_per_trial_is_an_objective(home: Path) -> None:
    """With a contract, each trial's logged model is timed after training: the
    figures are run metrics (contract.latency_p99_ms) and a multi-objective search
    optimises them beside the metric."""
    cfg = config(
        trial="ridge.py",
        space={"alpha": {"type": "categorical", "choices": [0.01, 100.0]}},
        metric=None,
        objectives=[
            {"metric": "val_loss", "mode": "min"},
            {"metric": "contract.latency_p99_ms", "mode": "min"},
        ],
        resource=None,
        searcher={"name": "grid", "max_trials": 2},
        contract={"latency_p99_ms": 1000, "batch_size": 1},
    )
    _, state = run_experiment(cfg)
    assert [t.state for t in state.trials.values()] == ["completed", "completed"]
    for t in state.trials.values():
        run = shipyard.get_run(t.run_id)
        assert run.tags["shipyard.contract.passed"] == "true"
        report = json.loads(run.tags["shipyard.contract"])
        assert [g["name"] for g in report["gates"]] == ["signature", "latency"]
        assert 0 < t.values["contract.latency_p99_ms"] < 1000
    assert state.front, "a Pareto front over (val_loss, latency)"
    low_alpha = next(t for t in state.trials.values() if t.config["alpha"] == 0.01)
    assert low_alpha.trial_id in state.front  # the better val_loss is never dominated


def test_cli_reports_a_bad_config_and_lists_experiments(
    home: Path, tmp_path: Path, shipyard_cli: Any
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: q\ntrial: quadratic.py\nspace: {x: {type: float, low: 1, high: 0}}\n")
    done = shipyard_cli("experiment", "run", str(bad))
    assert done.returncode != 0
    assert "metric" in done.stderr  # no metric given
    assert "Traceback" not in done.stderr
    empty = shipyard_cli("experiment", "list")
    assert empty.returncode == 0
    assert "no search experiments" in empty.stderr + empty.stdout
    exp_id, _ = run_experiment(config(searcher={"name": "random", "max_trials": 1}))
    listed = shipyard_cli("experiment", "list", "--json")
    assert [e["id"] for e in json.loads(listed.stdout)] == [exp_id]


@pytest.mark.slow
def test_kill_from_another_terminal_ends_it_for_good(
    home: Path, tmp_path: Path, shipyard_cli: Any
) -> None:
    yaml_file = tmp_path / "search.yaml"
    cfg = config(hparams={"sleep": 0.5}, resource={"hparam": "epochs", "max": 20},
                 searcher={"name": "random", "max_trials": 4})  # fmt: skip
    yaml_file.write_text(json.dumps(cfg.model_dump(mode="json")))
    driver = _start_cli(home, "experiment", "run", str(yaml_file), "--no-progress")
    exp_id = _experiment_id(home)
    client = shipyard.get_client()
    _wait_for(lambda: _reported(client, exp_id, 1))
    assert shipyard_cli("experiment", "kill", exp_id).returncode == 0
    driver.communicate(timeout=120)
    state = read_state(client, exp_id)
    assert state.status == "killed"
    assert all(t.state == "stopped" and t.resource < 20 for t in state.trials.values())
    again = shipyard_cli("experiment", "resume", exp_id)
    assert again.returncode != 0
    assert "killed" in again.stderr


@pytest.mark.slow
def test_sigterm_to_the_driver_pauses_the_experiment(
    home: Path, tmp_path: Path, shipyard_cli: Any
) -> None:
    """A terminated driver (a closed terminal, a cancelled job) pauses: its trials
    checkpoint and stop instead of running on as orphans."""
    yaml_file = tmp_path / "search.yaml"
    cfg = config(hparams={"sleep": 0.5}, resource={"hparam": "epochs", "max": 20},
                 searcher={"name": "random", "max_trials": 2})  # fmt: skip
    yaml_file.write_text(json.dumps(cfg.model_dump(mode="json")))
    driver = _start_cli(home, "experiment", "run", str(yaml_file), "--no-progress")
    exp_id = _experiment_id(home)
    client = shipyard.get_client()
    _wait_for(lambda: _reported(client, exp_id, 1))
    driver.send_signal(signal.SIGTERM)
    driver.communicate(timeout=120)
    state = read_state(client, exp_id)
    assert state.status == "paused"
    for t in state.trials.values():
        assert shipyard.get_run(t.run_id).status is RunStatus.KILLED  # resumable
