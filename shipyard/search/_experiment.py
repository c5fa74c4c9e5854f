"""The experiment driver: a searcher, an executor, and the tracking store between.

One session of an experiment (started, or resumed, by ``_run.py``).

The driver asks the searcher for jobs while the executor has free slots,
launches each as a trial process (``shipyard train TARGET`` with the trial's
run, hyperparameters and pause point in the environment -- the Core API's
contract, see ``shipyard/train/_core.py``), and when a process ends reads what
the trial logged (the objective metrics' last values, how many times the first
one was reported: the resource reached) and tells the searcher. After every
event the searcher state and the trial table are written to the search run
(``_state.py``), so ``resume`` continues a crashed, paused or interrupted
experiment: the jobs that were out are run again, from their checkpoints.

Control from another terminal goes through the search run's
``shipyard.control`` tag (``pause`` / ``kill``), read about once a second:
pause sends SIGTERM to running trials (they checkpoint and exit, resumable)
and stops; kill ends them and the experiment for good.
"""

from __future__ import annotations

import json
import logging
import math
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shipyard.errors import StateError
from shipyard.search._config import SearchConfig
from shipyard.search._executor import Executor, Exit, Launch
from shipyard.search._protocol import Job, Objective, Result, Searcher
from shipyard.search._state import (
    SEARCH_TAG,
    TRIAL_TAG,
    ExperimentState,
    TrialRecord,
    best_trial,
    pareto_front,
    write_state,
)
from shipyard.types import Run, RunStatus

if TYPE_CHECKING:
    from shipyard.tracking import TrackingClient

__all__ = ["CONTROL_TAG", "Driver", "clear_control"]

logger = logging.getLogger("shipyard.search")

#: The Core API's environment contract (shipyard/train/_core.py; the search layer
#: does not import train, its sibling).
ENV_RUN_ID = "SHIPYARD_RUN_ID"
ENV_HPARAMS = "SHIPYARD_HPARAMS"
ENV_PAUSE_AFTER = "SHIPYARD_PAUSE_AFTER"
ENV_RESUME_FROM = "SHIPYARD_RESUME_FROM"
ENV_PAUSE_WAIT = "SHIPYARD_PAUSE_WAIT"
ENV_CONTRACT = "SHIPYARD_CONTRACT"
CONTROL_TAG = "shipyard.control"
AT_RUNG_TAG = "shipyard.search.at"
#: Seconds a trial at its rung waits for a promotion in place before it pauses.
PAUSE_WAIT = 10.0
_CONTROL_EVERY = 1.0
_GRACE = 60.0  # seconds a terminated trial has to checkpoint before SIGKILL


@dataclass
class _Out:
    """A job out on the executor."""

    job: Job
    started: float
    #: The rung result was told to the searcher while the process waited at its
    #: pause point, and the answer was pause: its exit is not a result.
    reported: bool = False
    #: The job continues a process promoted in place (``continue:N``).
    inplace: bool = False


