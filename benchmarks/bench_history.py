"""``get_metric_history`` of a 1,000,000-point series, downsampled to 2,000 points.

One run with one key of 1,000,000 points (a noisy decaying loss with
divergence spikes and dips) is written to a temporary SQLite store with
``log_batch``; then, through the public ``TrackingClient``:

* downsampled read (``max_points=2000``): median of 5 after one warm-up;
* full read: same;
* ``shipyard.store.downsample`` alone on freshly copied arrays in memory (the
  floor the downsampled read cannot beat without storing pre-aggregates).

The downsample must keep the series' global minimum and maximum.
"""

from __future__ import annotations

import time

from _common import Figure, median, temp_dir, time_call
from _workers import loss_curve

NAME = "metric_history"
TARGET_MS = 50.0
MAX_POINTS = 2000


def run(quick: bool = False) -> list[Figure]:
    import numpy as np

    from shipyard.store import downsample, series
    from shipyard.tracking import TrackingClient

    n = 200_000 if quick else 1_000_000
    values = loss_curve(n, seed=3, spikes=20)
    steps = np.arange(n, dtype=np.int64)
    times = time.time() - n * 0.05 + np.arange(n) * 0.05
    with temp_dir("history") as tmp:
        client = TrackingClient(f"sqlite:///{tmp / 'history.db'}", str(tmp / "blobs"))
        exp = client.get_or_create_experiment("history-bench")
        run_id = client.store.create_run(exp.id, name="long").id
        t0 = time.perf_counter()
        client.store.log_batch(run_id, metrics=[series("loss", steps, values, times)])
        write_ms = (time.perf_counter() - t0) * 1000.0

        holder = {}

        def sampled() -> None:
            holder["s"] = client.get_metric_history(run_id, "loss", max_points=MAX_POINTS)

        def full() -> None:
            holder["f"] = client.get_metric_history(run_id, "loss")

        ds_ms = time_call(sampled, reps=5, warmup=1)
        full_ms = time_call(full, reps=5, warmup=1)
        f, s = holder["f"], holder["s"]
        alone_ms = []
        for i in range(6):  # on fresh arrays each time, as after a read (copies untimed)
            arrays = (f.steps.copy(), f.values.copy(), f.timestamps.copy())
            t0 = time.perf_counter()
            downsample(*arrays, MAX_POINTS)
            if i:
                alone_ms.append((time.perf_counter() - t0) * 1000.0)
            del arrays
        client.store.close()

    problems = []
    if len(f) != n or not np.array_equal(np.asarray(f.values), values):
        problems.append(f"full read returned {len(f):,} points, not the {n:,} written")
    if len(s) > MAX_POINTS or s.total != n:
        problems.append(f"downsample has {len(s)} points (total {s.total})")
    kept_min = float(np.min(s.values)) == float(np.min(values))
    kept_max = float(np.max(s.values)) == float(np.max(values))
    if not (kept_min and kept_max):
        problems.append("the downsample lost the global " + ("min" if not kept_min else "max"))
    error = "; ".join(problems)
    return [
        Figure(
            NAME,
            f"get_metric_history {n:,} -> {MAX_POINTS:,} points",
            median(ds_ms),
            "ms",
            target=TARGET_MS,
            peer="downsample() alone",
            peer_value=median(alone_ms),
            note=f"{len(s):,} points returned" + ("; global min & max kept" if not error else ""),
            samples=ds_ms,
            error=error,
        ),
        Figure(
            NAME,
            f"get_metric_history {n:,} points, full",
            median(full_ms),
            "ms",
            samples=full_ms,
            note=f"{n / median(full_ms) / 1000:.1f} M points/s",
        ),
        Figure(
            NAME, "  downsample() alone (fresh arrays)", median(alone_ms), "ms", samples=alone_ms
        ),
        Figure(NAME, f"  log_batch of the {n:,} points (setup)", write_ms, "ms"),
    ]
