"""Min/max-preserving downsampling of a metric series for charts.

W&B samples points at random and MLflow caps at 2,500 points, so a loss spike
can vanish from a chart. Here the series is cut into equal-count buckets and
each bucket keeps its minimum and its maximum (a NaN counts as the maximum, so
a divergence stays visible); the first and last points are always kept.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

__all__ = ["downsample", "downsample_indices"]


def downsample_indices(values: npt.NDArray[np.float64], max_points: int) -> npt.NDArray[np.intp]:
    """Indices (ascending) of at most ``max_points`` points to keep."""
    import numpy as np

    n = len(values)
    if n <= max_points:
        return np.arange(n)
    if max_points < 4:
        return np.unique(np.array([0, n - 1][:max_points]))
    interior = n - 2
    buckets = (max_points - 2) // 2
    width = -(-interior // buckets)
    buckets = -(-interior // width)
    pad = buckets * width - interior
    inner = values[1 : n - 1]
    nan = np.isnan(inner)
    low = np.where(nan, np.inf, inner)
    high = np.where(nan, np.inf, inner)  # NaN ranks as the highest point of its bucket
    if pad:
        low = np.concatenate([low, np.full(pad, np.inf)])
        high = np.concatenate([high, np.full(pad, -np.inf)])
    low2 = low.reshape(buckets, width)
    high2 = high.reshape(buckets, width)
    base = np.arange(buckets) * width + 1
    lo = base + np.argmin(low2, axis=1)
    hi = base + np.argmax(high2, axis=1)
    picks = np.empty(2 * buckets, dtype=np.intp)
    picks[0::2] = np.minimum(lo, hi)
    picks[1::2] = np.maximum(lo, hi)
    picks = picks[picks < n - 1]
    return np.unique(np.concatenate([[0], picks, [n - 1]]))


def downsample(
    steps: npt.NDArray[np.int64],
    values: npt.NDArray[np.float64],
    timestamps: npt.NDArray[np.float64],
    max_points: int,
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """The three columns of a series (ordered by step) cut to at most ``max_points``."""
    keep = downsample_indices(values, max_points)
    if len(keep) == len(values):
        return steps, values, timestamps
    return steps[keep], values[keep], timestamps[keep]
