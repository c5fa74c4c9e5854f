"""Metric ingestion and reads for the SQL store: segments plus summaries."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from shipyard.store._columns import fold_summary, merge_series
from shipyard.store._sql import _segments
from shipyard.store._sql._schema import metric_segments as seg_t
from shipyard.store._sql._schema import metric_summaries as sum_t
from shipyard.types import MetricSeries, MetricSummary

if TYPE_CHECKING:
    pass


def _nan_to_none(x: float) -> float | None:
    return None if math.isnan(x) else x


def _none_to_nan(x: float | None) -> float:
    return math.nan if x is None else float(x)


def ingest(conn: Connection, run_id: str, batch: list[MetricSeries], pg: bool) -> None:
    """Append points of many keys: rewrite small tail segments, add full ones, merge
    the summaries. A constant number of statements per batch (not per key), so a
    batch of 10,000 keys costs a few queries. Runs in the caller's transaction."""
    import numpy as np

    batch = merge_series([s for s in batch if len(s)])
    if not batch:
        return
    if pg:
        # Serialize writers of one run for the read-modify-write of tails and
        # summaries (SQLite's BEGIN IMMEDIATE already does).
        conn.execute(
            sa.text("SELECT pg_advisory_xact_lock(hashtextextended(:k, 0))"),
            {"k": f"shipyard.metric/{run_id}"},
        )
    keys = [s.key for s in batch]
    tails: dict[str, tuple[int, int]] = {}
    tail_data: dict[str, bytes] = {}  # tails small enough to rewrite with new points
    olds: dict[str, Any] = {}
    for chunk in _chunks(keys):
        top = (
            sa.select(seg_t.c.key, sa.func.max(seg_t.c.seq).label("seq"))
            .where(seg_t.c.run_id == run_id, seg_t.c.key.in_(chunk))
            .group_by(seg_t.c.key)
            .subquery()
        )
        small_data = sa.case(
            (seg_t.c.count < _segments.TAIL_MERGE_POINTS, seg_t.c.data), else_=sa.null()
        )
        rows = conn.execute(
            sa.select(seg_t.c.key, seg_t.c.seq, seg_t.c.count, small_data.label("data"))
            .join(top, sa.and_(seg_t.c.key == top.c.key, seg_t.c.seq == top.c.seq))
            .where(seg_t.c.run_id == run_id)
        )
        for row in rows:
            tails[row.key] = (int(row.seq), int(row._mapping["count"]))
            if row.data is not None:
                tail_data[row.key] = bytes(row.data)
        for row in conn.execute(
            sa.select(sum_t).where(sum_t.c.run_id == run_id, sum_t.c.key.in_(chunk))
        ):
            olds[row.key] = row
    small = [(k, tails[k][0]) for k in tail_data]
    if small:
        conn.execute(
            sa.delete(seg_t).where(
                seg_t.c.run_id == run_id,
                seg_t.c.key == sa.bindparam("k"),
                seg_t.c.seq == sa.bindparam("s"),
            ),
            [{"k": k, "s": seq} for k, seq in small],
        )
    segments: list[dict[str, Any]] = []
    inserts: list[dict[str, Any]] = []
    updates: list[dict[str, Any]] = []
    size = _segments.SEGMENT_POINTS
    for series in batch:
        key = series.key
        steps, values = series.steps, series.values
        times_ms = np.rint(series.timestamps * 1000.0).astype(np.int64)
        seq = tails[key][0] + 1 if key in tails else 0
        if key in tail_data:
            s0, v0, t0 = _segments.decode(tail_data[key])
            steps = np.concatenate([s0, steps])
            values = np.concatenate([v0, values])
            times_ms = np.concatenate([t0, times_ms])
            seq = tails[key][0]
        for start in range(0, len(steps), size):
            end = min(start + size, len(steps))
            segments.append(
                {
                    "run_id": run_id,
                    "key": key,
                    "seq": seq,
                    "count": end - start,
                    "data": _segments.encode(
                        steps[start:end], values[start:end], times_ms[start:end]
                    ),
                }
            )
            seq += 1
        old = olds.get(key)
        new = fold_summary(None if old is None else _summary(old), series)
        fields = {
            "last": _nan_to_none(new.last),
            "last_step": new.last_step,
            "last_time": new.last_time,
            "min": _nan_to_none(new.min),
            "max": _nan_to_none(new.max),
            "count": new.count,
        }
        if old is None:
            inserts.append({"run_id": run_id, "key": key, **fields})
        else:
            updates.append({"k": key, **{f"v_{k}": v for k, v in fields.items()}})
    conn.execute(sa.insert(seg_t), segments)
    if inserts:
        conn.execute(sa.insert(sum_t), inserts)
    if updates:
        conn.execute(
            sa.update(sum_t)
            .where(sum_t.c.run_id == run_id, sum_t.c.key == sa.bindparam("k"))
            .values(
                last=sa.bindparam("v_last"),
                last_step=sa.bindparam("v_last_step"),
                last_time=sa.bindparam("v_last_time"),
                min=sa.bindparam("v_min"),
                max=sa.bindparam("v_max"),
                count=sa.bindparam("v_count"),
            ),
            updates,
        )


def _summary(row: Any) -> MetricSummary:
    """A summary row as the entity (NULL stands for NaN)."""
    return MetricSummary(
        key=row.key,
        last=_none_to_nan(row.last),
        last_step=int(row.last_step),
        last_time=float(row.last_time),
        min=_none_to_nan(row.min),
        max=_none_to_nan(row.max),
        count=int(row._mapping["count"]),
    )


def summaries(conn: Connection, run_ids: list[str]) -> dict[str, dict[str, MetricSummary]]:
    out: dict[str, dict[str, MetricSummary]] = {r: {} for r in run_ids}
    for chunk in _chunks(run_ids):
        for row in conn.execute(sa.select(sum_t).where(sum_t.c.run_id.in_(chunk))):
            out[row.run_id][row.key] = _summary(row)
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
