"""The Ray executor against a real local Ray instance (2 CPUs, started once).

Trials are tiny ``python -c`` scripts; what they saw (environment, working
directory, signals, their pid) comes back through their output and files.
Without Ray these tests skip, unless ``SHIPYARD_REQUIRE_SERVICES=1``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import psutil
import pytest

from shipyard.errors import InvalidArgumentError
from shipyard.search._executor import Exit, Launch
from shipyard.search._ray import RayExecutor

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("ray")]


def require_service(name: str, problem: str) -> Any:
    """Skip without ``name``; fail under SHIPYARD_REQUIRE_SERVICES=1 (as tests/conftest.py
    does, which a test module cannot import by name: tests/train has a conftest too)."""
    if os.environ.get("SHIPYARD_REQUIRE_SERVICES") == "1":
        pytest.fail(f"{name} is required (SHIPYARD_REQUIRE_SERVICES=1): {problem}")
    pytest.skip(f"{name} is not available: {problem}")


TIMEOUT = 30.0


@pytest.fixture(scope="module")
def ray_instance() -> Iterator[ModuleType]:
    """One local Ray instance with 2 CPUs for the whole module (it takes seconds)."""
    try:
        import ray
    except ImportError as e:
        require_service("Ray", f"{e}; pip install 'shipyard[ray]'")
    import signal

    previous = signal.getsignal(signal.SIGTERM)
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        object_store_memory=100 * 1024**2,
    )
    # ray.init leaves its own SIGTERM handler in this process (the xdist worker, which
    # runs other tests next: one that sends itself SIGTERM would kill it)
    signal.signal(signal.SIGTERM, previous)
    yield ray
    ray.shutdown()
    signal.signal(signal.SIGTERM, previous)


@pytest.fixture
def executor(ray_instance: ModuleType) -> Iterator[RayExecutor]:
    """An executor on the module's Ray instance, closed after the test."""
    ex = RayExecutor()
    yield ex
    ex.close()


def trial(trial_id: int, code: str, cwd: Path, **kwargs: Any) -> Launch:
    """A trial running ``code`` with this Python."""
    return Launch(
        trial_id=trial_id,
        run_id=f"run-{trial_id}",
        argv=[sys.executable, "-c", textwrap.dedent(code)],
        env=kwargs.pop("env", {}),
        cwd=str(cwd),
        **kwargs,
    )


def wait_exits(ex: RayExecutor, n: int) -> dict[int, Exit]:
    """The next ``n`` exits, by trial id."""
    exits: dict[int, Exit] = {}
    deadline = time.monotonic() + TIMEOUT
    while len(exits) < n:
        assert time.monotonic() < deadline, f"only {sorted(exits)} ended, running {ex.running()}"
        exits.update((e.trial_id, e) for e in ex.wait(1.0))
    return exits


def read_when_written(path: Path) -> str:
    """The content of a file a trial writes, once it is there."""
    deadline = time.monotonic() + TIMEOUT
    while not (path.exists() and (text := path.read_text())):
        assert time.monotonic() < deadline, f"{path} was never written"
        time.sleep(0.05)
    return text


