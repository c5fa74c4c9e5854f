"""Validation and normalisation of metric columns, shared by every store."""

from __future__ import annotations

from typing import Any

from shipyard.errors import InvalidArgumentError
from shipyard.types import MetricSeries
from shipyard.validation import check_key, describe

__all__ = ["check_series", "series"]


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
