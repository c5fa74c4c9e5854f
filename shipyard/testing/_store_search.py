"""Conformance tests: search_runs (filter grammar semantics, order, paging)."""

from __future__ import annotations

from typing import Any

import pytest

from shipyard._util import new_id
from shipyard.errors import InvalidArgumentError, NotFoundError
from shipyard.store._base import Store
from shipyard.testing._store_helpers import all_runs, make_experiment, make_run, series
from shipyard.types import Experiment, Lifecycle, RunStatus

__all__ = ["SearchTests"]

NAN = float("nan")


def _zoo(store: Store) -> tuple[Experiment, dict[str, str]]:
    """Four runs with numbers, text, NaN and missing values; returns name -> run id.

    Ids end in 01..04 after a shared random prefix, so ties broken by id
    descending put d before c before b before a.
    """
    exp = make_experiment(store)
    prefix = new_id()[:30]
    specs: list[dict[str, Any]] = [
        {
            "name": "a",
            "start": 100.0,
            "status": RunStatus.FINISHED,
            "params": {"lr": 0.1, "opt": "adam", "layers": 3, "city": "Évry"},
            "tags": {"team": "ranking", "case": "b"},
            "metrics": {"acc": [0.9], "loss": [0.2, 0.5]},
        },
        {
            "name": "b",
            "start": 200.0,
            "status": RunStatus.FAILED,
            "params": {"lr": 0.01, "opt": "sgd", "layers": "3"},
            "tags": {"team": "Pricing", "case": "B"},
            "metrics": {"acc": [0.7], "loss": [NAN]},
        },
        {
            "name": "c",
            "start": 300.0,
            "status": RunStatus.RUNNING,
            "params": {"lr": "0.05", "opt": "Adam"},
            "tags": {"case": "a"},
            "metrics": {},
        },
        {
            "name": "d",
            "start": 400.0,
            "status": RunStatus.RUNNING,
            "params": {"flag": True, "opt": "ada_m"},
            "tags": {"note": "100%", "case": "A"},
            "metrics": {"acc": [0.8], "loss": [0.3, 0.1], "val loss": [1.0]},
        },
    ]
    ids: dict[str, str] = {}
    for i, spec in enumerate(specs, start=1):
        run = store.create_run(
            exp.id,
            run_id=f"{prefix}{i:02x}",
            name=spec["name"],
            start_time=spec["start"],
            status=spec["status"],
            tags=spec["tags"],
        )
        metrics = [series(k, range(len(v)), v) for k, v in spec["metrics"].items()]
        store.log_batch(run.id, params=spec["params"], metrics=metrics)
        ids[spec["name"]] = run.id
    return exp, ids


def _names(store: Store, exp: Experiment, filter: str | None, order_by: Any = None) -> list[str]:
    return [r.name for r in store.search_runs([exp.id], filter, order_by)]


FILTERS = [
    ("metrics.acc > 0.75", "ad"),
    ("metrics.acc >= 0.7 and metrics.acc < 0.85", "bd"),
    ("metrics.loss < 1", "ad"),
    ("metrics.loss != 0.5", "d"),
    ("metrics.acc = nan", ""),
    ("min(metrics.loss) <= 0.2", "ad"),
    ("max(metrics.loss) >= 0.5", "a"),
    ("count(metrics.loss) = 2", "ad"),
    ("metrics.`val loss` = 1", "d"),
    ("metrics.loss IS NULL", "c"),
    ("metrics.loss IS NOT NULL", "abd"),
    ("NOT metrics.acc > 0.75", "b"),
    ("NOT (metrics.acc > 0.75 and metrics.loss < 0.3)", "ab"),
    ("params.lr < 0.05", "b"),
    ("params.lr >= 0.01", "ab"),
    ("params.lr = '0.05'", "c"),
    ("params.lr > '0.02'", "ac"),
    ("params.layers >= 2.5", "a"),
    ("params.flag = 1", ""),
    ("params.city ILIKE 'ÉVRY'", "a"),
    ("params.city ILIKE 'évry'", ""),
    ("params.city LIKE '_vry'", "a"),
    ("tags.case < 'a'", "bd"),
    ("tags.case >= 'B' and tags.case <= 'a'", "bc"),
    ("params.layers = 3", "a"),
    ("params.layers = '3'", "ab"),
    ("params.flag = true", "d"),
    ("params.opt = 'adam'", "a"),
    ("params.opt LIKE 'ad%'", "ad"),
    ("params.opt LIKE 'ada_'", "a"),
    ("params.opt ILIKE 'ADA%'", "acd"),
    ("params.opt NOT LIKE 'ad%'", "bc"),
    ("params.opt LIKE 'ada\\_m'", "d"),
    ("tags.note LIKE '100\\%'", "d"),
    ("params.opt IN ('adam', 'sgd')", "ab"),
    ("params.opt NOT IN ('adam', 'sgd')", "cd"),
    ("tags.team IN ('ranking', 'pricing')", "a"),
    ("tags.team NOT IN ('ranking')", "b"),
    ("tags.team IS NOT NULL", "ab"),
    ("tags.team = 'Pricing' or metrics.acc > 0.85", "ab"),
    ("(metrics.acc > 0.75 or params.opt = 'sgd') and start_time < 400", "ab"),
    ("status = 'finished'", "a"),
    ("status != 'RUNNING'", "ab"),
    ("attributes.status IN ('FAILED', 'FINISHED')", "ab"),
    ("run_name = 'c'", "c"),
    ("start_time >= 300", "cd"),
    ("end_time IS NULL", "abcd"),
    ("params.missing = 1 or params.missing != 1", ""),
    ("params.missing IS NULL and tags.missing IS NULL", "abcd"),
    ("", "abcd"),
]


