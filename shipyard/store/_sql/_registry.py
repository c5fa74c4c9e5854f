"""The model-registry section of the SQL store.

Version numbers and alias moves are serialized per registered model: SQLite's
``BEGIN IMMEDIATE`` takes the write lock up front, PostgreSQL takes a
transaction-level advisory lock on the model. So two promotions of one alias
cannot both read the old holder and both win: the second sees the first's move
and records a ``conflict`` event instead of overwriting it (no lost update).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from types import EllipsisType
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from shipyard._util import FrozenDict, new_id, now
from shipyard.errors import ConflictError, NotFoundError
from shipyard.store._checks import (
    ALIAS_OUTCOMES,
    check_event_fields,
    check_expected,
    check_export_format,
    check_lookup_id,
    check_model_version,
    check_model_version_fields,
    check_outcome,
    check_registry_text,
    check_text,
    to_json,
)
from shipyard.store._registry_text import alias_conflict, alias_missing, version_missing
from shipyard.store._sql import _schema as t
from shipyard.store._sql._engine import read, run_write
from shipyard.store._sql._rows import Obj, q, upsert
from shipyard.types import AliasEvent, ModelExport, ModelVersion, RegisteredModel
from shipyard.validation import check_alias, check_digest, check_model_name

_M, _V, _X, _A, _E = (
    t.registered_models,
    t.model_versions,
    t.model_exports,
    t.model_aliases,
    t.alias_events,
)


def _model(row: Any) -> RegisteredModel:
    return RegisteredModel(
        id=row.id,
        project_id=row.project_id,
        name=row.name,
        description=row.description,
        tags=FrozenDict(json.loads(row.tags)),
        contract=FrozenDict(json.loads(row.contract)),
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _version(row: Any) -> ModelVersion:
    return ModelVersion(
        id=row.id,
        model_id=row.model_id,
        version=int(row.version),
        package_digest=row.package_digest,
        run_id=row.run_id,
        source=row.source,
        description=row.description,
        tags=FrozenDict(json.loads(row.tags)),
        metadata=FrozenDict(json.loads(row.metadata)),
        created_by=row.created_by,
        created_at=row.created_at,
    )


def _event(row: Any) -> AliasEvent:
    return AliasEvent(
        id=int(row.id),
        model_id=row.model_id,
        alias=row.alias,
        from_version=row.from_version,
        to_version=row.to_version,
        outcome=row.outcome,
        actor=row.actor,
        reason=row.reason,
        report=FrozenDict(json.loads(row.report)),
        created_at=row.created_at,
    )


def _get_model(conn: Connection, model_id: str) -> Any:
    row = conn.execute(sa.select(_M).where(_M.c.id == model_id)).first()
    if row is None:
        raise NotFoundError(f"registered model {q(model_id)} not found")
    return row


def _get_version(conn: Connection, model_id: str, version: int) -> Any:
    row = conn.execute(
        sa.select(_V).where(_V.c.model_id == model_id, _V.c.version == version)
    ).first()
    if row is None:
        raise NotFoundError(version_missing(_get_model(conn, model_id).name, version))
    return row


def _serialize(conn: Connection, model_id: str) -> None:
    """Serialize writers of one model (SQLite's write lock already does)."""
    if conn.dialect.name == "postgresql":
        conn.execute(
            sa.text("SELECT pg_advisory_xact_lock(hashtextextended(:k, 0))"),
            {"k": f"shipyard.model/{model_id}"},
        )


def _holder(conn: Connection, model_id: str, alias: str) -> int | None:
    row = conn.execute(
        sa.select(_A.c.version).where(_A.c.model_id == model_id, _A.c.alias == alias)
    ).first()
    return None if row is None else int(row[0])


def _append(conn: Connection, **values: Any) -> AliasEvent:
    values["created_at"] = now()
    result = conn.execute(sa.insert(_E).values(**values).returning(_E.c.id))
    return _event(Obj({"id": result.scalar_one(), **values}))


class RegistryMixin:
    """Mixed into :class:`~shipyard.store._sql._store.SqlStore`."""

    _engine: Engine

    # -- models -----------------------------------------------------------------

    def create_registered_model(
        self,
        project_id: str,
        name: str,
        *,
        description: str = "",
        tags: Mapping[str, str] | None = None,
        contract: Mapping[str, Any] | None = None,
    ) -> RegisteredModel:
        check_lookup_id(project_id, "project")
        check_model_name(name)
        desc, tag_map = check_registry_text(description, tags)
        terms = to_json(contract or {}, "contract")
        t0 = now()
        row = {
            "id": new_id(),
            "project_id": project_id,
            "name": name,
            "description": desc or "",
            "tags": json.dumps(tag_map or {}, sort_keys=True),
            "contract": terms,
            "created_at": t0,
            "updated_at": t0,
        }

        def write(conn: Connection) -> None:
            if (
                conn.execute(
                    sa.select(t.projects.c.id).where(t.projects.c.id == project_id)
                ).first()
                is None
            ):
                raise NotFoundError(f"project {q(project_id)} not found")
            clash = sa.select(_M.c.id).where(_M.c.project_id == project_id, _M.c.name == name)
            if conn.execute(clash).first():
                raise ConflictError(f"a registered model named {q(name)} already exists")
            conn.execute(sa.insert(_M).values(**row))

        run_write(self._engine, write, retry_integrity=False)
        return _model(Obj(row))

    def get_registered_model(self, model_id: str) -> RegisteredModel:
        check_lookup_id(model_id, "registered model")
        with read(self._engine) as conn:
            return _model(_get_model(conn, model_id))

    def get_registered_model_by_name(self, project_id: str, name: str) -> RegisteredModel:
        check_lookup_id(project_id, "project")
        check_text(name, "model name")
        with read(self._engine) as conn:
            row = conn.execute(
                sa.select(_M).where(_M.c.project_id == project_id, _M.c.name == name)
            ).first()
        if row is None:
            raise NotFoundError(
                f"registered model {q(name)} not found; register one with "
                "'shipyard models register runs:/<run>/<path> NAME'"
            )
        return _model(row)

    def list_registered_models(self, project_id: str | None = None) -> list[RegisteredModel]:
        query = sa.select(_M).order_by(_M.c.name)
        with read(self._engine) as conn:
            if project_id is not None:
                check_lookup_id(project_id, "project")
                if (
                    conn.execute(
                        sa.select(t.projects.c.id).where(t.projects.c.id == project_id)
                    ).first()
                    is None
                ):
                    raise NotFoundError(f"project {q(project_id)} not found")
                query = query.where(_M.c.project_id == project_id)
            return [_model(r) for r in conn.execute(query)]

    def update_registered_model(
        self,
        model_id: str,
        *,
        description: str | None = None,
        tags: Mapping[str, str] | None = None,
        contract: Mapping[str, Any] | None = None,
    ) -> RegisteredModel:
        check_lookup_id(model_id, "registered model")
        desc, tag_map = check_registry_text(description, tags)
        terms = None if contract is None else to_json(contract, "contract")

        def write(conn: Connection) -> RegisteredModel:
            row = _get_model(conn, model_id)
            values: dict[str, Any] = {"updated_at": now()}
            if desc is not None:
                values["description"] = desc
            if tag_map is not None:
                merged = {**json.loads(row.tags), **tag_map}
                values["tags"] = json.dumps(merged, sort_keys=True)
            if terms is not None:
                values["contract"] = terms
            conn.execute(sa.update(_M).where(_M.c.id == model_id).values(**values))
            return _model(_get_model(conn, model_id))

        return run_write(self._engine, write)

    # -- versions ---------------------------------------------------------------

    def create_model_version(
        self,
        model_id: str,
        package_digest: str,
        *,
        run_id: str | None = None,
        source: str = "",
        description: str = "",
        tags: Mapping[str, str] | None = None,
        metadata: Mapping[str, Any] | None = None,
        created_by: str = "",
    ) -> ModelVersion:
        check_lookup_id(model_id, "registered model")
        meta = check_model_version_fields(package_digest, run_id, source, created_by, metadata)
        desc, tag_map = check_registry_text(description, tags)

        def write(conn: Connection) -> ModelVersion:
            _serialize(conn, model_id)
            _get_model(conn, model_id)
            if (
                run_id is not None
                and conn.execute(sa.select(t.runs.c.id).where(t.runs.c.id == run_id)).first()
                is None
            ):
                raise NotFoundError(f"run {q(run_id)} not found")
            top = conn.execute(
                sa.select(sa.func.max(_V.c.version)).where(_V.c.model_id == model_id)
            ).scalar()
            row = {
                "id": new_id(),
                "model_id": model_id,
                "version": int(top or 0) + 1,
                "package_digest": package_digest,
                "run_id": run_id,
                "source": source,
                "description": desc or "",
                "tags": json.dumps(tag_map or {}, sort_keys=True),
                "metadata": meta,
                "created_by": created_by,
                "created_at": now(),
            }
            conn.execute(sa.insert(_V).values(**row))
            return _version(Obj(row))

        return run_write(self._engine, write)

    def get_model_version(self, model_id: str, version: int) -> ModelVersion:
        check_lookup_id(model_id, "registered model")
        number = check_model_version(version)
        with read(self._engine) as conn:
            return _version(_get_version(conn, model_id, number))

    def list_model_versions(self, model_id: str) -> list[ModelVersion]:
        check_lookup_id(model_id, "registered model")
        with read(self._engine) as conn:
            _get_model(conn, model_id)
            rows = conn.execute(
                sa.select(_V).where(_V.c.model_id == model_id).order_by(_V.c.version)
            ).all()
        return [_version(r) for r in rows]

    def list_run_model_versions(self, run_id: str) -> list[ModelVersion]:
        check_lookup_id(run_id, "run")
        with read(self._engine) as conn:
            if conn.execute(sa.select(t.runs.c.id).where(t.runs.c.id == run_id)).first() is None:
                raise NotFoundError(f"run {q(run_id)} not found")
            rows = conn.execute(
                sa.select(_V).where(_V.c.run_id == run_id).order_by(_V.c.created_at, _V.c.version)
            ).all()
        return [_version(r) for r in rows]

    def update_model_version(
        self,
        model_id: str,
        version: int,
        *,
        description: str | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> ModelVersion:
        check_lookup_id(model_id, "registered model")
        number = check_model_version(version)
        desc, tag_map = check_registry_text(description, tags)

        def write(conn: Connection) -> ModelVersion:
            row = _get_version(conn, model_id, number)
            values: dict[str, Any] = {}
            if desc is not None:
                values["description"] = desc
            if tag_map is not None:
                values["tags"] = json.dumps({**json.loads(row.tags), **tag_map}, sort_keys=True)
            if values:
                conn.execute(sa.update(_V).where(_V.c.id == row.id).values(**values))
            return _version(_get_version(conn, model_id, number))

        return run_write(self._engine, write)

    def put_model_export(
        self, model_id: str, version: int, fmt: str, package_digest: str, report: Mapping[str, Any]
    ) -> ModelExport:
        check_lookup_id(model_id, "registered model")
        number = check_model_version(version)
        check_export_format(fmt)
        check_digest(package_digest)
        text = to_json(report, "report")

        def write(conn: Connection) -> ModelExport:
            row = _get_version(conn, model_id, number)
            at = now()
            values = {"package_digest": package_digest, "report": text, "created_at": at}
            upsert(conn, _X, {"model_version_id": row.id, "format": fmt}, values)
            return ModelExport(row.id, fmt, package_digest, FrozenDict(json.loads(text)), at)

        return run_write(self._engine, write)

    def list_model_exports(self, model_id: str, version: int) -> list[ModelExport]:
        check_lookup_id(model_id, "registered model")
        number = check_model_version(version)
        with read(self._engine) as conn:
            mv = _get_version(conn, model_id, number)
            rows = conn.execute(
                sa.select(_X).where(_X.c.model_version_id == mv.id).order_by(_X.c.format)
            ).all()
        return [
            ModelExport(
                r.model_version_id,
                r.format,
                r.package_digest,
                FrozenDict(json.loads(r.report)),
                r.created_at,
            )
            for r in rows
        ]

    # -- aliases ----------------------------------------------------------------

    def set_alias(
        self,
        model_id: str,
        alias: str,
        version: int,
        *,
        expected: int | EllipsisType | None = ...,
        outcome: str = "moved",
        actor: str = "",
        reason: str = "",
        report: Mapping[str, Any] | None = None,
    ) -> AliasEvent:
        check_lookup_id(model_id, "registered model")
        check_alias(alias)
        number = check_model_version(version)
        check_expected(expected)
        check_outcome(outcome, ALIAS_OUTCOMES[:2])
        text = check_event_fields(actor, reason, report)

        def write(conn: Connection) -> tuple[AliasEvent, str | None]:
            _serialize(conn, model_id)
            model = _get_model(conn, model_id)
            _get_version(conn, model_id, number)
            before = _holder(conn, model_id, alias)
            fields = {"model_id": model_id, "alias": alias, "from_version": before}
            fields |= {"to_version": number, "actor": actor, "reason": reason, "report": text}
            if expected is not ... and before != expected:
                # Kept in the audit log: the conflict is committed, then raised.
                event = _append(conn, outcome="conflict", **fields)
                return event, alias_conflict(model.name, alias, before)
            upsert(
                conn,
                _A,
                {"model_id": model_id, "alias": alias},
                {"version": number, "updated_at": now()},
            )
            return _append(conn, outcome=outcome, **fields), None

        event, conflict = run_write(self._engine, write, retry_integrity=False)
        if conflict is not None:
            raise ConflictError(conflict)
        return event

    def record_alias_event(
        self,
        model_id: str,
        alias: str,
        version: int | None,
        *,
        outcome: str,
        actor: str = "",
        reason: str = "",
        report: Mapping[str, Any] | None = None,
    ) -> AliasEvent:
        check_lookup_id(model_id, "registered model")
        check_alias(alias)
        number = None if version is None else check_model_version(version)
        check_outcome(outcome, ("refused",))
        text = check_event_fields(actor, reason, report)

        def write(conn: Connection) -> AliasEvent:
            _serialize(conn, model_id)
            if number is None:
                _get_model(conn, model_id)
            else:
                _get_version(conn, model_id, number)
            return _append(
                conn,
                model_id=model_id,
                alias=alias,
                from_version=_holder(conn, model_id, alias),
                to_version=number,
                outcome=outcome,
                actor=actor,
                reason=reason,
                report=text,
            )

        return run_write(self._engine, write, retry_integrity=False)

    def delete_alias(
        self, model_id: str, alias: str, *, actor: str = "", reason: str = ""
    ) -> AliasEvent:
        check_lookup_id(model_id, "registered model")
        check_alias(alias)
        text = check_event_fields(actor, reason, None)

        def write(conn: Connection) -> AliasEvent:
            _serialize(conn, model_id)
            model = _get_model(conn, model_id)
            before = _holder(conn, model_id, alias)
            if before is None:
                raise NotFoundError(alias_missing(model.name, alias))
            conn.execute(sa.delete(_A).where(_A.c.model_id == model_id, _A.c.alias == alias))
            return _append(
                conn,
                model_id=model_id,
                alias=alias,
                from_version=before,
                to_version=None,
                outcome="removed",
                actor=actor,
                reason=reason,
                report=text,
            )

        return run_write(self._engine, write, retry_integrity=False)

    def get_alias(self, model_id: str, alias: str) -> ModelVersion:
        check_lookup_id(model_id, "registered model")
        check_alias(alias)
        with read(self._engine) as conn:
            model = _get_model(conn, model_id)
            number = _holder(conn, model_id, alias)
            if number is None:
                raise NotFoundError(alias_missing(model.name, alias))
            return _version(_get_version(conn, model_id, number))

    def list_aliases(self, model_id: str) -> dict[str, int]:
        check_lookup_id(model_id, "registered model")
        with read(self._engine) as conn:
            _get_model(conn, model_id)
            rows = conn.execute(
                sa.select(_A.c.alias, _A.c.version)
                .where(_A.c.model_id == model_id)
                .order_by(_A.c.alias)
            ).all()
        return {r.alias: int(r.version) for r in rows}

    def list_alias_events(self, model_id: str, alias: str | None = None) -> list[AliasEvent]:
        check_lookup_id(model_id, "registered model")
        if alias is not None:
            check_alias(alias)
        query = sa.select(_E).where(_E.c.model_id == model_id).order_by(_E.c.id)
        if alias is not None:
            query = query.where(_E.c.alias == alias)
        with read(self._engine) as conn:
            _get_model(conn, model_id)
            return [_event(r) for r in conn.execute(query)]
