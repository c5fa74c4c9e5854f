"""The run-search grammar: parser, reference semantics, ordering, page tokens, and a
differential test of the SQL compiler against :func:`evaluate` on SQLite and PostgreSQL."""

from __future__ import annotations

import dataclasses
import math
import os
import random
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa

from shipyard._util import FrozenDict
from shipyard.errors import InvalidArgumentError
from shipyard.store import _evaluate, _paging
from shipyard.store import _filter as f
from shipyard.store._evaluate import evaluate, sort_runs
from shipyard.store._filter import (
    And,
    Compare,
    Field,
    In,
    IsNull,
    Not,
    Or,
    OrderKey,
    parse_filter,
    parse_order_by,
)
from shipyard.store._sql import _schema as t
from shipyard.store._sql import _search
from shipyard.types import MetricSummary, ParamValue, Run, RunStatus

NAN, INF = math.nan, math.inf
M = Field("metric", "m")
P = Field("param", "p")
T = Field("tag", "t")


def summary(
    key: str, last: float, lo: float | None = None, hi: float | None = None
) -> MetricSummary:
    lo = last if lo is None else lo
    hi = last if hi is None else hi
    return MetricSummary(key, last, 1, 0.0, lo, hi, 3)


def make_run(
    run_id: str = "r",
    *,
    metrics: dict[str, float] | None = None,
    params: dict[str, ParamValue] | None = None,
    tags: dict[str, str] | None = None,
    **attrs: Any,
) -> Run:
    fields: dict[str, Any] = {"name": "run", "status": RunStatus.FINISHED, "start_time": 0.0}
    fields.update(attrs)
    return Run(
        id=run_id,
        experiment_id="e",
        params=FrozenDict(params or {}),
        tags=FrozenDict(tags or {}),
        summaries=FrozenDict({k: summary(k, v) for k, v in (metrics or {}).items()}),
        **fields,
    )


def check(text: str, run: Run) -> bool | None:
    expr = parse_filter(text)
    assert expr is not None
    return evaluate(expr, run)


# -- parser -------------------------------------------------------------------------


