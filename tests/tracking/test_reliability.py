"""Tracking survives kills, concurrency and failing stores without losing points."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import shipyard
from shipyard.errors import InvalidArgumentError, StateError, StoreError
from shipyard.store import open_store
from shipyard.store._memory import MemoryStore
from shipyard.tracking._writer import RunWriter
from shipyard.types import RunStatus

pytestmark = pytest.mark.slow

KILLED_LOGGER = textwrap.dedent(
    """
    import sys, time, shipyard
    run = shipyard.start_run(experiment="kill")
    print(run.id, flush=True)
    i = 0
    while True:
        shipyard.log_metric("t", time.time(), step=i)
        i += 1
        time.sleep(0.0005)
    """
)


def test_sigkill_keeps_points_older_than_one_flush_interval(home: Path) -> None:
    """After SIGKILL, every point logged more than a flush interval before the kill is stored,
    and the run reads as KILLED."""
    proc = subprocess.Popen(
        [sys.executable, "-c", KILLED_LOGGER], stdout=subprocess.PIPE, text=True, env=os.environ
    )
    assert proc.stdout is not None
    run_id = proc.stdout.readline().strip()
    time.sleep(3.0)
    killed_at = time.time()
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    proc.stdout.close()
    hist = shipyard.get_metric_history(run_id, "t")
    assert hist.steps.tolist() == list(range(len(hist))), "a gap: points were lost"
    interval = 1.0  # SHIPYARD_FLUSH_INTERVAL default
    assert hist.values[-1] >= killed_at - interval, (
        f"last stored point was logged {killed_at - hist.values[-1]:.2f}s before the kill"
    )
    assert len(hist) > 1000
    run = shipyard.get_run(run_id)
    assert run.status is RunStatus.KILLED
    assert run.end_time is not None


WRITER = textwrap.dedent(
    """
    import sys, shipyard
    n = int(sys.argv[1])
    with shipyard.start_run(experiment="parallel", run_name=sys.argv[2]) as run:
        shipyard.log_params({"worker": sys.argv[2], "n": n})
        for i in range(n):
            shipyard.log_metrics({"a": i * 1.0, "b": -i * 1.0, "c": 0.5}, step=i)
            if i % 500 == 0:
                shipyard.set_tag("progress", str(i))
    print(run.id)
    """
)


def test_eight_processes_share_one_sqlite_store(home: Path) -> None:
    """Eight processes creating the schema and logging at once: no lock error, no lost point."""
    env = {**os.environ, "SHIPYARD_FLUSH_INTERVAL": "0.05"}
    n = 20_000
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(n), f"w{k}"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for k in range(8)
    ]
    outs = [p.communicate(timeout=300) for p in procs]
    for p, (_out, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, err
        assert "locked" not in err.lower(), err
        assert "could not write" not in err, err
    for out, _ in outs:
        run = shipyard.get_run(out.strip())
        assert run.status is RunStatus.FINISHED
        for key in ("a", "b", "c"):
            assert run.summaries[key].count == n
        hist = shipyard.get_metric_history(run.id, "a")
        assert hist.steps.tolist() == list(range(n))
        assert run.tags["progress"] == str((n - 1) // 500 * 500)


class FlakyStore(MemoryStore):
    """A real in-memory store whose writes fail while ``failing`` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.failing = False
        self.delay = 0.0
        self.calls = 0

    def log_batch(self, run_id: str, **kwargs: Any) -> None:
        self.calls += 1
        if self.delay:
            time.sleep(self.delay)
        if self.failing:
            raise StoreError("database unreachable (injected)")
        super().log_batch(run_id, **kwargs)


def _run(store: FlakyStore) -> str:
    project = store.get_or_create_project("p")
    exp = store.get_or_create_experiment(project.id, "e")
    return store.create_run(exp.id).id


def test_store_outage_is_retried_without_losing_points() -> None:
    """While the store fails, logging neither raises nor blocks; points arrive after recovery."""
    store = FlakyStore()
    run_id = _run(store)
    writer = RunWriter(store, run_id, flush_interval=0.1)
    store.failing = True
    t0 = time.perf_counter()
    for i in range(10_000):
        writer.log_metric("x", float(i), i)
    assert time.perf_counter() - t0 < 5.0
    assert not writer.flush(timeout=0.5)
    assert writer.last_error is not None
    store.failing = False
    assert writer.close(timeout=60)
    hist = store.get_metric_history(run_id, "x")
    assert hist.steps.tolist() == list(range(10_000))


