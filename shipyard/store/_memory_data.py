"""The datasets section of :class:`~shipyard.store._memory.MemoryStore`."""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from typing import Any

from shipyard._util import FrozenDict, new_id, now
from shipyard.errors import ConflictError, NotFoundError
from shipyard.store._checks import (
    check_inputs,
    check_lookup_id,
    check_step_key,
    check_text,
    check_version_fields,
    check_version_number,
)
from shipyard.types import Dataset, DatasetVersion, Project, RunInput
from shipyard.validation import check_name


class MemoryDatasets:
    """Datasets, versions, run inputs and step results, held in memory."""

    _lock: threading.RLock

    def _init_datasets(self) -> None:
        self._datasets: dict[str, Dataset] = {}
        self._versions: dict[str, DatasetVersion] = {}
        self._inputs: list[RunInput] = []
        self._steps: dict[str, str] = {}

    def _project(self, project_id: object) -> Project:  # provided by MemoryStore
        raise NotImplementedError

    def _record(self, run_id: object) -> Any:  # provided by MemoryStore
        raise NotImplementedError

    def _dataset(self, dataset_id: object) -> Dataset:
        key = check_lookup_id(dataset_id, "dataset")
        found = self._datasets.get(key)
        if found is None:
            raise NotFoundError(f"dataset {key[:64]} not found")
        return found

    def create_dataset(self, project_id: str, name: str, *, description: str = "") -> Dataset:
        check_name(name, "dataset name")
        check_text(description, "description")
        with self._lock:
            self._project(project_id)
            if any(d.project_id == project_id and d.name == name for d in self._datasets.values()):
                raise ConflictError(f"a dataset named {name!r} already exists")
            dataset = Dataset(new_id(), project_id, name, description, now())
            self._datasets[dataset.id] = dataset
            return dataset

    def get_dataset(self, dataset_id: str) -> Dataset:
        with self._lock:
            return self._dataset(dataset_id)

    def get_dataset_by_name(self, project_id: str, name: str) -> Dataset:
        check_lookup_id(project_id, "project")
        check_text(name, "dataset name")
        with self._lock:
            for d in self._datasets.values():
                if d.project_id == project_id and d.name == name:
                    return d
        raise NotFoundError(
            f"dataset {name[:64]!r} not found; add it with 'shipyard data add PATH --name NAME'"
        )

    def list_datasets(self, project_id: str | None = None) -> list[Dataset]:
        with self._lock:
            if project_id is not None:
                self._project(project_id)
            found = [d for d in self._datasets.values() if project_id in (None, d.project_id)]
        return sorted(found, key=lambda d: d.name)

    def create_dataset_version(
        self,
        dataset_id: str,
        digest: str,
        *,
        num_files: int,
        size: int,
        message: str = "",
        source: str = "",
        run_id: str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> DatasetVersion:
        import json

        meta = json.loads(
            check_version_fields(digest, num_files, size, message, source, run_id, metadata)
        )
        with self._lock:
            self._dataset(dataset_id)
            if run_id is not None:
                self._record(run_id)
            number = 1 + max(
                (v.version for v in self._versions.values() if v.dataset_id == dataset_id),
                default=0,
            )
            version = DatasetVersion(
                new_id(),
                dataset_id,
                number,
                digest,
                num_files,
                size,
                message,
                source,
                run_id,
                FrozenDict(meta),
                now(),
            )
            self._versions[version.id] = version
            return version

    def get_dataset_version(self, dataset_id: str, version: int) -> DatasetVersion:
        check_version_number(version)
        with self._lock:
            dataset = self._dataset(dataset_id)
            for v in self._versions.values():
                if v.dataset_id == dataset_id and v.version == version:
                    return v
        raise NotFoundError(
            f"dataset {dataset.name!r} has no version {version}; list its versions with "
            f"'shipyard data log {dataset.name}'"
        )

    def get_dataset_version_by_id(self, version_id: str) -> DatasetVersion:
        check_lookup_id(version_id, "dataset version")
        with self._lock:
            found = self._versions.get(version_id)
        if found is None:
            raise NotFoundError(f"dataset version {version_id[:64]} not found")
        return found

    def list_dataset_versions(self, dataset_id: str) -> list[DatasetVersion]:
        with self._lock:
            self._dataset(dataset_id)
            found = [v for v in self._versions.values() if v.dataset_id == dataset_id]
        return sorted(found, key=lambda v: v.version)

    def log_inputs(self, run_id: str, inputs: Sequence[tuple[str, str]]) -> None:
        pairs = check_inputs(inputs)
        with self._lock:
            self._record(run_id)
            for version_id, _ in pairs:
                if version_id not in self._versions:
                    raise NotFoundError(f"dataset version {version_id[:64]} not found")
            have = {(i.run_id, i.dataset_version_id, i.role) for i in self._inputs}
            for version_id, role in pairs:
                if (run_id, version_id, role) not in have:
                    have.add((run_id, version_id, role))
                    self._inputs.append(RunInput(run_id, version_id, role, now()))

    def list_run_inputs(self, run_id: str) -> list[RunInput]:
        with self._lock:
            self._record(run_id)
            return [i for i in self._inputs if i.run_id == run_id]

    def list_version_runs(self, dataset_version_id: str) -> list[RunInput]:
        with self._lock:
            self.get_dataset_version_by_id(dataset_version_id)
            return [i for i in self._inputs if i.dataset_version_id == dataset_version_id]

    def get_step_result(self, key: str) -> str | None:
        check_step_key(key)
        with self._lock:
            return self._steps.get(key)

    def put_step_result(self, key: str, dataset_version_id: str) -> None:
        check_step_key(key)
        with self._lock:
            self.get_dataset_version_by_id(dataset_version_id)
            self._steps[key] = dataset_version_id
