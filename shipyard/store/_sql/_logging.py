"""The logging half of the SQL store: params, tags, metrics, artifacts."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from shipyard.errors import ConflictError, InvalidArgumentError, NotFoundError, StateError
from shipyard.store._checks import (
    check_artifact_paths,
    check_artifacts,
    check_batch,
    check_lookup_id,
)
from shipyard.store._downsample import downsample
from shipyard.store._evaluate import param_columns
from shipyard.store._sql import _metrics
from shipyard.store._sql import _schema as t
from shipyard.store._sql._engine import read, run_write
from shipyard.store._sql._rows import param_value, q, upsert
from shipyard.types import Artifact, Lifecycle, MetricSeries, ParamValue, same_param
from shipyard.validation import check_key, describe


class LoggingMixin:
    """Writes and reads of what a run logs; mixed into :class:`SqlStore`."""

    _engine: Engine
    _pg: bool

    def _check_run_writable(self, conn: Connection, run_id: str) -> None:
        row = conn.execute(sa.select(t.runs.c.lifecycle).where(t.runs.c.id == run_id)).first()
        if row is None:
            raise NotFoundError(f"run {q(run_id)} not found; list runs with 'shipyard runs list'")
        if row.lifecycle != Lifecycle.ACTIVE.value:
            raise StateError(f"run {run_id} is deleted; restore it before logging to it")

    def log_batch(
        self,
        run_id: str,
        *,
        params: Mapping[str, ParamValue] | None = None,
        tags: Mapping[str, str] | None = None,
        metrics: Sequence[MetricSeries] = (),
    ) -> None:
        check_lookup_id(run_id, "run")
        param_map, tag_map, series = check_batch(params, tags, metrics)

        def write(conn: Connection) -> None:
            self._check_run_writable(conn, run_id)
            if param_map:
                existing = {
                    r.key: param_value(r.value_type, r.value_text)
                    for r in conn.execute(
                        sa.select(
                            t.params.c.key, t.params.c.value_type, t.params.c.value_text
                        ).where(t.params.c.run_id == run_id, t.params.c.key.in_(list(param_map)))
                    )
                }
                new_rows = []
                for k, v in param_map.items():
                    if k in existing:
                        if not same_param(existing[k], v):
                            raise ConflictError(
                                f"param {k!r} of run {run_id} is already {existing[k]!r}; "
                                f"cannot change it to {v!r} (params are immutable: log a new "
                                "key or start a new run)"
                            )
                        continue
                    vtype, text, num = param_columns(v)
                    new_rows.append(
                        {
                            "run_id": run_id,
                            "key": k,
                            "value_type": vtype,
                            "value_text": text,
                            "value_num": num,
                        }
                    )
                if new_rows:
                    conn.execute(sa.insert(t.params), new_rows)
            for k, v in tag_map.items():
                upsert(conn, t.tags, {"run_id": run_id, "key": k}, {"value": v})
            if series:
                _metrics.ingest(conn, run_id, series, pg=self._pg)

        if param_map or tag_map or series:
            run_write(self._engine, write)

    def delete_tag(self, run_id: str, key: str) -> None:
        check_lookup_id(run_id, "run")
        check_key(key, "tag key")

        def write(conn: Connection) -> None:
            self._check_run_writable(conn, run_id)
            result = conn.execute(
                sa.delete(t.tags).where(t.tags.c.run_id == run_id, t.tags.c.key == key)
            )
            if result.rowcount == 0:
                raise NotFoundError(f"run {run_id} has no tag {q(key)}")

        run_write(self._engine, write)

    def get_metric_history(
        self, run_id: str, key: str, *, max_points: int | None = None
    ) -> MetricSeries:
        check_lookup_id(run_id, "run")
        if max_points is not None and (
            isinstance(max_points, bool) or not isinstance(max_points, int) or max_points < 1
        ):
            raise InvalidArgumentError(
                f"invalid max_points: expected an integer >= 1 or None, got {describe(max_points)}"
            )
        check_key(key, "metric key")
        with read(self._engine) as conn:
            series = _metrics.history(conn, run_id, key)
            if series is None:
                if not conn.execute(sa.select(t.runs.c.id).where(t.runs.c.id == run_id)).first():
                    raise NotFoundError(f"run {q(run_id)} not found")
                raise NotFoundError(f"run {run_id} has no metric {q(key)}")
        if max_points is not None and len(series) > max_points:
            steps, values, times = downsample(
                series.steps, series.values, series.timestamps, max_points
            )
            series = MetricSeries(key, steps, values, times, total=len(series))
        for arr in (series.steps, series.values, series.timestamps):
            arr.flags.writeable = False
        return series

    def log_artifacts(self, run_id: str, artifacts: Sequence[Artifact]) -> None:
        check_lookup_id(run_id, "run")
        rows = [
            {
                "run_id": run_id,
                "path": a.path,
                "digest": a.digest,
                "size": a.size,
                "kind": a.kind,
                "created_at": a.created_at,
            }
            for a in check_artifacts(artifacts)
        ]

        def write(conn: Connection) -> None:
            self._check_run_writable(conn, run_id)
            for row in rows:
                conn.execute(
                    sa.delete(t.artifacts).where(
                        t.artifacts.c.run_id == run_id, t.artifacts.c.path == row["path"]
                    )
                )
            if rows:
                conn.execute(sa.insert(t.artifacts), rows)

        run_write(self._engine, write)

    def delete_artifacts(self, run_id: str, paths: Sequence[str]) -> None:
        check_lookup_id(run_id, "run")
        checked = check_artifact_paths(paths)

        def write(conn: Connection) -> None:
            self._check_run_writable(conn, run_id)
            if checked:
                conn.execute(
                    sa.delete(t.artifacts).where(
                        t.artifacts.c.run_id == run_id, t.artifacts.c.path.in_(checked)
                    )
                )

        run_write(self._engine, write)

    def list_artifacts(self, run_id: str) -> list[Artifact]:
        check_lookup_id(run_id, "run")
        with read(self._engine) as conn:
            if not conn.execute(sa.select(t.runs.c.id).where(t.runs.c.id == run_id)).first():
                raise NotFoundError(f"run {q(run_id)} not found")
            rows = conn.execute(
                sa.select(t.artifacts)
                .where(t.artifacts.c.run_id == run_id)
                .order_by(t.artifacts.c.path)
            ).all()
        return [Artifact(r.path, r.digest, int(r.size), r.kind, r.created_at) for r in rows]
