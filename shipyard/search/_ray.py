"""Trials as processes inside Ray tasks, on any node of a Ray cluster.

The searcher and the driver stay in this process; each trial segment is one
Ray task (``num_cpus=launch.cpus, num_gpus=launch.gpus``) that starts the
trial's ``argv`` as a child process in its own process group, waits for it and
returns ``(returncode, tail of its output)``. Ray places the task and sets
``CUDA_VISIBLE_DEVICES`` for the GPUs it grants; the child inherits it (a
trial asking for no GPU gets an empty ``CUDA_VISIBLE_DEVICES``, as with
:class:`~shipyard.search._local.LocalExecutor`).

Stopping a trial:

* :meth:`RayExecutor.terminate` calls ``ray.cancel(ref)``. Ray interrupts the
  task's main thread (a simulated SIGINT); the task forwards it as SIGTERM to
  the trial's process group and keeps waiting, so the trial checkpoints, exits
  and its real exit status and output come back.
* :meth:`RayExecutor.kill` calls ``ray.cancel(ref, force=True)``: Ray kills the
  worker, which kills its child process, the trial, on the way out. The exit
  is reported as ``-SIGKILL``.
* A worker that dies outright (``kill -9``, the OOM killer) runs no cleanup;
  on Linux the trial process is tied to it with ``PR_SET_PDEATHSIG`` and dies
  with it. Processes the trial itself started are its own to clean up (Ray's
  ``kill_child_processes_on_worker_exit_with_raylet_subreaper`` system config
  reaps whole process trees, for clusters that want it).

Logs: the task appends the child's output to ``launch.log_path`` *on the node
that runs it*. On one machine that is the driver's file system; on a cluster
it is the worker's (or a shared file system, if the path is on one). Either
way the last 4 KiB of the segment's output come back in :class:`Exit`.

Ray is imported only when the executor is first used; a missing Ray raises
:class:`~shipyard.errors.InvalidArgumentError` naming ``pip install
'shipyard[ray]'``. The workers import this module to run the task, so
Shipyard must be installed on every node (trials need it anyway).
"""

from __future__ import annotations

import contextlib
import math
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

from shipyard.errors import InvalidArgumentError, StateError
from shipyard.search._executor import TAIL_BYTES, Executor, Exit, Launch, log_tail

if TYPE_CHECKING:
    from types import ModuleType

__all__ = ["RayExecutor"]

_INSTALL = "pip install 'shipyard[ray]'"
#: How often the task looks at its child (and so how fast a cancel is forwarded).
_POLL_S = 0.1
#: How long ``close`` waits for the cancelled tasks to end.
_CLOSE_TIMEOUT_S = 30.0
#: The exit status reported for a task that failed without a trial exit status.
_FAILED = -1


def _import_ray() -> ModuleType:
    try:
        import ray
    except ImportError as e:
        raise InvalidArgumentError(
            f"the Ray executor needs Ray, which is not installed ({e}): {_INSTALL}"
        ) from e
    return ray


# -- the task (runs in a Ray worker) ----------------------------------------------


class _Forwarder:
    """Turns Ray's cancel into SIGTERM for the trial's process group.

    ``ray.cancel(ref)`` on a running task runs the SIGINT handler of the
    worker's main thread (the default one raises ``KeyboardInterrupt``).
    Installed as that handler, this forwards the cancel instead, so the task is
    never interrupted in the middle of its own code; a cancel that comes before
    the child exists is remembered and sent after.
    """

    def __init__(self) -> None:
        self.proc: subprocess.Popen[bytes] | None = None
        self.pending = False

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        self.forward()

    def attach(self, proc: subprocess.Popen[bytes]) -> None:
        self.proc = proc
        if self.pending:
            self.forward()

    def forward(self) -> None:
        if self.proc is None:
            self.pending = True
        elif self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, signal.SIGTERM)

    @contextlib.contextmanager
    def installed(self) -> Iterator[None]:
        try:
            previous = signal.signal(signal.SIGINT, self)
        except ValueError:  # not the main thread: KeyboardInterrupt is caught instead
            yield
            return
        try:
            yield
        finally:
            signal.signal(signal.SIGINT, previous)

    def wait(self) -> int:
        """The child's exit status, polling so a cancel is handled within _POLL_S."""
        assert self.proc is not None
        while True:
            try:
                while (code := self.proc.poll()) is None:
                    time.sleep(_POLL_S)
                return code
            except KeyboardInterrupt:  # the handler could not be installed
                self.forward()


