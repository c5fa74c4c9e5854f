"""A process forked while another thread is inside a SQLite transaction can still write.

SQLite keeps its lock state in process memory, so a child forked mid-transaction
would believe one of its own connections holds the write lock and wait on it until
the busy timeout. The engine's fork gate makes the fork wait for the transaction.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from shipyard.store import open_store
from shipyard.store._sql._engine import run_write

pytestmark = [
    pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork"),
    pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning"),
]


def test_a_child_forked_during_a_write_transaction_can_write(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'meta.db'}")
    store.create_project("before")
    inside = threading.Event()

    def slow_write() -> None:
        def fn(conn: object) -> None:
            inside.set()
            time.sleep(0.5)  # the fork is asked for now, mid-transaction

        run_write(store._engine, fn)  # type: ignore[attr-defined]

    writer = threading.Thread(target=slow_write)
    writer.start()
    assert inside.wait(10)
    pid = os.fork()
    if pid == 0:  # the child: one write, then report through the exit status
        code = 1
        try:
            store.create_project("from-the-child")
            code = 0
        finally:
            os._exit(code)
    writer.join()
    deadline = time.monotonic() + 20
    status = None
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        time.sleep(0.05)
    else:
        os.kill(pid, 9)
        os.waitpid(pid, 0)
        pytest.fail(
            "the forked child could not write within 20 s (a lock inherited mid-transaction)"
        )
    assert os.waitstatus_to_exitcode(status) == 0
    assert {p.name for p in store.list_projects()} >= {"before", "from-the-child"}
    store.close()
