"""Engines for SQLite and PostgreSQL, write transactions that never surface
"database is locked", and migrations applied once under a lock.

SQLite: WAL (readers never block the writer), ``synchronous=NORMAL`` (durable
at checkpoints, safe against process crashes), a 30 s busy timeout, and write
transactions opened with ``BEGIN IMMEDIATE`` -- a deferred transaction that
upgrades to a writer gets SQLITE_BUSY *without* the busy handler, the classic
cause of MLflow's "database is locked". Lock errors that still escape (a busy
timeout under extreme contention) are retried with backoff.
"""

from __future__ import annotations

import contextlib
import os
import random
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine

from shipyard.errors import ConflictError, InvalidArgumentError, StoreError

HEAD_REVISION = "v0.3.0"
BUSY_TIMEOUT_S = 30.0
RETRY_FOR_S = 120.0
T = TypeVar("T")

_MIGRATIONS = Path(__file__).parent / "migrations"


def make_engine(uri: str) -> Engine:
    """An engine for ``sqlite:///path`` or ``postgresql://...`` (psycopg 3)."""
    if uri.startswith("sqlite:"):
        engine = _sqlite_engine(uri)
    elif uri.startswith(("postgresql:", "postgresql+psycopg:", "postgres:")):
        url = sa.make_url(uri.replace("postgres://", "postgresql://", 1))
        url = url.set(drivername="postgresql+psycopg")
        engine = sa.create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=10)
    else:
        raise InvalidArgumentError(
            f"unsupported store URI {uri!r}: expected sqlite:///PATH, postgresql://..., memory: "
        )
    _ENGINES.add(engine)
    return engine


#: Every engine of this process, so a forked child can give each a pool of its own.
_ENGINES: weakref.WeakSet[Engine] = weakref.WeakSet()
#: How long a fork waits for SQLite transactions of other threads to end.
FORK_WAIT_S = 30.0


class _ForkGate:
    """SQLite connections in use hold it shared; ``fork`` holds it exclusively.

    SQLite keeps its file locks' state in process memory. A child forked while a
    thread was inside a transaction inherits that state and believes the lock is
    held by one of its own connections: its first write then waits on a lock that
    no live process holds (until the busy timeout). So a fork waits until no
    SQLite connection is checked out, and none is checked out until it is done.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._active = 0
        self._forking = False

    def enter(self, *_: object) -> None:
        with self._cond:
            while self._forking:
                self._cond.wait()
            self._active += 1

    def leave(self, *_: object) -> None:
        with self._cond:
            self._active -= 1
            if self._active <= 0:
                self._cond.notify_all()

    def before_fork(self) -> None:
        self._cond.acquire()  # held across the fork; released in the parent
        self._forking = True
        self._cond.wait_for(lambda: self._active <= 0, timeout=FORK_WAIT_S)

    def after_fork_in_parent(self) -> None:
        self._forking = False
        self._cond.notify_all()
        self._cond.release()

    def after_fork_in_child(self) -> None:
        self.__init__()  # type: ignore[misc]  # no thread of the parent exists here


_FORK_GATE = _ForkGate()


def _after_fork_in_child() -> None:
    """A forked child must not share connections with its parent, nor inherit a pool
    whose lock another thread held at the fork: each engine gets a new, empty pool;
    the parent's connections are left to it."""
    _FORK_GATE.after_fork_in_child()
    for engine in list(_ENGINES):
        engine.dispose(close=False)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(
        before=_FORK_GATE.before_fork,
        after_in_parent=_FORK_GATE.after_fork_in_parent,
        after_in_child=_after_fork_in_child,
    )