class TestParse:
    GOOD = [
        ("metrics.m < 3", Compare(M, "<", 3.0)),
        ("metric.m >= -1.5e-3", Compare(M, ">=", -0.0015)),
        ("min(metrics.m) <= 1", Compare(Field("metric", "m", "min"), "<=", 1.0)),
        ("COUNT( metrics.m ) = 2", Compare(Field("metric", "m", "count"), "=", 2.0)),
        ("last(metrics.m) > 0", Compare(M, ">", 0.0)),
        ("metrics.val/loss != 1", Compare(Field("metric", "val/loss"), "!=", 1.0)),
        ("metrics.`val loss` = 1", Compare(Field("metric", "val loss"), "=", 1.0)),
        ('metrics."a ""b""" = 1', Compare(Field("metric", 'a "b"'), "=", 1.0)),
        ("params.model.lr = 0.1", Compare(Field("param", "model.lr"), "=", 0.1)),
        ("param.x:y-z = 'a'", Compare(Field("param", "x:y-z"), "=", "a")),
        ("params.p = TRUE", Compare(P, "=", True)),
        ("params.p != false", Compare(P, "!=", False)),
        ("tags.t = 'it''s'", Compare(T, "=", "it's")),
        ("tags.t = 'it\\'s'", Compare(T, "=", "it's")),
        ('tag.t = "double"', Compare(T, "=", "double")),
        ("tags.t LIKE 'a\\_%'", Compare(T, "LIKE", "a\\_%")),
        ("tags.t not ilike 'A%'", Compare(T, "NOT ILIKE", "A%")),
        ("tags.t IN ('a', 'b')", In(T, ("a", "b"), False)),
        ("params.p NOT IN (1, 2)", In(P, (1.0, 2.0), True)),
        ("tags.t IS NULL", IsNull(T, False)),
        ("params.p is not null", IsNull(P, True)),
        ("status = 'running'", Compare(Field("attr", "status"), "=", "RUNNING")),
        ("attributes.id = 'x'", Compare(Field("attr", "run_id"), "=", "x")),
        ("run.name = 'x'", Compare(Field("attr", "run_name"), "=", "x")),
        ("attr.START_TIME > 5", Compare(Field("attr", "start_time"), ">", 5.0)),
        ("end_time IS NULL", IsNull(Field("attr", "end_time"), False)),
        ("metrics.m > -inf", Compare(M, ">", -INF)),
        ("metrics.m < INF", Compare(M, "<", INF)),
        ("metrics.m <> 1", Compare(M, "!=", 1.0)),
    ]

    @pytest.mark.parametrize(("text", "expected"), GOOD)
    def test_good_filters(self, text: str, expected: f.Expr) -> None:
        """Each field form, literal form and operator parses to the expected tree."""
        assert parse_filter(text) == expected

    def test_precedence(self) -> None:
        """NOT binds tighter than AND, which binds tighter than OR; parentheses group."""
        a, b, c = Compare(M, ">", 1.0), Compare(M, "<", 2.0), IsNull(T, False)
        assert parse_filter("metrics.m > 1 or metrics.m < 2 and tags.t is null") == Or(
            (a, And((b, c)))
        )
        assert parse_filter("not metrics.m > 1 AND metrics.m < 2") == And((Not(a), b))
        assert parse_filter("(metrics.m > 1 or metrics.m < 2) and tags.t is null") == And(
            (Or((a, b)), c)
        )
        assert parse_filter("not not metrics.m > 1") == Not(Not(a))

    def test_nan_literal(self) -> None:
        """nan is a number literal in any case."""
        expr = parse_filter("metrics.m = NaN")
        assert isinstance(expr, Compare)
        assert isinstance(expr.value, float)
        assert math.isnan(expr.value)

    @pytest.mark.parametrize("text", [None, "", "   \n"])
    def test_empty_filter_is_none(self, text: str | None) -> None:
        """No filter, or only whitespace, means every run."""
        assert parse_filter(text) is None

    BAD = [
        ("metrics.m <", ["character 12", "expected a value", "after '<'", "end of input"]),
        ("metrics.m < 1 and", ["character 18", "expected a field", "after 'and'"]),
        ("()", ["character 2", "expected a field", "got ')'"]),
        ("metrics.m = 1)", ["character 14", "unbalanced ')'"]),
        ("(metrics.m = 1", ["character 15", "expected ')' to close the '(' at character 1"]),
        ("metricz.m = 1", ["character 1", "unknown field 'metricz.m'", "metrics.KEY", "tags.KEY"]),
        ("foo = 1", ["unknown field 'foo'", "run_id", "start_time"]),
        ("attributes.foo = 'a'", ["unknown field 'attributes.foo'"]),
        ("metrics.m = 1 2", ["character 15", "expected AND, OR or end of input", "number 2"]),
        ("metrics.m = 'a'", ["expected a number after 'metrics.m ='", "got string 'a'"]),
        ("metrics.m = true", ["expected a number", "got boolean true"]),
        ("tags.t = 1", ["expected a quoted string after 'tags.t ='", "got number 1"]),
        ("start_time > 'a'", ["expected a number after 'start_time >'"]),
        ("run_name = 5", ["expected a quoted string after 'run_name ='"]),
        ("status = 'done'", ["expected a run status (SCHEDULED", "got string 'done'"]),
        ("status IN ('running', 'nope')", ["expected a run status", "'nope'"]),
        ("params.p < true", ["true and false go with = and != only", "got boolean true"]),
        ("params.p LIKE true", ["expected a quoted string pattern"]),
        ("metrics.m LIKE 'a%'", ["LIKE matches text", "metrics.m holds numbers"]),
        ("tags.t LIKE 'a\\\\'", ["lone escape character"]),
        ("metrics.m = null", ["got null", "IS NULL"]),
        ("metrics.m = abc", ["expected a value", "got 'abc'", "quote strings: 'abc'"]),
        ("tags.t = 'abc", ["character 10", "expected a closing '"]),
        ("metrics.m ~ 1", ["character 11", "unexpected character '~'"]),
        ("metrics.m not between 1", ["expected IN, LIKE or ILIKE after 'not'"]),
        ("tags.t is 1", ["expected NULL after 'is'"]),
        ("tags.t in 'a'", ["expected '(' to open the list of values"]),
        ("tags.t in ()", ["expected a value", "got ')'"]),
        ("params.p in (1, 'a')", ["IN needs values of one type", "number and string"]),
        ("metrics. = 1", ["expected a key right after 'metrics.'", "metrics.`val loss`"]),
        ("metrics.`` = 1", ["got an empty name"]),
        ("min(params.p) > 1", ["min() applies to metrics", "got min(params.p)"]),
        ("min(metrics.m > 1", ["expected ')' to close min("]),
        ("metrics.m", ["expected an operator", "end of input"]),
        ("and metrics.m = 1", ["expected a field", "got 'and'"]),
        ("metrics.m = 1 and or metrics.m = 2", ["expected a field", "after 'and'", "got 'or'"]),
        ("= 1", ["character 1", "expected a field", "got '='"]),
        ("`m` = 1", ["expected a field", "got '`m`'"]),
    ]

    @pytest.mark.parametrize(("text", "parts"), BAD)
    def test_bad_filters(self, text: str, parts: list[str]) -> None:
        """A bad filter raises InvalidArgumentError saying where, what was expected, what came."""
        with pytest.raises(InvalidArgumentError) as info:
            parse_filter(text)
        message = str(info.value)
        assert message.startswith("invalid filter") or "too long" in message
        for part in parts:
            assert part in message

    def test_too_long(self) -> None:
        """Filters over 10,000 characters are refused with the limit and the length."""
        text = "metrics.m > 1" + " " * f.MAX_FILTER_LENGTH
        with pytest.raises(InvalidArgumentError, match="at most 10000 characters, got 10013"):
            parse_filter(text)

    def test_not_a_string(self) -> None:
        """A filter that is not a string names the type received."""
        with pytest.raises(InvalidArgumentError, match="filter must be a string, got int"):
            parse_filter(5)  # type: ignore[arg-type]


