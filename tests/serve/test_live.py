"""The server over time: hot swaps when an alias moves (in-flight requests finish on
the old version, a failed load keeps it serving), micro-batching under concurrent
load, drift gauges, several workers, and a bounded load test with no errors and
no memory growth."""

from __future__ import annotations

import http.client
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from serve_support import (
    Server,
    log_rides,
    log_times,
    metric,
    rides_frame,
    scrape,
    serving,
    tamper,
)

pytestmark = [pytest.mark.slow]
HERE = Path(__file__).resolve().parent


@pytest.fixture
def env(home: Path) -> dict[str, str]:
    out = {k: v for k, v in os.environ.items() if not k.startswith("SHIPYARD_")}
    out.update(SHIPYARD_HOME=str(home), PYTHONPATH=str(HERE))
    return out


def infer_times(server: Server, x: list[list[float]]) -> tuple[int, Any]:
    body = {"inputs": [{"name": "input", "shape": [len(x), 2], "datatype": "FP64", "data": x}]}
    status, doc, _ = server.request("POST", "/v2/models/times/infer", body)
    return status, doc


def wait_for(predicate: Any, timeout: float = 60, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.parametrize("batching", [False, True], ids=["direct", "batched"])
def test_hot_swap_keeps_in_flight_requests_on_the_old_version(
    home: Path, env: dict[str, str], tmp_path: Path, batching: bool
) -> None:
    import shipyard.registry

    client = shipyard.registry.client()
    log_times("times", "Times")
    client.set_alias("times", "staging", 1)
    env = {**env, "SERVE_TEST_SLEEP": "0.6"}
    args = ["models:/times@staging", "--poll-seconds", "0.1"]
    if batching:  # the old version's batcher must keep running for its requests
        args += ["--batch-max-size", "8", "--batch-max-wait-ms", "1"]
    with serving(args, env, tmp_path / "server.log") as server:
        status, doc = infer_times(server, [[1.0, 1.0]])
        assert status == 200
        assert doc["outputs"][0]["data"] == [2.0, 2.0]
        slow: dict[str, Any] = {}

        def in_flight() -> None:
            slow["result"] = infer_times(server, [[5.0, 5.0]])

        thread = threading.Thread(target=in_flight)
        thread.start()
        time.sleep(0.15)  # the request is inside the model now
        assert log_times("times", "Times3") == 2
        client.set_alias("times", "staging", 2)
        thread.join(30)
        status, doc = slow["result"]
        assert status == 200
        assert doc["model_version"] == "1"
        assert doc["outputs"][0]["data"] == [10.0, 10.0]
        wait_for(
            lambda: server.request("GET", "/v2/models/times")[1].get("versions") == ["2"],
            what="the swap to version 2",
        )
        status, doc = infer_times(server, [[1.0, 2.0]])
        assert status == 200
        assert doc["model_version"] == "2"
        assert doc["outputs"][0]["data"] == [3.0, 6.0]
        samples = scrape(server)
        assert metric(samples, "shipyard_model_swaps_total", model="times") == 1
        assert metric(samples, "shipyard_model_loaded_version", model="times") == 2

        # a version that fails to load (a tampered file) is reported; 2 keeps serving
        assert log_times("times", "Times5") == 3
        tamper(client.resolve("models:/times/3").package_digest)
        client.set_alias("times", "staging", 3)
        wait_for(
            lambda: (
                metric(scrape(server), "shipyard_model_load_failures_total", model="times") >= 1
            ),
            what="the failed load to be counted",
        )
        status, doc = infer_times(server, [[1.0, 1.0]])
        assert status == 200
        assert doc["model_version"] == "2"
        assert "cannot load times version 3" in server.logs()
        assert "version 2 keeps serving" in server.logs()
        assert server.request("GET", "/v2/health/ready")[0] == 200


def test_micro_batching_merges_concurrent_requests(
    home: Path, env: dict[str, str], tmp_path: Path
) -> None:
    import shipyard.registry

    log_times("times", "Times")
    shipyard.registry.client().set_alias("times", "staging", 1)
    args = ["models:/times@staging", "--batch-max-size", "64", "--batch-max-wait-ms", "100"]
    with serving(args, env, tmp_path / "server.log") as server:
        results: dict[int, Any] = {}
        barrier = threading.Barrier(12)

        def one(i: int) -> None:
            barrier.wait()
            results[i] = infer_times(server, [[float(i), 1.0], [0.0, float(i)]])

        threads = [threading.Thread(target=one, args=(i,)) for i in range(12)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        for i in range(12):
            status, doc = results[i]
            assert status == 200, doc
            # each request gets its own rows back, in order
            assert doc["outputs"][0]["data"] == [2.0 * i, 2.0, 0.0, 2.0 * i]
            assert doc["outputs"][0]["shape"] == [2, 2]
        samples = scrape(server)
        calls = metric(samples, "shipyard_batch_size_count", model="times")
        rows = metric(samples, "shipyard_batch_size_sum", model="times")
        assert rows == 24
        assert calls < 12  # some requests shared a model call


def test_drift_gauges_flag_the_shifted_feature(
    home: Path, env: dict[str, str], tmp_path: Path
) -> None:
    import shipyard.registry

    log_rides("rides", export=False)
    shipyard.registry.client().set_alias("rides", "staging", 1)
    with serving(["models:/rides@staging"], env, tmp_path / "server.log") as server:
        frame = rides_frame(400, seed=3, shift=15.0)  # distance drifts; zone does not
        body = {"dataframe_split": {"columns": list(frame.columns), "data": frame.values.tolist()}}
        assert server.request("POST", "/invocations", body)[0] == 200
        samples = scrape(server)
        distance = metric(samples, "shipyard_input_drift_psi", model="rides", feature="distance")
        zone = metric(samples, "shipyard_input_drift_psi", model="rides", feature="zone")
        assert distance > 0.25, samples
        assert zone < 0.1, samples
        assert metric(samples, "shipyard_drift_window_rows", model="rides") == 400


def test_two_workers_share_the_port_and_the_counters(
    home: Path, env: dict[str, str], tmp_path: Path
) -> None:
    import shipyard.registry

    log_times("times", "Times")
    shipyard.registry.client().set_alias("times", "staging", 1)
    with serving(["models:/times@staging", "--workers", "2"], env, tmp_path / "log") as server:
        for _ in range(20):
            assert infer_times(server, [[1.0, 1.0]])[0] == 200
        samples = scrape(server)
        assert metric(samples, "shipyard_requests_total", model="times", status="200") == 20


def _rss(pid: int) -> int:
    import psutil

    return int(psutil.Process(pid).memory_info().rss)


@pytest.fixture
def rides_server(home: Path, env: dict[str, str], tmp_path: Path) -> Iterator[Server]:
    import shipyard.registry

    log_rides("rides")
    shipyard.registry.client().set_alias("rides", "staging", 1)
    with serving(["models:/rides@staging"], env, tmp_path / "server.log") as server:
        yield server


def test_bounded_load_no_errors_no_memory_growth(rides_server: Server) -> None:
    """8 keep-alive clients, good and bad requests mixed: every answer is the
    expected one, and the server's memory levels off."""
    host, port = rides_server.url.removeprefix("http://").split(":")
    frame = rides_frame(1, seed=4)
    good = (
        b'{"dataframe_split": {"columns": ["distance", "passengers", "zone"], "data": '
        + f'[[{frame.distance[0]}, {frame.passengers[0]}, "{frame.zone[0]}"]]'.encode()
        + b"}}"
    )
    bad = b'{"dataframe_split": {"columns": ["distance"], "data": [["x"]]}}'
    errors: list[str] = []

    def client(n: int) -> None:
        conn = http.client.HTTPConnection(host, int(port), timeout=30)
        try:
            for i in range(n):
                body = bad if i % 10 == 9 else good
                conn.request("POST", "/invocations", body, {"content-type": "application/json"})
                resp = conn.getresponse()
                resp.read()
                want = 400 if body is bad else 200
                if resp.status != want:
                    errors.append(f"{resp.status} for {'bad' if body is bad else 'good'}")
        finally:
            conn.close()

    def burst(n: int) -> None:
        threads = [threading.Thread(target=client, args=(n,)) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)

    burst(150)  # warm up: allocator pools, caches, metric children
    before = _rss(rides_server.proc.pid)
    burst(500)
    after = _rss(rides_server.proc.pid)
    assert not errors, errors[:5]
    assert after - before < 16 * 2**20, (before, after)
    samples = scrape(rides_server)
    assert metric(samples, "shipyard_requests_total", model="rides", status="200") == 8 * 585
    assert metric(samples, "shipyard_requests_total", model="rides", status="400") == 8 * 65
    assert np.isfinite(metric(samples, "shipyard_request_duration_seconds_sum", model="rides"))


def test_sampled_prediction_log_feeds_shipyard_monitor(
    home: Path, env: dict[str, str], tmp_path: Path
) -> None:
    """Every request logged (rate 1), flushed when the server stops gracefully, and
    ``shipyard monitor`` reports the drifted feature from those files."""
    import json
    import subprocess
    import sys

    import shipyard.registry

    log_rides("rides", export=False)
    shipyard.registry.client().set_alias("rides", "staging", 1)
    args = ["models:/rides@staging", "--log-sample-rate", "1"]
    with serving(args, env, tmp_path / "server.log") as server:
        frame = rides_frame(300, seed=9, shift=15.0)
        for start in range(0, 300, 50):
            part = frame.iloc[start : start + 50]
            body = {
                "dataframe_split": {"columns": list(part.columns), "data": part.values.tolist()}
            }
            assert server.request("POST", "/invocations", body)[0] == 200
    # the context stopped the server with SIGTERM: the log was flushed on the way out
    result = subprocess.run(
        [sys.executable, "-m", "shipyard.cli", "monitor", "models:/rides@staging", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["rows"] == 300
    status = {f["name"]: f["status"] for f in report["features"]}
    assert status["distance"] == "drift"
    assert status["zone"] == "stable"
