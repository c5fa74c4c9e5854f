"""The SQL store: SQLite (embedded default) and PostgreSQL, one code path."""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from shipyard._util import FrozenDict, new_id, now
from shipyard.errors import ConflictError, NotFoundError, StateError
from shipyard.store._base import Store
from shipyard.store._checks import (
    check_enum,
    check_lookup_id,
    check_text,
    check_time,
    to_json,
)
from shipyard.store._sql import _schema as t
from shipyard.store._sql._datasets import DatasetsMixin
from shipyard.store._sql._engine import make_engine, migrate, read, run_write
from shipyard.store._sql._logging import LoggingMixin
from shipyard.store._sql._registry import RegistryMixin
from shipyard.store._sql._rows import load_runs, project_row, q, upsert
from shipyard.types import (
    Experiment,
    Lifecycle,
    Page,
    Project,
    Run,
    RunStatus,
)
from shipyard.validation import (
    check_id,
    check_name,
    check_tags,
)

__all__ = ["SqlStore"]

_engines: dict[str, Engine] = {}
_engines_lock = threading.Lock()


def _shared_engine(uri: str) -> Engine:
    """One engine (pool) per URI per process; migrated on first use."""
    with _engines_lock:
        engine = _engines.get(uri)
        if engine is None:
            engine = make_engine(uri)
            migrate(engine, uri)
            _engines[uri] = engine
        return engine


