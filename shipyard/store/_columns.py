"""Validation and normalisation of metric columns, shared by every store."""

from __future__ import annotations

import math
from typing import Any

from shipyard.errors import InvalidArgumentError
from shipyard.types import MetricSeries, MetricSummary
from shipyard.validation import check_key, describe

__all__ = ["check_series", "fold_summary", "merge_series", "series"]


def series(key: str, steps: Any, values: Any, timestamps: Any) -> MetricSeries:
    """Build a validated :class:`MetricSeries` from array-likes."""
    return check_series(MetricSeries(key, steps, values, timestamps, total=0))


def check_series(s: object) -> MetricSeries:
    """A series with int64 steps, float64 values and float64 timestamps rounded to
    the millisecond, all of one length; InvalidArgumentError otherwise."""
    import numpy as np

    if not isinstance(s, MetricSeries):
        raise InvalidArgumentError(f"metrics: expected MetricSeries entries, got {describe(s)}")
    key = check_key(s.key, "metric key")
    for name, column in (("steps", s.steps), ("values", s.values), ("timestamps", s.timestamps)):
        try:
            array = np.asarray(column)
        except (TypeError, ValueError):
            array = None
        bad = array is None or array.ndim != 1 or (len(array) and array.dtype.kind not in "biuf")
        if not bad and array is not None and array.dtype.kind == "u" and len(array):
            bad = bool(array.max() >= 2**63)
        if bad:
            raise InvalidArgumentError(
                f"metric {key!r}: expected a 1-D column of numbers for {name}, "
                f"got {describe(column)}"
            )
    try:
        raw_steps = np.asarray(s.steps)
        if raw_steps.dtype.kind == "f":
            if not bool(np.all(np.isfinite(raw_steps) & (raw_steps == np.round(raw_steps)))):
                raise TypeError("non-integer step")
        elif raw_steps.dtype.kind not in "iu" and len(raw_steps):
            raise TypeError(f"steps of dtype {raw_steps.dtype}")
        steps = raw_steps.astype(np.int64, copy=False)
    except (TypeError, ValueError, OverflowError) as e:
        raise InvalidArgumentError(
            f"metric {key!r}: expected integer steps, got {describe(s.steps)} ({e})"
        ) from None
    try:
        values = np.asarray(s.values, dtype=np.float64)
        times = np.asarray(s.timestamps, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise InvalidArgumentError(
            f"metric {key!r}: expected numeric values and timestamps ({e})"
        ) from None
    if not len(steps) == len(values) == len(times):
        raise InvalidArgumentError(
            f"metric {key!r}: steps, values and timestamps must have one length, got "
            f"{len(steps)}, {len(values)} and {len(times)}"
        )
    if len(times) and not bool(np.all(np.isfinite(times))):
        raise InvalidArgumentError(f"metric {key!r}: timestamps must be finite seconds")
    times = np.rint(times * 1000.0) / 1000.0
    return MetricSeries(key, steps, values, times)


def merge_series(batch: list[MetricSeries]) -> list[MetricSeries]:
    """One series per key, points of each key joined in batch order (logging order
    is kept). Returns ``batch`` itself when its keys are already distinct."""
    if len({s.key for s in batch}) == len(batch):
        return batch
    import numpy as np

    groups: dict[str, list[MetricSeries]] = {}
    for s in batch:
        groups.setdefault(s.key, []).append(s)
    return [
        parts[0]
        if len(parts) == 1
        else MetricSeries(
            key,
            np.concatenate([p.steps for p in parts]),
            np.concatenate([p.values for p in parts]),
            np.concatenate([p.timestamps for p in parts]),
        )
        for key, parts in groups.items()
    ]


def fold_summary(old: MetricSummary | None, s: MetricSeries) -> MetricSummary:
    """The summary after appending a non-empty series (in logging order) to the points
    ``old`` summarizes: ``last`` is the latest logged point at the highest step, and
    ``min``/``max`` ignore NaN (NaN only when every point is NaN). Every store uses
    this one rule, so their summaries agree."""
    import numpy as np

    steps, values = s.steps, s.values
    top = int(steps.max())
    at = int(np.flatnonzero(steps == top)[-1])  # the latest logged wins a tie
    finite = values[~np.isnan(values)]
    low = float(finite.min()) if len(finite) else math.nan
    high = float(finite.max()) if len(finite) else math.nan
    if old is None:
        return MetricSummary(
            s.key, float(values[at]), top, float(s.timestamps[at]), low, high, len(values)
        )
    keep_old = old.last_step > top
    return MetricSummary(
        key=s.key,
        last=old.last if keep_old else float(values[at]),
        last_step=old.last_step if keep_old else top,
        last_time=old.last_time if keep_old else float(s.timestamps[at]),
        min=_fold(min, old.min, low),
        max=_fold(max, old.max, high),
        count=old.count + len(values),
    )


def _fold(pick: Any, a: float, b: float) -> float:
    """min/max that ignore NaN."""
    if math.isnan(a):
        return b
    return a if math.isnan(b) else float(pick(a, b))
