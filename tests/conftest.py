"""Fixtures shared by the whole test suite: a fresh SHIPYARD_HOME, and external services.

A test that needs a service (PostgreSQL today) skips when the service is not
reachable, so ``pytest`` works on a laptop with nothing installed. CI sets
``SHIPYARD_REQUIRE_SERVICES=1`` and then an unreachable service fails those
tests instead, so they cannot skip unseen.

PostgreSQL: ``SHIPYARD_TEST_POSTGRES`` (default
``postgresql://postgres@127.0.0.1:5432/postgres``) names a server and a
database to connect to for administration. Each test session (each xdist
worker) creates its own database there and drops it at the end;
``postgres_url`` resets it between tests.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NoReturn

import pytest

POSTGRES_ADMIN_URL = os.environ.get(
    "SHIPYARD_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres"
)


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """An empty SHIPYARD_HOME with the embedded SQLite store; the fluent tracking state
    (active runs, tracking URI, experiment) reset around the test."""
    from shipyard.tracking import _fluent

    monkeypatch.setenv("SHIPYARD_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("SHIPYARD_TRACKING_URI", raising=False)
    monkeypatch.delenv("SHIPYARD_BLOB_URI", raising=False)
    _fluent.set_tracking_uri(None)
    yield tmp_path / "home"
    while _fluent._stack:
        _fluent.end_run()
    _fluent.set_tracking_uri(None)
    _fluent._experiment = None


_SCRIPT = Path(sys.executable).with_name("shipyard")
#: The installed console script, else the module (same code path after start-up).
SHIPYARD = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "shipyard.cli"]
Cli = Callable[..., "subprocess.CompletedProcess[str]"]


@pytest.fixture
def shipyard_cli(home: Path) -> Cli:
    """Run the real ``shipyard`` command, in its own process, on ``home``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHIPYARD_")}
    env.update(SHIPYARD_HOME=str(home), COLUMNS="200", NO_COLOR="1")

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*SHIPYARD, *args], env=env, capture_output=True, text=True, timeout=300, check=False
        )

    return run


def require_service(name: str, problem: str) -> NoReturn:
    """Stop the current test because service ``name`` is unavailable: skip it, or fail
    it when ``SHIPYARD_REQUIRE_SERVICES=1``."""
    message = f"{name} is not available: {problem}"
    if os.environ.get("SHIPYARD_REQUIRE_SERVICES") == "1":
        pytest.fail(
            f"{message}\nSHIPYARD_REQUIRE_SERVICES=1 says service-backed tests must run: "
            f"start {name}, or unset the variable to skip them.",
            pytrace=False,
        )
    pytest.skip(message)


def _with_database(url: str, database: str) -> str:
    base, _, _ = url.rpartition("/")
    return f"{base}/{database}"


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[str]:
    """URL of a fresh PostgreSQL database for this test session, dropped afterwards."""
    import psycopg

    try:
        admin = psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True, connect_timeout=5)
    except psycopg.Error as e:
        require_service("PostgreSQL", f"cannot connect to {POSTGRES_ADMIN_URL}: {e}".strip())
    name = f"shipyard_test_{uuid.uuid4().hex[:12]}"
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield _with_database(POSTGRES_ADMIN_URL, name)
        finally:
            # FORCE ends the connections that pooled engines still hold (PostgreSQL 13+).
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def postgres_url(postgres_database: str) -> str:
    """The session's PostgreSQL database, migrated and with every table emptied.

    TRUNCATE of all tables is much faster than a new database per test.
    """
    import psycopg

    from shipyard.store import open_store
    from shipyard.store._sql._schema import metadata

    open_store(postgres_database).close()  # migrates on first use
    tables = ", ".join(f'"{t.name}"' for t in metadata.sorted_tables)
    with psycopg.connect(postgres_database, autocommit=True) as conn:
        conn.execute("SET lock_timeout = '10s'")
        conn.execute(f"TRUNCATE {tables} RESTART IDENTITY CASCADE")
    return postgres_database


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """A moto S3 server on 127.0.0.1 for the test session."""
    try:
        import s3fs  # noqa: F401
        from moto.server import ThreadedMotoServer
    except ImportError as e:
        require_service("S3 (moto server)", f"{e}; pip install 'moto[server]' s3fs")
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one log line per request
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    try:
        server.start()
    except OSError as e:
        require_service("S3 (moto server)", f"cannot start it: {e}")
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def s3_storage_options(s3_endpoint: str) -> dict[str, Any]:
    """fsspec storage options for the moto S3 server (it accepts any credentials)."""
    return {"client_kwargs": {"endpoint_url": s3_endpoint}, "key": "x", "secret": "y"}
