"""The datasets section of the SQL store: datasets, versions, run inputs, step results."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from shipyard._util import FrozenDict, new_id, now
from shipyard.errors import ConflictError, NotFoundError
from shipyard.store._checks import (
    check_inputs,
    check_lookup_id,
    check_step_key,
    check_text,
    check_version_fields,
    check_version_number,
)
from shipyard.store._sql import _schema as t
from shipyard.store._sql._engine import read, run_write
from shipyard.store._sql._rows import Obj, q, upsert
from shipyard.types import Dataset, DatasetVersion, RunInput
from shipyard.validation import check_name

_DS, _V, _IN = t.datasets, t.dataset_versions, t.run_inputs


def _dataset(row: Any) -> Dataset:
    return Dataset(row.id, row.project_id, row.name, row.description, row.created_at)


def _version(row: Any) -> DatasetVersion:
    return DatasetVersion(
        id=row.id,
        dataset_id=row.dataset_id,
        version=int(row.version),
        digest=row.digest,
        num_files=int(row.num_files),
        size=int(row.size),
        message=row.message,
        source=row.source,
        run_id=row.run_id,
        metadata=FrozenDict(json.loads(row.metadata or "{}")),
        created_at=row.created_at,
    )


def _exists(conn: Connection, table: sa.Table, id_: str) -> bool:
    return conn.execute(sa.select(table.c.id).where(table.c.id == id_)).first() is not None


class DatasetsMixin:
    """Mixed into :class:`~shipyard.store._sql._store.SqlStore`."""

    _engine: Engine

    def create_dataset(self, project_id: str, name: str, *, description: str = "") -> Dataset:
        check_lookup_id(project_id, "project")
        check_name(name, "dataset name")
        check_text(description, "description")
        dataset = Dataset(new_id(), project_id, name, description, now())

        def write(conn: Connection) -> None:
            if not _exists(conn, t.projects, project_id):
                raise NotFoundError(f"project {q(project_id)} not found")
            clash = sa.select(_DS.c.id).where(_DS.c.project_id == project_id, _DS.c.name == name)
            if conn.execute(clash).first():
                raise ConflictError(f"a dataset named {q(name)} already exists")
            conn.execute(
                sa.insert(_DS).values(
                    id=dataset.id,
                    project_id=project_id,
                    name=name,
                    description=description,
                    created_at=dataset.created_at,
                )
            )

        run_write(self._engine, write, retry_integrity=False)
        return dataset

    def get_dataset(self, dataset_id: str) -> Dataset:
        check_lookup_id(dataset_id, "dataset")
        with read(self._engine) as conn:
            row = conn.execute(sa.select(_DS).where(_DS.c.id == dataset_id)).first()
        if row is None:
            raise NotFoundError(f"dataset {q(dataset_id)} not found")
        return _dataset(row)

    def get_dataset_by_name(self, project_id: str, name: str) -> Dataset:
        check_lookup_id(project_id, "project")
        check_text(name, "dataset name")
        with read(self._engine) as conn:
            row = conn.execute(
                sa.select(_DS).where(_DS.c.project_id == project_id, _DS.c.name == name)
            ).first()
        if row is None:
            raise NotFoundError(
                f"dataset {q(name)} not found; add it with 'shipyard data add PATH --name NAME'"
            )
        return _dataset(row)

    def list_datasets(self, project_id: str | None = None) -> list[Dataset]:
        query = sa.select(_DS).order_by(_DS.c.name)
        with read(self._engine) as conn:
            if project_id is not None:
                check_lookup_id(project_id, "project")
                if not _exists(conn, t.projects, project_id):
                    raise NotFoundError(f"project {q(project_id)} not found")
                query = query.where(_DS.c.project_id == project_id)
            return [_dataset(r) for r in conn.execute(query)]

    def create_dataset_version(
        self,
        dataset_id: str,
        digest: str,
        *,
        num_files: int,
        size: int,
        message: str = "",
        source: str = "",
        run_id: str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> DatasetVersion:
        check_lookup_id(dataset_id, "dataset")
        meta = check_version_fields(digest, num_files, size, message, source, run_id, metadata)
        made: list[DatasetVersion] = []

        def write(conn: Connection) -> None:
            made.clear()
            if conn.dialect.name == "postgresql":  # number versions one adder at a time
                conn.execute(
                    sa.text("SELECT pg_advisory_xact_lock(hashtextextended(:k, 0))"),
                    {"k": f"shipyard.dataset/{dataset_id}"},
                )
            if not _exists(conn, _DS, dataset_id):
                raise NotFoundError(f"dataset {q(dataset_id)} not found")
            if run_id is not None and not _exists(conn, t.runs, run_id):
                raise NotFoundError(f"run {q(run_id)} not found")
            top = conn.execute(
                sa.select(sa.func.max(_V.c.version)).where(_V.c.dataset_id == dataset_id)
            ).scalar()
            row = {
                "id": new_id(),
                "dataset_id": dataset_id,
                "version": int(top or 0) + 1,
                "digest": digest,
                "num_files": num_files,
                "size": size,
                "message": message,
                "source": source,
                "run_id": run_id,
                "metadata": meta,
                "created_at": now(),
            }
            conn.execute(sa.insert(_V).values(**row))
            made.append(_version(Obj(row)))

        run_write(self._engine, write)
        return made[0]

    def get_dataset_version(self, dataset_id: str, version: int) -> DatasetVersion:
        check_lookup_id(dataset_id, "dataset")
        check_version_number(version)
        with read(self._engine) as conn:
            row = conn.execute(
                sa.select(_V).where(_V.c.dataset_id == dataset_id, _V.c.version == version)
            ).first()
            if row is None:
                ds = conn.execute(sa.select(_DS.c.name).where(_DS.c.id == dataset_id)).first()
                if ds is None:
                    raise NotFoundError(f"dataset {q(dataset_id)} not found")
                raise NotFoundError(
                    f"dataset {ds.name!r} has no version {version}; list its versions with "
                    f"'shipyard data log {ds.name}'"
                )
        return _version(row)

    def get_dataset_version_by_id(self, version_id: str) -> DatasetVersion:
        check_lookup_id(version_id, "dataset version")
        with read(self._engine) as conn:
            row = conn.execute(sa.select(_V).where(_V.c.id == version_id)).first()
        if row is None:
            raise NotFoundError(f"dataset version {q(version_id)} not found")
        return _version(row)

    def list_dataset_versions(self, dataset_id: str) -> list[DatasetVersion]:
        check_lookup_id(dataset_id, "dataset")
        with read(self._engine) as conn:
            if not _exists(conn, _DS, dataset_id):
                raise NotFoundError(f"dataset {q(dataset_id)} not found")
            rows = conn.execute(
                sa.select(_V).where(_V.c.dataset_id == dataset_id).order_by(_V.c.version)
            ).all()
        return [_version(r) for r in rows]

    def log_inputs(self, run_id: str, inputs: Sequence[tuple[str, str]]) -> None:
        check_lookup_id(run_id, "run")
        pairs = check_inputs(inputs)

        def write(conn: Connection) -> None:
            if not _exists(conn, t.runs, run_id):
                raise NotFoundError(f"run {q(run_id)} not found")
            for version_id, role in pairs:
                if not _exists(conn, _V, version_id):
                    raise NotFoundError(f"dataset version {q(version_id)} not found")
                have = conn.execute(
                    sa.select(_IN.c.role).where(
                        _IN.c.run_id == run_id,
                        _IN.c.dataset_version_id == version_id,
                        _IN.c.role == role,
                    )
                ).first()
                if have is None:
                    conn.execute(
                        sa.insert(_IN).values(
                            run_id=run_id,
                            dataset_version_id=version_id,
                            role=role,
                            created_at=now(),
                        )
                    )

        if pairs:
            run_write(self._engine, write)

    def list_run_inputs(self, run_id: str) -> list[RunInput]:
        check_lookup_id(run_id, "run")
        with read(self._engine) as conn:
            if not _exists(conn, t.runs, run_id):
                raise NotFoundError(f"run {q(run_id)} not found")
            rows = conn.execute(
                sa.select(_IN).where(_IN.c.run_id == run_id).order_by(_IN.c.created_at)
            ).all()
        return [RunInput(r.run_id, r.dataset_version_id, r.role, r.created_at) for r in rows]

    def list_version_runs(self, dataset_version_id: str) -> list[RunInput]:
        check_lookup_id(dataset_version_id, "dataset version")
        with read(self._engine) as conn:
            if not _exists(conn, _V, dataset_version_id):
                raise NotFoundError(f"dataset version {q(dataset_version_id)} not found")
            rows = conn.execute(
                sa.select(_IN)
                .where(_IN.c.dataset_version_id == dataset_version_id)
                .order_by(_IN.c.created_at)
            ).all()
        return [RunInput(r.run_id, r.dataset_version_id, r.role, r.created_at) for r in rows]

    def get_step_result(self, key: str) -> str | None:
        check_step_key(key)
        with read(self._engine) as conn:
            row = conn.execute(
                sa.select(t.step_results.c.dataset_version_id).where(t.step_results.c.key == key)
            ).first()
        return None if row is None else str(row[0])

    def put_step_result(self, key: str, dataset_version_id: str) -> None:
        check_step_key(key)
        check_lookup_id(dataset_version_id, "dataset version")

        def write(conn: Connection) -> None:
            if not _exists(conn, _V, dataset_version_id):
                raise NotFoundError(f"dataset version {q(dataset_version_id)} not found")
            upsert(
                conn,
                t.step_results,
                {"key": key},
                {"dataset_version_id": dataset_version_id, "created_at": now()},
            )

        run_write(self._engine, write)
