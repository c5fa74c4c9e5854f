"""monitor_report and ``shipyard monitor``: drift of a registered version from its
sampled prediction logs, over a window."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import shipyard
from shipyard.errors import InvalidArgumentError, NotFoundError
from shipyard.monitor import PredictionLog, monitor_report
from shipyard.tracking import TrackingClient

Cli = Callable[..., "subprocess.CompletedProcess[str]"]
URI = "models:/rides@staging"


def _frame(rows: int, seed: int, shift: float = 0.0) -> Any:
    import pandas as pd

    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "distance": rng.gamma(2.0, 2.0, rows) + shift,
            "passengers": rng.integers(1, 5, rows),
            "zone": rng.choice(["north", "south", "east"], rows),
        }
    )


@pytest.fixture
def model(home: Path) -> Any:
    """Version 1 of 'rides' (alias staging): a regression pipeline logged with
    5000 rows of profile data."""
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LinearRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    frame = _frame(5000, seed=0)
    features = ColumnTransformer(
        [
            ("num", StandardScaler(), ["distance", "passengers"]),
            ("cat", OneHotEncoder(handle_unknown="ignore"), ["zone"]),
        ]
    )
    pipeline = Pipeline([("features", features), ("model", LinearRegression())])
    pipeline.fit(frame, frame["distance"] * 2 + frame["passengers"])
    with shipyard.start_run(experiment="rides"):
        info = shipyard.log_model(pipeline, "model", input_example=frame[:5], profile_data=frame)
    mv = shipyard.register_model(info.uri, "rides")
    shipyard.registry.client().set_alias("rides", "staging", mv.version)
    return pipeline


def _serve(
    log: PredictionLog, pipeline: Any, frame: Any, version: int = 1, batch: int = 50
) -> None:
    """What a server does per request: decoded columns in, named outputs out."""
    for i in range(0, len(frame), batch):
        part = frame.iloc[i : i + batch]
        inputs = {c: part[c].to_numpy() for c in part.columns}
        log.record(version, inputs, {"output": pipeline.predict(part)}, len(part))


def test_the_report_flags_the_drifted_feature(model: Any) -> None:
    """Served rows with 'distance' shifted: it drifts; passengers and zone are stable."""
    with PredictionLog(TrackingClient(), "rides", URI, sample_rate=1.0) as log:
        _serve(log, model, _frame(1500, seed=1, shift=6.0))
    report = monitor_report(URI)
    assert (report.model, report.version, report.current_version) == ("rides", 1, 1)
    assert report.rows == 1500
    assert report.versions == {1: 1500}
    assert (report.runs, report.files) == (1, log.files)
    assert report.profile_source == "profile_data"
    assert report.profile_rows == 5000
    status = {f.name: f.status for f in report.features}
    assert status == {"distance": "drift", "passengers": "stable", "zone": "stable"}
    assert report.drifted == ["distance"]
    (output,) = report.outputs
    assert output.kind == "numeric"
    assert output.serving["p50"] > output.training["p50"]  # predictions moved up with distance
    assert output.status == "drift"
    doc = report.to_dict()
    assert doc["drifted"] == ["distance"]
    assert doc["versions"] == {"1": 1500}


def test_undrifted_traffic_reads_stable(model: Any) -> None:
    """Rows drawn like the training data: every feature and the output are stable."""
    with PredictionLog(TrackingClient(), "rides", URI, sample_rate=1.0) as log:
        _serve(log, model, _frame(2000, seed=2))
    report = monitor_report("rides@staging")
    assert report.uri == URI
    assert {f.status for f in report.features} == {"stable"}
    assert report.outputs[0].status == "stable"
    assert report.drifted == []


def test_only_rows_of_the_version_and_the_window_count(model: Any) -> None:
    """Rows of other versions are only counted; rows and files before the window are
    not read (the first file is skipped by its name alone)."""
    log = PredictionLog(TrackingClient(), "rides", URI, sample_rate=1.0)
    marks = []
    for seed, version in ((3, 1), (4, 1), (5, 2), (6, 1)):
        marks.append(time.time())
        time.sleep(0.01)
        _serve(log, model, _frame(100, seed=seed), version=version, batch=100)
        assert log.flush() == 100  # one file per batch
    log.close()
    everything = monitor_report(URI)
    assert everything.versions == {1: 300, 2: 100}
    assert everything.rows == 300
    assert everything.files == 4
    # from just before the third batch: the first file cannot hold a row of the window
    # (the second starts before it) and is not read; the second is read, and filtered
    now = time.time()
    recent = monitor_report(URI, now=now, window_seconds=now - marks[2])
    assert recent.files == 3
    assert recent.versions == {2: 100, 1: 100}
    assert recent.rows == 100
    later = monitor_report(URI, now=time.time() + 7200, window_seconds=3600)
    assert (later.rows, later.files, later.versions) == (0, 0, {})
    earlier = monitor_report(URI, now=marks[0] - 600, window_seconds=60)
    assert (earlier.rows, earlier.runs) == (0, 0)  # the run started after that window


def test_without_logs_the_report_is_empty(model: Any) -> None:
    """A version nobody served has no rows and no features, and no error."""
    report = monitor_report(URI)
    assert (report.rows, report.runs, report.files) == (0, 0, 0)
    assert report.features == ()
    assert report.first is None


def test_bad_arguments_are_refused(model: Any) -> None:
    """A non-positive window, a bad version and an unknown alias are clear errors."""
    with pytest.raises(InvalidArgumentError, match="window"):
        monitor_report(URI, window_seconds=0)
    with pytest.raises(InvalidArgumentError, match="version"):
        monitor_report(URI, version="2")  # type: ignore[arg-type]
    with pytest.raises(NotFoundError):
        monitor_report("models:/rides@nope")
    with pytest.raises(NotFoundError):
        monitor_report(URI, version=9)


def test_cli_prints_json_with_the_drifted_feature(model: Any, shipyard_cli: Cli) -> None:
    """`shipyard monitor NAME@ALIAS --json` reports drift per feature; exit status 0."""
    import json

    with PredictionLog(TrackingClient(), "rides", URI, sample_rate=1.0) as log:
        _serve(log, model, _frame(1000, seed=7, shift=6.0))
    result = shipyard_cli("monitor", "rides@staging", "--window", "30m", "--json")
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["drifted"] == ["distance"]
    assert doc["rows"] == 1000
    assert doc["window_seconds"] == 1800
    assert {f["name"]: f["status"] for f in doc["features"]}["zone"] == "stable"


def test_cli_table_names_the_feature_and_its_status(model: Any, shipyard_cli: Cli) -> None:
    """The table lists each feature with its PSI status and the prediction quantiles."""
    with PredictionLog(TrackingClient(), "rides", URI, sample_rate=1.0) as log:
        _serve(log, model, _frame(1000, seed=8, shift=6.0))
    result = shipyard_cli("monitor", URI, "--window", "2d")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert any("distance" in line and "drift" in line for line in lines)
    assert any("zone" in line and "stable" in line for line in lines)
    assert any("training" in line and "p50" in line for line in lines)
    assert "last 2d: 1000 sampled rows" in result.stdout


def test_cli_without_logs_says_how_to_get_them(model: Any, shipyard_cli: Cli) -> None:
    """No prediction logs in the window: a message naming the serve flag, exit status 0."""
    result = shipyard_cli("monitor", "rides@staging", "--window", "3600")
    assert result.returncode == 0, result.stderr
    assert (
        "no sampled predictions for models:/rides@staging (version 1) in the last 1h 00m: "
        "serve it with shipyard serve models:/rides@staging --log-sample-rate" in result.stdout
    )


def test_cli_refuses_a_malformed_window(model: Any, shipyard_cli: Cli) -> None:
    """--window 1x is a usage error naming the accepted forms."""
    result = shipyard_cli("monitor", URI, "--window", "1x")
    assert result.returncode == 2
    assert "expected a duration such as 1h, 30m, 2d" in result.stderr
