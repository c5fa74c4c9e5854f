"""The registry client and the ``shipyard models`` / ``shipyard lineage`` commands, on a
real SQLite store and blob folder (packages here are minimal trees with a manifest, so
these tests do not depend on any model flavor)."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from shipyard import TrackingClient
from shipyard.data import DataClient
from shipyard.errors import ConflictError, InvalidArgumentError, NotFoundError, StateError
from shipyard.registry import MANIFEST_NAME, RegistryClient
from shipyard.store import series

Cli = Callable[..., "subprocess.CompletedProcess[str]"]  # the shipyard_cli fixture


MANIFEST = {
    "format": "shipyard.model/1",
    "flavor": {"name": "sklearn"},
    "signature": {"inputs": {"kind": "dataframe", "specs": [{"name": "km", "dtype": "float64"}]}},
    "contract": {"latency_p99_ms": 100},
    "requirements": ["scikit-learn==1.9.1"],
    "ignored": "not copied",
}


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


def _clients(home: Path) -> tuple[TrackingClient, RegistryClient]:
    uri, blobs = f"sqlite:///{home / 'shipyard.db'}", str(home / "blobs")
    return TrackingClient(uri, blobs), RegistryClient(uri, blobs)


def _package_run(home: Path, tmp_path: Path, *, auc: float = 0.91, name: str = "model") -> str:
    """A finished run with a package at ``name``, metrics, params, code and a dataset input."""
    tracking, _ = _clients(home)
    pkg = tmp_path / f"pkg-{auc}"
    pkg.mkdir()
    (pkg / MANIFEST_NAME).write_text(json.dumps(MANIFEST))
    (pkg / "model").mkdir()
    (pkg / "model" / "weights.bin").write_bytes(os.urandom(64))
    exp = tracking.create_experiment(f"exp-{auc}")
    run = tracking.store.create_run(exp.id, name=f"train-{auc}")
    tracking.store.log_batch(
        run.id,
        params={"alpha": 0.1},
        metrics=[series("val_auc", [0, 1], [0.5, auc], [1e9, 1e9])],
    )
    tracking.store.update_run(run.id, code={"git_commit": "ab" * 20, "git_dirty": True})
    rides = tmp_path / f"rides-{auc}.csv"
    rides.write_text("distance_km,price\n1.0,5.0\n")
    data = DataClient(tracking.tracking_uri, tracking.blob_uri, home=home)
    data.add(rides, "rides")
    data.use("rides@latest", role="train", run_id=run.id)
    artifact = tracking._put(pkg, name)  # a directory artifact, as log_model stores packages
    tracking.store.log_artifacts(run.id, [artifact])
    return run.id


def test_register_versions_and_metadata(home: Path, tmp_path: Path) -> None:
    """Registering creates the model, numbers versions, and copies the manifest's key fields."""
    run_id = _package_run(home, tmp_path)
    _, registry = _clients(home)
    v1 = registry.register(f"runs:/{run_id}/model", "rides-pricing", description="first")
    v2 = registry.register(f"runs:/{run_id}/model", "rides-pricing")
    assert (v1.version, v2.version) == (1, 2)
    assert v1.package_digest == v2.package_digest  # same package: same content address
    assert v1.metadata["flavor"] == {"name": "sklearn"}
    assert v1.metadata["contract"] == {"latency_p99_ms": 100}
    assert "ignored" not in v1.metadata
    assert v1.run_id == run_id
    assert v1.source == f"runs:/{run_id}/model"
    assert registry.resolve("models:/rides-pricing/2") == v2
    assert registry.resolve("rides-pricing/1") == v1


def test_register_refuses_what_is_not_a_package(home: Path, tmp_path: Path) -> None:
    """A missing path, a file artifact or a folder without a manifest is refused, named."""
    run_id = _package_run(home, tmp_path)
    tracking, registry = _clients(home)
    with pytest.raises(NotFoundError, match="no model package at 'nope'"):
        registry.register(f"runs:/{run_id}/nope", "m")
    (tmp_path / "plain").mkdir()
    (tmp_path / "plain" / "x.txt").write_text("x")
    tracking.log_artifact(run_id, tmp_path / "plain")
    with pytest.raises(InvalidArgumentError, match="not a model package"):
        registry.register(f"runs:/{run_id}/plain", "m")
    with pytest.raises(InvalidArgumentError, match="name the package"):
        registry.register(f"runs:/{run_id}", "m")
    with pytest.raises(InvalidArgumentError, match="model name"):
        registry.register(f"runs:/{run_id}/model", "bad/name")


