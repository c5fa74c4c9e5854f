"""The module-level tracking API (``shipyard.start_run``, ``shipyard.log_metric``...).

Names and meanings follow MLflow's fluent API so code ports by changing the
import. Differences, on purpose: ``step=None`` continues from the key's last
step (MLflow logs every such point at step 0); params keep their type; a
param re-logged with another value raises at the call, not at some later
flush.

The active-run stack is process-wide (threads of a training job log to the
same run).
"""

from __future__ import annotations

import atexit
import logging
import os
import sys
import threading
from collections.abc import Mapping, Sequence
from typing import Any

from shipyard import context
from shipyard._util import current_user
from shipyard.errors import InvalidArgumentError, StateError
from shipyard.tracking import _liveness
from shipyard.tracking._client import TrackingClient
from shipyard.tracking._run import ActiveRun, check_status
from shipyard.types import Artifact, MetricSeries, Page, Run, RunStatus
from shipyard.validation import check_id, check_name

logger = logging.getLogger("shipyard.tracking")

DEFAULT_EXPERIMENT = "default"
#: Set by ``shipyard reproduce`` to the run it re-runs; new runs get it as this tag.
ENV_REPRODUCES = "SHIPYARD_REPRODUCES"
REPRODUCES_TAG = "shipyard.reproduces"

_lock = threading.RLock()
_client: TrackingClient | None = None
_tracking_uri: str | None = None
_experiment: str | None = None
_stack: list[ActiveRun] = []
_exit_hooked = False
_failed: RunStatus | None = None


def _no_run_log_metric(
    key: str, value: float, step: int | None = None, timestamp: float | None = None
) -> None:
    _auto_run().log_metric(key, value, step, timestamp)


_log_metric: Any = _no_run_log_metric


def get_client() -> TrackingClient:
    """The client the fluent API uses (made from the environment on first use)."""
    global _client
    with _lock:
        if _client is None:
            _client = TrackingClient(_tracking_uri)
        return _client


def set_tracking_uri(uri: str | None) -> None:
    """Use another store for the fluent API (None: back to the environment)."""
    global _client, _tracking_uri
    with _lock:
        if _stack:
            raise StateError("cannot change the tracking URI while a run is active; end it first")
        _tracking_uri = uri
        _client = None
        context.set_tracking_uri(uri)


def get_tracking_uri() -> str:
    return get_client().tracking_uri


def set_experiment(name: str) -> None:
    """The experiment new runs go to when ``start_run`` names none."""
    global _experiment
    _experiment = check_name(name, "experiment name")


def _hook_exit() -> None:
    global _exit_hooked
    if _exit_hooked:
        return
    _exit_hooked = True
    previous = sys.excepthook

    def excepthook(tp: Any, value: Any, tb: Any) -> None:
        global _failed
        _failed = RunStatus.KILLED if issubclass(tp, KeyboardInterrupt) else RunStatus.FAILED
        previous(tp, value, tb)

    sys.excepthook = excepthook
    atexit.register(_at_exit)
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _at_exit() -> None:
    """End the runs left open, all within one SHIPYARD_EXIT_FLUSH_TIMEOUT."""
    import time

    status = _failed or RunStatus.FINISHED
    if _stack:
        deadline = time.monotonic() + _stack[-1].client.settings.exit_flush_timeout
    while _stack:
        _end(_stack[-1], status, deadline)


def _after_fork_in_child() -> None:
    """A forked child keeps logging to the parent's runs through writers of its own,
    and opens its own database connections."""
    global _lock
    _lock = threading.RLock()
    for run in _stack:
        run._after_fork()
    _rebind()


def _rebind() -> None:
    global _log_metric
    _log_metric = _stack[-1].log_metric if _stack else _no_run_log_metric


