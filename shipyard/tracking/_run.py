"""``ActiveRun``: a run this process is logging to."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Mapping
from types import TracebackType
from typing import Any

from shipyard.errors import ConflictError, InvalidArgumentError
from shipyard.tracking._client import TrackingClient
from shipyard.tracking._writer import RunWriter
from shipyard.types import Artifact, ParamValue, Run, RunStatus, same_param
from shipyard.validation import check_params, check_tags

logger = logging.getLogger("shipyard.tracking")

__all__ = ["ActiveRun", "check_status"]


def check_status(status: object) -> RunStatus:
    if isinstance(status, str) and status in RunStatus._value2member_map_:
        return RunStatus(status)
    raise InvalidArgumentError(
        f"invalid run status {status!r}: expected one of {', '.join(s.value for s in RunStatus)}"
    )


class ActiveRun:
    """A run being logged to. Use as a context manager; ``end()`` otherwise.

    Metrics are buffered (see :mod:`shipyard.tracking._writer`); params and tags
    are checked at once and written with the next batch; artifacts are written
    at once.
    """

    def __init__(
        self,
        client: TrackingClient,
        run: Run,
        *,
        system_metrics: bool = False,
        system_metrics_interval: float = 10.0,
    ) -> None:
        self.client = client
        self.id = run.id
        self.info = run
        cfg = client.settings
        known_steps = {k: s.last_step for k, s in run.summaries.items()}
        self._params: dict[str, ParamValue] = dict(run.params)
        self._params_lock = threading.Lock()
        self._writer = RunWriter(
            client.store,
            run.id,
            flush_interval=cfg.flush_interval,
            max_buffered_points=cfg.max_buffered_points,
            buffer_policy=cfg.buffer_policy,
            buffer_block_timeout=cfg.buffer_block_timeout,
            known_steps=known_steps,
        )
        #: The hot path, bound once: ``run.log_metric(key, value, step=None)``.
        self.log_metric = self._writer.log_metric
        self.log_metrics = self._writer.log_metrics
        self.ended = False
        #: True in a forked child: it logs to the run but leaves its status alone.
        self.foreign = False
        #: Threads (code/environment capture) that end() waits for.
        self.background: list[threading.Thread] = []
        #: Set once the code version is stored (or its capture gave up): what
        #: log_model waits for; the environment is recorded after it.
        self.code_recorded = threading.Event()
        self.code_recorded.set()  # cleared while a capture runs
        self._sampler: Any = None
        if system_metrics:
            from shipyard.tracking._system import SystemMetrics

            self._sampler = SystemMetrics(self._writer, system_metrics_interval)
            self._sampler.start()

    @property
    def experiment_id(self) -> str:
        return self.info.experiment_id

    def __repr__(self) -> str:
        return f"ActiveRun(id={self.id!r}, name={self.info.name!r})"

    def log_param(self, key: str, value: ParamValue) -> None:
        self.log_params({key: value})

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Record hyperparameters (typed: numbers stay numbers). A param is set
        once: logging it again with another value raises ConflictError."""
        checked = check_params(params)
        with self._params_lock:
            for k, v in checked.items():
                if k in self._params and not same_param(self._params[k], v):
                    raise ConflictError(
                        f"param {k!r} of run {self.id} is already {self._params[k]!r}; cannot "
                        f"change it to {v!r} (params are immutable: log a new key or start "
                        "a new run)"
                    )
            self._params.update(checked)
        self._writer.log_params(checked)

    def set_tag(self, key: str, value: str) -> None:
        self.set_tags({key: value})

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        self._writer.set_tags(check_tags(tags))

    def log_artifact(
        self, local_path: str | os.PathLike[str], artifact_path: str | None = None
    ) -> Artifact | None:
        return self.client.log_artifact(self.id, local_path, artifact_path)

    def log_artifacts(
        self, local_dir: str | os.PathLike[str], artifact_path: str | None = None
    ) -> list[Artifact]:
        return self.client.log_artifacts(self.id, local_dir, artifact_path)

    def flush(self, timeout: float | None = None) -> bool:
        """Block until everything logged so far is in the store. Waits at most
        ``timeout`` seconds (default ``SHIPYARD_EXIT_FLUSH_TIMEOUT``); False when
        something did not make it (see the log for why)."""
        if timeout is None:
            timeout = self.client.settings.exit_flush_timeout
        return self._writer.flush(timeout)

    @property
    def dropped_points(self) -> int:
        return self._writer.dropped_points

    def end(self, status: RunStatus | str = RunStatus.FINISHED) -> None:
        """Flush, stop the writer, record the final status and stop being the
        active run. Idempotent."""
        from shipyard.tracking import _fluent

        _fluent._end(self, check_status(status))

    def _finish(self, status: RunStatus, deadline: float | None = None) -> None:
        """Everything end() does, within one deadline: a dead store costs at most
        ``SHIPYARD_EXIT_FLUSH_TIMEOUT`` in all, never a hang."""
        if self.ended:
            return
        self.ended = True
        if deadline is None:
            deadline = time.monotonic() + self.client.settings.exit_flush_timeout
        for thread in self.background:
            thread.join(timeout=max(0.0, min(30.0, deadline - time.monotonic())))
        if self._sampler is not None:
            self._sampler.stop()
        if self._writer.dropped_points:
            self._writer.set_tags({"shipyard.dropped_points": str(self._writer.dropped_points)})
        if not self._writer.close(max(0.0, deadline - time.monotonic())):
            logger.error(
                "run %s: not everything logged reached the store (%d items still pending, "
                "%d points dropped or refused; last error: %s)",
                self.id,
                self._writer.pending(),
                self._writer.lost_points,
                self._writer.last_error,
            )
        if self.foreign:
            return  # a forked child never ends its parent's run

        def record() -> None:
            try:
                self.info = self.client.store.update_run(
                    self.id, status=status, end_time=time.time()
                )
            except Exception as e:
                logger.error("run %s: could not record its end (%s): %s", self.id, status, e)

        closer = threading.Thread(target=record, name="shipyard-end-run", daemon=True)
        closer.start()
        closer.join(timeout=max(0.5, deadline - time.monotonic()))
        if closer.is_alive():
            logger.error("run %s: the store did not record its end in time", self.id)

    def _after_fork(self) -> None:
        """In a forked child: the parent's writer thread does not exist here. Give
        the child its own writer; the child flushes at exit but never ends the run."""
        self.foreign = True
        self.background = []
        self._sampler = None
        old = self._writer
        self._writer = RunWriter(
            self.client.store,
            self.id,
            flush_interval=old.flush_interval,
            max_buffered_points=old.max_buffered_points,
            buffer_policy=old.buffer_policy,
            buffer_block_timeout=old.buffer_block_timeout,
            known_steps={k: s - 1 for k, s in zip(old._key_names, old._next_step, strict=True)},
        )
        self.log_metric = self._writer.log_metric
        self.log_metrics = self._writer.log_metrics

    def __enter__(self) -> ActiveRun:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        from shipyard.tracking import _fluent

        if exc_type is None:
            status = RunStatus.FINISHED
        elif issubclass(exc_type, KeyboardInterrupt):
            status = RunStatus.KILLED
        else:
            status = RunStatus.FAILED
        _fluent._end(self, status)
