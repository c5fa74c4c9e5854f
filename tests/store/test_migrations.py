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


def test_upgrade_from_v0_1_0_keeps_data(tmp_path: Path) -> None:
    """A database made by 0.1.0 upgrades to head on open, with its runs and metrics intact."""
    import shutil

    from shipyard.store import open_store

    db = tmp_path / "old.db"
    shutil.copy(Path(__file__).with_name("assets") / "v0.1.0.db", db)
    store = open_store(f"sqlite:///{db}")
    assert current_revision(make_engine(f"sqlite:///{db}")) == HEAD_REVISION
    run = store.get_run("0" * 31 + "3")
    assert run.name == "legacy"
    assert run.params == {"lr": 0.1}
    assert run.code == {"git_commit": "abc"}
    history = store.get_metric_history(run.id, "loss")
    assert history.steps.tolist() == list(range(5000))
    assert run.summaries["loss"].min == 1.0 / 5000
    project = store.get_project_by_name("default")
    ds = store.create_dataset(project.id, "new-after-upgrade")
    assert store.create_dataset_version(ds.id, "ab" * 32, num_files=1, size=1).version == 1
