"""Min/max-preserving downsampling of a metric series for charts.

W&B samples points at random and MLflow caps at 2,500 points, so a loss spike
can vanish from a chart. Here the series is cut into equal-count buckets (sizes
differ by at most one point, so the whole budget is used) and each bucket keeps
its minimum and its maximum (a NaN counts as the maximum, so a divergence stays
visible); the first and last points are always kept.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

__all__ = ["downsample", "downsample_indices"]


def _extremes(
    block: npt.NDArray[np.float64], offset: int, width: int
) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]]:
    """First and second pick (in index order) of each row of ``block``."""
    import numpy as np

    rows = block.reshape(-1, width)
    nan = np.isnan(rows)
    if nan.any():
        lo = np.argmin(np.where(nan, np.inf, rows), axis=1)
        hi = np.argmax(np.where(nan, np.inf, rows), axis=1)  # NaN ranks highest
    else:
        lo = np.argmin(rows, axis=1)
        hi = np.argmax(rows, axis=1)
    base = offset + np.arange(rows.shape[0]) * width
    return base + np.minimum(lo, hi), base + np.maximum(lo, hi)


def downsample_indices(values: npt.NDArray[np.float64], max_points: int) -> npt.NDArray[np.intp]:
    """Indices (ascending) of at most ``max_points`` points to keep."""
    import numpy as np

    n = len(values)
    if n <= max_points:
        return np.arange(n)
    if max_points < 4:
        return np.array([0, n - 1][:max_points], dtype=np.intp)
    interior = n - 2
    buckets = min((max_points - 2) // 2, interior)
    width, extra = divmod(interior, buckets)
    # ``extra`` buckets of width+1 points, then buckets-extra of width points.
    split = 1 + extra * (width + 1)
    parts = [np.array([0], dtype=np.intp)]
    for start, stop, w in ((1, split, width + 1), (split, n - 1, width)):
        if stop > start:
            first, second = _extremes(values[start:stop], start, w)
            pair = np.empty(2 * len(first), dtype=np.intp)
            pair[0::2] = first
            pair[1::2] = second
            parts.append(pair)
    parts.append(np.array([n - 1], dtype=np.intp))
    keep: npt.NDArray[np.intp] = np.concatenate(parts)
    # Drop the duplicate when a bucket's min and max are the same point.
    unique: npt.NDArray[np.intp] = keep[np.concatenate([[True], keep[1:] != keep[:-1]])]
    return unique


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
