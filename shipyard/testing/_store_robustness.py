"""Conformance tests: hostile input, immutability of returned values, threads."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from shipyard.errors import ConflictError, InvalidArgumentError, ShipyardError
from shipyard.store._base import Store
from shipyard.testing._store_helpers import (
    all_runs,
    make_experiment,
    make_project,
    make_run,
    run_state,
    series,
    store_state,
    unique,
)
from shipyard.types import Artifact

__all__ = ["RobustnessTests"]

MEGABYTE = "x" * 1_000_000


def _in_threads(count: int, work: Callable[[int], None]) -> list[BaseException]:
    """Run ``work(i)`` in ``count`` threads started together; return what they raised."""
    errors: list[BaseException] = []
    barrier = threading.Barrier(count)

    def target(i: int) -> None:
        try:
            barrier.wait()
            work(i)
        except BaseException as e:  # collected and checked by the test
            errors.append(e)

    threads = [threading.Thread(target=target, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads), "a writer thread hung"
    return errors


class RobustnessTests:
    # -- hostile input ------------------------------------------------------------------

    def test_huge_inputs_refused_with_short_messages(self, store: Store) -> None:
        """Megabyte names, keys, values and filters are refused; the message stays short."""
        run = make_run(store, tags={"keep": "me"})
        exp = store.get_experiment(run.experiment_id)
        before = store_state(store, [run.id])
        calls: list[Callable[[], object]] = [
            lambda: store.create_project(MEGABYTE),
            lambda: store.create_experiment(exp.project_id, MEGABYTE),
            lambda: store.create_run(exp.id, name=MEGABYTE),
            lambda: store.log_param(run.id, MEGABYTE, 1),
            lambda: store.log_param(run.id, "p", MEGABYTE),
            lambda: store.set_tag(run.id, "t", MEGABYTE),
            lambda: store.log_metrics(run.id, [series(MEGABYTE, [0], [1.0])]),
            lambda: store.search_runs([exp.id], f"params.p = '{MEGABYTE}'"),
            lambda: store.get_metric_history(run.id, MEGABYTE),
            lambda: store.log_artifacts(run.id, [Artifact(MEGABYTE, "ab" * 32, 1)]),
        ]
        for call in calls:
            with pytest.raises(InvalidArgumentError) as info:
                call()
            assert len(str(info.value)) < 1000
        assert store_state(store, [run.id]) == before

    @pytest.mark.parametrize(
        "call",
        [
            pytest.param(lambda s, run: s.get_run(123), id="get_run(int)"),
            pytest.param(lambda s, run: s.get_run(None), id="get_run(None)"),
            pytest.param(lambda s, run: s.get_experiment(["id"]), id="get_experiment(list)"),
            pytest.param(lambda s, run: s.get_project(3.5), id="get_project(float)"),
            pytest.param(lambda s, run: s.create_project("p", description=5), id="description"),
            pytest.param(lambda s, run: s.update_run(run.id, status="PAUSED"), id="status"),
            pytest.param(lambda s, run: s.update_run(run.id, end_time=float("inf")), id="end_time"),
            pytest.param(lambda s, run: s.update_run(run.id, process=7), id="process"),
            pytest.param(lambda s, run: s.log_batch(run.id, params={"p": object()}), id="param"),
            pytest.param(lambda s, run: s.log_batch(run.id, params=[1]), id="params-list"),
            pytest.param(lambda s, run: s.log_batch(run.id, tags={"t": None}), id="tag-None"),
            pytest.param(
                lambda s, run: s.log_batch(run.id, metrics=[("m", [0], [1.0])]), id="metric-tuple"
            ),
            pytest.param(lambda s, run: s.log_artifacts(run.id, "a.txt"), id="artifacts-str"),
            pytest.param(lambda s, run: s.delete_tag(run.id, ""), id="delete_tag-empty"),
            pytest.param(lambda s, run: s.search_runs(run.experiment_id), id="experiment_ids-str"),
        ],
    )
    def test_wrong_types_raise_invalid_argument(
        self, store: Store, call: Callable[[Store, Any], object]
    ) -> None:
        """Arguments of the wrong type raise InvalidArgumentError and change nothing."""
        run = make_run(store, tags={"t": "v"})
        store.log_metrics(run.id, [series("m", [0], [1.0])])
        before = store_state(store, [run.id])
        with pytest.raises(InvalidArgumentError):
            call(store, run)
        assert store_state(store, [run.id]) == before

    def test_errors_are_shipyard_errors_with_builtin_bases(self, store: Store) -> None:
        """NotFoundError is a LookupError, InvalidArgumentError a ValueError; both Shipyard's."""
        run = make_run(store)
        with pytest.raises(LookupError) as missing:
            store.get_metric_history(run.id, "nope")
        with pytest.raises(ValueError, match="key") as invalid:
            store.get_metric_history(run.id, "bad key*")
        assert isinstance(missing.value, ShipyardError)
        assert isinstance(invalid.value, ShipyardError)

    # -- immutability ---------------------------------------------------------------------

    def test_returned_entities_are_frozen(self, store: Store) -> None:
        """Projects, experiments, runs, summaries and artifacts cannot be assigned to."""
        run = make_run(store)
        store.log_metrics(run.id, [series("m", [0], [1.0])])
        store.log_artifacts(run.id, [Artifact("a", "ab" * 32, 1)])
        run = store.get_run(run.id)
        exp = store.get_experiment(run.experiment_id)
        entities: list[Any] = [
            run,
            exp,
            store.get_project(exp.project_id),
            run.summaries["m"],
            store.list_artifacts(run.id)[0],
        ]
        for entity in entities:
            first = dataclasses.fields(entity)[0].name
            with pytest.raises(dataclasses.FrozenInstanceError):
                setattr(entity, first, "changed")

    def test_returned_mappings_are_read_only(self, store: Store) -> None:
        """params, tags, summaries, code, environment and experiment tags refuse changes."""
        exp = make_experiment(store, tags={"a": "1"})
        run = make_run(store, exp, tags={"t": "v"}, code={"c": 1}, environment={"e": 1})
        store.log_batch(run.id, params={"p": 1}, metrics=[series("m", [0], [1.0])])
        run = store.get_run(run.id)
        mappings: list[Any] = [
            run.params,
            run.tags,
            run.summaries,
            run.code,
            run.environment,
            store.get_experiment(exp.id).tags,
        ]
        for mapping in mappings:
            with pytest.raises(TypeError):
                mapping["x"] = 1
            with pytest.raises(TypeError):
                mapping.clear()

    def test_history_columns_are_read_only(self, store: Store) -> None:
        """The arrays of a returned metric history cannot be written to."""
        run = make_run(store)
        store.log_metrics(run.id, [series("m", range(100), np.arange(100.0))])
        for got in (
            store.get_metric_history(run.id, "m"),
            store.get_metric_history(run.id, "m", max_points=10),
        ):
            for column in (got.steps, got.values, got.timestamps):
                with pytest.raises(ValueError, match="read-only"):
                    column[0] = 5

    def test_snapshots_do_not_change_after_later_writes(self, store: Store) -> None:
        """A run or history read earlier stays as it was when the store changes afterwards."""
        run = make_run(store, code={"argv": ["a"]})
        store.log_batch(run.id, params={"p": 1}, tags={"t": "1"}, metrics=[series("m", [0], [1.0])])
        old_run = store.get_run(run.id)
        old_history = store.get_metric_history(run.id, "m")
        old_text = repr(old_run), old_history.points()
        store.log_batch(run.id, params={"q": 2}, tags={"t": "2"}, metrics=[series("m", [1], [2.0])])
        store.update_run(run.id, name="renamed", code={"argv": ["b"]})
        store.delete_tag(run.id, "t")
        assert (repr(old_run), old_history.points()) == old_text

    def test_callers_inputs_are_copied(self, store: Store) -> None:
        """Mutating dicts passed to the store afterwards does not change what it stored."""
        exp_tags = {"a": "1"}
        exp = make_experiment(store, tags=exp_tags)
        tags, code = {"t": "v"}, {"argv": ["train.py"], "nested": {"k": "v"}}
        params = {"p": 1}
        run = make_run(store, exp, tags=tags, code=code)
        store.log_params(run.id, params)
        exp_tags["a"] = "changed"
        tags["t"] = "changed"
        code["argv"].append("--evil")  # type: ignore[attr-defined]
        code["nested"]["k"] = "changed"  # type: ignore[index]
        params["p"] = 2
        got = store.get_run(run.id)
        assert store.get_experiment(exp.id).tags == {"a": "1"}
        assert got.tags == {"t": "v"}
        assert got.code == {"argv": ["train.py"], "nested": {"k": "v"}}
        assert got.params == {"p": 1}

    def test_mutating_nested_values_of_a_snapshot_does_not_leak(self, store: Store) -> None:
        """Editing a nested list inside one returned run does not change later reads."""
        run = make_run(store, code={"argv": ["train.py"]})
        first = store.get_run(run.id)
        first.code["argv"].append("--evil")
        assert store.get_run(run.id).code == {"argv": ["train.py"]}

    # -- threads ----------------------------------------------------------------------------

    def test_concurrent_metric_logging_keeps_every_point(self, store: Store) -> None:
        """Threads logging to one run and key at once lose no point."""
        run = make_run(store)
        threads, batches, size = 8, 25, 40

        def work(i: int) -> None:
            for b in range(batches):
                start = (i * batches + b) * size
                store.log_metrics(
                    run.id, [series("m", range(start, start + size), [float(i)] * size)]
                )

        assert _in_threads(threads, work) == []
        got = store.get_metric_history(run.id, "m")
        total = threads * batches * size
        assert got.steps.tolist() == list(range(total))
        assert store.get_run(run.id).summaries["m"].count == total

    def test_concurrent_params_and_tags_all_land(self, store: Store) -> None:
        """Threads logging different params and tags to one run all succeed."""
        run = make_run(store)

        def work(i: int) -> None:
            for j in range(10):
                store.log_batch(run.id, params={f"p{i}_{j}": j}, tags={f"t{i}": str(j)})

        assert _in_threads(8, work) == []
        got = store.get_run(run.id)
        assert len(got.params) == 80
        assert got.tags == {f"t{i}": "9" for i in range(8)}

    def test_concurrent_conflicting_params_one_wins(self, store: Store) -> None:
        """Threads racing to log one param with different values: one wins, the rest conflict."""
        run = make_run(store)
        errors = _in_threads(8, lambda i: store.log_param(run.id, "seed", i))
        assert len(errors) == 7
        assert all(isinstance(e, ConflictError) for e in errors)
        assert store.get_run(run.id).params["seed"] in range(8)

    def test_concurrent_run_creation(self, store: Store) -> None:
        """Threads creating runs at once get distinct runs, all stored."""
        exp = make_experiment(store)
        made: list[str] = []

        def work(i: int) -> None:
            for _ in range(10):
                made.append(store.create_run(exp.id).id)

        assert _in_threads(8, work) == []
        assert len(set(made)) == 80
        assert {r.id for r in all_runs(store, [exp.id])} == set(made)

    def test_concurrent_get_or_create_project(self, store: Store) -> None:
        """Threads calling get_or_create_project with one name all get the same project."""
        name = unique("shared")
        got: list[str] = []
        errors = _in_threads(8, lambda i: got.append(store.get_or_create_project(name).id))
        assert errors == []
        assert len(set(got)) == 1
        assert [p.id for p in store.list_projects() if p.name == name] == got[:1]

    def test_state_checks_read_back_everything(self, store: Store) -> None:
        """The suite's own state dump sees params, tags, points and artifacts (self-check)."""
        run = make_run(store)
        project = make_project(store)
        empty = run_state(store, run.id)
        store.log_batch(run.id, params={"p": 1})
        with_param = run_state(store, run.id)
        store.log_metrics(run.id, [series("m", [0], [1.0])])
        with_metric = run_state(store, run.id)
        store.log_artifacts(run.id, [Artifact("a", "ab" * 32, 1)])
        assert len({empty, with_param, with_metric, run_state(store, run.id)}) == 4
        assert project.name in store_state(store)
