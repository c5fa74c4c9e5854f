"""Metric ingestion and reads for the SQL store: segments plus summaries."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from shipyard.store._sql import _segments
from shipyard.store._sql._schema import metric_segments as seg_t
from shipyard.store._sql._schema import metric_summaries as sum_t
from shipyard.types import MetricSeries, MetricSummary

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt


def _nan_to_none(x: float) -> float | None:
    return None if math.isnan(x) else x


def _none_to_nan(x: float | None) -> float:
    return math.nan if x is None else float(x)


def batch_summary(
    steps: npt.NDArray[np.int64], values: npt.NDArray[np.float64], times: npt.NDArray[np.float64]
) -> tuple[float, int, float, float, float, int]:
    """(last, last_step, last_time, min, max, count) of one batch; min/max NaN if
    every value is NaN. The last point is the latest logged at the highest step."""
    import numpy as np

    top = int(steps.max())
    i = int(np.flatnonzero(steps == top)[-1])
    finite = values[~np.isnan(values)]
    lo = float(finite.min()) if len(finite) else math.nan
    hi = float(finite.max()) if len(finite) else math.nan
    return float(values[i]), top, float(times[i]), lo, hi, len(values)


def ingest(conn: Connection, run_id: str, series: MetricSeries, for_update: bool) -> None:
    """Append one key's points: rewrite a small tail segment, add full ones, and
    merge the summary. Runs inside the caller's write transaction."""
    import numpy as np

    n = len(series)
    if n == 0:
        return
    steps, values, times = series.steps, series.values, series.timestamps
    times_ms = np.rint(times * 1000.0).astype(np.int64)
    key = series.key
    if for_update:
        # PostgreSQL: serialize writers of one (run, key) for the read-modify-write
        # of the tail segment and summary (SQLite's BEGIN IMMEDIATE already does).
        conn.execute(
            sa.text("SELECT pg_advisory_xact_lock(hashtextextended(:k, 0))"),
            {"k": f"shipyard.metric/{run_id}/{key}"},
        )

    tail = conn.execute(
        sa.select(seg_t.c.seq, seg_t.c.count, seg_t.c.data)
        .where(seg_t.c.run_id == run_id, seg_t.c.key == key)
        .order_by(seg_t.c.seq.desc())
        .limit(1)
    ).first()
    next_seq = 0
    if tail is not None:
        next_seq = tail.seq + 1
        if int(tail._mapping["count"]) < _segments.TAIL_MERGE_POINTS:
            s0, v0, t0 = _segments.decode(tail.data)
            steps = np.concatenate([s0, steps])
            values = np.concatenate([v0, values])
            times_ms = np.concatenate([t0, times_ms])
            conn.execute(
                sa.delete(seg_t).where(
                    seg_t.c.run_id == run_id, seg_t.c.key == key, seg_t.c.seq == tail.seq
                )
            )
            next_seq = tail.seq
    rows: list[dict[str, Any]] = []
    total = len(steps)
    size = _segments.SEGMENT_POINTS
    for start in range(0, total, size):
        end = min(start + size, total)
        rows.append(
            {
                "run_id": run_id,
                "key": key,
                "seq": next_seq,
                "count": end - start,
                "data": _segments.encode(steps[start:end], values[start:end], times_ms[start:end]),
            }
        )
        next_seq += 1
    conn.execute(sa.insert(seg_t), rows)

    last, last_step, last_time, lo, hi, count = batch_summary(
        series.steps, series.values, np.rint(series.timestamps * 1000.0) / 1000.0
    )
    query = sa.select(sum_t).where(sum_t.c.run_id == run_id, sum_t.c.key == key)
    if for_update:
        query = query.with_for_update()
    old = conn.execute(query).first()
    if old is None:
        conn.execute(
            sa.insert(sum_t).values(
                run_id=run_id,
                key=key,
                last=_nan_to_none(last),
                last_step=last_step,
                last_time=last_time,
                min=_nan_to_none(lo),
                max=_nan_to_none(hi),
                count=count,
            )
        )
        return
    if last_step < old.last_step:
        last, last_step, last_time = _none_to_nan(old.last), old.last_step, old.last_time
    lo = _merge(old.min, lo, min)
    hi = _merge(old.max, hi, max)
    conn.execute(
        sa.update(sum_t)
        .where(sum_t.c.run_id == run_id, sum_t.c.key == key)
        .values(
            last=_nan_to_none(last),
            last_step=last_step,
            last_time=last_time,
            min=_nan_to_none(lo),
            max=_nan_to_none(hi),
            count=int(old._mapping["count"]) + count,
        )
    )


def _merge(old: float | None, new: float, pick: Any) -> float:
    if old is None:
        return new
    if math.isnan(new):
        return float(old)
    return float(pick(old, new))


def summaries(conn: Connection, run_ids: list[str]) -> dict[str, dict[str, MetricSummary]]:
    out: dict[str, dict[str, MetricSummary]] = {r: {} for r in run_ids}
    for chunk in _chunks(run_ids):
        for row in conn.execute(sa.select(sum_t).where(sum_t.c.run_id.in_(chunk))):
            out[row.run_id][row.key] = MetricSummary(
                key=row.key,
                last=_none_to_nan(row.last),
                last_step=int(row.last_step),
                last_time=float(row.last_time),
                min=_none_to_nan(row.min),
                max=_none_to_nan(row.max),
                count=int(row._mapping["count"]),
            )
    return out


def history(conn: Connection, run_id: str, key: str) -> MetricSeries | None:
    """All points of a key ordered by (step, logging order); None if none."""
    import numpy as np

    rows = conn.execute(
        sa.select(seg_t.c.data)
        .where(seg_t.c.run_id == run_id, seg_t.c.key == key)
        .order_by(seg_t.c.seq)
    ).all()
    if not rows:
        return None
    parts = [_segments.decode(r.data) for r in rows]
    steps = np.concatenate([p[0] for p in parts]) if len(parts) > 1 else parts[0][0]
    values = np.concatenate([p[1] for p in parts]) if len(parts) > 1 else parts[0][1].copy()
    times_ms = np.concatenate([p[2] for p in parts]) if len(parts) > 1 else parts[0][2]
    if len(steps) > 1 and not bool(np.all(steps[1:] >= steps[:-1])):
        order = np.argsort(steps, kind="stable")
        steps, values, times_ms = steps[order], values[order], times_ms[order]
    return MetricSeries(key, steps, values, times_ms / 1000.0)


def _chunks(items: list[str], size: int = 500) -> list[list[str]]:
    return [items[i : i + size] for i in range(0, len(items), size)]
