"""The Core API: the training contract for any loop.

    with shipyard.train.init({"lr": 0.1, "epochs": 10}) as ctx:
        state = ctx.latest_checkpoint() or fresh_state(ctx.hparams)
        for epoch in range(state["epoch"], ctx.hparams["epochs"]):
            ...
            ctx.report(epoch, {"val_loss": loss})
            ctx.checkpoint({"epoch": epoch + 1, "model": model.state_dict()})
            if ctx.should_stop() or ctx.should_preempt():
                break

The same script runs standalone (``python train.py``), under
``shipyard train`` (which may resume it or run it on N processes through
torchrun) and as a trial of a search. What a launcher tells it arrives in the
environment:

* ``SHIPYARD_HPARAMS`` -- the hyperparameters (see :mod:`._hparams`);
* ``SHIPYARD_RUN_ID`` -- continue this run (a resume, or a paused trial the
  scheduler promotes); its latest checkpoint is what ``latest_checkpoint``
  returns;
* ``SHIPYARD_RESUME_FROM`` -- a run whose latest checkpoint starts this new
  run (a warm start from another trial);
* ``SHIPYARD_PAUSE_AFTER`` -- ``METRIC:N``: pause (``should_preempt`` turns
  true) once the run has reported METRIC at N distinct steps, counting earlier
  segments of the same run. A search scheduler uses it to stop a trial at an
  ASHA rung and later promote it from that checkpoint;
* ``SHIPYARD_PAUSE_WAIT`` -- seconds to wait at that pause point for the
  scheduler's ``continue:N`` (control tag): a promotion decided at once goes on
  in the same process.

A scheduler asks a trial to stop or pause through the run's
``shipyard.control`` tag (``stop`` / ``pause``), which ``should_stop`` and
``should_preempt`` read at most every ``poll_interval`` seconds; SIGTERM (a
preempted machine, a cancelled job) makes ``should_preempt`` true too.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import signal
import threading
import time
from collections.abc import Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal

from shipyard.errors import InvalidArgumentError, StateError
from shipyard.train import _dist
from shipyard.train._checkpoint import CheckpointInfo, Checkpoints
from shipyard.train._hparams import load_hparams, params_of
from shipyard.validation import MAX_TAG_LENGTH

if TYPE_CHECKING:
    from shipyard.tracking import ActiveRun, TrackingClient

__all__ = [
    "CONTROL_TAG",
    "ENV_PAUSE_AFTER",
    "ENV_PAUSE_WAIT",
    "ENV_RESUME_FROM",
    "ENV_RUN_ID",
    "HPARAMS_TAG",
    "TRIAL_TAG",
    "TrainContext",
    "init",
]

logger = logging.getLogger("shipyard.train")

#: The exact hyperparameters as JSON (params hold lists and mappings as text).
HPARAMS_TAG = "shipyard.hparams"
#: How fit() ran a Trial (its file and class, the loop's options), as JSON: what
#: ``shipyard reproduce`` re-runs, instead of the whole script that called fit().
TRIAL_TAG = "shipyard.trial"
ENV_RUN_ID = "SHIPYARD_RUN_ID"
ENV_RESUME_FROM = "SHIPYARD_RESUME_FROM"
ENV_PAUSE_AFTER = "SHIPYARD_PAUSE_AFTER"
ENV_PAUSE_WAIT = "SHIPYARD_PAUSE_WAIT"
#: Set by a trial at its pause point while it waits for ``continue:N``.
AT_RUNG_TAG = "shipyard.search.at"
CONTROL_TAG = "shipyard.control"
#: SIGTERMs this close together count as one (see TrainContext._install_sigterm).
_SIGTERM_REPEAT_S = 1.0


class TrainContext:
    """What a training loop talks to; made by :func:`init`. Use as a context
    manager: leaving it ends the run it started (FAILED on an exception)."""

    def __init__(
        self,
        hparams: dict[str, Any],
        *,
        run: ActiveRun | None,
        client: TrackingClient | None,
        owns_run: bool,
        checkpoints: Checkpoints | None,
        resume_from: Checkpoints | None,
        poll_interval: float,
    ) -> None:
        self.hparams = hparams
        #: The run logged to (None on ranks other than 0 of a distributed job).
        self.run = run
        self.client = client
        self.rank = _dist.rank()
        self.world_size = _dist.world_size()
        self.local_rank = _dist.local_rank()
        self.checkpoints = checkpoints
        self._resume_from = resume_from
        self._owns_run = owns_run
        self._poll_interval = poll_interval
        self._last_poll = 0.0
        self._control = ""
        self._stop_requested = False
        self._preempted = threading.Event()
        self._old_handler: Any = None
        self._closed = False
        #: (metric, distinct steps to pause at, steps already reported, last step)
        self._pause: list[Any] | None = None
        #: Seconds to wait at the pause point for a promotion in place.
        self._pause_wait = 0.0

    @property
    def pause_armed(self) -> bool:
        """True when a scheduler set a pause point (``SHIPYARD_PAUSE_AFTER``):
        loops then call :meth:`should_preempt` after each report of its metric."""
        return self._pause is not None

    def _arm_pause(self, spec: str) -> None:
        metric, sep, count = spec.rpartition(":")
        if not sep or not metric or not count.isdigit() or int(count) < 1:
            raise InvalidArgumentError(
                f"{ENV_PAUSE_AFTER}={spec!r}: expected METRIC:N (N >= 1), e.g. val_loss:3"
            )
        seen = 0
        if self.run is not None and self.client is not None:
            with contextlib.suppress(Exception):  # a new run has no history yet
                steps = self.client.get_metric_history(self.run.id, metric).steps
                seen = len(set(steps.tolist()))
        self._pause = [metric, int(count), seen, None]

    @property
    def pause_due(self) -> bool:
        """True once the pause point of ``SHIPYARD_PAUSE_AFTER`` is reached."""
        p = self._pause
        return p is not None and p[2] >= p[1]

    @property
    def is_chief(self) -> bool:
        """True on the process that logs and checkpoints (rank 0)."""
        return self.rank == 0

    @property
    def run_id(self) -> str | None:
        return self.run.id if self.run is not None else None

    # -- reporting ----------------------------------------------------------------

    def report(self, step: int, metrics: Mapping[str, float]) -> dict[str, float]:
        """Log ``metrics`` at ``step`` (averaged over all ranks in a distributed job;
        every rank must call it). Returns the values logged."""
        if isinstance(step, bool) or not isinstance(step, int) or step < 0:
            raise InvalidArgumentError(f"report step: expected an integer >= 0, got {step!r}")
        values = _dist.all_mean(metrics)
        if self.run is not None:
            self.run.log_metrics(values, step=step)
        self.count_report(step, values)
        return values

    def count_report(self, step: int, metrics: Mapping[str, Any]) -> None:
        """Count a report toward the pause point (loops that log metrics without
        :meth:`report` call this)."""
        p = self._pause
        if p is not None and p[0] in metrics and p[3] != step:
            p[2] += 1
            p[3] = step

    # -- checkpoints --------------------------------------------------------------

    def checkpoint(
        self,
        state: Mapping[str, Any],
        *,
        step: int,
        epoch: int | None = None,
        metrics: Mapping[str, float] | None = None,
    ) -> CheckpointInfo | None:
        """Store ``state`` (a dict of tensors, arrays, numbers...; see
        :mod:`._codec`) as the checkpoint of ``step``. Only rank 0 writes; other
        ranks get None."""
        if self.checkpoints is None:
            return None
        if self.run is not None:
            # metrics reported before the checkpoint are stored before it: a crash
            # after it must not lose them (a resume starts after them)
            self.run.flush(timeout=30.0)
        return self.checkpoints.save(state, step=step, epoch=epoch, metrics=metrics)

    def latest_checkpoint(self, *, map_location: str | None = None) -> dict[str, Any] | None:
        """The state of this run's newest checkpoint -- or, for a new run started
        with ``SHIPYARD_RESUME_FROM``, of that run's -- or None."""
        for source in (self.checkpoints, self._resume_from):
            if source is None:
                continue
            info = source.latest()
            if info is not None:
                return source.load(info, map_location=map_location)
        return None

    # -- control ------------------------------------------------------------------

    def _poll(self) -> str:
        now = time.monotonic()
        if (
            self.run is not None
            and self.client is not None
            and now - self._last_poll >= (self._poll_interval)
        ):
            self._last_poll = now
            try:
                self._control = self.client.store.get_run(self.run.id).tags.get(CONTROL_TAG, "")
            except Exception as e:  # a store hiccup must not stop training
                logger.debug("could not read the control tag of run %s: %s", self.run.id, e)
        return self._control

    def request_stop(self) -> None:
        """Make ``should_stop`` true (early stopping decided by the loop itself)."""
        self._stop_requested = True

    def should_stop(self) -> bool:
        """True when the loop should end for good: the scheduler said stop, or
        :meth:`request_stop` was called (on any rank, in a distributed job)."""
        return _dist.broadcast_flag(self._stop_requested or self._poll() == "stop")

    def should_preempt(self) -> bool:
        """True when the loop should checkpoint and exit, to be resumed later:
        SIGTERM arrived, the scheduler said pause, or the pause point of
        ``SHIPYARD_PAUSE_AFTER`` was reached."""
        due = self.pause_due and not self._promoted_in_place()
        return _dist.broadcast_flag(self._preempted.is_set() or due or self._poll() == "pause")

    def _promoted_in_place(self) -> bool:
        """At the pause point, with ``SHIPYARD_PAUSE_WAIT`` seconds given: say so
        (the ``shipyard.search.at`` tag) and wait that long for the scheduler's
        ``continue:N`` on the control tag -- a promotion decided at once goes on in
        this process (N: the next pause point; 0: none) instead of paying a new
        process and a checkpoint load. Anything else, or nothing in time: pause."""
        p = self._pause
        wait, self._pause_wait = self._pause_wait, 0.0  # asked once per pause point
        if p is None or wait <= 0 or self.run is None or self.client is None:
            return False
        if self.world_size > 1:  # every rank would have to agree: pause instead
            return False
        store, run_id = self.client.store, self.run.id
        try:
            self.run.flush(timeout=30.0)  # the scheduler reads the rung's metrics
            store.set_tag(run_id, AT_RUNG_TAG, str(p[2]))
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline and not self._preempted.is_set():
                word = store.get_run(run_id).tags.get(CONTROL_TAG, "")
                if word.startswith("continue:") and word[9:].isdigit():
                    store.delete_tag(run_id, CONTROL_TAG)
                    store.delete_tag(run_id, AT_RUNG_TAG)
                    target = int(word[9:])
                    if target > p[2]:
                        p[1] = target
                        self._pause_wait = wait
                    else:
                        self._pause = None  # to the end
                    return True
                if word in ("pause", "stop"):
                    break
                time.sleep(0.05)
            store.delete_tag(run_id, AT_RUNG_TAG)
        except Exception as e:  # a store hiccup: pause, the safe default
            logger.debug("run %s: no decision at the pause point: %s", run_id, e)
        return False

    # -- lifecycle ----------------------------------------------------------------

    def _install_sigterm(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        with contextlib.suppress(ValueError, OSError):
            if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
                first: list[float] = []

                def on_term(signum: int, frame: Any) -> None:
                    # A second SIGTERM leaves at once -- a second one a person sends:
                    # copies within a second are one (a process group signalled, and
                    # its launcher forwarding the same signal).
                    if first and time.monotonic() - first[0] > _SIGTERM_REPEAT_S:
                        signal.signal(signal.SIGTERM, signal.SIG_DFL)
                        os.kill(os.getpid(), signal.SIGTERM)
                    if not first:
                        first.append(time.monotonic())
                        logger.warning("SIGTERM: the loop will stop at its next should_preempt()")
                    self._preempted.set()

                self._old_handler = signal.signal(signal.SIGTERM, on_term)

    def close(self, failed: bool = False) -> None:
        """End the run this context started (idempotent)."""
        if self._closed:
            return
        self._closed = True
        if self._old_handler is not None:
            with contextlib.suppress(ValueError, OSError):
                signal.signal(signal.SIGTERM, self._old_handler)
        if self.run is not None and self._owns_run:
            if failed:
                status = "FAILED"
            elif self._preempted.is_set() or self._control == "pause" or self.pause_due:
                status = "KILLED"  # resumable: a preempted run is continued later
            else:
                status = "FINISHED"
            self.run.end(status)

    def __enter__(self) -> TrainContext:
        return self

    def __exit__(
        self,
        tp: type[BaseException] | None,
        value: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close(failed=tp is not None and not issubclass(tp, KeyboardInterrupt))


def init(
    hparams: Mapping[str, Any] | None = None,
    *,
    experiment: str | None = None,
    run_name: str | None = None,
    hparams_file: str | os.PathLike[str] | None = None,
    keep_last: int | None = 3,
    keep_best: int = 0,
    monitor: str | None = None,
    mode: Literal["min", "max"] = "min",
    poll_interval: float = 5.0,
) -> TrainContext:
    """Start (or continue) a training run and return its :class:`TrainContext`.

    Args:
        hparams: the defaults; the file and ``SHIPYARD_HPARAMS`` win over them
            (see :func:`~shipyard.train.load_hparams`). They are logged as the
            run's params (lists and mappings as JSON text) and, exactly, as the
            ``shipyard.hparams`` tag.
        experiment, run_name: for a new run (as :func:`shipyard.start_run`).
        hparams_file: a YAML or JSON file of hyperparameters.
        keep_last, keep_best, monitor, mode: checkpoint retention (see
            :class:`~shipyard.train.Checkpoints`).
        poll_interval: seconds between reads of the scheduler's control tag.

    The active run is used when there is one (and left running at the end);
    otherwise ``SHIPYARD_RUN_ID`` is continued, or a new run started.
    """
    from shipyard import tracking

    if not (isinstance(poll_interval, (int, float)) and math.isfinite(poll_interval)):
        raise InvalidArgumentError(f"poll_interval: expected seconds, got {poll_interval!r}")
    values = load_hparams(hparams, file=hparams_file)
    run: ActiveRun | None = None
    owns = False
    client: TrackingClient | None = None
    checkpoints = resume_from = None
    retention: dict[str, Any] = {
        "keep_last": keep_last, "keep_best": keep_best, "monitor": monitor, "mode": mode
    }  # fmt: skip
    if _dist.rank() == 0:
        run = tracking.active_run()
        if run is None:
            run_id = os.environ.get(ENV_RUN_ID) or None
            experiment = experiment or os.environ.get("SHIPYARD_EXPERIMENT") or None
            run = tracking.start_run(run_id=run_id, experiment=experiment, run_name=run_name)
            owns = True
        client = run.client
        try:
            run.log_params(params_of(values))
            exact = json.dumps(values, sort_keys=True)
            if len(exact) <= MAX_TAG_LENGTH:
                run.set_tag(HPARAMS_TAG, exact)
        except Exception:
            if owns:
                run.end("FAILED")
            raise
        checkpoints = Checkpoints(client, run.id, **retention)
    else:
        run_id = os.environ.get(ENV_RUN_ID) or None
        if run_id:  # other ranks read the checkpoint they resume from
            client = tracking.get_client()
            checkpoints = None
            resume_from = Checkpoints(client, run_id, **retention)
    source = os.environ.get(ENV_RESUME_FROM) or None
    if source:
        if client is None:
            client = tracking.get_client()
        if resume_from is not None:
            raise StateError(f"set {ENV_RUN_ID} or {ENV_RESUME_FROM}, not both")
        resume_from = Checkpoints(client, source, **retention)
    ctx = TrainContext(
        values,
        run=run,
        client=client,
        owns_run=owns,
        checkpoints=checkpoints,
        resume_from=resume_from,
        poll_interval=float(poll_interval),
    )
    pause = os.environ.get(ENV_PAUSE_AFTER) or None
    if pause:
        ctx._arm_pause(pause)
        wait = os.environ.get(ENV_PAUSE_WAIT) or ""
        try:
            ctx._pause_wait = max(0.0, float(wait)) if wait else 0.0
        except ValueError:
            raise InvalidArgumentError(
                f"{ENV_PAUSE_WAIT}={wait!r}: expected seconds, e.g. 10"
            ) from None
    ctx._install_sigterm()
    return ctx