def test_gated_aliases_need_a_promotion(home: Path, tmp_path: Path) -> None:
    """'production' cannot be set directly; other aliases can, and every move is audited."""
    run_id = _package_run(home, tmp_path)
    _, registry = _clients(home)
    registry.register(f"runs:/{run_id}/model", "m")
    with pytest.raises(StateError, match="promote"):
        registry.set_alias("m", "production", 1)
    registry.set_alias("m", "staging", 1, reason="try it", actor="ana")
    assert registry.resolve("m@staging").version == 1
    registry.store.update_registered_model(
        registry.model("m").id, contract={"gated_aliases": ["staging"]}
    )
    with pytest.raises(StateError, match="gated"):
        registry.set_alias("m", "staging", 1)
    registry.delete_alias("m", "staging", reason="done")
    assert next((e.outcome, e.actor) for e in registry.events("m")) == ("moved", "ana")
    assert [e.outcome for e in registry.events("m")] == ["moved", "removed"]


def test_lineage_follows_run_code_data_params_metrics(home: Path, tmp_path: Path) -> None:
    """models:/name@alias -> run -> commit and diff flag -> dataset versions -> params, metrics."""
    run_id = _package_run(home, tmp_path)
    _, registry = _clients(home)
    registry.register(f"runs:/{run_id}/model", "m")
    registry.set_alias("m", "candidate", 1)
    found = registry.lineage("models:/m@candidate").to_dict()
    assert found["run"]["id"] == run_id
    assert found["aliases"] == ["candidate"]
    assert found["code"]["git_commit"] == "ab" * 20
    assert [(d["ref"], d["role"]) for d in found["datasets"]] == [("rides@1", "train")]
    assert found["params"] == {"alpha": 0.1}
    assert found["metrics"] == {"val_auc": 0.91}
    assert found["experiment"]["name"] == "exp-0.91"
    data = DataClient(registry.tracking_uri, registry.blob_uri, home=home)
    assert data.lineage("rides@1").models == (("m", 1),)


def test_concurrent_registration_of_a_new_name(home: Path, tmp_path: Path) -> None:
    """Two registrars creating the same new model both get a version of that one model."""
    import threading

    run_id = _package_run(home, tmp_path)
    _, registry = _clients(home)
    made: list[int] = []
    errors: list[BaseException] = []

    def register() -> None:
        try:
            made.append(registry.register(f"runs:/{run_id}/model", "racy").version)
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=register) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert sorted(made) == [1, 2, 3, 4]
    assert len(registry.list_models()) == 1


@pytest.mark.slow
def test_models_commands(home: Path, tmp_path: Path, shipyard_cli: Cli) -> None:
    """register, list, show, versions, alias, events and lineage through the real CLI."""
    empty = shipyard_cli("models", "list")
    assert empty.returncode == 0
    assert "no registered models yet" in empty.stderr
    run_id = _package_run(home, tmp_path)
    out = shipyard_cli("models", "register", f"runs:/{run_id}/model", "rides", "--tag", "k=v")
    assert out.returncode == 0, out.stderr
    assert "registered models:/rides/1 (sklearn" in out.stdout
    listed = shipyard_cli("models", "list", "--json")
    assert json.loads(listed.stdout)[0]["latest_version"] == 1
    refused = shipyard_cli("models", "alias", "rides", "production", "1")
    assert refused.returncode == 1
    assert "promote" in refused.stderr
    moved = shipyard_cli("models", "alias", "rides", "staging", "1", "--reason", "smoke")
    assert moved.returncode == 0
    assert "rides@staging -> version 1 (was unset)" in moved.stdout
    shown = json.loads(shipyard_cli("models", "show", "rides", "--json").stdout)
    assert shown["aliases"] == {"staging": 1}
    assert shown["versions"][0]["tags"] == {"k": "v"}
    assert shown["events"][0]["reason"] == "smoke"
    versions = shipyard_cli("models", "versions", "rides")
    assert "staging" in versions.stdout
    assert run_id[:12] in versions.stdout
    events = shipyard_cli("models", "events", "rides")
    assert "moved" in events.stdout
    assert "smoke" in events.stdout
    lineage = shipyard_cli("lineage", "rides@staging")
    assert lineage.returncode == 0, lineage.stderr
    for expected in (run_id, "abababababab", "uncommitted diff", "rides@1 (train)", "val_auc"):
        assert expected in lineage.stdout
    as_json = json.loads(shipyard_cli("lineage", "models:/rides/1", "--json").stdout)
    assert as_json["datasets"][0]["ref"] == "rides@1"
    bad = shipyard_cli("lineage", "rides@9x!")
    assert bad.returncode == 1
    assert "invalid model URI" in bad.stderr
    missing = shipyard_cli("models", "show", "nope")
    assert missing.returncode == 1
    assert "not found" in missing.stderr
    data = shipyard_cli("data", "lineage", "rides@1", "--json")
    assert json.loads(data.stdout)["model_versions"][0]["uri"] == "models:/rides/1"


def test_conflicting_model_creation_is_a_conflict(home: Path, tmp_path: Path) -> None:
    """Creating a registered model twice by name is a ConflictError."""
    _, registry = _clients(home)
    registry.create_model("x")
    with pytest.raises(ConflictError):
        registry.create_model("x")
