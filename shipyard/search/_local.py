"""Trials as processes on this machine, in CPU and GPU slots.

Each trial is a process group of its own (``start_new_session``), so a trial
that runs ``torchrun`` children is stopped as a whole. A waiter thread per
process puts its exit on a queue; :meth:`LocalExecutor.wait` blocks on that
queue, so an ended trial is seen at once without polling.

GPUs: a trial asking for ``gpus: n`` gets ``n`` devices of its own through
``CUDA_VISIBLE_DEVICES``; a trial asking for none gets an empty
``CUDA_VISIBLE_DEVICES``, so it cannot take memory on a GPU another trial uses.
"""

from __future__ import annotations

import contextlib
import os
import queue
import shutil
import signal
import subprocess
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from shipyard.errors import InvalidArgumentError
from shipyard.search._executor import Executor, Exit, Launch, log_tail

__all__ = ["LocalExecutor", "detect_gpus"]


def detect_gpus() -> list[str]:
    """The GPU ids trials may use: ``CUDA_VISIBLE_DEVICES`` when set, else the
    devices ``nvidia-smi -L`` lists (none without an NVIDIA driver). Torch is not
    imported: the driver stays light."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return [d.strip() for d in visible.split(",") if d.strip() and d.strip() != "-1"]
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return []
    try:
        out = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return []
    return [str(i) for i, line in enumerate(out.stdout.splitlines()) if line.startswith("GPU ")]


@dataclass
class _Proc:
    launch: Launch
    popen: subprocess.Popen[bytes]
    gpus: list[str] = field(default_factory=list)
    log: Path | None = None
    #: The log's size when this segment started (the tail is this segment's).
    log_start: int = 0


class LocalExecutor(Executor):
    """Runs up to ``max_concurrent`` trial processes here.

    Args:
        max_concurrent: trials at once (default: one per CPU slot).
        cpus: CPU slots (default ``os.cpu_count()``); a trial takes ``launch.cpus``.
        gpus: GPU ids to hand out (default :func:`detect_gpus`).
    """

    def __init__(
        self,
        max_concurrent: int | None = None,
        *,
        cpus: float | None = None,
        gpus: Sequence[str] | None = None,
    ) -> None:
        self.cpus = float(cpus if cpus is not None else (os.cpu_count() or 1))
        if self.cpus <= 0:
            raise InvalidArgumentError(f"cpus: expected a number > 0, got {cpus!r}")
        if max_concurrent is not None and max_concurrent < 1:
            raise InvalidArgumentError(
                f"max_concurrent: expected an integer >= 1, got {max_concurrent!r}"
            )
        self.max_concurrent = max_concurrent
        self.gpus = list(gpus) if gpus is not None else detect_gpus()
        self._procs: dict[int, _Proc] = {}
        self._exits: queue.Queue[Exit] = queue.Queue()
        self._lock = threading.Lock()

    # -- slots --------------------------------------------------------------------

    def _used(self) -> tuple[float, set[str]]:
        cpus = sum(p.launch.cpus for p in self._procs.values())
        gpus = {g for p in self._procs.values() for g in p.gpus}
        return cpus, gpus

    def free_slots(self, cpus: float, gpus: int) -> int:
        with self._lock:
            used_cpus, used_gpus = self._used()
            running = len(self._procs)
        n = int((self.cpus - used_cpus) // cpus) if cpus > 0 else 1 << 30
        if gpus > 0:
            n = min(n, (len(self.gpus) - len(used_gpus)) // gpus)
        if self.max_concurrent is not None:
            n = min(n, self.max_concurrent - running)
        return max(0, n)

    def check_fits(self, cpus: float, gpus: int) -> None:
        """Refuse a trial shape that could never start here."""
        if cpus > self.cpus:
            raise InvalidArgumentError(
                f"resources.cpus: a trial asks for {cpus:g} CPUs, this machine has "
                f"{self.cpus:g}; lower it"
            )
        if gpus > len(self.gpus):
            raise InvalidArgumentError(
                f"resources.gpus: a trial asks for {gpus} GPUs, {len(self.gpus)} are visible "
                "here (CUDA_VISIBLE_DEVICES / nvidia-smi); lower it or run where GPUs are"
            )

    # -- processes ----------------------------------------------------------------

    def start(self, launch: Launch) -> None:
        with self._lock:
            if launch.trial_id in self._procs:
                raise InvalidArgumentError(f"trial {launch.trial_id} is already running")
            _, used = self._used()
            free = [g for g in self.gpus if g not in used]
            if launch.gpus > len(free):
                raise InvalidArgumentError(
                    f"trial {launch.trial_id} needs {launch.gpus} GPUs, {len(free)} are free"
                )
            mine = free[: launch.gpus]
            env = dict(os.environ)
            env.update(launch.env)
            env["CUDA_VISIBLE_DEVICES"] = ",".join(mine)
            log = Path(launch.log_path) if launch.log_path else None
            out: int | object = subprocess.DEVNULL
            handle = None
            log_start = 0
            if log is not None:
                log.parent.mkdir(parents=True, exist_ok=True)
                handle = open(log, "ab")  # noqa: SIM115 - the child owns it; closed below
                log_start = handle.seek(0, os.SEEK_END)
                out = handle
            try:
                popen = subprocess.Popen(
                    list(launch.argv),
                    cwd=launch.cwd,
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=out,  # type: ignore[arg-type]
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            finally:
                if handle is not None:
                    handle.close()
            proc = _Proc(launch, popen, mine, log, log_start)
            self._procs[launch.trial_id] = proc
        threading.Thread(
            target=self._reap, args=(proc,), name=f"shipyard-trial-{launch.trial_id}", daemon=True
        ).start()

    def _reap(self, proc: _Proc) -> None:
        code = proc.popen.wait()
        with self._lock:
            self._procs.pop(proc.launch.trial_id, None)
        self._exits.put(Exit(proc.launch.trial_id, code, log_tail(proc.log, proc.log_start)))

    def wait(self, timeout: float) -> list[Exit]:
        done: list[Exit] = []
        try:
            done.append(self._exits.get(timeout=max(0.0, timeout)))
        except queue.Empty:
            return done
        while True:
            try:
                done.append(self._exits.get_nowait())
            except queue.Empty:
                return done

    def running(self) -> list[int]:
        with self._lock:
            return sorted(self._procs)

    def _signal(self, trial_id: int, sig: signal.Signals) -> None:
        with self._lock:
            proc = self._procs.get(trial_id)
        if proc is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.popen.pid, sig)

    def terminate(self, trial_id: int) -> None:
        self._signal(trial_id, signal.SIGTERM)

    def kill(self, trial_id: int) -> None:
        self._signal(trial_id, signal.SIGKILL)

    def close(self) -> None:
        for trial_id in self.running():
            self.kill(trial_id)
        with self._lock:
            procs = list(self._procs.values())
        for p in procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.popen.wait(timeout=10)
