"""PredictionLog: sampled requests written as JSON lines to a serving run's artifacts."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from shipyard.errors import InvalidArgumentError
from shipyard.monitor import MODEL_TAG, SERVING_EXPERIMENT, URI_TAG, PredictionLog
from shipyard.monitor._log import file_name, parse_file_name
from shipyard.tracking import TrackingClient
from shipyard.types import RunStatus


def _request(rows: int, start: float = 0.0) -> tuple[dict[str, Any], dict[str, Any]]:
    inputs = {
        "distance": np.arange(rows, dtype=np.float64) + start,
        "zone": np.array(["north"] * rows, dtype=object),
    }
    return inputs, {"output": inputs["distance"] * 2}


def _lines(client: TrackingClient, run_id: str) -> list[dict[str, Any]]:
    rows = []
    for artifact in client.list_artifacts(run_id, "predictions"):
        rows += [json.loads(x) for x in client.blobs.get_bytes(artifact.digest).splitlines()]
    return rows


def test_sampled_rows_land_as_artifacts_of_a_serving_run(home: Path) -> None:
    """close() writes a JSON-lines file under predictions/ of a tagged, finished run."""
    client = TrackingClient()
    log = PredictionLog(client, "rides", "models:/rides@production", sample_rate=1.0)
    inputs, outputs = _request(3)
    log.record(2, inputs, outputs, 3)
    log.close()
    assert log.run_id is not None
    assert (log.written, log.files, log.failures) == (3, 1, 0)
    run = client.get_run(log.run_id)
    assert run.name == "serve rides"
    assert run.status is RunStatus.FINISHED
    assert run.tags[MODEL_TAG] == "rides"
    assert run.tags[URI_TAG] == "models:/rides@production"
    assert client.store.get_experiment(run.experiment_id).name == SERVING_EXPERIMENT
    (artifact,) = client.list_artifacts(log.run_id, "predictions")
    assert artifact.path.startswith("predictions/")
    assert artifact.path.endswith("-000000.jsonl")
    rows = _lines(client, log.run_id)
    assert [r["inputs"] for r in rows] == [
        {"distance": 0.0, "zone": "north"},
        {"distance": 1.0, "zone": "north"},
        {"distance": 2.0, "zone": "north"},
    ]
    assert [r["outputs"] for r in rows] == [{"output": 0.0}, {"output": 2.0}, {"output": 4.0}]
    assert {r["version"] for r in rows} == {2}
    assert abs(rows[0]["ts"] - time.time()) < 60


def test_the_file_name_carries_its_first_row_time(home: Path) -> None:
    """The name parses back to the first row's time (to the microsecond) and the sequence."""
    stamp = 1714564984.123456
    name = file_name(stamp, 7)
    assert name == "20240501T120304.123456Z-000007.jsonl"
    parsed = parse_file_name(f"predictions/{name}")
    assert parsed is not None
    assert parsed[0] == pytest.approx(stamp, abs=1e-6)
    assert parsed[1] == 7
    assert parse_file_name("predictions/notes.txt") is None


