"""Conformance tests: datasets, versions, run inputs (lineage) and step results."""

from __future__ import annotations

import threading

import pytest

from shipyard.errors import ConflictError, InvalidArgumentError, NotFoundError
from shipyard.store import Store
from shipyard.testing._store_helpers import make_project, make_run, unique
from shipyard.types import DatasetVersion

DIGEST = "ab" * 32
OTHER = "cd" * 32


def _version(store: Store, **kwargs: object) -> DatasetVersion:
    project = make_project(store)
    dataset = store.create_dataset(project.id, unique("ds"))
    return store.create_dataset_version(dataset.id, DIGEST, num_files=3, size=30, **kwargs)  # type: ignore[arg-type]


class DatasetTests:
    def test_create_and_find_dataset(self, store: Store) -> None:
        """A dataset is found by id and by name in its project, and listed by name."""
        project = make_project(store)
        b = store.create_dataset(project.id, "b-set", description="second")
        a = store.create_dataset(project.id, "a-set")
        assert store.get_dataset(b.id) == b
        assert store.get_dataset_by_name(project.id, "a-set") == a
        assert [d.name for d in store.list_datasets(project.id)] == ["a-set", "b-set"]
        assert b.description == "second"

    def test_duplicate_dataset_name_conflicts(self, store: Store) -> None:
        """Two datasets of one name in a project raise ConflictError."""
        project = make_project(store)
        store.create_dataset(project.id, "rides")
        with pytest.raises(ConflictError, match="rides"):
            store.create_dataset(project.id, "rides")
        assert store.get_or_create_dataset(project.id, "rides").name == "rides"

    def test_missing_datasets_and_projects_not_found(self, store: Store) -> None:
        """Unknown datasets, projects and versions raise NotFoundError."""
        project = make_project(store)
        with pytest.raises(NotFoundError):
            store.get_dataset("0" * 32)
        with pytest.raises(NotFoundError, match="nope"):
            store.get_dataset_by_name(project.id, "nope")
        with pytest.raises(NotFoundError):
            store.create_dataset("0" * 32, "x")
        with pytest.raises(NotFoundError):
            store.get_dataset_version_by_id("0" * 32)

    def test_versions_count_up_from_one(self, store: Store) -> None:
        """Versions are numbered 1, 2, 3 per dataset and round-trip every field."""
        project = make_project(store)
        ds = store.create_dataset(project.id, unique("ds"))
        run = make_run(store)
        v1 = store.create_dataset_version(ds.id, DIGEST, num_files=2, size=10, message="first")
        v2 = store.create_dataset_version(
            ds.id,
            OTHER,
            num_files=5,
            size=99,
            source="/data/rides",
            run_id=run.id,
            metadata={"dvc": {"md5": "x"}},
        )
        assert (v1.version, v2.version) == (1, 2)
        assert store.get_dataset_version(ds.id, 2) == v2
        assert store.get_dataset_version_by_id(v1.id) == v1
        assert store.list_dataset_versions(ds.id) == [v1, v2]
        assert store.latest_dataset_version(ds.id) == v2
        assert v2.metadata == {"dvc": {"md5": "x"}}
        assert (v2.source, v2.run_id, v2.num_files, v2.size) == ("/data/rides", run.id, 5, 99)
        with pytest.raises(NotFoundError, match="no version 3"):
            store.get_dataset_version(ds.id, 3)

    def test_concurrent_version_numbers_are_distinct(self, store: Store) -> None:
        """Threads adding versions at once get distinct consecutive numbers."""
        project = make_project(store)
        ds = store.create_dataset(project.id, unique("ds"))
        errors: list[BaseException] = []

        def work() -> None:
            try:
                for _ in range(5):
                    store.create_dataset_version(ds.id, DIGEST, num_files=1, size=1)
            except BaseException as e:  # collected and checked below
                errors.append(e)

        threads = [threading.Thread(target=work) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        assert errors == []
        assert [v.version for v in store.list_dataset_versions(ds.id)] == list(range(1, 21))

    @pytest.mark.parametrize(
        "kwargs",
        [
            {"digest": "xyz"},
            {"num_files": -1},
            {"size": 1.5},
            {"metadata": {"bad": {1, 2}}},
            {"run_id": "not-an-id"},
            {"message": 7},
        ],
    )
    def test_invalid_version_arguments_change_nothing(
        self, store: Store, kwargs: dict[str, object]
    ) -> None:
        """A version with bad arguments raises InvalidArgumentError and stores nothing."""
        project = make_project(store)
        ds = store.create_dataset(project.id, unique("ds"))
        args: dict[str, object] = {"digest": DIGEST, "num_files": 1, "size": 1, **kwargs}
        digest = args.pop("digest")
        with pytest.raises(InvalidArgumentError):
            store.create_dataset_version(ds.id, digest, **args)  # type: ignore[arg-type]
        assert store.list_dataset_versions(ds.id) == []

    def test_run_inputs_and_lineage(self, store: Store) -> None:
        """log_inputs records what a run read; lineage lists the runs of a version."""
        v = _version(store)
        run, other = make_run(store), make_run(store)
        store.log_inputs(run.id, [(v.id, "train")])
        store.log_inputs(run.id, [(v.id, "train"), (v.id, "validation")])
        store.log_inputs(other.id, [(v.id, "train")])
        assert [(i.dataset_version_id, i.role) for i in store.list_run_inputs(run.id)] == [
            (v.id, "train"),
            (v.id, "validation"),
        ]
        lineage = store.list_version_runs(v.id)
        assert sorted((i.run_id, i.role) for i in lineage) == sorted(
            [(run.id, "train"), (run.id, "validation"), (other.id, "train")]
        )

    def test_inputs_of_unknown_version_refused_whole(self, store: Store) -> None:
        """An unknown version in a batch of inputs raises NotFoundError and records none."""
        v = _version(store)
        run = make_run(store)
        with pytest.raises(NotFoundError):
            store.log_inputs(run.id, [(v.id, "train"), ("0" * 32, "train")])
        assert store.list_run_inputs(run.id) == []
        with pytest.raises(InvalidArgumentError):
            store.log_inputs(run.id, [(v.id, "bad role!")])
        with pytest.raises(NotFoundError):
            store.log_inputs("0" * 32, [(v.id, "train")])

    def test_step_results_round_trip(self, store: Store) -> None:
        """A step result is stored, overwritten, and unknown keys give None."""
        v1 = _version(store)
        v2 = _version(store)
        assert store.get_step_result("step/abc") is None
        store.put_step_result("step/abc", v1.id)
        assert store.get_step_result("step/abc") == v1.id
        store.put_step_result("step/abc", v2.id)
        assert store.get_step_result("step/abc") == v2.id
        with pytest.raises(NotFoundError):
            store.put_step_result("step/x", "0" * 32)
        with pytest.raises(InvalidArgumentError):
            store.get_step_result("k" * 1000)