class TestParseOrderBy:
    def test_default_is_newest_first(self) -> None:
        """No order means start_time DESC."""
        default = (OrderKey(Field("attr", "start_time"), True),)
        assert parse_order_by(None) == default
        assert parse_order_by([]) == default

    def test_items(self) -> None:
        """Fields take an optional ASC or DESC in any case."""
        assert parse_order_by(
            ["metrics.m", "min(metrics.m) desc", "params.p ASC", "name", "tags.`a b` DESC"]
        ) == (
            OrderKey(M, False),
            OrderKey(Field("metric", "m", "min"), True),
            OrderKey(P, False),
            OrderKey(Field("attr", "run_name"), False),
            OrderKey(Field("tag", "a b"), True),
        )

    @pytest.mark.parametrize(
        ("items", "parts"),
        [
            (
                ["metrics.m up"],
                ["invalid order_by item 'metrics.m up'", "character 11", "ASC, DESC"],
            ),
            ([""], ["expected a field", "end of input"]),
            (["bogus"], ["unknown field 'bogus'"]),
            ("metrics.m", ["must be a list of strings", "got str"]),
            ([3], ["must be strings, got int 3"]),
        ],
    )
    def test_bad_items(self, items: Any, parts: list[str]) -> None:
        """A bad order_by raises InvalidArgumentError naming the item and the problem."""
        with pytest.raises(InvalidArgumentError) as info:
            parse_order_by(items)
        for part in parts:
            assert part in str(info.value)


# -- reference semantics ------------------------------------------------------------


