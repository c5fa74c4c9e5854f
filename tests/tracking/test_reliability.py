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
from shipyard.errors import StoreError
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
    assert writer.close(timeout=60)
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