def test_full_buffer_with_drop_policy_drops_and_counts() -> None:
    """With a slow store and the drop policy, the loop never waits; dropped points are counted."""
    store = FlakyStore()
    store.delay = 0.5
    run_id = _run(store)
    writer = RunWriter(
        store, run_id, flush_interval=0.1, max_buffered_points=1000, buffer_policy="drop"
    )
    t0 = time.perf_counter()
    for i in range(50_000):
        writer.log_metric("x", 1.0, i)
    elapsed = time.perf_counter() - t0
    assert not writer.close(timeout=60)  # close reports that points were dropped
    stored = store.get_run(run_id).summaries["x"].count
    assert writer.dropped_points > 0
    assert stored + writer.dropped_points == 50_000
    assert elapsed < 5.0


def test_full_buffer_with_block_policy_applies_backpressure() -> None:
    """With the block policy a full buffer makes the caller wait for room instead of dropping."""
    store = FlakyStore()
    store.delay = 0.05
    run_id = _run(store)
    writer = RunWriter(
        store, run_id, flush_interval=0.1, max_buffered_points=2000, buffer_block_timeout=30
    )
    for i in range(20_000):
        writer.log_metric("x", 1.0, i)
    assert writer.close(timeout=60)
    assert writer.dropped_points == 0
    assert store.get_run(run_id).summaries["x"].count == 20_000


def test_store_refusing_a_param_does_not_cost_the_metrics() -> None:
    """A param conflict found only by the store drops that param but keeps the metrics."""
    store = FlakyStore()
    run_id = _run(store)
    store.log_params(run_id, {"lr": 0.1})
    writer = RunWriter(store, run_id, flush_interval=0.1)
    writer.log_params({"lr": 0.2})
    writer.log_metric("x", 1.0, 0)
    assert writer.close(timeout=10)
    got = store.get_run(run_id)
    assert got.params["lr"] == 0.1
    assert got.summaries["x"].count == 1


def test_points_are_grouped_per_key_in_logging_order() -> None:
    """The writer's batches keep each key's points in the order they were logged."""
    store = open_store("memory:")
    project = store.get_or_create_project("p")
    run_id = store.create_run(store.get_or_create_experiment(project.id, "e").id).id
    writer = RunWriter(store, run_id, flush_interval=10)
    rng = np.random.default_rng(0)
    expected: dict[str, list[float]] = {"a": [], "b": [], "c": []}
    for i in range(3000):
        key = "abc"[int(rng.integers(3))]
        expected[key].append(float(i))
        writer.log_metric(key, float(i), step=7)
    assert writer.close(timeout=10)
    for key, values in expected.items():
        assert store.get_metric_history(run_id, key).values.tolist() == values