class TestEvaluate:
    def test_missing_is_unknown_and_not_keeps_it(self) -> None:
        """A comparison on a missing field is UNKNOWN, and NOT UNKNOWN is UNKNOWN."""
        run = make_run()
        for text in ["metrics.m > 1", "params.p = 'a'", "tags.t != 'a'", "end_time > 0"]:
            assert check(text, run) is None
            assert check(f"not {text}", run) is None

    def test_nan_metric_is_unknown(self) -> None:
        """A NaN metric summary compares as UNKNOWN, like SQL NULL."""
        run = make_run(metrics={"m": NAN})
        assert check("metrics.m > 1", run) is None
        assert check("metrics.m != 1", run) is None
        assert check("count(metrics.m) = 3", run) is True

    def test_nan_literal_is_unknown(self) -> None:
        """A nan literal makes the comparison UNKNOWN; in IN lists it only blocks False."""
        run = make_run(metrics={"m": 1.0})
        assert check("metrics.m = nan", run) is None
        assert check("metrics.m != nan", run) is None
        assert check("metrics.m IN (1, nan)", run) is True
        assert check("metrics.m IN (2, nan)", run) is None
        assert check("metrics.m NOT IN (2, nan)", run) is None

    def test_infinities(self) -> None:
        """inf and -inf are ordinary numbers."""
        run = make_run(metrics={"m": INF})
        assert check("metrics.m = inf", run) is True
        assert check("metrics.m > 1e308", run) is True
        assert check("metrics.m > -inf", run) is True

    def test_and_or_three_valued(self) -> None:
        """AND and OR follow SQL: False decides AND, True decides OR, else UNKNOWN wins."""
        run = make_run(metrics={"m": 1.0})
        assert check("metrics.x > 0 and metrics.m > 5", run) is False
        assert check("metrics.x > 0 and metrics.m > 0", run) is None
        assert check("metrics.x > 0 or metrics.m > 0", run) is True
        assert check("metrics.x > 0 or metrics.m > 5", run) is None
        assert check("not (metrics.x > 0 or metrics.m > 5)", run) is None

    def test_is_null_tests_existence(self) -> None:
        """IS NULL is true when the run lacks the field and is never UNKNOWN."""
        run = make_run(metrics={"m": NAN}, params={"p": None}, end_time=None)
        assert check("metrics.m IS NULL", run) is False
        assert check("params.p IS NOT NULL", run) is True
        assert check("tags.t IS NULL", run) is True
        assert check("end_time IS NULL", run) is True
        assert check("not tags.t is null", run) is False

    def test_aggregates(self) -> None:
        """min(), max(), last() and count() read the metric summary."""
        stats = MetricSummary("m", 2.0, 5, 0.0, -1.0, 7.0, 9)
        run = dataclasses.replace(make_run(), summaries=FrozenDict({"m": stats}))
        assert check("min(metrics.m) = -1 and max(metrics.m) = 7", run) is True
        assert check("last(metrics.m) = 2 and metrics.m = 2 and count(metrics.m) = 9", run) is True

    @pytest.mark.parametrize(
        ("value", "text", "expected"),
        [
            (0.5, "params.p < 1", True),
            (3, "params.p = 3.0", True),
            (True, "params.p = 1", None),
            ("0.5", "params.p < 1", None),
            (NAN, "params.p != 1", None),
            (None, "params.p = 0", None),
            (2**53 + 1, "params.p = 9007199254740992", True),
            (0.1, "params.p = '0.1'", True),
            (3, "params.p = '3'", True),
            (1.0, "params.p = '1'", False),
            (True, "params.p = 'true'", True),
            (None, "params.p = 'null'", True),
            ("10", "params.p > '9'", False),
            (10, "params.p > 9", True),
            (True, "params.p = true", True),
            (False, "params.p != true", True),
            (1, "params.p = true", None),
            ("true", "params.p = true", None),
            (NAN, "params.p = 'nan'", True),
            (0.25, "params.p LIKE '0.2%'", True),
            (3, "params.p IN (1, 3)", True),
            ("b", "params.p IN ('a', 'b')", True),
            (False, "params.p IN (true)", False),
        ],
    )
    def test_param_typing(self, value: ParamValue, text: str, expected: bool | None) -> None:
        """Numbers match int/float params numerically; strings match the text form;
        booleans match bool params; other types are UNKNOWN."""
        assert check(text, make_run(params={"p": value})) is expected

    @pytest.mark.parametrize(
        ("value", "pattern", "like", "ilike"),
        [
            ("Adam", "Ad%", True, True),
            ("adam", "AD%", False, True),
            ("a_b", "a\\_b", True, True),
            ("axb", "a\\_b", False, False),
            ("axb", "a_b", True, True),
            ("a%b", "a\\%b", True, True),
            ("ab", "a\\%b", False, False),
            ("x*y", "x*y", True, True),
            ("xzy", "x*y", False, False),
            ("[z]", "[z]", True, True),
            ("É", "é", False, False),
            ("line\nbreak", "line%", True, True),
            ("", "%", True, True),
            ("a\\b", "a\\\\b", True, True),
        ],
    )
    def test_like(self, value: str, pattern: str, like: bool, ilike: bool) -> None:
        """LIKE is case-sensitive, ILIKE folds ASCII only; backslash escapes % and _."""
        run = make_run(tags={"t": value})
        quoted = pattern.replace("\\", "\\\\").replace("'", "''")
        assert check(f"tags.t LIKE '{quoted}'", run) is like
        assert check(f"tags.t ILIKE '{quoted}'", run) is ilike
        assert check(f"tags.t NOT LIKE '{quoted}'", run) is (not like)

    def test_attributes(self) -> None:
        """Attributes compare from the run's fields; status by its string value."""
        run = make_run("abc", name="n1", status=RunStatus.RUNNING, start_time=5.0, user="u")
        assert check("status = 'running' and run_id = 'abc' and name = 'n1'", run) is True
        assert check("start_time >= 5 and user != 'v' and experiment_id = 'e'", run) is True
        assert check("parent_run_id = 'x'", run) is None
        assert check("status IN ('FINISHED', 'KILLED')", run) is False