def _sqlite_engine(uri: str) -> Engine:
    url = sa.make_url(uri)
    database = url.database
    if not database or database == ":memory:":
        raise InvalidArgumentError(
            f"invalid SQLite URI {uri!r}: expected sqlite:///PATH to a file "
            "(use 'memory:' for a throwaway store)"
        )
    path = Path(database).expanduser()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise StoreError(f"cannot create the folder for SQLite store {path}: {e}") from e
    engine = sa.create_engine(
        url.set(drivername="sqlite+pysqlite", database=str(path)),
        connect_args={"timeout": BUSY_TIMEOUT_S, "check_same_thread": False},
        pool_size=4,
        max_overflow=8,
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record):  # type: ignore[no-untyped-def]
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT_S * 1000)}")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    event.listen(engine.pool, "checkout", _FORK_GATE.enter)
    event.listen(engine.pool, "checkin", _FORK_GATE.leave)

    @event.listens_for(engine, "begin")
    def _on_begin(conn):  # type: ignore[no-untyped-def]
        write = conn.get_execution_options().get("shipyard_write", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

    return engine


def is_lock_error(exc: BaseException) -> bool:
    text = str(exc).lower()
    return "database is locked" in text or "database is busy" in text or "deadlock" in text


def run_write(engine: Engine, fn: Callable[[Connection], T], *, retry_integrity: bool = True) -> T:
    """Run ``fn`` in one write transaction, retrying lock contention with backoff
    (and, once, a unique-key race with a concurrent writer)."""
    deadline = time.monotonic() + RETRY_FOR_S
    delay = 0.01
    integrity_retries = 2 if retry_integrity else 0
    while True:
        try:
            with engine.connect() as conn:
                conn.execution_options(shipyard_write=True)
                with conn.begin():
                    return fn(conn)
        except sa.exc.OperationalError as e:
            if not is_lock_error(e) or time.monotonic() > deadline:
                raise StoreError(f"the metadata store failed to write: {e.orig}") from e
        except sa.exc.IntegrityError as e:
            if integrity_retries <= 0:
                raise ConflictError(
                    f"a concurrent writer stored the same thing first: {e.orig}; read it back "
                    "or try again"
                ) from e
            integrity_retries -= 1
        except sa.exc.DBAPIError as e:
            if e.connection_invalidated and time.monotonic() < deadline:
                pass
            else:
                raise StoreError(f"the metadata store failed to write: {e.orig}") from e
        time.sleep(delay * (0.5 + random.random()))
        delay = min(delay * 2, 1.0)


@contextlib.contextmanager
def read(engine: Engine) -> Iterator[Connection]:
    """A read transaction (a consistent snapshot)."""
    try:
        with engine.connect() as conn, conn.begin():
            yield conn
    except sa.exc.DBAPIError as e:
        raise StoreError(f"the metadata store failed to read: {e.orig}") from e


def current_revision(engine: Engine) -> str | None:
    try:
        with engine.connect() as conn:
            row = conn.exec_driver_sql("SELECT version_num FROM alembic_version").first()
            conn.rollback()
    except sa.exc.DBAPIError:
        return None
    return None if row is None else str(row[0])


KNOWN_REVISIONS = ("v0.1.0", "v0.2.0", "v0.3.0")


def migrate(engine: Engine, uri: str) -> None:
    """Bring the schema to head. Cheap when already there (one query, no Alembic
    import); otherwise under a lock, so concurrent first uses do not race."""
    revision = current_revision(engine)
    if revision == HEAD_REVISION:
        return
    if revision is not None and revision not in KNOWN_REVISIONS:
        raise StoreError(
            f"the metadata store at {engine.url.render_as_string(hide_password=True)} has "
            f"schema {revision!r}, newer than this Shipyard knows ({HEAD_REVISION}); "
            "upgrade Shipyard (pip install -U shipyard) to use it"
        )
    if engine.dialect.name == "sqlite":
        from filelock import FileLock

        db = Path(engine.url.database or "")
        with FileLock(str(db) + ".migrate.lock", timeout=300):
            if current_revision(engine) != HEAD_REVISION:
                with engine.connect() as conn:
                    _upgrade(conn)
    else:
        # A transaction-level advisory lock serializes concurrent migrators.
        with engine.connect() as conn, conn.begin():
            conn.exec_driver_sql("SELECT pg_advisory_xact_lock(7305113)")
            version = conn.exec_driver_sql(
                "SELECT to_regclass('alembic_version') IS NOT NULL"
            ).scalar()
            done = False
            if version:
                row = conn.exec_driver_sql("SELECT version_num FROM alembic_version").first()
                done = row is not None and row[0] == HEAD_REVISION
            if not done:
                _upgrade(conn, in_transaction=True)


def _upgrade(conn: Connection, in_transaction: bool = False) -> None:
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(_MIGRATIONS))
    cfg.attributes["connection"] = conn
    try:
        command.upgrade(cfg, "head")
        if not in_transaction:
            conn.commit()
    except sa.exc.DBAPIError as e:
        raise StoreError(f"could not migrate the metadata store schema: {e.orig}") from e
