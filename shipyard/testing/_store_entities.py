"""Conformance tests: projects, experiments and runs."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any

import pytest

from shipyard._util import new_id
from shipyard.errors import ConflictError, InvalidArgumentError, NotFoundError, StateError
from shipyard.store._base import Store
from shipyard.testing._store_helpers import (
    all_runs,
    make_experiment,
    make_project,
    make_run,
    near_now,
    series,
    store_state,
    unique,
)
from shipyard.types import Artifact, Lifecycle, RunStatus

__all__ = ["EntityTests"]

_HEX32 = re.compile(r"[0-9a-f]{32}")
BAD_NAMES = ["", "   ", "x" * 257, "line\nbreak", 123, None]
BAD_IDS = ["XYZ", "0" * 31, "0" * 33, "A" * 32, "g" * 32, 12]


class EntityTests:
    # -- projects ---------------------------------------------------------------------

    def test_create_project_returns_it(self, store: Store) -> None:
        """create_project returns the project: a 32-hex id, the description, the creation time."""
        name = unique("p")
        project = store.create_project(name, description="rides")
        assert _HEX32.fullmatch(project.id)
        assert (project.name, project.description) == (name, "rides")
        assert near_now(project.created_at, time.time())

    def test_get_project_by_id_and_by_name(self, store: Store) -> None:
        """A project reads back equal by id and by name."""
        project = make_project(store)
        assert store.get_project(project.id) == project
        assert store.get_project_by_name(project.name) == project

    def test_list_projects_ordered_by_name(self, store: Store) -> None:
        """list_projects returns every project ordered by name."""
        suffix = unique("")
        for name in ("b", "c", "a"):
            store.create_project(name + suffix)
        names = [p.name for p in store.list_projects()]
        assert names == sorted(names)
        assert {"a" + suffix, "b" + suffix, "c" + suffix} <= set(names)

    def test_duplicate_project_name_conflicts(self, store: Store) -> None:
        """A taken project name raises ConflictError naming it, and the store keeps one project."""
        project = make_project(store)
        before = store_state(store)
        with pytest.raises(ConflictError, match=re.escape(project.name)):
            store.create_project(project.name)
        assert store_state(store) == before

    def test_unknown_project_not_found(self, store: Store) -> None:
        """Reading an unknown project id or name raises NotFoundError naming it."""
        missing = new_id()
        with pytest.raises(NotFoundError, match=missing):
            store.get_project(missing)
        with pytest.raises(NotFoundError, match="no-such-project"):
            store.get_project_by_name("no-such-project")

    @pytest.mark.parametrize("name", BAD_NAMES)
    def test_invalid_project_name_rejected(self, store: Store, name: object) -> None:
        """A project name that is empty, blank, too long, unprintable or not a string is refused."""
        before = store_state(store)
        with pytest.raises(InvalidArgumentError, match="name"):
            store.create_project(name)  # type: ignore[arg-type]
        assert store_state(store) == before

    def test_get_or_create_project_is_idempotent(self, store: Store) -> None:
        """get_or_create_project creates once and then returns the same project."""
        name = unique("p")
        first = store.get_or_create_project(name)
        assert store.get_or_create_project(name) == first

    # -- experiments ------------------------------------------------------------------

    def test_create_experiment_returns_it(self, store: Store) -> None:
        """create_experiment keeps name, description and tags; the experiment starts active."""
        project = make_project(store)
        exp = store.create_experiment(project.id, "e", description="d", tags={"team": "ml"})
        assert (exp.project_id, exp.name, exp.description) == (project.id, "e", "d")
        assert exp.tags == {"team": "ml"}
        assert exp.lifecycle is Lifecycle.ACTIVE
        assert _HEX32.fullmatch(exp.id)
        assert near_now(exp.created_at, time.time())
        assert store.get_experiment(exp.id) == exp

    def test_create_experiment_with_chosen_id(self, store: Store) -> None:
        """A caller-chosen experiment id is kept; choosing it again raises ConflictError."""
        project = make_project(store)
        chosen = new_id()
        assert store.create_experiment(project.id, "a", experiment_id=chosen).id == chosen
        before = store_state(store)
        with pytest.raises(ConflictError, match=chosen):
            store.create_experiment(project.id, "b", experiment_id=chosen)
        assert store_state(store) == before

    @pytest.mark.parametrize("bad_id", BAD_IDS)
    def test_invalid_chosen_experiment_id_rejected(self, store: Store, bad_id: object) -> None:
        """A chosen experiment id that is not 32 lowercase hex digits is refused."""
        project = make_project(store)
        before = store_state(store)
        with pytest.raises(InvalidArgumentError, match="experiment id"):
            store.create_experiment(project.id, "e", experiment_id=bad_id)  # type: ignore[arg-type]
        assert store_state(store) == before

    def test_create_experiment_in_unknown_project_not_found(self, store: Store) -> None:
        """Creating an experiment in an unknown project raises NotFoundError naming the project."""
        missing = new_id()
        before = store_state(store)
        with pytest.raises(NotFoundError, match=missing):
            store.create_experiment(missing, "e")
        assert store_state(store) == before

    def test_duplicate_experiment_name_conflicts_within_a_project(self, store: Store) -> None:
        """Experiment names are unique per project, and free across projects."""
        exp = make_experiment(store, name="same")
        before = store_state(store)
        with pytest.raises(ConflictError, match="same"):
            store.create_experiment(exp.project_id, "same")
        assert store_state(store) == before
        other = make_project(store)
        assert store.create_experiment(other.id, "same").name == "same"

    def test_deleted_experiment_keeps_its_name(self, store: Store) -> None:
        """A soft-deleted experiment's name stays taken (restore or rename it)."""
        exp = make_experiment(store, name="gone")
        store.update_experiment(exp.id, lifecycle=Lifecycle.DELETED)
        with pytest.raises(ConflictError, match="gone"):
            store.create_experiment(exp.project_id, "gone")

    def test_get_experiment_by_name(self, store: Store) -> None:
        """An experiment reads back by (project, name); an unknown name raises NotFoundError."""
        exp = make_experiment(store, name="found")
        assert store.get_experiment_by_name(exp.project_id, "found") == exp
        with pytest.raises(NotFoundError, match="missing"):
            store.get_experiment_by_name(exp.project_id, "missing")

    def test_unknown_experiment_not_found(self, store: Store) -> None:
        """Reading or updating an unknown experiment raises NotFoundError naming the id."""
        missing = new_id()
        with pytest.raises(NotFoundError, match=missing):
            store.get_experiment(missing)
        with pytest.raises(NotFoundError, match=missing):
            store.update_experiment(missing, name="x")

    def test_list_experiments_oldest_first(self, store: Store) -> None:
        """list_experiments returns a project's experiments oldest first."""
        project = make_project(store)
        made = [store.create_experiment(project.id, n) for n in ("z", "a", "m")]
        assert store.list_experiments(project.id) == made

    def test_list_experiments_filters_by_project(self, store: Store) -> None:
        """list_experiments(project_id) holds only that project's; None lists all projects'."""
        a, b = make_experiment(store), make_experiment(store)
        assert store.list_experiments(a.project_id) == [a]
        everything = store.list_experiments()
        assert a in everything
        assert b in everything
        assert everything.index(a) < everything.index(b)

    def test_list_experiments_of_unknown_project_not_found(self, store: Store) -> None:
        """list_experiments of an unknown project raises NotFoundError naming it."""
        missing = new_id()
        with pytest.raises(NotFoundError, match=missing):
            store.list_experiments(missing)

    def test_deleted_experiments_hidden_unless_asked(self, store: Store) -> None:
        """Soft-deleted experiments are hidden from listings unless include_deleted."""
        project = make_project(store)
        keep = store.create_experiment(project.id, "keep")
        gone = store.create_experiment(project.id, "gone")
        deleted = store.update_experiment(gone.id, lifecycle=Lifecycle.DELETED)
        assert deleted.lifecycle is Lifecycle.DELETED
        assert store.list_experiments(project.id) == [keep]
        assert store.list_experiments(project.id, include_deleted=True) == [keep, deleted]
        assert store.get_experiment(gone.id) == deleted

    def test_deleted_experiment_can_be_restored(self, store: Store) -> None:
        """Setting lifecycle back to active restores a deleted experiment."""
        exp = make_experiment(store)
        store.update_experiment(exp.id, lifecycle=Lifecycle.DELETED)
        restored = store.update_experiment(exp.id, lifecycle=Lifecycle.ACTIVE)
        assert restored == exp
        assert exp in store.list_experiments(exp.project_id)

    def test_update_experiment_changes_only_given_fields(self, store: Store) -> None:
        """update_experiment changes the given fields and keeps the others."""
        exp = make_experiment(store, description="old", tags={"a": "1"})
        renamed = store.update_experiment(exp.id, name="renamed")
        assert (renamed.name, renamed.description, renamed.tags) == ("renamed", "old", {"a": "1"})
        described = store.update_experiment(exp.id, description="new")
        assert (described.name, described.description) == ("renamed", "new")
        assert (described.id, described.created_at) == (exp.id, exp.created_at)
        assert store.get_experiment(exp.id) == described

    def test_update_experiment_merges_tags(self, store: Store) -> None:
        """Tags given to update_experiment are merged: new keys added, given keys overwritten."""
        exp = make_experiment(store, tags={"a": "1", "b": "2"})
        updated = store.update_experiment(exp.id, tags={"b": "20", "c": "3"})
        assert updated.tags == {"a": "1", "b": "20", "c": "3"}
        assert store.get_experiment(exp.id).tags == updated.tags

    def test_rename_experiment_to_taken_name_conflicts(self, store: Store) -> None:
        """Renaming an experiment to a name its project already uses raises ConflictError."""
        project = make_project(store)
        store.create_experiment(project.id, "taken")
        other = store.create_experiment(project.id, "other")
        before = store_state(store)
        with pytest.raises(ConflictError, match="taken"):
            store.update_experiment(other.id, name="taken", description="changed")
        assert store_state(store) == before

    @pytest.mark.parametrize(
        ("call", "match"),
        [
            pytest.param(lambda s, e: s.create_experiment(e.project_id, ""), "name", id="name"),
            pytest.param(
                lambda s, e: s.create_experiment(e.project_id, "ok", tags={"bad\nkey": "v"}),
                "key",
                id="tag-key",
            ),
            pytest.param(
                lambda s, e: s.create_experiment(e.project_id, "ok", description=None),
                "description",
                id="description",
            ),
            pytest.param(lambda s, e: s.update_experiment(e.id, tags={"k": 1}), "tag", id="tag"),
            pytest.param(
                lambda s, e: s.update_experiment(e.id, lifecycle="gone"),
                "lifecycle",
                id="lifecycle",
            ),
            pytest.param(
                lambda s, e: s.update_experiment(e.id, name="x" * 300), "name", id="long-name"
            ),
        ],
    )
    def test_invalid_experiment_arguments_rejected(
        self, store: Store, call: Callable[[Store, Any], object], match: str
    ) -> None:
        """Bad names, tags, descriptions or lifecycles for experiments are refused by name."""
        exp = make_experiment(store)
        before = store_state(store)
        with pytest.raises(InvalidArgumentError, match=match):
            call(store, exp)
        assert store_state(store) == before

    # -- runs ---------------------------------------------------------------------------

    def test_create_run_defaults(self, store: Store) -> None:
        """A new run is RUNNING and active, starts now, has a name and nothing logged."""
        exp = make_experiment(store)
        run = store.create_run(exp.id)
        assert _HEX32.fullmatch(run.id)
        assert run.experiment_id == exp.id
        assert run.status is RunStatus.RUNNING
        assert run.lifecycle is Lifecycle.ACTIVE
        assert near_now(run.start_time, time.time())
        assert run.end_time is None
        assert run.parent_run_id is None
        assert isinstance(run.name, str)
        assert run.name
        assert not run.params
        assert not run.tags
        assert not run.summaries
        assert store.get_run(run.id) == run

    def test_create_run_keeps_every_field(self, store: Store) -> None:
        """Every create_run argument round-trips, nested code/environment JSON included."""
        exp = make_experiment(store)
        parent = store.create_run(exp.id)
        chosen = new_id()
        code = {"commit": "abc123", "dirty": True, "argv": ["train.py", "--lr", "0.1"]}
        env = {"python": "3.11.9", "gpus": [{"name": "H100", "memory": 80.0}], "cuda": None}
        run = store.create_run(
            exp.id,
            run_id=chosen,
            name="baseline ✓",
            start_time=1_700_000_000.25,
            status=RunStatus.SCHEDULED,
            user="ada",
            parent_run_id=parent.id,
            tags={"stage": "dev", "note": "héllo 🚀"},
            code=code,
            environment=env,
            process="host/123/1700000000.0",
        )
        for got in (run, store.get_run(chosen)):
            assert (got.id, got.name, got.user, got.parent_run_id) == (
                chosen,
                "baseline ✓",
                "ada",
                parent.id,
            )
            assert got.start_time == 1_700_000_000.25
            assert got.status is RunStatus.SCHEDULED
            assert got.tags == {"stage": "dev", "note": "héllo 🚀"}
            assert got.code == code
            assert got.environment == env
            assert got.process == "host/123/1700000000.0"

    def test_create_run_with_taken_id_conflicts(self, store: Store) -> None:
        """Creating a run with an id that exists raises ConflictError and keeps the first run."""
        exp = make_experiment(store)
        run = store.create_run(exp.id, name="first", tags={"a": "1"})
        before = store_state(store, [run.id])
        with pytest.raises(ConflictError, match=run.id):
            store.create_run(exp.id, run_id=run.id, name="second")
        assert store_state(store, [run.id]) == before

    @pytest.mark.parametrize("bad_id", BAD_IDS)
    def test_invalid_chosen_run_id_rejected(self, store: Store, bad_id: object) -> None:
        """A chosen run id that is not 32 lowercase hex digits is refused; nothing is created."""
        exp = make_experiment(store)
        with pytest.raises(InvalidArgumentError, match="run id"):
            store.create_run(exp.id, run_id=bad_id)  # type: ignore[arg-type]
        assert all_runs(store, [exp.id]) == []

    def test_create_run_in_unknown_experiment_not_found(self, store: Store) -> None:
        """Creating a run in an unknown experiment raises NotFoundError naming it."""
        missing = new_id()
        with pytest.raises(NotFoundError, match=missing):
            store.create_run(missing)

    def test_create_run_in_deleted_experiment_is_state_error(self, store: Store) -> None:
        """Creating a run in a deleted experiment raises StateError and creates nothing."""
        exp = make_experiment(store)
        store.update_experiment(exp.id, lifecycle=Lifecycle.DELETED)
        with pytest.raises(StateError, match=exp.id):
            store.create_run(exp.id)
        assert all_runs(store, [exp.id]) == []

    @pytest.mark.parametrize(
        "kwargs",
        [
            pytest.param({"name": ""}, id="empty-name"),
            pytest.param({"name": "n" * 257}, id="long-name"),
            pytest.param({"status": "DONE"}, id="status"),
            pytest.param({"start_time": "yesterday"}, id="start_time-str"),
            pytest.param({"start_time": float("nan")}, id="start_time-nan"),
            pytest.param({"tags": {"k": 1}}, id="tag-value"),
            pytest.param({"tags": {"": "v"}}, id="tag-key"),
            pytest.param({"code": {"obj": object()}}, id="code-object"),
            pytest.param({"code": {"nan": float("nan")}}, id="code-nan"),
            pytest.param({"environment": ["not", "a", "mapping"]}, id="environment-list"),
            pytest.param({"parent_run_id": "not-an-id"}, id="parent_run_id"),
            pytest.param({"user": 5}, id="user-int"),
        ],
    )
    def test_invalid_run_arguments_rejected(self, store: Store, kwargs: dict[str, Any]) -> None:
        """Bad names, statuses, times, tags, code or environment for a run are refused."""
        exp = make_experiment(store)
        with pytest.raises(InvalidArgumentError):
            store.create_run(exp.id, **kwargs)
        assert all_runs(store, [exp.id]) == []

    def test_unknown_run_not_found(self, store: Store) -> None:
        """Every method taking a run id raises NotFoundError naming an unknown one."""
        missing = new_id()
        calls: list[Callable[[], object]] = [
            lambda: store.get_run(missing),
            lambda: store.update_run(missing, name="x"),
            lambda: store.log_batch(missing, params={"a": 1}),
            lambda: store.delete_tag(missing, "a"),
            lambda: store.get_metric_history(missing, "loss"),
            lambda: store.log_artifacts(missing, []),
            lambda: store.list_artifacts(missing),
        ]
        for call in calls:
            with pytest.raises(NotFoundError, match=missing):
                call()

    def test_update_run_changes_only_given_fields(self, store: Store) -> None:
        """update_run changes the given fields; None leaves a field as it is."""
        run = make_run(store, name="before", code={"commit": "a"}, environment={"py": "3.11"})
        store.log_batch(run.id, params={"p": 1}, tags={"t": "v"})
        renamed = store.update_run(run.id, name="after")
        assert renamed.name == "after"
        assert (renamed.status, renamed.start_time, renamed.end_time) == (
            run.status,
            run.start_time,
            None,
        )
        assert renamed.params == {"p": 1}
        assert renamed.tags == {"t": "v"}
        assert renamed.code == {"commit": "a"}
        assert renamed.environment == {"py": "3.11"}
        beat = store.update_run(run.id, heartbeat_time=1_800_000_000.5, process="h/1/2.0")
        assert (beat.heartbeat_time, beat.process, beat.name) == (
            1_800_000_000.5,
            "h/1/2.0",
            "after",
        )
        assert store.get_run(run.id) == beat

    def test_resuming_clears_end_time(self, store: Store) -> None:
        """Setting a finished run back to RUNNING clears its end time."""
        run = make_run(store)
        store.update_run(run.id, status=RunStatus.FINISHED, end_time=run.start_time + 5)
        resumed = store.update_run(run.id, status=RunStatus.RUNNING)
        assert resumed.status is RunStatus.RUNNING
        assert resumed.end_time is None

    def test_update_run_replaces_code_and_environment(self, store: Store) -> None:
        """code and environment given to update_run replace the stored mappings."""
        run = make_run(store, code={"commit": "a", "dirty": True}, environment={"py": "3.11"})
        updated = store.update_run(run.id, code={"commit": "b"}, environment={"py": "3.12"})
        assert updated.code == {"commit": "b"}
        assert updated.environment == {"py": "3.12"}
        assert store.get_run(run.id) == updated

    def test_run_status_transitions(self, store: Store) -> None:
        """A run moves SCHEDULED -> RUNNING -> FINISHED and keeps its end time and duration."""
        run = make_run(store, status=RunStatus.SCHEDULED, start_time=100.0)
        assert store.update_run(run.id, status=RunStatus.RUNNING).status is RunStatus.RUNNING
        done = store.update_run(run.id, status=RunStatus.FINISHED, end_time=160.5)
        assert (done.status, done.end_time, done.duration) == (RunStatus.FINISHED, 160.5, 60.5)
        assert store.get_run(run.id) == done
        for status in (RunStatus.FAILED, RunStatus.KILLED):
            other = make_run(store)
            assert store.update_run(other.id, status=status).status is status

    @pytest.mark.parametrize(
        "kwargs",
        [
            pytest.param({"status": "DONE", "name": "x"}, id="status"),
            pytest.param({"name": "", "status": RunStatus.FINISHED}, id="empty-name"),
            pytest.param({"end_time": "soon"}, id="end_time-str"),
            pytest.param({"heartbeat_time": float("nan")}, id="heartbeat_time-nan"),
            pytest.param({"lifecycle": "gone"}, id="lifecycle"),
            pytest.param({"code": {"x": {1, 2}}}, id="code-set"),
            pytest.param({"environment": "python 3.11"}, id="environment-str"),
        ],
    )
    def test_invalid_run_update_changes_nothing(self, store: Store, kwargs: dict[str, Any]) -> None:
        """A bad argument to update_run raises InvalidArgumentError and leaves the run as it was."""
        run = make_run(store)
        before = store_state(store, [run.id])
        with pytest.raises(InvalidArgumentError):
            store.update_run(run.id, **kwargs)
        assert store_state(store, [run.id]) == before

    def test_deleted_run_is_kept_and_can_be_restored(self, store: Store) -> None:
        """A soft-deleted run still reads back by id and can be restored."""
        run = make_run(store)
        deleted = store.update_run(run.id, lifecycle=Lifecycle.DELETED)
        assert deleted.lifecycle is Lifecycle.DELETED
        assert store.get_run(run.id).lifecycle is Lifecycle.DELETED
        assert store.update_run(run.id, lifecycle=Lifecycle.ACTIVE) == run

    def test_writes_to_deleted_run_are_state_errors(self, store: Store) -> None:
        """Writing to a deleted run raises StateError and changes nothing; restoring allows it."""
        run = make_run(store, tags={"t": "v"})
        store.update_run(run.id, lifecycle=Lifecycle.DELETED)
        before = store_state(store, [run.id])
        with pytest.raises(StateError, match=run.id):
            store.log_batch(run.id, params={"p": 1}, metrics=[series("m", [0], [1.0])])
        with pytest.raises(StateError, match=run.id):
            store.delete_tag(run.id, "t")
        with pytest.raises(StateError, match=run.id):
            store.log_artifacts(run.id, [Artifact("a.txt", "0" * 64, 1)])
        assert store_state(store, [run.id]) == before
        store.update_run(run.id, lifecycle=Lifecycle.ACTIVE)
        store.log_batch(run.id, params={"p": 1})
        assert store.get_run(run.id).params == {"p": 1}