#: Runs first in the trial's process, then execs the trial. On Linux it asks the kernel
#: to SIGKILL the trial when the Ray worker dies (PR_SET_PDEATHSIG): a worker killed
#: outright (OOM killer, ``kill -9``, a lost raylet) runs no cleanup of its own.
_FATE_SHARING = """\
import ctypes, os, signal, sys
try:
    ctypes.CDLL(None).prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG
except (OSError, AttributeError):
    pass
if os.getppid() != int(sys.argv[1]):  # the worker died before prctl
    os.kill(os.getpid(), signal.SIGKILL)
try:
    os.execvp(sys.argv[2], sys.argv[2:])
except OSError as e:
    print(f"cannot start trial process {sys.argv[2:]!r}: {e}", file=sys.stderr)
    sys.exit(127)
"""


def _fate_shared(argv: list[str]) -> list[str]:
    if not sys.platform.startswith("linux"):
        return argv
    return [sys.executable, "-I", "-S", "-c", _FATE_SHARING, str(os.getpid()), *argv]


def _child_env(env: dict[str, str], gpus: int) -> dict[str, str]:
    full = dict(os.environ)
    full.update(env)
    # Ray set CUDA_VISIBLE_DEVICES in this worker to the GPUs it granted the task.
    visible = os.environ.get("CUDA_VISIBLE_DEVICES") if gpus > 0 else ""
    if visible is not None:
        full["CUDA_VISIBLE_DEVICES"] = visible
    return full


