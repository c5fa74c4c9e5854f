"""Configuration from the environment and the runs:/ URI."""

from __future__ import annotations

from pathlib import Path

import pytest

from shipyard.config import settings
from shipyard.errors import InvalidArgumentError
from shipyard.uris import RunUri, parse_runs_uri

RUN = "0123456789abcdef0123456789abcdef"


def test_defaults_live_under_shipyard_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """SHIPYARD_HOME decides where the embedded store and blobs live."""
    monkeypatch.setenv("SHIPYARD_HOME", str(tmp_path))
    monkeypatch.delenv("SHIPYARD_TRACKING_URI", raising=False)
    monkeypatch.delenv("SHIPYARD_BLOB_URI", raising=False)
    cfg = settings()
    assert cfg.tracking_uri == f"sqlite:///{tmp_path / 'shipyard.db'}"
    assert cfg.blob_uri == str(tmp_path / "blobs")
    assert cfg.flush_interval == 1.0
    assert cfg.buffer_policy == "block"


def test_tracking_uri_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    """SHIPYARD_TRACKING_URI points at another store."""
    monkeypatch.setenv("SHIPYARD_TRACKING_URI", "postgresql://u@h/db")
    assert settings().tracking_uri == "postgresql://u@h/db"


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("SHIPYARD_FLUSH_INTERVAL", "soon", "expected a number"),
        ("SHIPYARD_FLUSH_INTERVAL", "-1", "positive"),
        ("SHIPYARD_MAX_BUFFERED_POINTS", "1.5", "integer"),
        ("SHIPYARD_BUFFER_POLICY", "panic", "'block' or 'drop'"),
    ],
)
def test_bad_settings_are_named(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, message: str
) -> None:
    """A malformed setting raises an error naming the variable and what it expects."""
    monkeypatch.setenv(name, value)
    with pytest.raises(InvalidArgumentError, match=name) as info:
        settings()
    assert message in str(info.value)


def test_runs_uri_round_trip() -> None:
    """runs:/<id>/<path> splits into the run id and artifact path."""
    assert parse_runs_uri(f"runs:/{RUN}/model/weights.bin") == RunUri(RUN, "model/weights.bin")
    assert parse_runs_uri(f"runs:/{RUN}") == RunUri(RUN, "")
    assert str(RunUri(RUN, "model")) == f"runs:/{RUN}/model"


@pytest.mark.parametrize(
    "uri", ["models:/x/1", "runs:/nothex/model", f"runs:/{RUN}/../secret", "runs:", 42]
)
def test_bad_runs_uri(uri: object) -> None:
    """A malformed run URI raises InvalidArgumentError showing the expected shape."""
    with pytest.raises(InvalidArgumentError, match="runs:/"):
        parse_runs_uri(uri)  # type: ignore[arg-type]