def test_the_sampling_rate_is_honoured_per_request(home: Path) -> None:
    """At 10%, about a tenth of 2000 requests are kept, each with all its rows."""
    log = PredictionLog(TrackingClient(), "m", "models:/m/1", sample_rate=0.1, seed=42)
    for i in range(2000):
        inputs, outputs = _request(4, start=i * 10)
        log.record(1, inputs, outputs, 4)
    kept = log.pending_rows
    assert kept % 4 == 0
    assert 150 * 4 <= kept <= 250 * 4
    log.close()
    rows = _lines(TrackingClient(), str(log.run_id))
    starts = sorted({r["inputs"]["distance"] // 10 for r in rows})
    assert len(rows) == 4 * len(starts)  # whole requests


def test_nothing_is_written_at_rate_zero(home: Path) -> None:
    """Rate 0 keeps nothing and creates no run."""
    log = PredictionLog(TrackingClient(), "m", "models:/m/1", sample_rate=0.0)
    for _ in range(100):
        log.record(1, *_request(2), rows=2)
    log.close()
    assert log.run_id is None
    assert log.written == 0


def test_values_are_plain_json_with_null_for_nan(home: Path) -> None:
    """NaN, inf, None become null; tensors rows are lists; images are left out."""
    client = TrackingClient()
    log = PredictionLog(client, "m", "models:/m/1", sample_rate=1.0)
    inputs = {
        "x": np.array([1.5, np.nan, np.inf]),
        "s": np.array(["a", None, float("nan")], dtype=object),
        "n": np.array([1, 2, 3], dtype=np.int32),
        "b": np.array([True, False, True]),
        "emb": np.array([[1.0, np.nan], [2.0, 3.0], [4.0, 5.0]], dtype=np.float32),
        "image": np.zeros((3, 3, 32, 32), dtype=np.float32),
        "when": np.array(["2024-05-01T12:00", "NaT", "2024-05-02"], dtype="datetime64[s]"),
    }
    log.record(1, inputs, {"label": np.array(["yes", "no", "yes"])}, 3)
    log.close()
    rows = _lines(client, str(log.run_id))
    assert rows[1]["inputs"] == {
        "x": None,
        "s": None,
        "n": 2,
        "b": False,
        "emb": [2.0, 3.0],
        "when": None,
    }
    assert rows[0]["inputs"]["emb"] == [1.0, None]
    assert rows[0]["inputs"]["when"] == "2024-05-01T12:00:00"
    assert rows[2]["inputs"]["x"] is None
    assert rows[2]["inputs"]["s"] is None
    assert [r["outputs"]["label"] for r in rows] == ["yes", "no", "yes"]


def test_the_writer_thread_flushes_on_rows_and_on_time(home: Path) -> None:
    """flush_rows pending wake the writer; a lone row is written after flush_seconds."""
    client = TrackingClient()
    log = PredictionLog(
        client, "m", "models:/m/1", sample_rate=1.0, flush_rows=10, flush_seconds=0.3
    )
    log.record(1, *_request(12), rows=12)
    deadline = time.monotonic() + 20
    while log.files < 1 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert log.written == 12
    log.record(1, *_request(1), rows=1)
    while log.files < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert log.written == 13
    log.close()
    names = [a.path for a in client.list_artifacts(str(log.run_id), "predictions")]
    assert len(names) == 2
    starts = [parse_file_name(n) for n in sorted(names)]
    assert starts == sorted(starts)  # type: ignore[type-var]


def test_a_failing_store_is_logged_and_counted_never_raised(
    home: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Blobs that cannot be written: flush returns 0, logs a warning, keeps the rows."""
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the blob store should be")
    client = TrackingClient(blob_uri=str(blocker / "blobs"))
    log = PredictionLog(client, "m", "models:/m/1", sample_rate=1.0)
    log.record(1, *_request(5), rows=5)
    with caplog.at_level(logging.WARNING, logger="shipyard.monitor"):
        assert log.flush() == 0
        log.close()
    assert log.failures >= 2  # the flush, and the one in close
    assert log.pending_rows == 5  # kept for a retry that never succeeded
    assert any("cannot write 5 sampled rows" in r.getMessage() for r in caplog.records)


def test_rows_beyond_the_cap_are_dropped_and_counted(home: Path) -> None:
    """With max_pending_rows=10, a stuck writer keeps 10 rows and drops the rest."""
    log = PredictionLog(
        TrackingClient(),
        "m",
        "models:/m/1",
        sample_rate=1.0,
        flush_rows=1000,
        max_pending_rows=10,
    )
    for _ in range(4):
        log.record(1, *_request(4), rows=4)
    assert log.pending_rows == 8
    assert log.dropped == 8
    log.close()
    assert log.written == 8


def test_records_after_close_are_ignored(home: Path) -> None:
    """close() is final and idempotent."""
    log = PredictionLog(TrackingClient(), "m", "models:/m/1", sample_rate=1.0)
    log.close()
    log.record(1, *_request(2), rows=2)
    log.close()
    assert log.pending_rows == 0
    assert log.run_id is None


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"sample_rate": 1.5}, "sample_rate"),
        ({"sample_rate": "all"}, "sample_rate"),
        ({"flush_rows": 0}, "flush_rows"),
        ({"flush_seconds": 0}, "flush_seconds"),
        ({"max_pending_rows": -1}, "max_pending_rows"),
    ],
)
def test_invalid_settings_are_refused(home: Path, kwargs: dict[str, Any], match: str) -> None:
    """Rates outside [0, 1] and non-positive sizes or periods are InvalidArgumentError."""
    with pytest.raises(InvalidArgumentError, match=match):
        PredictionLog(TrackingClient(), "m", "models:/m/1", **kwargs)
