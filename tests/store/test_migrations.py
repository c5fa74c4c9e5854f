"""Alembic migrations: they build exactly the schema the code declares, once."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from shipyard.store._sql._engine import HEAD_REVISION, current_revision, make_engine, migrate
from shipyard.store._sql._schema import metadata


def _diff(engine: sa.Engine) -> list[object]:
    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        return list(compare_metadata(ctx, metadata))


def test_sqlite_migrations_match_declared_schema(tmp_path: Path) -> None:
    """Upgrading an empty SQLite database gives exactly the tables in _schema.py."""
    uri = f"sqlite:///{tmp_path / 'm.db'}"
    engine = make_engine(uri)
    migrate(engine, uri)
    assert current_revision(engine) == HEAD_REVISION
    assert _diff(engine) == []
    with engine.connect() as conn:
        mode = conn.exec_driver_sql("PRAGMA journal_mode").scalar()
    assert mode == "wal"


def test_head_revision_constant_matches_alembic() -> None:
    """HEAD_REVISION (checked without importing Alembic) is the scripts' head."""
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    from shipyard.store._sql import _engine

    cfg = Config()
    cfg.set_main_option("script_location", str(_engine._MIGRATIONS))
    assert ScriptDirectory.from_config(cfg).get_current_head() == HEAD_REVISION


def test_postgres_migrations_match_declared_schema(postgres_url: str) -> None:
    """On PostgreSQL the migrated schema also matches _schema.py."""
    engine = make_engine(postgres_url)
    migrate(engine, postgres_url)
    assert current_revision(engine) == HEAD_REVISION
    assert _diff(engine) == []
    engine.dispose()


def _open(uri: str) -> str:
    from shipyard.store import open_store

    store = open_store(uri)
    return store.get_or_create_project("race").id


def test_concurrent_first_use_migrates_once(tmp_path: Path) -> None:
    """Eight processes opening a new SQLite store at once all succeed on one schema."""
    uri = f"sqlite:///{tmp_path / 'race.db'}"
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(8) as pool:
        ids = pool.map(_open, [uri] * 8)
    assert len(set(ids)) == 1
    assert current_revision(make_engine(uri)) == HEAD_REVISION