class TestSortRuns:
    def test_missing_and_nan_last_both_ways(self) -> None:
        """Missing and NaN metrics sort last ascending and descending; ties by id desc."""
        runs = [
            make_run("a", metrics={"m": 2.0}),
            make_run("b", metrics={"m": NAN}),
            make_run("c"),
            make_run("d", metrics={"m": 1.0}),
            make_run("e", metrics={"m": 2.0}),
        ]
        asc = sort_runs(runs, parse_order_by(["metrics.m"]))
        desc = sort_runs(runs, parse_order_by(["metrics.m DESC"]))
        assert [r.id for r in asc] == ["d", "e", "a", "c", "b"]
        assert [r.id for r in desc] == ["e", "a", "d", "c", "b"]

    def test_params_numbers_before_text(self) -> None:
        """Params sort numbers numerically, then other values by text form, missing last."""
        values: list[ParamValue] = [10, "b", 9.5, True, None, NAN, "10", -1]
        runs = [make_run(f"r{i}", params={"p": v}) for i, v in enumerate(values)]
        runs.append(make_run("zz"))
        asc = sort_runs(runs, parse_order_by(["params.p"]))
        desc = sort_runs(runs, parse_order_by(["params.p DESC"]))
        expected = ["r7", "r2", "r0", "r6", "r1", "r5", "r4", "r3"]
        assert [r.id for r in asc] == [*expected, "zz"]
        assert [r.id for r in desc] == [*expected[::-1], "zz"]

    def test_several_keys(self) -> None:
        """Later keys break ties of earlier ones, then run id descending."""
        runs = [
            make_run("a", tags={"t": "x"}, start_time=1.0),
            make_run("b", tags={"t": "x"}, start_time=2.0),
            make_run("c", tags={"t": "w"}, start_time=2.0),
            make_run("d", tags={"t": "x"}, start_time=2.0),
        ]
        order = parse_order_by(["tags.t DESC", "start_time"])
        assert [r.id for r in sort_runs(runs, order)] == ["a", "d", "b", "c"]
        assert [r.id for r in sort_runs(runs, parse_order_by(None))] == ["d", "c", "b", "a"]


class TestPageTokens:
    def test_round_trip(self) -> None:
        """A token gives back its offset for the same query."""
        fp = _paging.fingerprint(["e1", "e2"], "metrics.m > 1", ["metrics.m"])
        token = _paging.encode_page_token(200, fp)
        assert token.replace("-", "").replace("_", "").isalnum()
        assert _paging.decode_page_token(token, fp) == 200

    def test_fingerprint_names_the_query(self) -> None:
        """The fingerprint ignores experiment order but not filter, order or extras."""
        fp = _paging.fingerprint(["a", "b"], "metrics.m > 1", None)
        assert fp == _paging.fingerprint(["b", "a"], "metrics.m > 1", None)
        assert fp != _paging.fingerprint(["a"], "metrics.m > 1", None)
        assert fp != _paging.fingerprint(["a", "b"], "metrics.m > 2", None)
        assert fp != _paging.fingerprint(["a", "b"], "metrics.m > 1", ["start_time"])
        assert fp != _paging.fingerprint(["a", "b"], "metrics.m > 1", None, True)

    def test_other_query_is_refused(self) -> None:
        """A token reused with another query raises InvalidArgumentError."""
        token = _paging.encode_page_token(10, _paging.fingerprint(None, "metrics.m > 1", None))
        with pytest.raises(InvalidArgumentError, match="page token does not belong to this query"):
            _paging.decode_page_token(token, _paging.fingerprint(None, "metrics.m > 2", None))

    @pytest.mark.parametrize(
        "token", ["", "garbage!", "bm90IGpzb24", "WzEsMl0", "eyJvIjotMSwicSI6IngifQ"]
    )
    def test_malformed(self, token: str) -> None:
        """Malformed tokens (bad base64, bad JSON, wrong shape, negative) are refused."""
        with pytest.raises(InvalidArgumentError, match="invalid page token"):
            _paging.decode_page_token(token, "x")


# -- differential: SQL compiler against evaluate() ------------------------------------------

NUMS = [-1.0, 0.0, 0.5, 1.0, 1.5, 2.0, 1e30, 9007199254740992.0, INF, -INF, NAN]
STRS = ["", "a", "A", "b", "ab", "é", "É", "1", "1.0", "0.5", "true", "null", "nan", "x*y", "[z]"]
PATTERNS = [
    "%",
    "a%",
    "A%",
    "%b",
    "_",
    "a_",
    "%é%",
    "É%",
    "x*y",
    "[z]",
    "%.%",
    "a\\%",
    "%\\_%",
    "?",
]
STATUSES = [s.value for s in RunStatus]
METRIC_KEYS = ["m1", "val loss"]
PARAM_KEYS = ["p1", "p2"]
TAG_KEYS = ["t1", "t.x"]
PARAM_VALUES: list[ParamValue] = [
    0, 1, -1, 2, 1.0, 0.5, 1.5, -0.0, NAN, INF, 10**30, 2**53 + 1, True, False, None,
    *STRS, "a_b", "a%b", "a\\b",
]  # fmt: skip