class SearchTests:
    @pytest.mark.parametrize(("filter", "expected"), FILTERS)
    def test_filter_matches(self, store: Store, filter: str, expected: str) -> None:
        """Filters compare numbers numerically, text by code point, and missing/NaN never match."""
        exp, _ = _zoo(store)
        assert sorted(_names(store, exp, filter)) == list(expected)

    def test_filter_by_run_id(self, store: Store) -> None:
        """run_id and experiment_id are attributes a filter can test."""
        exp, ids = _zoo(store)
        assert _names(store, exp, f"run_id = '{ids['b']}'") == ["b"]
        assert len(_names(store, exp, f"experiment_id = '{exp.id}'")) == 4

    @pytest.mark.parametrize(
        ("order_by", "expected"),
        [
            (None, "dcba"),
            ([], "dcba"),
            (["start_time"], "abcd"),
            (["metrics.acc"], "bdac"),
            (["metrics.acc DESC"], "adbc"),
            (["metrics.loss"], "dacb"),
            (["metrics.loss DESC"], "adcb"),
            (["min(metrics.loss) ASC"], "dacb"),
            (["params.lr"], "bacd"),
            (["params.lr DESC"], "cabd"),
            (["tags.team", "start_time DESC"], "badc"),
            (["status", "run_name DESC"], "badc"),
            (["params.missing"], "dcba"),
            (["tags.case"], "dbca"),
            (["tags.case DESC"], "acbd"),
        ],
        ids=str,
    )
    def test_order_by(self, store: Store, order_by: Any, expected: str) -> None:
        """Runs sort by the given keys, missing and NaN last either way, ties by id descending."""
        exp, _ = _zoo(store)
        assert "".join(_names(store, exp, None, order_by)) == expected

    def test_search_returns_whole_runs(self, store: Store) -> None:
        """Each search result equals what get_run returns for it."""
        exp, _ = _zoo(store)
        for run in store.search_runs([exp.id]):
            expected = store.get_run(run.id)
            assert run.params == expected.params
            assert run.tags == expected.tags
            assert set(run.summaries) == set(expected.summaries)
            assert (run.name, run.status, run.start_time) == (
                expected.name,
                expected.status,
                expected.start_time,
            )

    @pytest.mark.parametrize("page_size", [1, 3, 5, 7, 23, 100])
    def test_paging_visits_every_run_once(self, store: Store, page_size: int) -> None:
        """Following next_page_token yields every match exactly once, in the one-page order."""
        exp = make_experiment(store)
        for i in range(23):
            run = make_run(store, exp, start_time=float(i % 5))
            if i % 6:
                store.log_metrics(run.id, [series("m", [0], [float(i % 4)])])
        for order_by in (None, ["metrics.m"], ["metrics.m DESC", "start_time"]):
            whole = [r.id for r in store.search_runs([exp.id], None, order_by, 50_000)]
            seen: list[str] = []
            token = None
            pages = 0
            while True:
                page = store.search_runs([exp.id], None, order_by, page_size, token)
                assert 0 < len(page) <= page_size
                seen += [r.id for r in page]
                pages += 1
                token = page.next_page_token
                if token is None:
                    break
                assert pages <= 23
            assert seen == whole
            assert len(set(seen)) == 23

    def test_paging_with_filter(self, store: Store) -> None:
        """Paging through a filtered search returns exactly the filtered runs."""
        exp = make_experiment(store)
        for i in range(12):
            run = make_run(store, exp)
            store.log_param(run.id, "i", i)
        got = list(store.iter_runs([exp.id], "params.i >= 4", ["params.i"], page_size=3))
        assert [r.params["i"] for r in got] == list(range(4, 12))

    def test_page_token_of_another_query_rejected(self, store: Store) -> None:
        """A page token used with another filter or order, or a garbled one, is refused."""
        exp, _ = _zoo(store)
        token = store.search_runs([exp.id], "metrics.acc > 0", None, 1).next_page_token
        assert token is not None
        with pytest.raises(InvalidArgumentError, match="token"):
            store.search_runs([exp.id], "metrics.acc > 0.5", None, 1, token)
        with pytest.raises(InvalidArgumentError, match="token"):
            store.search_runs([exp.id], "metrics.acc > 0", ["run_name"], 1, token)
        with pytest.raises(InvalidArgumentError, match="token"):
            store.search_runs([exp.id], None, None, 1, "not a token!!")

    def test_experiment_ids_restrict_the_search(self, store: Store) -> None:
        """experiment_ids limits results to those experiments; None searches all of them."""
        e1, e2 = make_experiment(store), make_experiment(store)
        r1, r2 = make_run(store, e1), make_run(store, e2)
        assert [r.id for r in store.search_runs([e1.id])] == [r1.id]
        assert {r.id for r in store.search_runs([e1.id, e2.id])} == {r1.id, r2.id}
        assert {r1.id, r2.id} <= {r.id for r in store.search_runs(None, max_results=50_000)}
        assert list(store.search_runs([])) == []

    def test_search_unknown_experiment_not_found(self, store: Store) -> None:
        """Searching an unknown experiment id raises NotFoundError naming it."""
        missing = new_id()
        with pytest.raises(NotFoundError, match=missing):
            store.search_runs([missing])

    def test_deleted_runs_hidden_unless_asked(self, store: Store) -> None:
        """Soft-deleted runs are left out of search unless include_deleted."""
        exp = make_experiment(store)
        keep, gone = make_run(store, exp), make_run(store, exp)
        store.update_run(gone.id, lifecycle=Lifecycle.DELETED)
        assert [r.id for r in store.search_runs([exp.id])] == [keep.id]
        assert {r.id for r in all_runs(store, [exp.id])} == {keep.id, gone.id}

    @pytest.mark.parametrize(
        "filter",
        [
            "metrics.acc >",
            "metrics.acc > 'high'",
            "metrics.acc LIKE 'a%'",
            "params.opt LIKE 5",
            "tags.team = 5",
            "tags.team = unquoted",
            "foo.bar = 1",
            "nosuchattribute = 1",
            "metrics.acc > 1 and",
            "(metrics.acc > 1",
            "metrics.acc > 1)",
            "metrics.acc >> 1",
            "metrics.acc IN (1, 'a')",
            "status = 'DONE'",
            "params.x = 'unterminated",
            "metrics. = 1",
            "metrics.acc = null",
            "metrics.acc > 1 " + "and metrics.acc > 1 " * 600,
        ],
    )
    def test_bad_filter_rejected(self, store: Store, filter: str) -> None:
        """A malformed filter raises InvalidArgumentError saying what was expected."""
        exp, _ = _zoo(store)
        with pytest.raises(InvalidArgumentError, match=r"expected|filter"):
            store.search_runs([exp.id], filter)

    @pytest.mark.parametrize(
        "order_by", [["metrics.acc SIDEWAYS"], ["nope"], "metrics.acc", [5], ["metrics.acc, x"]]
    )
    def test_bad_order_by_rejected(self, store: Store, order_by: Any) -> None:
        """A malformed order_by raises InvalidArgumentError."""
        exp, _ = _zoo(store)
        with pytest.raises(InvalidArgumentError, match="order_by"):
            store.search_runs([exp.id], None, order_by)

    @pytest.mark.parametrize("max_results", [0, -1, 50_001, "10", 2.5, None, True])
    def test_max_results_bounds(self, store: Store, max_results: Any) -> None:
        """max_results must be an integer from 1 to 50,000."""
        exp, _ = _zoo(store)
        with pytest.raises(InvalidArgumentError, match="max_results"):
            store.search_runs([exp.id], None, None, max_results)
        assert len(store.search_runs([exp.id], None, None, 50_000)) == 4

    @pytest.mark.parametrize("bad", [5, ["ok"], b"metrics.acc > 1"])
    def test_filter_must_be_text(self, store: Store, bad: Any) -> None:
        """A filter that is not a string raises InvalidArgumentError."""
        exp, _ = _zoo(store)
        with pytest.raises(InvalidArgumentError, match="filter"):
            store.search_runs([exp.id], bad)
