"""Starting, resuming and controlling experiments: the entry points over the driver.

    experiment_id, state = run_experiment(load_config("search.yaml"))
    resume_experiment(experiment_id)       # after a pause or a crash
    request(experiment_id, "pause")        # from another process

An experiment's id is its search run's id (see ``_state.py``). The driver itself
(``_experiment.py``) runs one session of an experiment; these functions make or
load its state, its searcher and its executor, and guard the session so Ctrl-C
or SIGTERM pauses the experiment instead of orphaning its trials.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from shipyard.errors import InvalidArgumentError, StateError
from shipyard.search._config import SearchConfig, parse_config
from shipyard.search._executor import Executor
from shipyard.search._experiment import CONTROL_TAG, Driver, clear_control
from shipyard.search._protocol import Searcher
from shipyard.search._state import SEARCH_TAG, ExperimentState, read_state, write_state
from shipyard.types import RunStatus

if TYPE_CHECKING:
    from shipyard.tracking import TrackingClient

__all__ = ["make_executor", "request", "resume_experiment", "run_experiment"]

logger = logging.getLogger("shipyard.search")


def _searcher_for(config: SearchConfig) -> Searcher:
    from shipyard.search._searchers import make_searcher

    res = config.resource
    s = config.searcher
    try:
        return make_searcher(
            s.name,
            config.build_space(),
            config.objective_list(),
            max_trials=s.max_trials,
            max_resource=res.max if res is not None else 1.0,
            min_resource=res.min if res is not None else 1.0,
            seed=s.seed,
            **s.options(),
        )
    except InvalidArgumentError as e:
        raise InvalidArgumentError(f"searcher ({s.name}): {e}") from None


def make_executor(
    kind: str, *, address: str | None = None, max_concurrent: int | None = None
) -> Executor:
    """``local`` (processes here) or ``ray`` (Ray tasks on a cluster)."""
    if kind == "local":
        from shipyard.search._local import LocalExecutor

        return LocalExecutor(max_concurrent)
    if kind == "ray":
        from shipyard.search._ray import RayExecutor

        return RayExecutor(address, max_concurrent=max_concurrent)
    raise InvalidArgumentError(f"executor {kind!r}: expected local or ray")


def run_experiment(
    config: SearchConfig,
    *,
    client: TrackingClient | None = None,
    executor: Executor | None = None,
    on_event: Callable[[Driver, str], None] | None = None,
    on_start: Callable[[str], None] | None = None,
) -> tuple[str, ExperimentState]:
    """Start an experiment and run it to its end (or a pause); returns its id (the
    search run's) and its final state."""
    from shipyard._util._ids import current_user
    from shipyard.tracking import get_client
    from shipyard.tracking._liveness import process_id

    client = client or get_client()
    searcher = _searcher_for(config)
    exp = client.get_or_create_experiment(config.name)
    run = client.store.create_run(
        exp.id,
        name="search",
        user=current_user(),
        tags={SEARCH_TAG: "experiment"},
        process=process_id(),
    )
    state = ExperimentState(config=config.model_dump(mode="json"))
    state.searcher = searcher.state_dict()
    write_state(client, run.id, state)
    if on_start is not None:
        on_start(run.id)
    owned = executor is None
    executor = executor or make_executor("local", max_concurrent=config.max_concurrent)
    try:
        driver = Driver(config, client, executor, run.id, state, searcher, on_event=on_event)
        return run.id, _run_guarded(driver)
    finally:
        if owned:
            executor.close()


def resume_experiment(
    run_id: str,
    *,
    client: TrackingClient | None = None,
    executor: Executor | None = None,
    on_event: Callable[[Driver, str], None] | None = None,
) -> ExperimentState:
    """Continue a paused or crashed experiment where it stood."""
    from shipyard.tracking import get_client
    from shipyard.tracking._liveness import process_id

    client = client or get_client()
    state = read_state(client, run_id)
    run = client.get_run(run_id)  # a dead driver's run is marked KILLED here
    if run.status is RunStatus.RUNNING:
        raise StateError(
            f"experiment {run_id} is running (process {run.process}); pause it first: "
            f"shipyard experiment pause {run_id}"
        )
    if state.status in ("finished", "killed"):
        raise StateError(f"experiment {run_id} is {state.status}; start a new one instead")
    config = parse_config(state.config, source=f"experiment {run_id}")
    searcher = _searcher_for(config)
    searcher.load_state_dict(state.searcher)
    clear_control(client, run_id)
    client.store.update_run(run_id, status=RunStatus.RUNNING, process=process_id())
    state.status = "running"
    owned = executor is None
    executor = executor or make_executor("local", max_concurrent=config.max_concurrent)
    try:
        driver = Driver(config, client, executor, run_id, state, searcher, on_event=on_event)
        return _run_guarded(driver)
    finally:
        if owned:
            executor.close()


def _run_guarded(driver: Driver) -> ExperimentState:
    """Run the driver; Ctrl-C or SIGTERM pauses the experiment (resumable: the
    trials checkpoint and stop) instead of orphaning its trials."""
    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.getsignal(signal.SIGTERM)

        def on_term(signum: int, frame: Any) -> None:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)  # a second one ends it at once
            raise KeyboardInterrupt

        signal.signal(signal.SIGTERM, on_term)
    try:
        return driver.run()
    except KeyboardInterrupt:
        driver.stop("pause")
        return driver.finish()
    except BaseException:
        driver.state.status = "failed"
        for trial_id in list(driver.out):
            driver.executor.kill(trial_id)
        try:
            driver.save()
            driver.client.set_terminated(driver.run_id, RunStatus.FAILED)
        except Exception as e:  # pragma: no cover - already failing
            logger.warning("could not record the failure of the experiment: %s", e)
        raise
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def request(run_id: str, action: str, *, client: TrackingClient | None = None) -> str:
    """Ask a running experiment to ``pause`` or ``kill`` (its driver reads the
    request within a second). Returns what was done."""
    from shipyard.tracking import get_client

    if action not in ("pause", "kill"):
        raise InvalidArgumentError(f"action {action!r}: expected pause or kill")
    client = client or get_client()
    state = read_state(client, run_id)
    run = client.get_run(run_id)
    if run.status is RunStatus.RUNNING:
        client.set_tag(run_id, CONTROL_TAG, action)
        return f"asked experiment {run_id} to {action}"
    if action == "kill" and state.status in ("paused", "running"):
        state.end("killed")
        write_state(client, run_id, state)
        return f"experiment {run_id} was not running; marked killed"
    raise StateError(f"experiment {run_id} is not running (it is {state.status})")