def random_runs(seed: int, n: int) -> list[Run]:
    rng = random.Random(seed)
    runs = []
    for i in range(n):
        summaries = {}
        for key in METRIC_KEYS:
            if rng.random() < 0.8:
                last, lo, hi = (rng.choice(NUMS) for _ in range(3))
                summaries[key] = MetricSummary(key, last, 1, 0.0, lo, hi, rng.randint(1, 3))
        params = {k: rng.choice(PARAM_VALUES) for k in PARAM_KEYS if rng.random() < 0.8}
        tags = {k: rng.choice([*STRS, "a_b", "a%b"]) for k in TAG_KEYS if rng.random() < 0.7}
        runs.append(
            Run(
                id=f"{rng.getrandbits(128):032x}" if i % 3 else f"{i:032x}",
                experiment_id="e",
                name=rng.choice(STRS),
                status=RunStatus(rng.choice(STATUSES)),
                start_time=float(rng.randint(0, 3)),
                end_time=rng.choice([None, 1.0, 2.5]),
                user=rng.choice(["", "ann", "Bob"]),
                parent_run_id=rng.choice([None, "a", "b"]),
                params=FrozenDict(params),
                tags=FrozenDict(tags),
                summaries=FrozenDict(summaries),
            )
        )
    return runs


def insert_runs(engine: sa.Engine, runs: list[Run]) -> None:
    t.metadata.create_all(engine)
    with engine.begin() as conn:
        conn.execute(
            t.projects.insert(), [{"id": "p", "name": "p", "description": "", "created_at": 0.0}]
        )
        conn.execute(
            t.experiments.insert(),
            [{"id": "e", "project_id": "p", "name": "e", "description": "",
              "lifecycle": "active", "created_at": 0.0}],
        )  # fmt: skip
        conn.execute(t.runs.insert(), [
            {"id": r.id, "experiment_id": "e", "name": r.name, "status": r.status.value,
             "start_time": r.start_time, "end_time": r.end_time, "user": r.user,
             "lifecycle": "active", "parent_run_id": r.parent_run_id, "code": "{}",
             "environment": "{}"}
            for r in runs
        ])  # fmt: skip
        params = []
        for r in runs:
            for k, v in r.params.items():
                vtype, text, num = _evaluate.param_columns(v)
                params.append(
                    {
                        "run_id": r.id,
                        "key": k,
                        "value_type": vtype,
                        "value_text": text,
                        "value_num": num,
                    }
                )
        conn.execute(t.params.insert(), params)
        tags = [{"run_id": r.id, "key": k, "value": v} for r in runs for k, v in r.tags.items()]
        conn.execute(t.tags.insert(), tags)

        def none_if_nan(x: float) -> float | None:
            return None if math.isnan(x) else x

        conn.execute(t.metric_summaries.insert(), [
            {"run_id": r.id, "key": k, "last": none_if_nan(s.last), "last_step": s.last_step,
             "last_time": s.last_time, "min": none_if_nan(s.min), "max": none_if_nan(s.max),
             "count": s.count}
            for r in runs for k, s in r.summaries.items()
        ])  # fmt: skip


ORDER_OPS = ["=", "!=", "<", "<=", ">", ">="]
LIKE_OPS = ["LIKE", "NOT LIKE", "ILIKE", "NOT ILIKE"]
AGGS: list[f.Agg] = ["last", "min", "max", "count"]


def random_field(rng: random.Random) -> Field:
    kind = rng.choice(["metric", "param", "tag", "attr"])
    if kind == "metric":
        return Field("metric", rng.choice(METRIC_KEYS), rng.choice(AGGS))
    if kind == "attr":
        return Field("attr", rng.choice(list(f.ATTRIBUTES)))
    if kind == "param":
        return Field("param", rng.choice(PARAM_KEYS))
    return Field("tag", rng.choice(TAG_KEYS))


