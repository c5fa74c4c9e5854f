"""Is the process that owns a running run still alive?

A run records ``host/pid/start-time`` of its process and a heartbeat. When a
RUNNING run is read, it is shown as KILLED if its process is gone (same host:
the pid is dead or reused) or its heartbeat is older than the timeout (any
host). This is how a run killed with SIGKILL stops pretending to run.
"""

from __future__ import annotations

import os
import socket
from functools import cache


@cache
def _host() -> str:
    return socket.gethostname()


def _start_time(pid: int) -> float | None:
    """Start time of a live process; None if it is gone or a zombie."""
    import psutil

    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return None
        return float(proc.create_time())
    except (psutil.NoSuchProcess, psutil.ZombieProcess):
        return None
    except Exception:  # access denied and the like: alive, as far as we can tell
        return -1.0


def process_id() -> str:
    """``host/pid/start-time`` of this process."""
    pid = os.getpid()
    return f"{_host()}/{pid}/{_start_time(pid) or 0:.2f}"


def is_dead(process: str | None) -> bool:
    """True when ``process`` names a process on this host that no longer runs."""
    if not process:
        return False
    host, _, rest = process.partition("/")
    pid_text, _, start_text = rest.partition("/")
    if host != _host():
        return False
    try:
        pid = int(pid_text)
        start = float(start_text)
    except ValueError:
        return False
    actual = _start_time(pid)
    if actual is None:
        return True
    return start > 0 and actual >= 0 and abs(actual - start) > 1.0