def start_run(
    run_id: str | None = None,
    experiment: str | None = None,
    run_name: str | None = None,
    *,
    nested: bool = False,
    tags: Mapping[str, str] | None = None,
    description: str | None = None,
    log_system_metrics: bool | None = None,
    experiment_id: str | None = None,
) -> ActiveRun:
    """Start a run (or resume one by ``run_id``) and make it the active run.

    Use as ``with shipyard.start_run(experiment="rides") as run:`` or call
    :func:`end_run` yourself. The code version (git commit, diff, untracked
    files) and the environment are captured in the background.

    Args:
        run_id: resume this run instead of creating one.
        experiment: experiment name (created if missing); default
            :func:`set_experiment`'s, else ``"default"``.
        run_name: a human name; default the id's last 8 characters.
        nested: start a child of the active run instead of refusing.
        tags: initial tags. ``description`` becomes the ``shipyard.note`` tag;
            under ``shipyard reproduce`` a new run is tagged
            ``shipyard.reproduces=<original run id>``.
        log_system_metrics: sample CPU/memory/GPU every 10 s as ``system/*``
            metrics (default: env ``SHIPYARD_SYSTEM_METRICS=1``).
        experiment_id: the experiment by id instead of name.
    """
    _hook_exit()
    client = get_client()
    with _lock:
        if _stack and not nested and run_id is None:
            raise StateError(
                f"run {_stack[-1].id} is already active: end it with shipyard.end_run(), "
                "or pass nested=True to start a child run"
            )
        if log_system_metrics is None:
            log_system_metrics = os.environ.get("SHIPYARD_SYSTEM_METRICS", "") in ("1", "true")
        if run_id is not None:
            check_id(run_id)
            if any(r.id == run_id for r in _stack):
                raise StateError(f"run {run_id} is already active in this process")
            _check_resumable(client, run_id)
            run = client.store.update_run(
                run_id,
                status=RunStatus.RUNNING,
                process=_liveness.process_id(),
                heartbeat_time=_now(),
            )
            if tags:
                client.store.set_tags(run_id, tags)
        else:
            if experiment_id is not None:
                exp = client.store.get_experiment(check_id(experiment_id, "experiment id"))
            else:
                exp = client.get_or_create_experiment(
                    experiment or _experiment or DEFAULT_EXPERIMENT
                )
            all_tags = dict(tags or {})
            if description:
                all_tags["shipyard.note"] = description
            reproduces = os.environ.get(ENV_REPRODUCES)
            if reproduces:  # a re-run by `shipyard reproduce`, which finds it by this tag
                all_tags.setdefault(REPRODUCES_TAG, reproduces)
            run = client.store.create_run(
                exp.id,
                name=run_name,
                user=current_user(),
                parent_run_id=_stack[-1].id if (_stack and nested) else None,
                tags=all_tags,
                process=_liveness.process_id(),
            )
        active = ActiveRun(client, run, system_metrics=bool(log_system_metrics))
        _stack.append(active)
        context.push_run(active.id)
        _rebind()
    if run_id is None:
        capture = threading.Thread(
            target=_capture,
            args=(client, run.id, active.code_recorded),
            name="shipyard-capture",
            daemon=True,
        )
        active.code_recorded.clear()
        capture.start()
        active.background.append(capture)
    return active


def _check_resumable(client: TrackingClient, run_id: str) -> None:
    import time

    from shipyard.types import Lifecycle

    run = client.get_run(run_id)  # marks a dead owner's run KILLED first
    if run.lifecycle is Lifecycle.DELETED:
        raise StateError(f"run {run_id} is deleted; restore it before resuming it")
    fresh = (
        run.heartbeat_time is not None
        and time.time() - run.heartbeat_time < client.settings.heartbeat_timeout
    )
    if run.status is RunStatus.RUNNING and fresh and not _liveness.is_dead(run.process):
        raise StateError(
            f"run {run_id} is still running in process {run.process}; wait for it to end "
            "or kill it before resuming"
        )