class Driver:
    """Runs one experiment to its end, a pause or a kill (see the module docstring)."""

    def __init__(
        self,
        config: SearchConfig,
        client: TrackingClient,
        executor: Executor,
        search_run_id: str,
        state: ExperimentState,
        searcher: Searcher,
        *,
        on_event: Callable[[Driver, str], None] | None = None,
    ) -> None:
        self.config = config
        self.client = client
        self.executor = executor
        self.run_id = search_run_id
        self.state = state
        self.searcher = searcher
        self.objectives: list[Objective] = config.objective_list()
        self.on_event = on_event
        self.out: dict[int, _Out] = {}
        self._retry: list[Job] = []
        self._stopping: str | None = None
        self._last_control = 0.0
        self._last_rungs = 0.0
        self._logs = Path(client.settings.home) / "search" / search_run_id / "logs"
        self._code: dict[str, Any] | None = None
        self._exp_id: str | None = None
        self._environment: dict[str, Any] | None = None

    # -- the loop -----------------------------------------------------------------

    def run(self) -> ExperimentState:
        cfg, ex = self.config, self.executor
        cpus, gpus = cfg.resources.cpus, cfg.resources.gpus
        check = getattr(ex, "check_fits", None)
        if check is not None:
            check(cpus, gpus)
        self._retry = list(self.searcher.pending())  # jobs out when it last stopped
        self._adopt_orphans(self._retry)
        self._event("started")
        budget = cfg.time_budget
        spent = self.state.elapsed  # earlier sessions of a resumed experiment
        t0 = time.monotonic()
        while True:
            self.state.elapsed = spent + time.monotonic() - t0
            if budget is not None and self._stopping is None and self.state.elapsed >= budget:
                self.stop("budget")
            self._poll_control()
            if self._stopping is None:
                self._fill(cpus, gpus)
            if not self.out and (self._stopping or (not self._retry and self.searcher.finished)):
                break
            at_rungs = any(o.job.resource is not None for o in self.out.values())
            for ended in ex.wait(timeout=0.2 if at_rungs else 0.5):
                self._ended(ended)
            if at_rungs:
                self._check_rungs()
        return self.finish()

    def _fill(self, cpus: float, gpus: int) -> None:
        while self.executor.free_slots(cpus, gpus) > 0:
            job = self._retry.pop(0) if self._retry else self.searcher.suggest()
            if job is None:
                return
            self._launch(job)

    # -- launching ----------------------------------------------------------------

    def _trial_run(self, job: Job) -> TrialRecord:
        trial = self.state.trials.get(job.trial_id)
        if trial is not None:
            return trial
        from shipyard._util._ids import current_user
        from shipyard.tracking._context import capture_environment

        if self._environment is None:
            self._environment = capture_environment()
        run = self.client.store.create_run(
            self._experiment_id(),
            name=f"trial-{job.trial_id:04d}",
            status=RunStatus.SCHEDULED,
            user=current_user(),
            parent_run_id=self.run_id,
            tags={TRIAL_TAG: str(job.trial_id), SEARCH_TAG: "trial"},
            code=self._code_version(),
            environment=self._environment,
        )
        trial = TrialRecord(job.trial_id, run.id, dict(job.config))
        self.state.trials[job.trial_id] = trial
        return trial

    def _experiment_id(self) -> str:
        if self._exp_id is None:
            self._exp_id = self.client.store.get_run(self.run_id).experiment_id
        return self._exp_id

    def _code_version(self) -> dict[str, Any]:
        """The code version of the trial's folder, captured once for all trials."""
        if self._code is None:
            from shipyard.tracking._context import capture_code

            try:
                self._code = capture_code(
                    Path(self.config.workdir or "."), put_blob=self.client.blobs.put_bytes
                )
            except Exception as e:  # best effort, as for any run
                logger.warning("could not record the code version: %s", e)
                self._code = {}
        return self._code

    def hparams_of(self, job: Job) -> dict[str, Any]:
        values = dict(self.config.hparams)
        values.update(job.config)
        res = self.config.resource
        if res is not None and res.hparam:
            values[res.hparam] = int(res.max) if float(res.max).is_integer() else res.max
        return values

    def _launch(self, job: Job) -> None:
        cfg = self.config
        trial = self._trial_run(job)
        # a control word left from a pause must not stop the next segment at once
        clear_control(self.client, trial.run_id)
        env = {
            "SHIPYARD_TRACKING_URI": self.client.tracking_uri,
            "SHIPYARD_BLOB_URI": self.client.blob_uri,
            ENV_RUN_ID: trial.run_id,
            ENV_HPARAMS: json.dumps(self.hparams_of(job)),
            ENV_PAUSE_AFTER: (
                f"{self.objectives[0].metric}:{math.ceil(job.resource)}"
                if job.resource is not None
                else ""
            ),
            ENV_PAUSE_WAIT: str(PAUSE_WAIT) if job.resource is not None else "",
            ENV_RESUME_FROM: "",
            ENV_CONTRACT: json.dumps(cfg.contract_dict()) if cfg.contract else "",
            "PYTHONUNBUFFERED": "1",
        }
        argv = [sys.executable, "-m", "shipyard.cli", "train", cfg.trial, *cfg.train_args]
        trial.state = "running"
        trial.segments += 1
        trial.processes += 1
        self.out[job.trial_id] = _Out(job, time.time())
        self.executor.start(
            Launch(
                trial_id=job.trial_id,
                run_id=trial.run_id,
                argv=argv,
                env=env,
                cwd=cfg.workdir or os.getcwd(),
                cpus=cfg.resources.cpus,
                gpus=cfg.resources.gpus,
                log_path=str(self._logs / f"trial-{job.trial_id:04d}.log"),
            )
        )
        self.save()
        self._event(f"trial {job.trial_id} {'resumed' if job.resume else 'started'}")

    # -- results ------------------------------------------------------------------

    def _ended(self, ended: Exit) -> None:
        out = self.out.pop(ended.trial_id, None)
        if out is None:
            return
        job, trial = out.job, self.state.trials[ended.trial_id]
        run = self.client.get_run(trial.run_id)
        primary = self.objectives[0].metric
        self._read(trial, run)
        if out.reported or (self._stopping is not None and ended.returncode in (0, -15, 143)):
            # told to the searcher at its rung already; or a pause or kill of the
            # experiment: not a result
            trial.state = "paused"
            self.save()
            return
        crashed = ended.returncode != 0 or run.status is RunStatus.FAILED
        short = job.resource is not None and trial.resource < job.resource
        if out.inplace and not crashed and (short or run.status is RunStatus.KILLED):
            # it had given up waiting and paused as the promotion was sent: run the
            # promotion as a new process, from the checkpoint it left
            self._retry.insert(0, job)
            trial.state = "running"
            self.save()
            return
        if crashed or primary not in trial.values:
            why = (
                f"exited with status {ended.returncode}"
                if crashed
                else f"never reported the metric {primary!r}"
            )
            self._failed(job, trial, why, ended.log_tail, retry=crashed)
            return
        paused = job.resource is not None and trial.resource >= job.resource
        trial.error = None
        trial.attempts = 0
        trial.state = "paused" if paused else "completed"
        if not paused:
            trial.ended_at = time.time()
        self.searcher.report(
            Result(job.trial_id, trial.resource, dict(trial.values), final=not paused)
        )
        self._update_best()
        self.save()
        self._event(
            f"trial {job.trial_id} {'paused at' if paused else 'completed with'} "
            f"{primary}={trial.values[primary]:.5g} (resource {trial.resource:g})"
        )

    def _read(self, trial: TrialRecord, run: Run) -> None:
        """The trial's resource (distinct steps of the first objective's metric)
        and its objective values (their last values), from the store."""
        try:
            history = self.client.get_metric_history(trial.run_id, self.objectives[0].metric)
            trial.resource = float(len(set(history.steps.tolist())))
        except Exception:
            trial.resource = 0.0
        metrics = run.metrics
        trial.values = {
            o.metric: float(metrics[o.metric]) for o in self.objectives if o.metric in metrics
        }

    def _check_rungs(self) -> None:
        """Trials waiting at their pause point: tell the searcher, and promote in
        place (``continue:N``) when its next job is that trial's promotion, else
        let it pause (and keep the job the searcher gave instead)."""
        now = time.monotonic()
        if self._stopping is not None or now - self._last_rungs < 0.2:
            return
        self._last_rungs = now
        primary = self.objectives[0].metric
        for trial_id, out in list(self.out.items()):
            job = out.job
            if out.reported or job.resource is None:
                continue
            trial = self.state.trials[trial_id]
            try:
                run = self.client.store.get_run(trial.run_id)
                at = float(run.tags.get(AT_RUNG_TAG) or 0)
            except Exception:  # a store hiccup: its exit is the result then
                continue
            if at < job.resource:
                continue
            self._read(trial, run)
            if primary not in trial.values:
                continue  # its exit will say why
            self.searcher.report(Result(trial_id, trial.resource, dict(trial.values)))
            nxt = self.searcher.suggest()
            if nxt is not None and nxt.trial_id == trial_id:
                goal = 0 if nxt.resource is None else math.ceil(nxt.resource)
                self.client.set_tag(trial.run_id, CONTROL_TAG, f"continue:{goal}")
                out.job, out.inplace = nxt, True
                trial.segments += 1
                what = (
                    f"trial {trial_id} promoted in place at {primary}={trial.values[primary]:.5g}"
                )
            else:
                self.client.set_tag(trial.run_id, CONTROL_TAG, "pause")
                out.reported = True
                trial.state = "paused"
                if nxt is not None:
                    self._retry.insert(0, nxt)
                what = f"trial {trial_id} paused at {primary}={trial.values[primary]:.5g}"
            self._update_best()
            self.save()
            self._event(f"{what} (resource {trial.resource:g})")

    def _failed(
        self, job: Job, trial: TrialRecord, why: str, log_tail: str, *, retry: bool
    ) -> None:
        trial.attempts += 1
        last = log_tail.strip().splitlines()[-1] if log_tail.strip() else ""
        trial.error = f"{why}{': ' + last if last else ''}"
        if retry and trial.attempts <= self.config.retries:
            self._retry.append(job)  # from its latest checkpoint, same run
            trial.state = "running"
            self.save()
            self._event(f"trial {job.trial_id} crashed ({why}); retry {trial.attempts}")
            return
        self._log_file(trial)
        run = self.client.get_run(trial.run_id)
        if not run.status.is_terminal or run.status is not RunStatus.FAILED:
            self.client.set_terminated(trial.run_id, RunStatus.FAILED)
        trial.state = "failed"
        trial.ended_at = time.time()
        self.searcher.fail(job.trial_id)
        self.save()
        self._event(f"trial {job.trial_id} failed: {trial.error}")

    def _log_file(self, trial: TrialRecord) -> None:
        path = self._logs / f"trial-{trial.trial_id:04d}.log"
        if path.is_file():
            try:
                self.client.log_artifact(trial.run_id, path, "logs")
            except Exception as e:  # pragma: no cover - best effort
                logger.warning("could not store the log of trial %d: %s", trial.trial_id, e)

    def _update_best(self) -> None:
        trials = list(self.state.trials.values())
        best = best_trial(trials, self.objectives)
        self.state.best = best.trial_id if best else None
        if len(self.objectives) > 1:
            self.state.front = [t.trial_id for t in pareto_front(trials, self.objectives)]

    # -- control ------------------------------------------------------------------

    def _poll_control(self) -> None:
        now = time.monotonic()
        if now - self._last_control < _CONTROL_EVERY:
            return
        self._last_control = now
        try:
            word = self.client.store.get_run(self.run_id).tags.get(CONTROL_TAG, "")
        except Exception as e:  # a store hiccup must not end the experiment
            logger.debug("could not read the control tag: %s", e)
            return
        if word in ("pause", "kill") and self._stopping is None:
            self.stop(word)

    def stop(self, how: str) -> None:
        """Pause (trials checkpoint and exit, resumable), kill the experiment, or
        end it when its time budget is spent (``how``: pause, kill, budget)."""
        self._stopping = how
        self._event(f"{how}: stopping {len(self.out)} running trials")
        for trial_id in list(self.out):
            self.executor.terminate(trial_id)
        deadline = time.monotonic() + _GRACE
        while self.out and time.monotonic() < deadline:
            for ended in self.executor.wait(timeout=0.5):
                self._ended(ended)
        for trial_id in list(self.out):
            self.executor.kill(trial_id)

    def _adopt_orphans(self, jobs: list[Job]) -> None:
        """Trials of a crashed driver may still run: ask them to pause, and wait."""
        waiting = []
        for job in jobs:
            trial = self.state.trials.get(job.trial_id)
            if trial is None:
                continue
            run = self.client.get_run(trial.run_id)  # marks a dead process's run KILLED
            if run.status is RunStatus.RUNNING:
                self.client.set_tag(trial.run_id, CONTROL_TAG, "pause")
                waiting.append(trial.run_id)
        deadline = time.monotonic() + _GRACE
        while waiting and time.monotonic() < deadline:
            time.sleep(0.5)
            waiting = [r for r in waiting if self.client.get_run(r).status is RunStatus.RUNNING]
        if waiting:
            raise StateError(
                f"trial runs {', '.join(waiting)} of this experiment are still running "
                "(another driver?); stop them before resuming"
            )

    # -- the end ------------------------------------------------------------------

    def finish(self) -> ExperimentState:
        state = self.state
        if self._stopping == "pause":
            state.status = "paused"
            status = RunStatus.KILLED
        else:  # killed; or the searcher is done, or the time budget is spent
            state.end("killed" if self._stopping == "kill" else "finished")
            status = RunStatus.KILLED if self._stopping == "kill" else RunStatus.FINISHED
        state.ended_at = time.time()
        self._update_best()
        self.save()
        self._summarise()
        clear_control(self.client, self.run_id)
        self.client.set_terminated(self.run_id, status)
        self._event(state.status)
        return state

    def _summarise(self) -> None:
        best = self.state.trials.get(self.state.best) if self.state.best is not None else None
        if best is None:
            return
        tags = {
            "shipyard.search.best_run": best.run_id,
            "shipyard.search.best_trial": str(best.trial_id),
        }
        self.client.store.set_tags(self.run_id, tags)
        metrics = {f"best.{k}": v for k, v in best.values.items()}
        for key, value in metrics.items():
            self.client.log_metric(self.run_id, key, value, step=len(self.state.trials))

    def save(self) -> None:
        self.state.searcher = self.searcher.state_dict()
        write_state(self.client, self.run_id, self.state)

    def _event(self, what: str) -> None:
        logger.info("experiment %s: %s", self.run_id, what)
        if self.on_event is not None:
            self.on_event(self, what)


def clear_control(client: TrackingClient, run_id: str) -> None:
    if CONTROL_TAG in client.store.get_run(run_id).tags:
        client.store.delete_tag(run_id, CONTROL_TAG)