def gone(pid: int) -> bool:
    """True once process ``pid`` has ended (within a few seconds)."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.05)
    return False


def eventually_free(ex: RayExecutor, expected: int, cpus: float = 1.0) -> None:
    """Wait until free_slots reaches ``expected`` (Ray's availability lags a little)."""
    deadline = time.monotonic() + TIMEOUT
    while (free := ex.free_slots(cpus, 0)) != expected:
        assert time.monotonic() < deadline, f"free_slots stayed {free}, expected {expected}"
        time.sleep(0.1)


SLEEP_WITH_PID = """
    import os, pathlib, signal, time
    if os.environ.get("IGNORE_TERM"):
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    pathlib.Path(os.environ["PID_FILE"]).write_text(str(os.getpid()))
    time.sleep(120)
"""


# -- without Ray ------------------------------------------------------------------


def test_missing_ray_names_the_install(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without Ray, the first use says which extra to install."""
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(InvalidArgumentError, match=r"pip install 'shipyard\[ray\]'"):
        RayExecutor().free_slots(1, 0)


def test_max_concurrent_below_one_is_refused() -> None:
    """max_concurrent must be at least 1."""
    with pytest.raises(InvalidArgumentError, match="max_concurrent: expected an integer >= 1"):
        RayExecutor(max_concurrent=0)


# -- on Ray -------------------------------------------------------------------------


def test_env_and_cwd_reach_the_trial_process(executor: RayExecutor, tmp_path: Path) -> None:
    """The trial runs in launch.cwd with launch.env added, and no GPU when it asked none."""
    work = tmp_path / "work"
    work.mkdir()
    code = """
        import os
        print("VALUE=" + os.environ["SHIPYARD_TEST_VALUE"])
        print("CWD=" + os.getcwd())
        print("CUDA=" + repr(os.environ.get("CUDA_VISIBLE_DEVICES")))
        print("PATH_INHERITED=" + str("PATH" in os.environ))
    """
    executor.start(trial(1, code, work, env={"SHIPYARD_TEST_VALUE": "hello"}))
    assert executor.running() == [1]
    (done,) = wait_exits(executor, 1).values()
    lines = dict(line.split("=", 1) for line in done.log_tail.splitlines())
    assert done.returncode == 0
    assert lines["VALUE"] == "hello"
    assert Path(lines["CWD"]).resolve() == work.resolve()
    assert lines["CUDA"] == "''"
    assert lines["PATH_INHERITED"] == "True"
    assert executor.running() == []


def test_exit_code_and_output_tail_come_back(executor: RayExecutor, tmp_path: Path) -> None:
    """The exit status and the last 4 KiB of stdout and stderr come back in Exit."""
    code = """
        import sys
        print("x" * 10000, flush=True)
        print("to stderr", file=sys.stderr, flush=True)
        print("last line", flush=True)
        sys.exit(3)
    """
    executor.start(trial(7, code, tmp_path))
    done = wait_exits(executor, 1)[7]
    assert done.returncode == 3
    assert done.log_tail.endswith("to stderr\nlast line\n")
    assert 4000 < len(done.log_tail.encode()) <= 4096


def test_log_path_gets_each_segments_output_appended(executor: RayExecutor, tmp_path: Path) -> None:
    """Segments append to log_path (its folder is made); each Exit has its own output."""
    log = tmp_path / "logs" / "trial-1.log"
    executor.start(trial(1, "print('first segment')", tmp_path, log_path=str(log)))
    first = wait_exits(executor, 1)[1]
    executor.start(trial(1, "print('second segment')", tmp_path, log_path=str(log)))
    second = wait_exits(executor, 1)[1]
    assert log.read_text() == "first segment\nsecond segment\n"
    assert first.log_tail == "first segment\n"
    assert second.log_tail == "second segment\n"


def test_a_trial_that_cannot_start_is_a_failed_exit(executor: RayExecutor, tmp_path: Path) -> None:
    """A missing working directory (-1) or program (127) ends the trial, saying why."""
    log = tmp_path / "trial.log"
    executor.start(trial(1, "print('never')", tmp_path / "missing", log_path=str(log)))
    no_program = Launch(2, "run-2", ["no-such-program-here"], {}, str(tmp_path))
    executor.start(no_program)
    exits = wait_exits(executor, 2)
    assert exits[1].returncode == -1
    assert "cannot start trial process" in exits[1].log_tail
    assert "missing" in exits[1].log_tail
    assert log.read_text() == exits[1].log_tail
    assert exits[2].returncode == 127
    assert "no-such-program-here" in exits[2].log_tail


def test_a_dead_worker_is_a_failed_exit_and_takes_its_trial_along(
    executor: RayExecutor, tmp_path: Path
) -> None:
    """A Ray worker killed under a trial gives Exit(-1) with Ray's error, and the
    trial process does not outlive it."""
    code = """
        import os, pathlib, signal, time
        pathlib.Path(os.environ["PID_FILE"]).write_text(str(os.getpid()))
        os.kill(os.getppid(), signal.SIGKILL)  # the Ray worker running this trial
        time.sleep(120)
    """
    executor.start(trial(1, code, tmp_path, env={"PID_FILE": str(tmp_path / "pid")}))
    done = wait_exits(executor, 1)[1]
    assert done.returncode == -1
    assert "WorkerCrashedError" in done.log_tail
    assert gone(int(read_when_written(tmp_path / "pid")))


def test_two_trials_share_two_cpus_and_a_third_waits(executor: RayExecutor, tmp_path: Path) -> None:
    """With 2 CPUs two 1-CPU trials run at once, free_slots drops to 0, a third waits."""
    eventually_free(executor, 2)
    code = """
        import os, pathlib, time
        d = pathlib.Path(os.environ["DIR"])
        (d / ("started-" + os.environ["NAME"])).write_text("yes")
        while not (d / "release").exists():
            time.sleep(0.05)
    """
    for trial_id in (1, 2, 3):
        if trial_id == 3:
            read_when_written(tmp_path / "started-1")
            read_when_written(tmp_path / "started-2")  # 1 and 2 are running together
            assert executor.free_slots(1, 0) == 0
        env = {"DIR": str(tmp_path), "NAME": str(trial_id)}
        executor.start(trial(trial_id, code, tmp_path, env=env))
    time.sleep(1.0)
    assert not (tmp_path / "started-3").exists()
    assert executor.running() == [1, 2, 3]
    (tmp_path / "release").write_text("go")
    exits = wait_exits(executor, 3)
    assert {e.returncode for e in exits.values()} == {0}
    assert (tmp_path / "started-3").exists()
    eventually_free(executor, 2)


def test_free_slots_counts_fractions_gpus_and_max_concurrent(ray_instance: ModuleType) -> None:
    """Half-CPU trials fit 4 to 2 CPUs, GPU trials none, max_concurrent caps the rest."""
    ex = RayExecutor(max_concurrent=3)
    try:
        assert ex.free_slots(1, 1) == 0  # the instance has no GPU
        deadline = time.monotonic() + TIMEOUT
        while ex.free_slots(1, 0) != 2:
            assert time.monotonic() < deadline
            time.sleep(0.1)
        assert ex.free_slots(0.5, 0) == 3
        assert RayExecutor().free_slots(0.5, 0) == 4
    finally:
        ex.close()


def test_check_fits_refuses_a_trial_no_node_can_run(executor: RayExecutor) -> None:
    """check_fits accepts 2 CPUs and refuses 3 CPUs or a GPU on the 2-CPU node."""
    executor.check_fits(2, 0)
    with pytest.raises(InvalidArgumentError, match="3 CPUs and 0 GPUs"):
        executor.check_fits(3, 0)
    with pytest.raises(InvalidArgumentError, match="1 GPUs"):
        executor.check_fits(1, 1)


def test_terminate_delivers_sigterm(executor: RayExecutor, tmp_path: Path) -> None:
    """terminate sends SIGTERM: the trial's handler runs and its own exit status comes back."""
    code = """
        import os, pathlib, signal, sys, time
        def on_term(*_):
            pathlib.Path(os.environ["MARKER"]).write_text("sigterm")
            print("checkpointed", flush=True)
            sys.exit(0)
        signal.signal(signal.SIGTERM, on_term)
        pathlib.Path(os.environ["PID_FILE"]).write_text(str(os.getpid()))
        time.sleep(120)
    """
    env = {"MARKER": str(tmp_path / "marker"), "PID_FILE": str(tmp_path / "pid")}
    executor.start(trial(1, code, tmp_path, env=env))
    read_when_written(tmp_path / "pid")
    executor.terminate(1)
    done = wait_exits(executor, 1)[1]
    assert (tmp_path / "marker").read_text() == "sigterm"
    assert done.returncode == 0
    assert done.log_tail == "checkpointed\n"


def test_terminate_drops_a_trial_still_waiting_for_resources(
    executor: RayExecutor, tmp_path: Path
) -> None:
    """A trial Ray cannot place yet is cancelled by terminate and reported as -SIGTERM."""
    executor.start(trial(1, "print('never')", tmp_path, cpus=3))  # the node has 2
    assert executor.wait(0.5) == []
    executor.terminate(1)
    done = wait_exits(executor, 1)[1]
    assert done.returncode == -15
    assert "terminated" in done.log_tail


def test_kill_ends_a_trial_that_ignores_sigterm(executor: RayExecutor, tmp_path: Path) -> None:
    """A trial ignoring SIGTERM keeps running after terminate; kill ends it (-SIGKILL)."""
    env = {"PID_FILE": str(tmp_path / "pid"), "IGNORE_TERM": "1"}
    executor.start(trial(1, SLEEP_WITH_PID, tmp_path, env=env))
    pid = int(read_when_written(tmp_path / "pid"))
    executor.terminate(1)
    assert executor.wait(1.0) == []
    assert psutil.pid_exists(pid)
    executor.kill(1)
    done = wait_exits(executor, 1)[1]
    assert done.returncode == -9
    assert gone(pid)


def test_starting_ray_keeps_the_drivers_sigterm_handler(tmp_path: Path) -> None:
    """ray.init installs a SIGTERM handler and keeps it after shutdown; an executor
    that starts Ray itself gives the driver process its own handler back."""
    code = textwrap.dedent(
        """
        import signal, sys
        from shipyard.search._ray import RayExecutor
        ex = RayExecutor(init_kwargs={"num_cpus": 1, "object_store_memory": 100 * 1024**2})
        ex.free_slots(1, 0)  # connects: starts a local Ray
        kept = signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
        ex.close()
        print("kept" if kept and signal.getsignal(signal.SIGTERM) is signal.SIG_DFL else "lost")
        """
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, check=False, cwd=tmp_path)  # fmt: skip
    assert done.stdout.strip().splitlines()[-1:] == ["kept"], done.stderr[-2000:]


def test_close_leaves_no_trial_process_alive(ray_instance: ModuleType, tmp_path: Path) -> None:
    """close kills running trials, and keeps the Ray instance it did not start."""
    ex = RayExecutor()
    for trial_id in (1, 2):
        env = {"PID_FILE": str(tmp_path / f"pid-{trial_id}"), "IGNORE_TERM": "1"}
        ex.start(trial(trial_id, SLEEP_WITH_PID, tmp_path, env=env))
    pids = [int(read_when_written(tmp_path / f"pid-{i}")) for i in (1, 2)]
    ex.close()
    assert all(gone(pid) for pid in pids)
    assert ex.running() == []
    assert ray_instance.is_initialized()
    ex.close()  # idempotent


def test_starting_a_running_trial_id_is_refused(executor: RayExecutor, tmp_path: Path) -> None:
    """A trial id can run once at a time."""
    env = {"PID_FILE": str(tmp_path / "pid")}
    executor.start(trial(1, SLEEP_WITH_PID, tmp_path, env=env))
    with pytest.raises(InvalidArgumentError, match="trial 1 is already running"):
        executor.start(trial(1, SLEEP_WITH_PID, tmp_path, env=env))


def test_an_experiment_runs_its_trials_as_ray_tasks(
    ray_instance: ModuleType, home: Path, executor: RayExecutor
) -> None:
    """The driver with the Ray executor: ASHA's promoted trials continue from their
    checkpoints in the blob store (each step logged once), results in the store."""
    import shipyard
    from shipyard.search import parse_config, run_experiment

    config = parse_config({
        "name": "on-ray", "trial": "quadratic.py",
        "workdir": str(Path(__file__).parent / "trials"),
        "space": {"x": {"type": "float", "low": -1.0, "high": 1.0}},
        "metric": "val_loss", "resource": {"hparam": "epochs", "max": 4, "min": 1},
        "searcher": {"name": "asha", "max_trials": 4, "divisor": 2, "mode": "aggressive"},
    })  # fmt: skip
    _, state = run_experiment(config, executor=executor)
    assert state.status == "finished"
    assert max(t.resource for t in state.trials.values()) == 4
    for t in state.trials.values():
        steps = [int(s) for s in shipyard.get_metric_history(t.run_id, "val_loss").steps]
        assert steps == list(range(int(t.resource)))
    promoted = [t for t in state.trials.values() if t.segments > 1]
    assert promoted, "ASHA promoted no trial"