def test_exit_with_an_unreachable_store_is_bounded(home: Path, tmp_path: Path) -> None:
    """A process whose store is locked away exits within about SHIPYARD_EXIT_FLUSH_TIMEOUT."""
    import sqlite3

    db = home / "shipyard.db"
    script = textwrap.dedent(
        """
        import sys, time, shipyard
        run = shipyard.start_run()
        shipyard.flush()
        print(run.id, flush=True)
        sys.stdin.readline()
        for i in range(1000):
            shipyard.log_metric("x", float(i))
        """
    )
    env = {**os.environ, "SHIPYARD_EXIT_FLUSH_TIMEOUT": "3"}
    proc = subprocess.Popen(
        [sys.executable, "-c", script],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert proc.stdout is not None
    assert proc.stdin is not None
    proc.stdout.readline()
    locker = sqlite3.connect(db, timeout=1)
    locker.execute("BEGIN EXCLUSIVE")
    try:
        started = time.monotonic()
        proc.stdin.write("go\n")
        proc.stdin.flush()
        proc.wait(timeout=60)
        elapsed = time.monotonic() - started
    finally:
        locker.rollback()
        locker.close()
        proc.stdout.close()
        proc.stdin.close()
    assert elapsed < 15, f"exit took {elapsed:.1f}s with a 3 s exit timeout"


def test_points_logged_after_end_are_dropped_and_counted() -> None:
    """A writer closed by end() drops later points with a warning instead of buffering them."""
    store = FlakyStore()
    run_id = _run(store)
    writer = RunWriter(store, run_id, flush_interval=0.1)
    log = writer.log_metric
    log("x", 1.0, 0)
    assert writer.close(timeout=10)
    for i in range(100):
        log("x", 2.0, i + 1)
    assert writer.dropped_points == 100
    assert store.get_run(run_id).summaries["x"].count == 1


def test_carried_points_count_against_the_buffer_limit() -> None:
    """Points waiting for a retry count toward max_buffered_points, so memory stays bounded."""
    store = FlakyStore()
    store.failing = True
    run_id = _run(store)
    writer = RunWriter(
        store, run_id, flush_interval=0.05, max_buffered_points=5000, buffer_block_timeout=0.2
    )
    t0 = time.perf_counter()
    for i in range(50_000):
        writer.log_metric("x", 1.0, i)
        if i % 5000 == 0:
            time.sleep(0.1)  # let the writer fail a few times
    elapsed = time.perf_counter() - t0
    assert writer.pending() <= 5000 + 10
    assert writer.dropped_points >= 40_000
    assert elapsed < 10, "a dead store must cost the loop one block timeout, not one per call"
    store.failing = False
    assert not writer.close(timeout=30)  # points were dropped: flush reports it
    assert store.get_run(run_id).summaries["x"].count == 50_000 - writer.dropped_points


def test_bad_timestamp_is_refused_at_the_call() -> None:
    """A non-finite or non-numeric timestamp raises at log_metric; other points are unaffected."""
    store = FlakyStore()
    run_id = _run(store)
    writer = RunWriter(store, run_id, flush_interval=0.1)
    writer.log_metric("x", 1.0, 0)
    for bad in (float("nan"), "abc", float("inf")):
        with pytest.raises(InvalidArgumentError, match="timestamp"):
            writer.log_metric("y", 1.0, 0, timestamp=bad)
    with pytest.raises(InvalidArgumentError):
        writer.log_metrics({"a": 1.0, "b": "oops"})
    assert writer.close(timeout=10)
    assert set(store.get_run(run_id).summaries) == {"x"}


FORKING = textwrap.dedent(
    """
    import multiprocessing as mp, shipyard

    def work(i):
        shipyard.log_metric(f"child{i}", float(i), step=0)
        shipyard.flush(10)
        return i

    if __name__ == "__main__":
        with shipyard.start_run() as run:
            shipyard.log_metric("parent", 1.0)
            with mp.get_context("fork").Pool(2) as pool:
                assert pool.map(work, range(4)) == [0, 1, 2, 3]
            shipyard.log_metric("parent", 2.0)
        print(run.id)
    """
)


def test_forked_workers_log_to_the_parent_run(home: Path, tmp_path: Path) -> None:
    """Workers forked from a process with an active run log into it; the parent ends it."""
    script = tmp_path / "fork_log.py"
    script.write_text(FORKING)
    out = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, check=True, timeout=120
    )
    run = shipyard.get_run(out.stdout.strip())
    assert run.status is RunStatus.FINISHED
    assert {f"child{i}" for i in range(4)} <= set(run.summaries)
    assert run.summaries["parent"].count == 2


def test_resuming_a_run_that_is_still_running_is_refused(home: Path) -> None:
    """start_run(run_id=...) on a run alive in another process raises StateError."""
    script = (
        "import shipyard, sys\nr = shipyard.start_run()\n"
        "print(r.id, flush=True)\nsys.stdin.read()\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    assert proc.stdin is not None
    run_id = proc.stdout.readline().strip()
    try:
        with pytest.raises(StateError, match="still running"):
            shipyard.start_run(run_id=run_id)
    finally:
        proc.stdin.close()
        proc.wait(timeout=60)
        proc.stdout.close()
    with shipyard.start_run(run_id=run_id):
        pass