def random_leaf(rng: random.Random) -> f.Expr:
    field = random_field(rng)
    if field.kind == "metric" or field.key in f.NUMERIC_ATTRIBUTES:
        kind = "num"
    elif field.key == "status":
        kind = rng.choice(["status", "like"])
    elif field.kind == "param":
        kind = rng.choice(["num", "str", "like", "bool"])
    else:
        kind = rng.choice(["str", "like"])
    pools: dict[str, list[Any]] = {
        "num": NUMS, "str": STRS, "status": STATUSES, "bool": [True, False], "like": PATTERNS
    }  # fmt: skip
    pool = pools[kind]
    shape = rng.choice(["cmp", "cmp", "in", "isnull"])
    if shape == "isnull":
        return IsNull(field, rng.random() < 0.5)
    if shape == "in" and kind != "like":
        values = tuple(rng.choice(pool) for _ in range(rng.randint(1, 3)))
        return In(field, values, rng.random() < 0.5)
    ops = LIKE_OPS if kind == "like" else ["=", "!="] if kind == "bool" else ORDER_OPS
    return Compare(field, rng.choice(ops), rng.choice(pool))


def random_filter(rng: random.Random, depth: int = 0) -> f.Expr:
    roll = rng.random()
    if depth >= 3 or roll < 0.55:
        return random_leaf(rng)
    if roll < 0.7:
        return Not(random_filter(rng, depth + 1))
    items = tuple(random_filter(rng, depth + 1) for _ in range(rng.randint(2, 3)))
    return And(items) if roll < 0.85 else Or(items)


def random_order(rng: random.Random) -> list[OrderKey]:
    return [OrderKey(random_field(rng), rng.random() < 0.5) for _ in range(rng.randint(0, 2))]


def render_value(v: f.Value) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return repr(v)  # inf, -inf and nan are literals too
    return "'" + v.replace("\\", "\\\\").replace("'", "''") + "'"


def render_field(field: Field) -> str:
    return f.field_name(field)


def render(expr: f.Expr) -> str:
    """Filter text for a tree (fully parenthesised, so it parses back to the same tree)."""
    if isinstance(expr, And | Or):
        joiner = " AND " if isinstance(expr, And) else " or "
        return "(" + joiner.join(render(i) for i in expr.items) + ")"
    if isinstance(expr, Not):
        return "NOT " + render(expr.item)
    if isinstance(expr, IsNull):
        return f"{render_field(expr.field)} IS {'NOT ' if expr.negated else ''}NULL"
    if isinstance(expr, In):
        values = ", ".join(render_value(v) for v in expr.values)
        return f"{render_field(expr.field)} {'NOT IN' if expr.negated else 'in'} ({values})"
    return f"{render_field(expr.field)} {expr.op} {render_value(expr.value)}"


def render_order(key: OrderKey) -> str:
    return render_field(key.field) + (" DESC" if key.descending else " asc")


def expected_ids(runs: list[Run], expr: f.Expr | None, order: tuple[OrderKey, ...]) -> list[str]:
    matching = [r for r in runs if expr is None or evaluate(expr, r) is True]
    return [r.id for r in sort_runs(matching, order)]


def sql_ids(engine: sa.Engine, expr: f.Expr | None, order: tuple[OrderKey, ...]) -> list[str]:
    stmt = sa.select(t.runs.c.id).where(t.runs.c.experiment_id == "e")
    stmt = _search.compile_query(stmt, expr, order, engine.dialect.name)
    with engine.connect() as conn:
        return list(conn.execute(stmt).scalars())


RUNS = random_runs(seed=7, n=90)


@pytest.fixture(scope="module")
def sqlite_engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[sa.Engine]:
    engine = sa.create_engine(f"sqlite:///{tmp_path_factory.mktemp('filter') / 'runs.db'}")
    insert_runs(engine, RUNS)
    yield engine
    engine.dispose()


def postgres_url() -> str | None:
    import psycopg

    for user in ("postgres", "root"):
        try:
            psycopg.connect(
                f"host=127.0.0.1 port=5432 user={user} dbname=test", connect_timeout=3
            ).close()
        except psycopg.Error:
            continue
        return f"postgresql+psycopg://{user}@127.0.0.1:5432/test"
    return None


