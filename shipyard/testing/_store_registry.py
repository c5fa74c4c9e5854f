"""Conformance tests: registered models, versions, exports, aliases and the audit log."""

from __future__ import annotations

import threading

import pytest

from shipyard.errors import ConflictError, InvalidArgumentError, NotFoundError
from shipyard.store import Store
from shipyard.testing._store_helpers import make_project, make_run, unique
from shipyard.types import RegisteredModel

PKG = "ab" * 32
PKG2 = "cd" * 32


def _model(store: Store, versions: int = 0) -> RegisteredModel:
    model = store.create_registered_model(make_project(store).id, unique("model"))
    for _ in range(versions):
        store.create_model_version(model.id, PKG)
    return model


class RegistryTests:
    def test_create_find_and_update_models(self, store: Store) -> None:
        """A model is found by id and name, listed by name; updates merge tags and keep the rest."""
        project = make_project(store)
        b = store.create_registered_model(
            project.id,
            "b-model",
            description="pricing",
            tags={"team": "rides"},
            contract={"latency_p99_ms": 100, "min_metrics": {"val_auc": 0.9}},
        )
        a = store.create_registered_model(project.id, "a-model")
        assert store.get_registered_model(b.id) == b
        assert store.get_registered_model_by_name(project.id, "a-model") == a
        assert [m.name for m in store.list_registered_models(project.id)] == ["a-model", "b-model"]
        assert b.contract["min_metrics"] == {"val_auc": 0.9}
        changed = store.update_registered_model(b.id, tags={"tier": "1"})
        assert dict(changed.tags) == {"team": "rides", "tier": "1"}
        assert changed.description == "pricing"
        assert changed.contract == b.contract
        changed = store.update_registered_model(b.id, description="", contract={})
        assert changed.description == ""
        assert dict(changed.contract) == {}
        assert store.get_registered_model(b.id) == changed

    def test_model_names_are_checked_and_unique(self, store: Store) -> None:
        """Names that cannot go in a models:/ URI are refused; a taken name conflicts."""
        project = make_project(store)
        for bad in ("a/b", "a@b", "", " x", "x" * 200):
            with pytest.raises(InvalidArgumentError, match="model name"):
                store.create_registered_model(project.id, bad)
        store.create_registered_model(project.id, "rides")
        with pytest.raises(ConflictError, match="rides"):
            store.create_registered_model(project.id, "rides")
        with pytest.raises(NotFoundError, match="nope"):
            store.get_registered_model_by_name(project.id, "nope")
        with pytest.raises(NotFoundError):
            store.create_registered_model("0" * 32, "x")

    def test_versions_count_up_and_round_trip(self, store: Store) -> None:
        """Versions are numbered 1, 2... per model and keep every field."""
        model = _model(store)
        run = make_run(store)
        v1 = store.create_model_version(
            model.id,
            PKG,
            run_id=run.id,
            source=f"runs:/{run.id}/model",
            description="first",
            tags={"k": "v"},
            metadata={"flavor": "sklearn"},
            created_by="ana",
        )
        v2 = store.create_model_version(model.id, PKG2)
        assert (v1.version, v2.version) == (1, 2)
        assert store.get_model_version(model.id, 1) == v1
        assert store.list_model_versions(model.id) == [v1, v2]
        assert v1.metadata["flavor"] == "sklearn"
        assert v1.created_by == "ana"
        assert store.list_run_model_versions(run.id) == [v1]
        with pytest.raises(NotFoundError, match="no version 3"):
            store.get_model_version(model.id, 3)
        with pytest.raises(NotFoundError):
            store.create_model_version(model.id, PKG, run_id="0" * 32)
        with pytest.raises(InvalidArgumentError):
            store.create_model_version(model.id, "not-a-digest")
        with pytest.raises(InvalidArgumentError, match="model version"):
            store.get_model_version(model.id, 0)

    def test_version_package_is_immutable_but_notes_change(self, store: Store) -> None:
        """Description and tags of a version change; its package and number do not."""
        model = _model(store, versions=1)
        changed = store.update_model_version(model.id, 1, description="good", tags={"a": "1"})
        assert changed.description == "good"
        assert dict(changed.tags) == {"a": "1"}
        changed = store.update_model_version(model.id, 1, tags={"b": "2"})
        assert dict(changed.tags) == {"a": "1", "b": "2"}
        assert changed.package_digest == PKG
        assert store.get_model_version(model.id, 1) == changed

    def test_concurrent_versions_get_distinct_numbers(self, store: Store) -> None:
        """Registering from several threads at once never reuses a number."""
        model = _model(store)
        errors: list[BaseException] = []

        def register() -> None:
            try:
                for _ in range(5):
                    store.create_model_version(model.id, PKG)
            except BaseException as e:  # pragma: no cover - reported below
                errors.append(e)

        threads = [threading.Thread(target=register) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors
        assert [v.version for v in store.list_model_versions(model.id)] == list(range(1, 21))

    def test_exports_attach_to_a_version(self, store: Store) -> None:
        """An export per format is kept with its report; a new one of a format replaces it."""
        model = _model(store, versions=1)
        store.put_model_export(model.id, 1, "onnx", PKG, {"max_abs": 1e-7})
        again = store.put_model_export(model.id, 1, "onnx", PKG2, {"max_abs": 2e-7})
        assert store.list_model_exports(model.id, 1) == [again]
        assert again.report["max_abs"] == 2e-7
        with pytest.raises(InvalidArgumentError, match="export format"):
            store.put_model_export(model.id, 1, "ONNX!", PKG, {})
        with pytest.raises(NotFoundError):
            store.put_model_export(model.id, 2, "onnx", PKG, {})

    def test_aliases_move_and_are_audited(self, store: Store) -> None:
        """Setting, moving and removing an alias is logged with who, why, from and to."""
        model = _model(store, versions=2)
        store.set_alias(model.id, "production", 1, actor="ana", reason="first release")
        assert store.get_alias(model.id, "production").version == 1
        store.set_alias(model.id, "production", 2, expected=1, actor="bo", reason="better")
        store.set_alias(model.id, "staging", 2)
        assert store.list_aliases(model.id) == {"production": 2, "staging": 2}
        store.record_alias_event(
            model.id, "production", 1, outcome="refused", actor="cy", report={"gate": "latency"}
        )
        store.delete_alias(model.id, "staging", actor="bo", reason="done")
        with pytest.raises(NotFoundError, match="no alias 'staging'"):
            store.get_alias(model.id, "staging")
        with pytest.raises(NotFoundError):
            store.delete_alias(model.id, "staging")
        log = store.list_alias_events(model.id)
        rows = [(e.alias, e.from_version, e.to_version, e.outcome, e.actor) for e in log]
        assert rows == [
            ("production", None, 1, "moved", "ana"),
            ("production", 1, 2, "moved", "bo"),
            ("staging", None, 2, "moved", ""),
            ("production", 2, 1, "refused", "cy"),
            ("staging", 2, None, "removed", "bo"),
        ]
        assert log[3].report["gate"] == "latency"
        assert log[0].reason == "first release"
        assert [e.id for e in log] == sorted(e.id for e in log)
        assert [e.outcome for e in store.list_alias_events(model.id, "staging")] == [
            "moved",
            "removed",
        ]

    def test_stale_alias_move_is_a_recorded_conflict(self, store: Store) -> None:
        """A compare-and-set against a holder that changed moves nothing, is logged, and raises."""
        model = _model(store, versions=3)
        store.set_alias(model.id, "production", 1)
        store.set_alias(model.id, "production", 2, expected=1)
        with pytest.raises(ConflictError, match="version 2"):
            store.set_alias(model.id, "production", 3, expected=1, actor="late")
        with pytest.raises(ConflictError, match="version 2"):
            store.set_alias(model.id, "production", 3, expected=None)
        assert store.get_alias(model.id, "production").version == 2
        last = store.list_alias_events(model.id)[-2]
        assert (last.outcome, last.from_version, last.to_version, last.actor) == (
            "conflict",
            2,
            3,
            "late",
        )
        store.set_alias(model.id, "fresh", 3, expected=None)  # "no holder" expected and true

    def test_concurrent_promotions_one_wins(self, store: Store) -> None:
        """Many compare-and-set moves from the same holder at once: exactly one wins and
        every attempt is in the audit log."""
        model = _model(store, versions=5)
        store.set_alias(model.id, "production", 1)
        outcomes: list[str] = []
        lock = threading.Lock()
        barrier = threading.Barrier(4)

        def promote(version: int) -> None:
            barrier.wait()
            try:
                store.set_alias(model.id, "production", version, expected=1, actor=f"t{version}")
                result = "won"
            except ConflictError:
                result = "lost"
            with lock:
                outcomes.append(result)

        threads = [threading.Thread(target=promote, args=(v,)) for v in (2, 3, 4, 5)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(outcomes) == ["lost", "lost", "lost", "won"]
        log = store.list_alias_events(model.id)[1:]
        assert sorted(e.outcome for e in log) == ["conflict", "conflict", "conflict", "moved"]
        winner = next(e for e in log if e.outcome == "moved")
        assert store.get_alias(model.id, "production").version == winner.to_version
        assert all(e.from_version == winner.to_version for e in log if e.outcome == "conflict")

    def test_bad_alias_arguments(self, store: Store) -> None:
        """Aliases that read as versions, unknown outcomes and unknown versions are refused."""
        model = _model(store, versions=1)
        for bad in ("1", "", "a b", "-x", "a" * 65):
            with pytest.raises(InvalidArgumentError, match="alias"):
                store.set_alias(model.id, bad, 1)
        with pytest.raises(InvalidArgumentError, match="outcome"):
            store.set_alias(model.id, "production", 1, outcome="refused")
        with pytest.raises(InvalidArgumentError, match="outcome"):
            store.record_alias_event(model.id, "production", 1, outcome="moved")
        with pytest.raises(NotFoundError, match="no version 9"):
            store.set_alias(model.id, "production", 9)
        with pytest.raises(InvalidArgumentError):
            store.set_alias(model.id, "production", 1, report={"x": object()})
        assert store.list_alias_events(model.id) == []
        assert store.list_aliases(model.id) == {}
