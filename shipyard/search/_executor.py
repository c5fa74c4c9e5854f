"""Executors run trial processes; the driver decides what to run.

A trial is always a separate process running ``argv`` with ``env`` added to
the inherited environment (``SHIPYARD_RUN_ID``, ``SHIPYARD_HPARAMS``,
``SHIPYARD_PAUSE_AFTER``, the tracking URI...). Local processes
(``_local.py``) or Ray tasks (``_ray.py``) only differ in where that process
runs and how slots are counted.
"""

from __future__ import annotations

import abc
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = ["TAIL_BYTES", "Executor", "Exit", "Launch", "log_tail"]

#: How much of a trial's output comes back in :class:`Exit`.
TAIL_BYTES = 4096


def log_tail(path: str | os.PathLike[str] | None, start: int = 0) -> str:
    """The last :data:`TAIL_BYTES` of a trial's log written after offset ``start``
    (where this segment began: the log is appended to across segments), as text;
    '' when there is no log."""
    if path is None:
        return ""
    try:
        with open(Path(path), "rb") as f:
            end = f.seek(0, os.SEEK_END)
            f.seek(max(start, end - TAIL_BYTES))
            return f.read().decode("utf-8", "replace")
    except OSError:
        return ""


@dataclass(frozen=True)
class Launch:
    """One trial segment to start: ``argv`` in ``cwd`` with ``env`` added."""

    trial_id: int
    run_id: str
    argv: Sequence[str]
    env: Mapping[str, str]
    cwd: str
    cpus: float = 1.0
    gpus: int = 0
    #: Where the process's stdout and stderr go (appended; a local path).
    log_path: str | None = None


@dataclass(frozen=True)
class Exit:
    """A trial process that ended: its exit status and the tail of its output."""

    trial_id: int
    returncode: int
    log_tail: str = ""


class Executor(abc.ABC):
    """Runs trial processes in slots."""

    @abc.abstractmethod
    def free_slots(self, cpus: float, gpus: int) -> int:
        """How many more trials needing ``cpus`` and ``gpus`` could start now."""

    @abc.abstractmethod
    def start(self, launch: Launch) -> None:
        """Start a trial process (non-blocking)."""

    @abc.abstractmethod
    def wait(self, timeout: float) -> list[Exit]:
        """Trials that ended since the last call; waits up to ``timeout``
        seconds for at least one (returns ``[]`` on timeout)."""

    @abc.abstractmethod
    def running(self) -> list[int]:
        """Trial ids whose process has not been reported by ``wait`` yet."""

    @abc.abstractmethod
    def terminate(self, trial_id: int) -> None:
        """Ask a trial to stop now (SIGTERM: it checkpoints and exits, resumable);
        ``wait`` reports it when it has ended."""

    @abc.abstractmethod
    def kill(self, trial_id: int) -> None:
        """End a trial at once (SIGKILL)."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release what the executor holds; running trials are killed."""