@pytest.fixture(scope="module")
def postgres_engine() -> Iterator[sa.Engine]:
    url = postgres_url()
    if url is None:
        if os.environ.get("SHIPYARD_REQUIRE_SERVICES") == "1":
            pytest.fail("PostgreSQL on 127.0.0.1:5432 is required (SHIPYARD_REQUIRE_SERVICES=1)")
        pytest.skip("PostgreSQL is not reachable on 127.0.0.1:5432")
    schema = f"filter_test_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(url)
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    engine = sa.create_engine(url, connect_args={"options": f"-csearch_path={schema}"})
    try:
        insert_runs(engine, RUNS)
        yield engine
    finally:
        engine.dispose()
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def differential(engine: sa.Engine, seed: int, n: int) -> None:
    """Random filters and orders, each rendered to text and parsed back, must select and
    order the same runs in SQL as evaluate() and sort_runs() do."""
    rng = random.Random(seed)
    mismatches = []
    for _ in range(n):
        expr, keys = random_filter(rng), random_order(rng)
        text = render(expr)
        parsed = parse_filter(text)
        assert repr(parsed) == repr(expr), text
        order = parse_order_by([render_order(k) for k in keys])
        if sql_ids(engine, parsed, order) != expected_ids(RUNS, parsed, order):
            mismatches.append((text, [render_order(k) for k in keys]))
    assert not mismatches, f"{len(mismatches)} of {n} disagree, e.g. {mismatches[:3]}"


def test_sqlite_matches_evaluate(sqlite_engine: sa.Engine) -> None:
    """On SQLite the compiled query returns exactly the runs evaluate() keeps, in order."""
    differential(sqlite_engine, seed=1, n=1500)


def test_sqlite_subqueries_match_evaluate(
    sqlite_engine: sa.Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past MAX_JOINS the filter uses correlated subqueries, with the same results."""
    monkeypatch.setattr(_search, "MAX_JOINS", 0)
    differential(sqlite_engine, seed=2, n=500)


def test_compile_filter_matches_evaluate(sqlite_engine: sa.Engine) -> None:
    """compile_filter() alone (no joins) selects the same runs as evaluate()."""
    rng = random.Random(3)
    for _ in range(300):
        expr = random_filter(rng)
        stmt = sa.select(t.runs.c.id).where(_search.compile_filter(expr, "sqlite"))
        with sqlite_engine.connect() as conn:
            got = set(conn.execute(stmt).scalars())
        assert got == {r.id for r in RUNS if evaluate(expr, r) is True}, render(expr)


@pytest.mark.parametrize(
    ("text", "order"),
    [
        ("not metrics.m1 > 1", ["metrics.m1"]),
        ("params.p1 != 1", ["params.p1 DESC"]),
        ("tags.t1 LIKE 'x*y' or tags.t1 LIKE '[z]'", None),
        ("tags.t1 ILIKE 'É%' or run_name ILIKE 'a%'", ["run_name"]),
        ("params.p1 >= 0.5 and metrics.m1 < 3", ["params.p1", "metrics.m1 DESC"]),
        ("metrics.m1 IN (1, nan) and count(metrics.m1) >= 1", ["count(metrics.m1) desc"]),
        ("params.p2 = true or params.p2 = 'null'", ["tags.t1", "end_time DESC", "parent_run_id"]),
    ],
)
def test_sqlite_examples(sqlite_engine: sa.Engine, text: str, order: list[str] | None) -> None:
    """Hand-picked NOT, !=, GLOB metacharacter, ILIKE and NULL cases agree on SQLite."""
    expr, keys = parse_filter(text), parse_order_by(order)
    assert sql_ids(sqlite_engine, expr, keys) == expected_ids(RUNS, expr, keys)


@pytest.mark.postgres
def test_postgres_matches_evaluate(postgres_engine: sa.Engine) -> None:
    """On PostgreSQL the compiled query returns exactly the runs evaluate() keeps, in order."""
    differential(postgres_engine, seed=1, n=1000)


def test_unknown_dialect() -> None:
    """Compiling for a dialect other than SQLite or PostgreSQL is refused by name."""
    with pytest.raises(InvalidArgumentError, match="got 'mysql'"):
        _search.compile_filter(Compare(M, ">", 1.0), "mysql")


def test_plan_uses_metric_index(sqlite_engine: sa.Engine) -> None:
    """A required metric order key is searched through its (key, last) index, not sorted whole."""
    expr = parse_filter("metrics.m1 < 3 and params.p1 >= 0.05")
    stmt = sa.select(t.runs.c.id).where(t.runs.c.experiment_id == "e")
    stmt = _search.compile_query(stmt, expr, parse_order_by(["metrics.m1"]), "sqlite").limit(100)
    sql = str(stmt.compile(sqlite_engine, compile_kwargs={"literal_binds": True}))
    with sqlite_engine.connect() as conn:
        plan = " | ".join(row[3] for row in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + sql))
    assert "ix_metric_summaries_key_last" in plan
    assert "USE TEMP B-TREE FOR ORDER BY" not in plan
