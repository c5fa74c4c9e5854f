"""Conformance tests: params, tags, metric points and summaries, artifacts."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from shipyard.errors import ConflictError, InvalidArgumentError, NotFoundError
from shipyard.store._base import Store
from shipyard.testing._store_helpers import make_run, run_state, series
from shipyard.types import Artifact, MetricSeries

__all__ = ["LoggingTests"]

NAN, INF = float("nan"), float("inf")
DIGEST = "ab" * 32


def _arrays(steps: Any, step_type: Any, values: Any, value_type: Any) -> Any:
    """Columns of unusual dtypes (typed Any: MetricSeries declares int64/float64)."""
    return np.array(steps, step_type), np.array(values, value_type), np.array([1.0, 2.0])


def _same(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or a == b


class LoggingTests:
    # -- params -------------------------------------------------------------------------

    def test_params_keep_their_json_type(self, store: Store) -> None:
        """Params round-trip as str, int, float, bool and None with their exact types."""
        run = make_run(store)
        params: dict[str, Any] = {
            "s": "adam",
            "i": 12,
            "neg": -3,
            "f": 0.1,
            "whole_float": 2.0,
            "b": True,
            "off": False,
            "none": None,
            "empty": "",
            "numeric_text": "0.5",
            "int64": 2**63 - 1,
            "tiny": 5e-324,
            "inf": INF,
        }
        store.log_batch(run.id, params=params)
        got = store.get_run(run.id).params
        assert got == params
        assert {k: type(v) for k, v in got.items()} == {k: type(v) for k, v in params.items()}

    def test_numpy_scalar_params_become_python_values(self, store: Store) -> None:
        """NumPy scalars are stored as the matching Python int, float or bool."""
        run = make_run(store)
        params: dict[str, Any] = {
            "f": np.float64(0.5),
            "f32": np.float32(0.25),
            "i": np.int64(7),
            "b": np.bool_(True),
        }
        store.log_batch(run.id, params=params)
        got = store.get_run(run.id).params
        assert got == {"f": 0.5, "f32": 0.25, "i": 7, "b": True}
        assert [type(got[k]) for k in ("f", "f32", "i", "b")] == [float, float, int, bool]

    def test_int_beyond_int64_param_becomes_text(self, store: Store) -> None:
        """An integer param beyond 64 bits is kept exactly, as its decimal text."""
        run = make_run(store)
        store.log_param(run.id, "huge", 2**70)
        assert store.get_run(run.id).params["huge"] == str(2**70)

    def test_nan_param_round_trips_and_relogs(self, store: Store) -> None:
        """A NaN param reads back as NaN, and logging NaN again is a no-op."""
        run = make_run(store)
        store.log_param(run.id, "x", NAN)
        store.log_param(run.id, "x", NAN)
        value = store.get_run(run.id).params["x"]
        assert isinstance(value, float)
        assert math.isnan(value)

    def test_relogging_same_param_is_a_noop(self, store: Store) -> None:
        """Logging a param again with the same value succeeds and changes nothing."""
        run = make_run(store)
        store.log_params(run.id, {"lr": 0.1, "opt": "adam", "n": 3, "flag": False, "none": None})
        before = run_state(store, run.id)
        store.log_params(run.id, {"lr": 0.1, "opt": "adam", "n": 3, "flag": False, "none": None})
        assert run_state(store, run.id) == before

    def test_relogging_param_with_new_value_conflicts(self, store: Store) -> None:
        """A param re-logged with another value raises ConflictError showing both values."""
        run = make_run(store)
        store.log_param(run.id, "lr", 0.1)
        with pytest.raises(ConflictError, match=r"lr(.|\n)*0\.1(.|\n)*0\.2"):
            store.log_param(run.id, "lr", 0.2)
        assert store.get_run(run.id).params == {"lr": 0.1}

    @pytest.mark.parametrize(("old", "new"), [(True, 1), (1, "1"), (None, "None"), (0, False)])
    def test_param_type_is_part_of_its_value(self, store: Store, old: Any, new: Any) -> None:
        """True and 1, 1 and '1', None and 'None' are different param values."""
        run = make_run(store)
        store.log_param(run.id, "p", old)
        with pytest.raises(ConflictError, match="p"):
            store.log_param(run.id, "p", new)
        got = store.get_run(run.id).params["p"]
        assert got == old
        assert type(got) is type(old)

    def test_conflicting_batch_changes_nothing(self, store: Store) -> None:
        """A batch with one conflicting param stores none of its params, tags or metrics."""
        run = make_run(store)
        store.log_batch(
            run.id, params={"lr": 0.1}, tags={"t": "old"}, metrics=[series("m", [0], [1.0])]
        )
        before = run_state(store, run.id)
        with pytest.raises(ConflictError):
            store.log_batch(
                run.id,
                params={"a_new": 1, "lr": 0.2, "z_new": 2},
                tags={"t": "new", "u": "x"},
                metrics=[series("m", [1, 2], [2.0, 3.0]), series("other", [0], [5.0])],
            )
        assert run_state(store, run.id) == before
        with pytest.raises(NotFoundError):
            store.get_metric_history(run.id, "other")

    @pytest.mark.parametrize(
        "value", [object(), [1, 2], {"a": 1}, b"bytes", 1 + 2j, np.array([1.0, 2.0])]
    )
    def test_invalid_param_value_rejected(self, store: Store, value: object) -> None:
        """A param value that is not str/int/float/bool/None is refused, naming the key."""
        run = make_run(store)
        store.log_param(run.id, "kept", 1)
        before = run_state(store, run.id)
        with pytest.raises(InvalidArgumentError, match="bad_param"):
            store.log_batch(run.id, params={"ok": 1, "bad_param": value}, tags={"t": "v"})  # type: ignore[dict-item]
        assert run_state(store, run.id) == before

    def test_param_length_limit(self, store: Store) -> None:
        """A 6000-character param is kept whole; a longer one is refused with the limit."""
        run = make_run(store)
        store.log_param(run.id, "long", "x" * 6000)
        assert store.get_run(run.id).params["long"] == "x" * 6000
        before = run_state(store, run.id)
        with pytest.raises(InvalidArgumentError, match="6000"):
            store.log_param(run.id, "longer", "x" * 6001)
        assert run_state(store, run.id) == before

    def test_unicode_round_trips(self, store: Store) -> None:
        """Non-ASCII text in params and tags round-trips unchanged."""
        run = make_run(store)
        text = "héllo wörld ✓ 日本語 🚀 \t 'quotes' \"double\" \\ %_"
        store.log_batch(run.id, params={"p": text}, tags={"t": text})
        got = store.get_run(run.id)
        assert got.params["p"] == text
        assert got.tags["t"] == text

    def test_derived_logging_methods(self, store: Store) -> None:
        """log_param, log_params, set_tag, set_tags and log_metrics write through log_batch."""
        run = make_run(store)
        store.log_param(run.id, "a", 1)
        store.log_params(run.id, {"b": 2})
        store.set_tag(run.id, "c", "3")
        store.set_tags(run.id, {"d": "4"})
        store.log_metrics(run.id, [series("m", [0], [1.5])])
        got = store.get_run(run.id)
        assert got.params == {"a": 1, "b": 2}
        assert got.tags == {"c": "3", "d": "4"}
        assert got.metrics == {"m": 1.5}

    # -- keys and tags ------------------------------------------------------------------

    @pytest.mark.parametrize("key", ["", "k" * 251, "bad\nkey", "/abs", "a/../b", "star*", 7])
    def test_invalid_keys_rejected(self, store: Store, key: Any) -> None:
        """Param, tag and metric keys must be 1-250 safe characters; others are refused."""
        run = make_run(store)
        before = run_state(store, run.id)
        for kwargs in (
            {"params": {key: 1}},
            {"tags": {key: "v"}},
            {"metrics": [series(key, [0], [1.0])]},
        ):
            with pytest.raises(InvalidArgumentError, match="key"):
                store.log_batch(run.id, **kwargs)
        assert run_state(store, run.id) == before

    def test_longest_and_oddest_valid_keys(self, store: Store) -> None:
        """A 250-character key and keys with '.', '/', ':', '-', '_' and spaces are accepted."""
        run = make_run(store)
        keys = ["k" * 250, "val/loss", "a.b-c_d:e f", "UPPER lower 0"]
        store.log_batch(
            run.id,
            params=dict.fromkeys(keys, 1),
            tags=dict.fromkeys(keys, "v"),
            metrics=[series(k, [0], [1.0]) for k in keys],
        )
        got = store.get_run(run.id)
        assert set(got.params) == set(got.tags) == set(got.summaries) == set(keys)
        assert store.get_metric_history(run.id, "k" * 250).points() == [(0, 1.0, 1000.0)]

    def test_tags_overwrite(self, store: Store) -> None:
        """A tag logged again takes the new value; other tags stay."""
        run = make_run(store, tags={"a": "1", "b": "2"})
        store.set_tags(run.id, {"a": "10", "c": "3"})
        assert store.get_run(run.id).tags == {"a": "10", "b": "2", "c": "3"}

    def test_delete_tag(self, store: Store) -> None:
        """delete_tag removes one tag and keeps the others."""
        run = make_run(store, tags={"a": "1", "b": "2"})
        store.delete_tag(run.id, "a")
        assert store.get_run(run.id).tags == {"b": "2"}

    def test_delete_missing_tag_not_found(self, store: Store) -> None:
        """Deleting a tag the run does not have raises NotFoundError naming the tag."""
        run = make_run(store, tags={"a": "1"})
        with pytest.raises(NotFoundError, match="nope"):
            store.delete_tag(run.id, "nope")
        assert store.get_run(run.id).tags == {"a": "1"}

    @pytest.mark.parametrize("value", [1, 1.5, None, True, b"bytes", ["a"]])
    def test_tag_values_must_be_strings(self, store: Store, value: object) -> None:
        """A tag value that is not a string is refused, naming the key."""
        run = make_run(store)
        with pytest.raises(InvalidArgumentError, match="bad_tag"):
            store.set_tags(run.id, {"ok": "v", "bad_tag": value})  # type: ignore[dict-item]
        assert store.get_run(run.id).tags == {}

    def test_tag_length_limit(self, store: Store) -> None:
        """An 8000-character tag is kept whole; a longer one is refused with the limit."""
        run = make_run(store)
        store.set_tag(run.id, "long", "y" * 8000)
        assert store.get_run(run.id).tags["long"] == "y" * 8000
        with pytest.raises(InvalidArgumentError, match="8000"):
            store.set_tag(run.id, "longer", "y" * 100_000)
        assert set(store.get_run(run.id).tags) == {"long"}

    @pytest.mark.parametrize("arg", ["params", "tags"])
    def test_params_and_tags_must_be_mappings(self, store: Store, arg: str) -> None:
        """params and tags given as something other than a mapping are refused."""
        run = make_run(store)
        with pytest.raises(InvalidArgumentError, match=arg):
            store.log_batch(run.id, **{arg: [("k", "v")]})  # type: ignore[arg-type]

    # -- metrics ------------------------------------------------------------------------

    def test_metric_columns_round_trip(self, store: Store) -> None:
        """Steps, values and timestamps read back exactly, as int64/float64/float64 columns."""
        run = make_run(store)
        times = [1_700_000_000.123, 1_700_000_001.5, 1_700_000_002.0]
        store.log_metrics(run.id, [series("loss", [0, 1, 2], [0.9, 1 / 3, 1e-300], times)])
        got = store.get_metric_history(run.id, "loss")
        assert got.key == "loss"
        assert len(got) == got.total == 3
        assert not got.downsampled
        dtypes = [str(c.dtype) for c in (got.steps, got.values, got.timestamps)]
        assert dtypes == ["int64", "float64", "float64"]
        assert got.points() == list(zip([0, 1, 2], [0.9, 1 / 3, 1e-300], times, strict=True))

    def test_metric_timestamps_kept_to_the_millisecond(self, store: Store) -> None:
        """Timestamps are kept at least to the millisecond."""
        run = make_run(store)
        times = [1_700_000_000.123456, 1_700_000_000.9999, 0.0004]
        store.log_metrics(run.id, [series("t", [0, 1, 2], [1.0, 2.0, 3.0], times)])
        got = store.get_metric_history(run.id, "t").timestamps
        assert np.all(np.abs(got - np.array(times)) <= 0.0005)

    def test_metric_columns_accept_lists_and_other_dtypes(self, store: Store) -> None:
        """Columns given as lists, int32 steps, float32 values or whole float steps are accepted."""
        run = make_run(store)
        store.log_metrics(
            run.id,
            [
                MetricSeries("a", [0, 1], [1, 2.5], [10.0, 11]),  # type: ignore[arg-type]
                MetricSeries("b", *_arrays([3, 4], np.int32, [0.5, 0.25], np.float32)),
                MetricSeries("c", *_arrays([5.0, 6.0], np.float64, [1.0, 2.0], np.float64)),
            ],
        )
        assert store.get_metric_history(run.id, "a").points() == [(0, 1.0, 10.0), (1, 2.5, 11.0)]
        assert store.get_metric_history(run.id, "b").points() == [(3, 0.5, 1.0), (4, 0.25, 2.0)]
        assert store.get_metric_history(run.id, "c").steps.tolist() == [5, 6]

    def test_int64_extreme_steps(self, store: Store) -> None:
        """Steps anywhere in the int64 range are kept exactly."""
        run = make_run(store)
        steps = [-(2**63), -1, 2**53 + 1, 2**63 - 1]
        store.log_metrics(run.id, [series("s", steps, [1.0, 2.0, 3.0, 4.0])])
        assert store.get_metric_history(run.id, "s").steps.tolist() == steps
        assert store.get_run(run.id).summaries["s"].last_step == 2**63 - 1

    def test_out_of_order_steps_read_back_by_step_then_logging_order(self, store: Store) -> None:
        """History is ordered by step; points sharing a step keep the order they were logged in."""
        run = make_run(store)
        store.log_metrics(run.id, [series("m", [5, 1, 3, 1], [50.0, 10.0, 30.0, 11.0])])
        store.log_metrics(run.id, [series("m", [1, 0, 5], [12.0, 0.0, 51.0])])
        got = store.get_metric_history(run.id, "m")
        assert got.steps.tolist() == [0, 1, 1, 1, 3, 5, 5]
        assert got.values.tolist() == [0.0, 10.0, 11.0, 12.0, 30.0, 50.0, 51.0]

    def test_nan_and_inf_points_are_kept(self, store: Store) -> None:
        """NaN, inf and -inf values are stored and read back as they were logged."""
        run = make_run(store)
        store.log_metrics(run.id, [series("m", [0, 1, 2, 3], [NAN, INF, -INF, 0.0])])
        values = store.get_metric_history(run.id, "m").values.tolist()
        assert math.isnan(values[0])
        assert values[1:] == [INF, -INF, 0.0]

    def test_summary_last_min_max_count(self, store: Store) -> None:
        """The summary holds the value, step and time at the highest step, min, max and count."""
        run = make_run(store)
        store.log_metrics(run.id, [series("m", [0, 1, 2], [3.0, -1.0, 2.0], [10.0, 11.0, 12.0])])
        s = store.get_run(run.id).summaries["m"]
        assert (s.key, s.last, s.last_step, s.last_time) == ("m", 2.0, 2, 12.0)
        assert (s.min, s.max, s.count) == (-1.0, 3.0, 3)

    def test_summary_last_is_at_the_highest_step(self, store: Store) -> None:
        """A point logged later at a lower step does not become the last value."""
        run = make_run(store)
        store.log_metrics(run.id, [series("m", [10], [1.0], [50.0])])
        store.log_metrics(run.id, [series("m", [5], [7.0], [60.0])])
        s = store.get_run(run.id).summaries["m"]
        assert (s.last, s.last_step, s.last_time, s.min, s.max, s.count) == (
            1.0,
            10,
            50.0,
            1.0,
            7.0,
            2,
        )

    def test_summary_latest_logged_wins_a_step_tie(self, store: Store) -> None:
        """Of points at the highest step, the one logged latest is the last value."""
        run = make_run(store)
        store.log_metrics(run.id, [series("m", [3, 3], [1.0, 2.0], [1.0, 2.0])])
        assert store.get_run(run.id).summaries["m"].last == 2.0
        store.log_metrics(run.id, [series("m", [3], [9.0], [3.0])])
        s = store.get_run(run.id).summaries["m"]
        assert (s.last, s.last_step, s.last_time) == (9.0, 3, 3.0)

    def test_summary_min_max_ignore_nan(self, store: Store) -> None:
        """min and max skip NaN; last is NaN when the highest step holds NaN; count includes NaN."""
        run = make_run(store)
        store.log_metrics(run.id, [series("m", [0, 1, 2], [4.0, NAN, -2.0])])
        store.log_metrics(run.id, [series("m", [3], [NAN])])
        s = store.get_run(run.id).summaries["m"]
        assert math.isnan(s.last)
        assert s.last_step == 3
        assert (s.min, s.max, s.count) == (-2.0, 4.0, 4)
        assert math.isnan(store.get_run(run.id).metrics["m"])

    def test_summary_of_all_nan_metric(self, store: Store) -> None:
        """A metric whose points are all NaN has NaN last, min and max, and counts them."""
        run = make_run(store)
        store.log_metrics(run.id, [series("m", [0, 1], [NAN, NAN])])
        s = store.get_run(run.id).summaries["m"]
        assert math.isnan(s.last)
        assert math.isnan(s.min)
        assert math.isnan(s.max)
        assert s.count == 2
        store.log_metrics(run.id, [series("m", [2], [5.0])])
        s = store.get_run(run.id).summaries["m"]
        assert (s.last, s.min, s.max, s.count) == (5.0, 5.0, 5.0, 3)

    def test_summary_with_infinities(self, store: Store) -> None:
        """inf and -inf count as values for last, min and max."""
        run = make_run(store)
        store.log_metrics(run.id, [series("m", [0, 1, 2], [INF, 1.0, -INF])])
        s = store.get_run(run.id).summaries["m"]
        assert (s.last, s.min, s.max) == (-INF, -INF, INF)

    def test_many_batches_append(self, store: Store) -> None:
        """Points from many small batches all accumulate, in step order."""
        run = make_run(store)
        for b in range(150):
            store.log_metrics(run.id, [series("m", range(b * 10, b * 10 + 10), [float(b)] * 10)])
        got = store.get_metric_history(run.id, "m")
        assert got.steps.tolist() == list(range(1500))
        assert got.values.tolist() == [float(i // 10) for i in range(1500)]
        s = store.get_run(run.id).summaries["m"]
        assert (s.count, s.last, s.last_step, s.min, s.max) == (1500, 149.0, 1499, 0.0, 149.0)

    def test_hundred_thousand_points_in_one_batch(self, store: Store) -> None:
        """One batch of 100,000 points is stored whole and read back exactly."""
        run = make_run(store)
        n = 100_000
        rng = np.random.default_rng(0)
        values = rng.normal(size=n)
        steps = rng.permutation(n).astype(np.int64)
        times = 1_700_000_000.0 + np.arange(n) / 1000
        store.log_metrics(run.id, [MetricSeries("big", steps, values, times)])
        got = store.get_metric_history(run.id, "big")
        order = np.argsort(steps, kind="stable")
        assert got.total == n
        np.testing.assert_array_equal(got.steps, steps[order])
        np.testing.assert_array_equal(got.values, values[order])
        np.testing.assert_array_equal(got.timestamps, times[order])
        s = store.get_run(run.id).summaries["big"]
        assert (s.count, s.last_step, s.last) == (n, n - 1, values[order][-1])
        assert (s.min, s.max) == (values.min(), values.max())

    def test_several_metrics_in_one_batch(self, store: Store) -> None:
        """A batch may carry several metrics, and the same key twice (appended in order)."""
        run = make_run(store)
        store.log_metrics(
            run.id,
            [series("a", [0], [1.0]), series("b", [0], [2.0]), series("a", [1], [3.0])],
        )
        got = store.get_run(run.id)
        assert got.metrics == {"a": 3.0, "b": 2.0}
        assert got.summaries["a"].count == 2

    def test_empty_series_stores_nothing(self, store: Store) -> None:
        """A series with no points is accepted and creates no metric."""
        run = make_run(store)
        store.log_metrics(run.id, [series("empty", [], [])])
        assert "empty" not in store.get_run(run.id).summaries
        with pytest.raises(NotFoundError, match="empty"):
            store.get_metric_history(run.id, "empty")

    def test_unknown_metric_not_found(self, store: Store) -> None:
        """Reading history of a metric the run never logged raises NotFoundError naming it."""
        run = make_run(store)
        with pytest.raises(NotFoundError, match="never_logged"):
            store.get_metric_history(run.id, "never_logged")

    @pytest.mark.parametrize(
        ("bad", "match"),
        [
            pytest.param(MetricSeries("m", [0, 1], [1.0], [1.0, 2.0]), "length", id="lengths"),  # type: ignore[arg-type]
            pytest.param(MetricSeries("m", [0.5], [1.0], [1.0]), "step", id="fractional-step"),  # type: ignore[arg-type]
            pytest.param(MetricSeries("m", [0], ["high"], [1.0]), "value", id="text-value"),  # type: ignore[arg-type]
            pytest.param(MetricSeries("m", [0], [None], [1.0]), "value", id="None-value"),  # type: ignore[arg-type]
            pytest.param(MetricSeries("m", [[0, 1]], [[1.0, 2.0]], [[1.0, 2.0]]), "'m'", id="2-D"),  # type: ignore[arg-type]
            pytest.param(MetricSeries("m", [2**64], [1.0], [1.0]), "step", id="step>int64"),  # type: ignore[arg-type]
            pytest.param(MetricSeries("m", [2**63], [1.0], [1.0]), "step", id="uint64-step"),  # type: ignore[arg-type]
            pytest.param(MetricSeries("m", ["0"], [1.0], [1.0]), "step", id="text-step"),  # type: ignore[arg-type]
            pytest.param("loss", "MetricSeries", id="str-item"),
            pytest.param({"key": "m"}, "MetricSeries", id="dict-item"),
        ],
    )
    def test_bad_metric_batch_rejected_whole(self, store: Store, bad: object, match: str) -> None:
        """A malformed series is refused by name, and the good series beside it are not stored."""
        run = make_run(store)
        store.log_metrics(run.id, [series("m", [0], [0.0])])
        before = run_state(store, run.id)
        with pytest.raises(InvalidArgumentError, match=match):
            store.log_batch(
                run.id,
                params={"p": 1},
                tags={"t": "v"},
                metrics=[series("m", [1], [1.0]), series("good", [0], [1.0]), bad],  # type: ignore[list-item]
            )
        assert run_state(store, run.id) == before

    def test_metrics_argument_must_be_a_list(self, store: Store) -> None:
        """metrics given as one MetricSeries instead of a list of them is refused."""
        run = make_run(store)
        with pytest.raises(InvalidArgumentError, match="metrics"):
            store.log_batch(run.id, metrics=series("m", [0], [1.0]))  # type: ignore[arg-type]
        assert store.get_run(run.id).summaries == {}

    def test_logged_columns_are_copied(self, store: Store) -> None:
        """Changing the caller's arrays after logging does not change what is stored."""
        run = make_run(store)
        s = series("m", [0, 1], [1.0, 2.0])
        store.log_metrics(run.id, [s])
        s.values[:] = 99.0
        s.steps[:] = 7
        assert store.get_metric_history(run.id, "m").points() == [
            (0, 1.0, 1000.0),
            (1, 2.0, 1001.0),
        ]

    # -- history downsampling -----------------------------------------------------------

    def test_downsampled_history_is_bounded_and_keeps_endpoints(self, store: Store) -> None:
        """With max_points the history has at most that many points, the first and last included."""
        run = make_run(store)
        n = 10_000
        store.log_metrics(run.id, [series("m", range(n), np.sin(np.arange(n) / 50))])
        for max_points in (2, 3, 10, 101, 2000):
            got = store.get_metric_history(run.id, "m", max_points=max_points)
            assert 2 <= len(got) <= max_points
            assert got.steps[0] == 0
            assert got.steps[-1] == n - 1
            assert got.total == n
            assert got.downsampled
            assert np.all(np.diff(got.steps) > 0)

    def test_downsampling_keeps_spikes(self, store: Store) -> None:
        """A single spike, a single dip and a NaN all survive downsampling."""
        run = make_run(store)
        n = 50_000
        values = np.ones(n)
        values[12_345], values[33_333], values[40_000] = 1e6, -1e6, NAN
        store.log_metrics(run.id, [series("m", range(n), values)])
        got = store.get_metric_history(run.id, "m", max_points=100)
        kept = dict(zip(got.steps.tolist(), got.values.tolist(), strict=True))
        assert kept[12_345] == 1e6
        assert kept[33_333] == -1e6
        assert math.isnan(kept[40_000])

    def test_downsampling_orders_by_step(self, store: Store) -> None:
        """Downsampling works on the step-ordered history, whatever order points were logged in."""
        run = make_run(store)
        steps = np.arange(5000)[::-1].copy()
        store.log_metrics(run.id, [series("m", steps, steps.astype(float))])
        got = store.get_metric_history(run.id, "m", max_points=50)
        assert got.steps[0] == 0
        assert got.steps[-1] == 4999
        assert np.all(np.diff(got.steps) > 0)
        np.testing.assert_array_equal(got.values, got.steps.astype(float))

    def test_max_points_above_length_returns_everything(self, store: Store) -> None:
        """A max_points at or above the number of points returns the whole history."""
        run = make_run(store)
        store.log_metrics(run.id, [series("m", range(10), range(10))])
        for max_points in (10, 11, 1_000_000):
            got = store.get_metric_history(run.id, "m", max_points=max_points)
            assert len(got) == got.total == 10
            assert not got.downsampled

    @pytest.mark.parametrize("max_points", [0, -5, "10", 2.5, True])
    def test_invalid_max_points_rejected(self, store: Store, max_points: Any) -> None:
        """max_points that is not a positive integer is refused."""
        run = make_run(store)
        store.log_metrics(run.id, [series("m", [0], [1.0])])
        with pytest.raises(InvalidArgumentError, match="max_points"):
            store.get_metric_history(run.id, "m", max_points=max_points)

    # -- artifacts ----------------------------------------------------------------------

    def test_artifacts_listed_by_path(self, store: Store) -> None:
        """Logged artifacts are listed ordered by path with their digest, size and kind."""
        run = make_run(store)
        assert store.list_artifacts(run.id) == []
        store.log_artifacts(
            run.id,
            [
                Artifact("model", DIGEST, 2048, "dir", 10.0),
                Artifact("config.yaml", "cd" * 32, 12, "file", 11.0),
            ],
        )
        store.log_artifacts(
            run.id, [Artifact("model/weights.safetensors", "ef" * 32, 1024, "file", 12.0)]
        )
        got = store.list_artifacts(run.id)
        assert [a.path for a in got] == ["config.yaml", "model", "model/weights.safetensors"]
        assert got[1] == Artifact("model", DIGEST, 2048, "dir", 10.0)

    def test_deleted_artifacts_are_forgotten(self, store: Store) -> None:
        """delete_artifacts drops the named records only; unknown paths are ignored."""
        run = make_run(store)
        store.log_artifacts(
            run.id,
            [Artifact(p, DIGEST, 1, "dir", 1.0) for p in ("ckpt/1", "ckpt/2", "model")],
        )
        store.delete_artifacts(run.id, ["ckpt/1", "never-logged"])
        assert [a.path for a in store.list_artifacts(run.id)] == ["ckpt/2", "model"]
        store.delete_artifacts(run.id, [])
        with pytest.raises(InvalidArgumentError):
            store.delete_artifacts(run.id, "ckpt/2")
        assert [a.path for a in store.list_artifacts(run.id)] == ["ckpt/2", "model"]

    def test_artifact_logged_again_is_replaced(self, store: Store) -> None:
        """An artifact path logged again replaces the earlier record."""
        run = make_run(store)
        store.log_artifacts(run.id, [Artifact("a.txt", DIGEST, 1, "file", 1.0)])
        store.log_artifacts(run.id, [Artifact("a.txt", "cd" * 32, 2, "file", 2.0)])
        assert store.list_artifacts(run.id) == [Artifact("a.txt", "cd" * 32, 2, "file", 2.0)]

    @pytest.mark.parametrize(
        "bad",
        [
            Artifact("/etc/passwd", DIGEST, 1),
            Artifact("a/../../b", DIGEST, 1),
            Artifact("", DIGEST, 1),
            Artifact("a//b", DIGEST, 1),
            Artifact("./a", DIGEST, 1),
            Artifact("a\\b", DIGEST, 1),
            Artifact("ok.txt", "XYZ", 1),
            Artifact("ok.txt", DIGEST.upper(), 1),
            Artifact("ok.txt", DIGEST, -1),
            Artifact("ok.txt", DIGEST, 1, "link"),  # type: ignore[arg-type]
            Artifact("ok.txt", "", 1),
            "ok.txt",
        ],
    )
    def test_invalid_artifact_rejected_whole(self, store: Store, bad: Any) -> None:
        """A malformed artifact is refused, and the good ones beside it are not recorded."""
        run = make_run(store)
        with pytest.raises(InvalidArgumentError):
            store.log_artifacts(run.id, [Artifact("good.txt", DIGEST, 1), bad])
        assert store.list_artifacts(run.id) == []

    def test_same_value_check_uses_nan_safe_compare(self, store: Store) -> None:
        """History values equal logged ones bit for bit (NaN-safe check of the helper)."""
        run = make_run(store)
        values = [0.1, NAN, -0.0]
        store.log_metrics(run.id, [series("m", [0, 1, 2], values)])
        got = store.get_metric_history(run.id, "m").values.tolist()
        assert all(_same(a, b) for a, b in zip(got, values, strict=True))
        assert math.copysign(1.0, got[2]) == -1.0