def _run_trial(
    argv: list[str], cwd: str, env: dict[str, str], gpus: int, log_path: str | None
) -> tuple[int, str]:
    """Body of the Ray task: run the trial process, return (exit status, output tail)."""
    if log_path is not None:
        path = Path(log_path)
        path.parent.mkdir(parents=True, exist_ok=True)
    else:
        fd, name = tempfile.mkstemp(prefix="shipyard-trial-", suffix=".log")
        os.close(fd)
        path = Path(name)
    try:
        forwarder = _Forwarder()
        with forwarder.installed(), open(path, "ab") as out:
            start = out.tell()
            try:
                proc = subprocess.Popen(
                    _fate_shared(argv),
                    cwd=cwd,
                    env=_child_env(env, gpus),
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            except OSError as e:
                out.write(f"cannot start trial process {argv!r} in {cwd!r}: {e}\n".encode())
                out.flush()
                return _FAILED, log_tail(path, start)
            forwarder.attach(proc)
            code = forwarder.wait()
        return code, log_tail(path, start)
    finally:
        if log_path is None:
            path.unlink(missing_ok=True)


# -- the driver side ---------------------------------------------------------------


@dataclass
class _Flight:
    launch: Launch
    ref: Any  # ray.ObjectRef[tuple[int, str]]
    #: The signal this executor asked for (SIGTERM by terminate, SIGKILL by kill).
    stop: signal.Signals | None = None


def _clip(text: str) -> str:
    return text[-TAIL_BYTES:]


def _sigterm_handler() -> Any:
    """This process's SIGTERM handler (None off the main thread, where it cannot change)."""
    if threading.current_thread() is not threading.main_thread():
        return None
    return signal.getsignal(signal.SIGTERM)


def _restore_sigterm(handler: Any) -> None:
    if handler is None or threading.current_thread() is not threading.main_thread():
        return
    with contextlib.suppress(ValueError, OSError, TypeError):
        signal.signal(signal.SIGTERM, handler)


class RayExecutor(Executor):
    """Runs each trial process inside a Ray task, wherever Ray places it.

    Connects on first use: when Ray is not initialised in this process yet,
    ``ray.init(address=address, ...)`` starts a local instance (``address=None``)
    or joins a running cluster (``"auto"`` or ``"ray://..."``/``"host:port"``),
    without the dashboard and without forwarding worker output (trial output goes
    to each trial's log); ``close`` then shuts that connection down. When Ray is
    already initialised, it is used as it is and left running.

    Not thread-safe: one driver thread calls it.

    Args:
        address: the Ray cluster to join; None starts a local instance.
        max_concurrent: trials at once (default: as many as the cluster's free
            CPUs and GPUs allow).
        init_kwargs: more keyword arguments for ``ray.init`` (``num_cpus``,
            ``runtime_env``, ``namespace``...); they override the defaults above.

    Raises:
        InvalidArgumentError: ``max_concurrent`` is below 1.
    """

    def __init__(
        self,
        address: str | None = None,
        *,
        max_concurrent: int | None = None,
        init_kwargs: dict[str, Any] | None = None,
    ) -> None:
        if max_concurrent is not None and max_concurrent < 1:
            raise InvalidArgumentError(
                f"max_concurrent: expected an integer >= 1, got {max_concurrent!r}"
            )
        self.address = address
        self.max_concurrent = max_concurrent
        self.init_kwargs = dict(init_kwargs or {})
        self._ray: ModuleType | None = None
        self._task: Any = None  # the ray.remote wrapper of _run_trial
        self._owns_ray = False
        self._flights: dict[int, _Flight] = {}

    def _connect(self) -> ModuleType:
        """Ray, initialised (by this executor if nobody did)."""
        if self._ray is not None:
            return self._ray
        ray = _import_ray()
        if not ray.is_initialized():
            kwargs: dict[str, Any] = {
                "ignore_reinit_error": True,
                "include_dashboard": False,
                "log_to_driver": False,
                **self.init_kwargs,
            }
            # ray.init installs a SIGTERM handler in this (the driver's) process and
            # leaves it after shutdown: keep the process's own handling of SIGTERM
            previous = _sigterm_handler()
            try:
                ray.init(address=self.address, **kwargs)
            except ConnectionError as e:
                raise StateError(
                    f"cannot connect to the Ray cluster at {self.address!r}: {e}; start it "
                    "(ray start --head) or pass address=None for a local instance"
                ) from e
            finally:
                _restore_sigterm(previous)
            self._owns_ray = True
        # Retrying would rerun a trial segment behind the driver's back: a lost worker
        # is reported as a failed exit and the driver decides.
        self._task = ray.remote(max_retries=0)(_run_trial)
        self._ray = ray
        return ray

    # -- slots --------------------------------------------------------------------

    def free_slots(self, cpus: float, gpus: int) -> int:
        """How many more trials needing ``cpus`` and ``gpus`` could start now.

        Per resource, the free amount is the smaller of the cluster's total less
        this executor's trials (Ray's availability lags behind a task just
        submitted) and Ray's current availability (other jobs use the cluster too).
        """
        ray = self._connect()
        total = ray.cluster_resources()
        available = ray.available_resources()
        flights = list(self._flights.values())

        def free(key: str, ours: float) -> float:
            return min(float(total.get(key, 0.0)) - ours, float(available.get(key, 0.0)))

        # a small epsilon: 2.0 - 3 * 0.2 CPUs must still hold 7 trials of 0.2
        n = 1 << 30
        if cpus > 0:
            n = math.floor(free("CPU", sum(f.launch.cpus for f in flights)) / cpus + 1e-9)
        if gpus > 0:
            n = min(n, math.floor(free("GPU", sum(f.launch.gpus for f in flights)) / gpus + 1e-9))
        if self.max_concurrent is not None:
            n = min(n, self.max_concurrent - len(flights))
        return max(0, n)

    def check_fits(self, cpus: float, gpus: int) -> None:
        """Refuse a trial shape that no alive node of the cluster could run.

        Raises:
            InvalidArgumentError: no node has ``cpus`` CPUs and ``gpus`` GPUs.
        """
        ray = self._connect()
        nodes = [n.get("Resources", {}) for n in ray.nodes() if n.get("Alive")]
        if any(r.get("CPU", 0.0) >= cpus and r.get("GPU", 0.0) >= gpus for r in nodes):
            return
        biggest = ", ".join(
            sorted({f"{r.get('CPU', 0.0):g} CPUs/{r.get('GPU', 0.0):g} GPUs" for r in nodes})
        )
        raise InvalidArgumentError(
            f"resources: a trial asks for {cpus:g} CPUs and {gpus} GPUs, no node of the Ray "
            f"cluster has that much (nodes: {biggest or 'none'}); lower it or add a node"
        )

    # -- trials -------------------------------------------------------------------

    def start(self, launch: Launch) -> None:
        """Submit the trial's task; Ray runs it when a node has its resources.

        Raises:
            InvalidArgumentError: the trial id is already running here.
        """
        if launch.trial_id in self._flights:
            raise InvalidArgumentError(f"trial {launch.trial_id} is already running")
        self._connect()
        ref = self._task.options(
            num_cpus=launch.cpus,
            num_gpus=launch.gpus,
            name=f"shipyard-trial-{launch.trial_id}",
        ).remote(list(launch.argv), launch.cwd, dict(launch.env), launch.gpus, launch.log_path)
        self._flights[launch.trial_id] = _Flight(launch, ref)

    def wait(self, timeout: float) -> list[Exit]:
        """Trials that ended since the last call, waiting up to ``timeout`` seconds
        for one. A task that failed (worker or node lost, out of memory) is an
        :class:`Exit` with status -1 and Ray's error as ``log_tail``; a killed
        one has status ``-SIGKILL``."""
        if not self._flights:
            time.sleep(max(0.0, timeout))  # like a wait on nothing: the caller's loop paces
            return []
        ray = self._connect()
        by_ref = {f.ref: trial_id for trial_id, f in self._flights.items()}
        refs = list(by_ref)
        ready, _ = ray.wait(refs, num_returns=1, timeout=max(0.0, timeout))
        if not ready:
            return []
        ready, _ = ray.wait(refs, num_returns=len(refs), timeout=0)
        return [self._exit(self._flights.pop(by_ref[ref])) for ref in ready]

    def _exit(self, flight: _Flight) -> Exit:
        ray = self._ray
        assert ray is not None
        trial_id = flight.launch.trial_id
        try:
            code, tail = ray.get(flight.ref)
            return Exit(trial_id, int(code), str(tail))
        except Exception as e:  # any failure of the task is the trial's failure
            failure = e
        error = f"{type(failure).__name__}: {failure}".strip()
        if flight.stop is signal.SIGKILL:
            return Exit(
                trial_id, -signal.SIGKILL, _clip(f"killed (ray.cancel force=True)\n{error}")
            )
        cancelled = isinstance(failure, ray.exceptions.TaskCancelledError)
        if flight.stop is signal.SIGTERM and cancelled:
            # cancelled before it started, or interrupted outside the child's lifetime
            return Exit(trial_id, -signal.SIGTERM, _clip(f"terminated by ray.cancel\n{error}"))
        return Exit(trial_id, _FAILED, _clip(error))

    def running(self) -> list[int]:
        return sorted(self._flights)

    def terminate(self, trial_id: int) -> None:
        """Send SIGTERM to the trial's process group (through ``ray.cancel``); a
        trial still waiting for resources is dropped. Unknown ids are ignored."""
        flight = self._flights.get(trial_id)
        if flight is None or flight.stop is signal.SIGKILL or self._ray is None:
            return
        flight.stop = signal.SIGTERM
        self._ray.cancel(flight.ref, force=False)

    def kill(self, trial_id: int) -> None:
        """Kill the trial's task and process at once (``ray.cancel(force=True)``).
        Unknown ids are ignored."""
        flight = self._flights.get(trial_id)
        if flight is None or self._ray is None:
            return
        flight.stop = signal.SIGKILL
        self._ray.cancel(flight.ref, force=True)

    def close(self) -> None:
        """Kill the trials still running, wait for their tasks to end, and shut Ray
        down if this executor started it. Idempotent."""
        ray, self._ray = self._ray, None
        flights, self._flights = list(self._flights.values()), {}
        if ray is None:
            return
        if ray.is_initialized() and flights:
            for flight in flights:
                with contextlib.suppress(Exception):  # already ended, or Ray went away
                    ray.cancel(flight.ref, force=True)
            with contextlib.suppress(Exception):
                refs = [f.ref for f in flights]
                ray.wait(refs, num_returns=len(refs), timeout=_CLOSE_TIMEOUT_S)
        if self._owns_ray:
            ray.shutdown()
            self._owns_ray = False
        self._task = None