class SqlStore(LoggingMixin, DatasetsMixin, RegistryMixin, Store):
    """:class:`Store` over SQLAlchemy 2 (``sqlite:///path`` or ``postgresql://...``)."""

    def __init__(self, uri: str) -> None:
        self.uri = uri
        self._engine = _shared_engine(uri)
        self._pg = self._engine.dialect.name == "postgresql"

    # -- projects ---------------------------------------------------------------

    def create_project(self, name: str, description: str = "") -> Project:
        check_name(name, "project name")
        check_text(description, "description")
        project = Project(new_id(), name, description, now())

        def write(conn: Connection) -> None:
            if conn.execute(sa.select(t.projects.c.id).where(t.projects.c.name == name)).first():
                raise ConflictError(f"a project named {q(name)} already exists")
            conn.execute(sa.insert(t.projects).values(**project_row(project)))

        run_write(self._engine, write, retry_integrity=False)
        return project

    def get_project(self, project_id: str) -> Project:
        check_lookup_id(project_id, "project")
        with read(self._engine) as conn:
            row = conn.execute(sa.select(t.projects).where(t.projects.c.id == project_id)).first()
        if row is None:
            raise NotFoundError(f"project {q(project_id)} not found")
        return Project(row.id, row.name, row.description, row.created_at)

    def get_project_by_name(self, name: str) -> Project:
        check_text(name, "project name")
        with read(self._engine) as conn:
            row = conn.execute(sa.select(t.projects).where(t.projects.c.name == name)).first()
        if row is None:
            raise NotFoundError(f"project {q(name)} not found; create it or check the name")
        return Project(row.id, row.name, row.description, row.created_at)

    def list_projects(self) -> list[Project]:
        with read(self._engine) as conn:
            rows = conn.execute(sa.select(t.projects).order_by(t.projects.c.name)).all()
        return [Project(r.id, r.name, r.description, r.created_at) for r in rows]

    # -- experiments ------------------------------------------------------------

    def create_experiment(
        self,
        project_id: str,
        name: str,
        *,
        description: str = "",
        tags: Mapping[str, str] | None = None,
        experiment_id: str | None = None,
    ) -> Experiment:
        check_lookup_id(project_id, "project")
        check_name(name, "experiment name")
        check_text(description, "description")
        tag_map = check_tags(tags or {})
        exp_id = new_id() if experiment_id is None else check_id(experiment_id, "experiment id")
        exp = Experiment(
            exp_id, project_id, name, description, FrozenDict(tag_map), created_at=now()
        )

        def write(conn: Connection) -> None:
            if not conn.execute(
                sa.select(t.projects.c.id).where(t.projects.c.id == project_id)
            ).first():
                raise NotFoundError(f"project {q(project_id)} not found")
            clash = conn.execute(
                sa.select(t.experiments.c.id, t.experiments.c.lifecycle).where(
                    t.experiments.c.project_id == project_id, t.experiments.c.name == name
                )
            ).first()
            if clash is not None:
                hint = (
                    " (it is deleted: restore or rename it)" if clash.lifecycle == "deleted" else ""
                )
                raise ConflictError(f"an experiment named {q(name)} already exists{hint}")
            if conn.execute(
                sa.select(t.experiments.c.id).where(t.experiments.c.id == exp_id)
            ).first():
                raise ConflictError(f"an experiment with id {exp_id} already exists")
            conn.execute(
                sa.insert(t.experiments).values(
                    id=exp.id,
                    project_id=project_id,
                    name=name,
                    description=description,
                    lifecycle=exp.lifecycle.value,
                    created_at=exp.created_at,
                )
            )
            if tag_map:
                conn.execute(
                    sa.insert(t.experiment_tags),
                    [{"experiment_id": exp.id, "key": k, "value": v} for k, v in tag_map.items()],
                )

        run_write(self._engine, write, retry_integrity=False)
        return exp

    def _experiment(self, conn: Connection, row: Any) -> Experiment:
        tag_rows = conn.execute(
            sa.select(t.experiment_tags.c.key, t.experiment_tags.c.value).where(
                t.experiment_tags.c.experiment_id == row.id
            )
        ).all()
        return Experiment(
            id=row.id,
            project_id=row.project_id,
            name=row.name,
            description=row.description,
            tags=FrozenDict({r.key: r.value for r in tag_rows}),
            lifecycle=Lifecycle(row.lifecycle),
            created_at=row.created_at,
        )

    def get_experiment(self, experiment_id: str) -> Experiment:
        check_lookup_id(experiment_id, "experiment")
        with read(self._engine) as conn:
            row = conn.execute(
                sa.select(t.experiments).where(t.experiments.c.id == experiment_id)
            ).first()
            if row is None:
                raise NotFoundError(
                    f"experiment {q(experiment_id)} not found; list them with "
                    "'shipyard experiments list'"
                )
            return self._experiment(conn, row)

    def get_experiment_by_name(self, project_id: str, name: str) -> Experiment:
        check_lookup_id(project_id, "project")
        check_text(name, "experiment name")
        with read(self._engine) as conn:
            row = conn.execute(
                sa.select(t.experiments).where(
                    t.experiments.c.project_id == project_id, t.experiments.c.name == name
                )
            ).first()
            if row is None:
                raise NotFoundError(
                    f"experiment {q(name)} not found; list them with 'shipyard experiments list'"
                )
            return self._experiment(conn, row)

    def list_experiments(
        self, project_id: str | None = None, *, include_deleted: bool = False
    ) -> list[Experiment]:
        query = sa.select(t.experiments).order_by(t.experiments.c.created_at, t.experiments.c.id)
        if project_id is not None:
            query = query.where(t.experiments.c.project_id == project_id)
        if not include_deleted:
            query = query.where(t.experiments.c.lifecycle == Lifecycle.ACTIVE.value)
        with read(self._engine) as conn:
            if project_id is not None:
                check_lookup_id(project_id, "project")
                if not conn.execute(
                    sa.select(t.projects.c.id).where(t.projects.c.id == project_id)
                ).first():
                    raise NotFoundError(f"project {q(project_id)} not found")
            return [self._experiment(conn, r) for r in conn.execute(query).all()]

    def update_experiment(
        self,
        experiment_id: str,
        *,
        name: str | None = None,
        description: str | None = None,
        lifecycle: Lifecycle | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> Experiment:
        check_lookup_id(experiment_id, "experiment")
        if name is not None:
            check_name(name, "experiment name")
        tag_map = check_tags(tags or {})
        values: dict[str, Any] = {}
        if name is not None:
            values["name"] = name
        if description is not None:
            values["description"] = check_text(description, "description")
        if lifecycle is not None:
            values["lifecycle"] = check_enum(Lifecycle, lifecycle, "lifecycle").value

        def write(conn: Connection) -> None:
            row = conn.execute(
                sa.select(t.experiments).where(t.experiments.c.id == experiment_id)
            ).first()
            if row is None:
                raise NotFoundError(f"experiment {q(experiment_id)} not found")
            if (
                name is not None
                and name != row.name
                and conn.execute(
                    sa.select(t.experiments.c.id).where(
                        t.experiments.c.project_id == row.project_id, t.experiments.c.name == name
                    )
                ).first()
            ):
                raise ConflictError(f"an experiment named {q(name)} already exists")
            if values:
                conn.execute(
                    sa.update(t.experiments)
                    .where(t.experiments.c.id == experiment_id)
                    .values(**values)
                )
            for k, v in tag_map.items():
                upsert(
                    conn,
                    t.experiment_tags,
                    {"experiment_id": experiment_id, "key": k},
                    {"value": v},
                )

        run_write(self._engine, write, retry_integrity=True)
        return self.get_experiment(experiment_id)

    # -- runs -------------------------------------------------------------------

    def create_run(
        self,
        experiment_id: str,
        *,
        run_id: str | None = None,
        name: str | None = None,
        start_time: float | None = None,
        status: RunStatus = RunStatus.RUNNING,
        user: str = "",
        parent_run_id: str | None = None,
        tags: Mapping[str, str] | None = None,
        code: Mapping[str, Any] | None = None,
        environment: Mapping[str, Any] | None = None,
        process: str | None = None,
    ) -> Run:
        check_lookup_id(experiment_id, "experiment")
        rid = new_id() if run_id is None else check_id(run_id)
        run_name = f"run-{rid[-8:]}" if name is None else check_name(name, "run name")
        tag_map = check_tags(tags or {})
        status = check_enum(RunStatus, status, "status")
        started = now() if start_time is None else check_time(start_time, "start_time")
        if parent_run_id is not None:
            check_id(parent_run_id, "parent run id")
        check_text(user, "user", 256)
        if process is not None:
            check_text(process, "process", 512)
        code_json = to_json(code or {}, "code")
        env_json = to_json(environment or {}, "environment")

        def write(conn: Connection) -> None:
            exp = conn.execute(
                sa.select(t.experiments.c.lifecycle).where(t.experiments.c.id == experiment_id)
            ).first()
            if exp is None:
                raise NotFoundError(f"experiment {q(experiment_id)} not found")
            if exp.lifecycle != Lifecycle.ACTIVE.value:
                raise StateError(
                    f"experiment {experiment_id} is deleted; restore it before adding runs"
                )
            if conn.execute(sa.select(t.runs.c.id).where(t.runs.c.id == rid)).first():
                raise ConflictError(f"a run with id {rid} already exists")
            conn.execute(
                sa.insert(t.runs).values(
                    id=rid,
                    experiment_id=experiment_id,
                    name=run_name,
                    status=status.value,
                    start_time=started,
                    end_time=None,
                    user=user,
                    lifecycle=Lifecycle.ACTIVE.value,
                    parent_run_id=parent_run_id,
                    code=code_json,
                    environment=env_json,
                    process=process,
                    heartbeat_time=started if status is RunStatus.RUNNING else None,
                )
            )
            if tag_map:
                conn.execute(
                    sa.insert(t.tags),
                    [{"run_id": rid, "key": k, "value": v} for k, v in tag_map.items()],
                )

        run_write(self._engine, write, retry_integrity=False)
        return self.get_run(rid)

    def get_run(self, run_id: str) -> Run:
        check_lookup_id(run_id, "run")
        with read(self._engine) as conn:
            runs = load_runs(conn, [run_id])
        if not runs:
            raise NotFoundError(f"run {q(run_id)} not found; list runs with 'shipyard runs list'")
        return runs[0]

    def update_run(
        self,
        run_id: str,
        *,
        status: RunStatus | None = None,
        end_time: float | None = None,
        name: str | None = None,
        lifecycle: Lifecycle | None = None,
        heartbeat_time: float | None = None,
        process: str | None = None,
        code: Mapping[str, Any] | None = None,
        environment: Mapping[str, Any] | None = None,
    ) -> Run:
        check_lookup_id(run_id, "run")
        values: dict[str, Any] = {}
        if status is not None:
            values["status"] = check_enum(RunStatus, status, "status").value
            if values["status"] == RunStatus.RUNNING.value and end_time is None:
                values["end_time"] = None  # resumed: no longer ended
        if end_time is not None:
            values["end_time"] = check_time(end_time, "end_time")
        if name is not None:
            values["name"] = check_name(name, "run name")
        if lifecycle is not None:
            values["lifecycle"] = check_enum(Lifecycle, lifecycle, "lifecycle").value
        if heartbeat_time is not None:
            values["heartbeat_time"] = check_time(heartbeat_time, "heartbeat_time")
        if process is not None:
            values["process"] = check_text(process, "process", 512)
        if code is not None:
            values["code"] = to_json(code, "code")
        if environment is not None:
            values["environment"] = to_json(environment, "environment")

        def write(conn: Connection) -> None:
            result = conn.execute(sa.update(t.runs).where(t.runs.c.id == run_id).values(**values))
            if result.rowcount == 0:
                raise NotFoundError(f"run {q(run_id)} not found")

        if values:
            run_write(self._engine, write)
        return self.get_run(run_id)

    def search_runs(
        self,
        experiment_ids: Sequence[str] | None = None,
        filter: str | None = None,
        order_by: Sequence[str] | None = None,
        max_results: int = 1000,
        page_token: str | None = None,
        *,
        include_deleted: bool = False,
    ) -> Page[Run]:
        from shipyard.store._sql._query import search

        with read(self._engine) as conn:
            ids, token = search(
                conn, experiment_ids, filter, order_by, max_results, page_token, include_deleted
            )
            return Page(tuple(load_runs(conn, ids)), token)
