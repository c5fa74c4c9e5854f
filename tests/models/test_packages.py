"""Model packages end to end: runs, URIs, lineage, golden replay and tampering."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import shipyard
from shipyard.errors import (
    InvalidArgumentError,
    ModelIntegrityError,
    NotFoundError,
    StateError,
)
from shipyard.models import ModelInfo, load_package, save_package


def _blob_file(home: Path, digest: str) -> Path:
    return home / "blobs" / "objects" / digest[:2] / digest[2:]


def _overwrite(path: Path, data: bytes) -> None:
    os.chmod(path, 0o644)  # stored objects are read-only
    path.write_bytes(data)


def _entry_digest(info: ModelInfo, path: str) -> str:
    blobs = shipyard.models.client().blobs
    return next(e.digest for e in blobs.read_manifest(info.digest).entries if e.path == path)


def test_models_facade_all_is_complete() -> None:
    """Every name in shipyard.models.__all__ exists, once."""
    module = importlib.import_module("shipyard.models")
    assert len(module.__all__) == len(set(module.__all__))
    for name in module.__all__:
        assert hasattr(module, name), name


def test_import_shipyard_does_not_load_the_models_package() -> None:
    """log_model/load_model are lazy: `import shipyard` loads neither NumPy nor models."""
    code = "import sys, shipyard; print('shipyard.models' in sys.modules, 'numpy' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_log_model_needs_a_run(home: Path, frame: Any, pipeline: Any) -> None:
    """Nothing is started implicitly: no active run and no run_id is a StateError."""
    with pytest.raises(StateError, match="start_run"):
        shipyard.log_model(pipeline, "model", input_example=frame)


def test_log_model_to_an_explicit_run(home: Path, frame: Any, pipeline: Any) -> None:
    """run_id= logs to a run that is not active, and the artifact is a directory."""
    with shipyard.start_run() as run:
        pass
    info = shipyard.log_model(pipeline, "model", input_example=frame, run_id=run.id)
    assert info.uri == f"runs:/{run.id}/model"
    artifacts = shipyard.get_client().list_artifacts(run.id)
    assert [(a.path, a.kind, a.digest) for a in artifacts] == [("model", "dir", info.digest)]
    assert info.size == sum(
        e.size for e in shipyard.models.client().blobs.read_manifest(info.digest).entries
    )


def test_lineage_records_run_code_data_and_metrics(
    home: Path, tmp_path: Path, frame: Any, pipeline: Any
) -> None:
    """The manifest names the run, its code version, the dataset versions it used and
    its metrics, including metrics logged just before log_model."""
    data = tmp_path / "rides.csv"
    frame.to_csv(data, index=False)
    shipyard.data.add(data, name="rides")
    with shipyard.start_run(experiment="rides") as run:
        shipyard.log_params({"C": 1.0})
        shipyard.data.use("rides@latest", role="train")
        shipyard.log_metric("val_auc", 0.93)
        info = shipyard.log_model(pipeline, "model", input_example=frame)
    lineage = shipyard.load_model(info.uri).lineage
    assert lineage["run_id"] == run.id
    assert lineage["experiment_id"] == run.experiment_id
    assert lineage["metrics"] == {"val_auc": 0.93}
    assert lineage["params"] == {"C": 1.0}
    assert "entry_point" in lineage["code"]
    [dataset] = lineage["datasets"]
    assert (dataset["name"], dataset["version"], dataset["role"]) == ("rides", 1, "train")
    assert dataset["digest"] == shipyard.data.resolve("rides@1").digest
    assert info.manifest["created_at"] > 0
    assert info.manifest["shipyard_version"]


def test_contract_is_validated_and_recorded(home: Path, frame: Any, pipeline: Any) -> None:
    """The contract is checked at log time and comes back from the loaded model."""
    with shipyard.start_run():
        with pytest.raises(InvalidArgumentError, match="unknown key"):
            shipyard.log_model(pipeline, "m", input_example=frame, contract={"p99": 1})
        info = shipyard.log_model(
            pipeline, "m", input_example=frame, contract={"latency_p99_ms": 50, "format": "onnx"}
        )
    contract = shipyard.load_model(info.uri).contract
    assert contract is not None
    assert (contract.latency_p99_ms, contract.format) == (50.0, "onnx")


def test_uris_that_name_nothing_say_so(home: Path, frame: Any, pipeline: Any) -> None:
    """A missing model name, a file artifact and models:/ URIs give clear errors."""
    with shipyard.start_run() as run:
        shipyard.log_model(pipeline, "model", input_example=frame)
        notes = home.parent / "notes.txt"
        notes.write_text("hi")
        shipyard.log_artifact(notes)
    with pytest.raises(NotFoundError, match=r"has no model 'other'.*\['model'\]"):
        shipyard.load_model(f"runs:/{run.id}/other")
    with pytest.raises(InvalidArgumentError, match="file artifact, not a model package"):
        shipyard.load_model(f"runs:/{run.id}/notes.txt")
    with pytest.raises(NotFoundError):  # routed to the registry, which has no such model
        shipyard.load_model("models:/rides-pricing@production")
    with pytest.raises(NotFoundError, match="not a model package"):
        shipyard.load_model(str(home.parent))


def test_identical_files_of_two_packages_are_stored_once(
    home: Path, frame: Any, pipeline: Any
) -> None:
    """Content addressing: the examples of two logs of one model share blobs (they are
    written byte-for-byte reproducibly; skops files are not, they embed object ids)."""
    with shipyard.start_run():
        first = shipyard.log_model(pipeline, "a", input_example=frame)
        second = shipyard.log_model(pipeline, "b", input_example=frame)
    for path in ("examples/inputs.npz", "examples/outputs.npz"):
        assert _entry_digest(first, path) == _entry_digest(second, path)


def test_package_by_digest_and_by_folder(home: Path, frame: Any, pipeline: Any) -> None:
    """load_package takes a digest (verified from the blob store) or a folder."""
    with shipyard.start_run():
        info = shipyard.log_model(pipeline, "model", input_example=frame)
    by_digest = load_package(info.digest)
    assert by_digest.digest == info.digest
    save_package(pipeline, home / "local", input_example=frame)
    by_folder = load_package(home / "local")
    np.testing.assert_array_equal(by_folder.predict(frame), by_digest.predict(frame))
    with pytest.raises(InvalidArgumentError, match="not an empty folder"):
        save_package(pipeline, home / "local", input_example=frame)


class TestGoldenExamples:
    """Loading replays the examples recorded at log time."""

    def test_mismatch_names_the_example_output_and_difference(self, home: Path, frame: Any) -> None:
        """Outputs edited on disk fail the load with the row, output, differences and
        tolerance; verify_examples=False skips the replay."""
        from model_support import make_regressor

        save_package(make_regressor(frame), home / "pkg", input_example=frame)
        outputs = home / "pkg" / "examples" / "outputs.npz"
        with np.load(outputs, allow_pickle=False) as data:
            stored = {k: data[k].copy() for k in data.files}
        stored["a0"][3] += 0.01
        np.savez(outputs, **stored)
        with pytest.raises(ModelIntegrityError) as err:
            load_package(home / "pkg")
        text = str(err.value)
        assert "golden example 3 does not reproduce" in text
        assert "output 'output'" in text
        assert "(absolute)" in text
        assert "(relative)" in text
        assert "rtol=1e-05, atol=1e-06" in text
        assert "1 of 6 examples differ" in text
        load_package(home / "pkg", verify_examples=False)

    def test_exact_outputs_compare_exactly(self, home: Path, frame: Any, pipeline: Any) -> None:
        """Class labels have no tolerance: a flipped label is reported with both values."""
        manifest = save_package(pipeline, home / "pkg", input_example=frame)
        assert manifest["examples"]["tolerance"] == {"output": None}
        outputs = home / "pkg" / "examples" / "outputs.npz"
        with np.load(outputs, allow_pickle=False) as data:
            stored = {k: data[k].copy() for k in data.files}
        stored["a0"][0] = 1 - stored["a0"][0]
        np.savez(outputs, **stored)
        with pytest.raises(ModelIntegrityError, match=r"golden example 0 .*compared exactly"):
            load_package(home / "pkg")

    def test_tolerance_can_be_set_at_log_time(self, home: Path, frame: Any) -> None:
        """A looser tolerance is recorded and used by the replay."""
        from model_support import make_regressor

        manifest = save_package(
            make_regressor(frame), home / "pkg", input_example=frame, tolerance={"rtol": 0.01}
        )
        assert manifest["examples"]["tolerance"]["output"] == {"rtol": 0.01, "atol": 1e-6}


class TestTampering:
    """A package whose stored bytes changed is refused, naming the package and the file."""

    def test_modified_flavor_file_is_refused(self, home: Path, frame: Any, pipeline: Any) -> None:
        with shipyard.start_run():
            info = shipyard.log_model(pipeline, "model", input_example=frame)
        digest = _entry_digest(info, "model/model.skops")
        blob = _blob_file(home, digest)
        _overwrite(blob, blob.read_bytes()[:-1] + b"!")
        with pytest.raises(ModelIntegrityError) as err:
            shipyard.load_model(info.uri)
        assert info.uri in str(err.value)
        assert "model/model.skops" in str(err.value)
        assert "tampered" in str(err.value)

    def test_modified_manifest_is_refused(self, home: Path, frame: Any, pipeline: Any) -> None:
        with shipyard.start_run():
            info = shipyard.log_model(pipeline, "model", input_example=frame)
        blob = _blob_file(home, _entry_digest(info, "shipyard-model.json"))
        doc = json.loads(blob.read_bytes())
        doc["flavor"]["config"]["untrusted_types"] = ["evil.Thing"]
        _overwrite(blob, json.dumps(doc).encode())
        with pytest.raises(ModelIntegrityError, match=r"shipyard-model\.json no longer matches"):
            shipyard.load_model(info.uri)

    def test_modified_file_listing_is_refused(self, home: Path, frame: Any, pipeline: Any) -> None:
        with shipyard.start_run():
            info = shipyard.log_model(pipeline, "model", input_example=frame)
        blob = _blob_file(home, info.digest)
        _overwrite(blob, blob.read_bytes().replace(b'"size":', b'"size": '))
        with pytest.raises(ModelIntegrityError, match="file listing"):
            shipyard.load_model(info.uri)

    def test_changed_cached_copy_is_fetched_again(
        self, home: Path, frame: Any, pipeline: Any
    ) -> None:
        """The local cache is re-hashed on load; a changed file is replaced, not trusted."""
        with shipyard.start_run():
            info = shipyard.log_model(pipeline, "model", input_example=frame)
        first = shipyard.load_model(info.uri)
        cached = first.path / "model" / "model.skops"
        cached.write_bytes(b"not a model")
        again = shipyard.load_model(info.uri)
        assert cached.read_bytes() != b"not a model"
        np.testing.assert_array_equal(again.predict(frame), pipeline.predict(frame))