def _capture(client: TrackingClient, run_id: str, code_recorded: threading.Event) -> None:
    """Record the code version, then the environment (two writes, so a model logged
    early waits only for the code, not for listing every installed package)."""
    from shipyard.tracking._context import capture_code, capture_environment

    try:
        try:
            code = capture_code(put_blob=lambda data: client.blobs.put_bytes(data))
            client.store.update_run(run_id, code=code)
        finally:
            code_recorded.set()
        client.store.update_run(run_id, environment=capture_environment())
    except Exception as e:  # capture is best effort and never disturbs the run
        logger.warning("run %s: could not record code version and environment: %s", run_id, e)


def _now() -> float:
    import time

    return time.time()


def _auto_run() -> ActiveRun:
    with _lock:
        if _stack:
            return _stack[-1]
        run = start_run()
        logger.info("started run %s because something was logged with no active run", run.id)
        return run


def _end(run: ActiveRun, status: RunStatus, deadline: float | None = None) -> None:
    with _lock:
        run._finish(status, deadline)
        if run in _stack:
            _stack.remove(run)
        context.pop_run(run.id)
        _rebind()


def end_run(status: RunStatus | str = RunStatus.FINISHED) -> None:
    """End the active run: flush its points and record the status."""
    status = check_status(status)
    with _lock:
        if _stack:
            _end(_stack[-1], status)


def active_run() -> ActiveRun | None:
    """The run logging calls go to, or None."""
    return _stack[-1] if _stack else None


def _current() -> ActiveRun:
    return _stack[-1] if _stack else _auto_run()


# -- logging -------------------------------------------------------------------


def log_metric(
    key: str, value: float, step: int | None = None, timestamp: float | None = None
) -> None:
    """Append a metric point (buffered: returns in about a microsecond).

    ``step=None`` continues from the key's last step; NaN and inf are kept.
    """
    _log_metric(key, value, step, timestamp)


def log_metrics(
    metrics: Mapping[str, float], step: int | None = None, timestamp: float | None = None
) -> None:
    """Several metrics at one step."""
    if not isinstance(metrics, Mapping):
        raise InvalidArgumentError(
            f"log_metrics: expected a mapping of key to number, got {type(metrics).__name__}"
        )
    run = _current()
    run.log_metrics(dict(metrics), step, timestamp)


def log_param(key: str, value: Any) -> None:
    _current().log_param(key, value)


def log_params(params: Mapping[str, Any]) -> None:
    _current().log_params(params)


def set_tag(key: str, value: str) -> None:
    _current().set_tag(key, value)


def set_tags(tags: Mapping[str, str]) -> None:
    _current().set_tags(tags)


def log_artifact(
    local_path: str | os.PathLike[str], artifact_path: str | None = None
) -> Artifact | None:
    """Store a file or directory in the blob store and attach it to the run."""
    return _current().log_artifact(local_path, artifact_path)


def log_artifacts(
    local_dir: str | os.PathLike[str], artifact_path: str | None = None
) -> list[Artifact]:
    return _current().log_artifacts(local_dir, artifact_path)


def flush(timeout: float | None = None) -> bool:
    """Wait until everything logged to the active run is in the store (at most
    ``timeout`` seconds, default ``SHIPYARD_EXIT_FLUSH_TIMEOUT``)."""
    run = active_run()
    return True if run is None else run.flush(timeout)


# -- queries -------------------------------------------------------------------


def get_run(run_id: str) -> Run:
    return get_client().get_run(run_id)


def search_runs(
    filter: str | None = None,
    order_by: Sequence[str] | None = None,
    max_results: int = 1000,
    page_token: str | None = None,
    *,
    experiments: Sequence[str] | str | None = None,
) -> Page[Run]:
    """Runs matching e.g. ``"metrics.val_rmse < 3 and params.alpha >= 0.05"``."""
    return get_client().search_runs(experiments, filter, order_by, max_results, page_token)


def get_metric_history(run_id: str, key: str, max_points: int | None = None) -> MetricSeries:
    return get_client().get_metric_history(run_id, key, max_points=max_points)
