"""Rows to entities, and small SQL helpers shared by the SQL store's modules."""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from shipyard._util import FrozenDict
from shipyard.store._sql import _metrics
from shipyard.store._sql import _schema as t
from shipyard.types import Lifecycle, ParamValue, Project, Run, RunStatus


def param_value(vtype: str, text: str) -> ParamValue:
    if vtype == "null":
        return None
    if vtype == "bool":
        return text == "true"
    if vtype == "int":
        return int(text)
    if vtype == "float":
        return float(text)
    return text


def loads(text: str) -> FrozenDict[str, Any]:
    return FrozenDict(json.loads(text or "{}"))


def load_runs(conn: Connection, run_ids: list[str]) -> list[Run]:
    """Full runs for ids, in the given order (missing ids are skipped)."""
    if not run_ids:
        return []
    rows: dict[str, Any] = {}
    params: dict[str, dict[str, ParamValue]] = {r: {} for r in run_ids}
    tags: dict[str, dict[str, str]] = {r: {} for r in run_ids}
    for chunk in _metrics._chunks(run_ids):
        for row in conn.execute(sa.select(t.runs).where(t.runs.c.id.in_(chunk))):
            rows[row.id] = row
        for row in conn.execute(
            sa.select(
                t.params.c.run_id, t.params.c.key, t.params.c.value_type, t.params.c.value_text
            ).where(t.params.c.run_id.in_(chunk))
        ):
            params[row.run_id][row.key] = param_value(row.value_type, row.value_text)
        for row in conn.execute(sa.select(t.tags).where(t.tags.c.run_id.in_(chunk))):
            tags[row.run_id][row.key] = row.value
    summaries = _metrics.summaries(conn, list(rows))
    out = []
    for rid in run_ids:
        r = rows.get(rid)
        if r is None:
            continue
        row = r
        out.append(
            Run(
                id=row.id,
                experiment_id=row.experiment_id,
                name=row.name,
                status=RunStatus(row.status),
                start_time=row.start_time,
                end_time=row.end_time,
                user=row.user,
                lifecycle=Lifecycle(row.lifecycle),
                parent_run_id=row.parent_run_id,
                params=FrozenDict(params[rid]),
                tags=FrozenDict(tags[rid]),
                summaries=FrozenDict(summaries.get(rid, {})),
                code=loads(row.code),
                environment=loads(row.environment),
                process=row.process,
                heartbeat_time=row.heartbeat_time,
            )
        )
    return out


def q(value: object) -> str:
    """A user-supplied value quoted for a message, cut short if huge."""
    text = repr(value)
    return text if len(text) <= 80 else f"{text[:60]}... ({len(text)} characters)"


def project_row(p: Project) -> dict[str, Any]:
    return {"id": p.id, "name": p.name, "description": p.description, "created_at": p.created_at}


def upsert(conn: Connection, table: sa.Table, keys: dict[str, Any], values: dict[str, Any]) -> None:
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert  # type: ignore[assignment]
    stmt = insert(table).values(**keys, **values)
    conn.execute(stmt.on_conflict_do_update(index_elements=list(keys), set_=values))


class Obj:
    """Attribute access over a dict, so a freshly inserted row converts like a fetched one."""

    def __init__(self, values: dict[str, Any]) -> None:
        self.__dict__.update(values)
