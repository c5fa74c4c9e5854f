"""What a searcher, the experiment driver and the benchmark simulator agree on.

A searcher is a pure state machine: it never launches anything and never reads
the clock. The driver (``_experiment.py``) asks it for :class:`Job` objects,
runs them through an executor, and tells it each :class:`Result`; the
benchmark simulator (``benchmarks/hpo/``) drives the very same objects against
replayed learning curves in simulated time. Everything a searcher holds goes
into :meth:`Searcher.state_dict` as JSON, so a crashed experiment resumes where
it stood.

Resource is counted in reports of the first objective's metric: for the Trial
API one validation (an epoch, by default); for the Core API one
``ctx.report(...)`` that contains the metric. A :class:`Job` with
``resource=3`` runs its trial until the metric was reported 3 times in total
(counting earlier segments of the same trial), then the trial checkpoints and
pauses; a promotion continues it from that checkpoint (``resume=True``).
"""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = ["Job", "Objective", "Result", "Searcher"]


@dataclass(frozen=True)
class Objective:
    """A metric to optimise, in which direction."""

    metric: str
    mode: Literal["min", "max"] = "min"

    def better(self, a: float, b: float) -> bool:
        """True when ``a`` is strictly better than ``b``."""
        return a < b if self.mode == "min" else a > b

    def sign(self) -> float:
        """+1 for min, -1 for max: ``sign() * value`` is always minimised."""
        return 1.0 if self.mode == "min" else -1.0


@dataclass(frozen=True)
class Job:
    """One segment of a trial to run.

    ``resource`` is the total the trial should have reached when this segment
    ends (None: run to the trial's own end, its full budget). ``resume`` says
    the trial ran before and continues from its latest checkpoint (a promotion
    in ASHA); a new trial has ``resume=False``.
    """

    trial_id: int
    config: Mapping[str, Any]
    resource: float | None = None
    resume: bool = False


@dataclass(frozen=True)
class Result:
    """What a segment of a trial produced.

    ``values`` maps objective metric names to the latest reported value (the
    driver adds production figures such as ``contract.latency_p99_ms`` when the
    search declares them as objectives). ``resource`` is what the trial reached.
    ``final`` is True when the trial is over for good: it reached its full budget
    or stopped by itself (early stopping) before the job's resource.
    A metric missing from ``values`` means the trial never reported it.
    """

    trial_id: int
    resource: float
    values: Mapping[str, float] = field(default_factory=dict)
    final: bool = False


class Searcher(abc.ABC):
    """Proposes trials and decides which continue.

    The driver's loop::

        while not searcher.finished:
            while executor has a free slot and (job := searcher.suggest()):
                run(job)
            for each segment that ended:  searcher.report(result) or searcher.fail(id)

    Contract:

    * ``suggest()`` returns the next job, or None when nothing can start now
      (waiting for results, or the budget is spent). It never returns a job for
      a trial that has one outstanding.
    * Every job is answered exactly once, by ``report`` or ``fail``.
    * ``finished`` is True once no job is outstanding and ``suggest`` will never
      return one again.
    * ``pending()`` lists the jobs suggested and not yet answered: after
      ``load_state_dict`` the driver runs them again.
    * ``state_dict()`` is JSON (dicts, lists, str, numbers, bools, None) and
      ``load_state_dict(state_dict())`` on a fresh searcher built with the same
      arguments continues identically (same later suggestions).
    """

    objectives: Sequence[Objective]

    @abc.abstractmethod
    def suggest(self) -> Job | None: ...

    @abc.abstractmethod
    def report(self, result: Result) -> None: ...

    @abc.abstractmethod
    def fail(self, trial_id: int) -> None: ...

    @property
    @abc.abstractmethod
    def finished(self) -> bool: ...

    @abc.abstractmethod
    def pending(self) -> list[Job]: ...

    @abc.abstractmethod
    def state_dict(self) -> dict[str, Any]: ...

    @abc.abstractmethod
    def load_state_dict(self, state: Mapping[str, Any]) -> None: ...
