"""The search benchmark's simulator (benchmarks/hpo/simulate.py) on a tiny synthetic table."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from shipyard.search._protocol import Job, Objective, Result, Searcher

_PATH = Path(__file__).resolve().parents[2] / "benchmarks" / "hpo" / "simulate.py"


def _load_simulator() -> Any:
    spec = importlib.util.spec_from_file_location("_hpo_simulate", _PATH)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


sim = _load_simulator()

# 3 configs x 3 epochs; one epoch costs 1, 2 and 0.5 seconds
VALUES = np.array([[3.0, 2.0, 1.0], [5.0, 4.0, 0.5], [2.0, 2.0, 2.0]])
SECONDS = np.array([1.0, 2.0, 0.5])


def _table() -> Any:
    return sim.Table("tiny", "loss", VALUES, SECONDS, {"a": (0.0, 1.0, 2.0)})


class TwoRungs(Searcher):
    """Starts trial i on config i to 1 epoch, then resumes it to the end (3 epochs);
    promotions first. Checks the protocol as it goes."""

    def __init__(self, n: int) -> None:
        self.objectives = (Objective("loss"),)
        self.n = n
        self.started = 0
        self.to_promote: list[int] = []
        self.outstanding: set[int] = set()
        self.max_outstanding = 0
        self.results: list[Result] = []
        self.jobs: list[Job] = []

    def suggest(self) -> Job | None:
        if self.to_promote:
            i = self.to_promote.pop(0)
            job = Job(i, {"a": i % 3}, None, resume=True)
        elif self.started < self.n:
            i = self.started
            self.started += 1
            job = Job(i, {"a": i % 3}, 1.0)
        else:
            return None
        assert job.trial_id not in self.outstanding, "a trial with a job outstanding"
        self.outstanding.add(job.trial_id)
        self.max_outstanding = max(self.max_outstanding, len(self.outstanding))
        self.jobs.append(job)
        return job

    def report(self, result: Result) -> None:
        assert result.trial_id in self.outstanding, "a job answered twice, or never asked"
        self.outstanding.remove(result.trial_id)
        self.results.append(result)
        if not result.final:
            self.to_promote.append(result.trial_id)

    def fail(self, trial_id: int) -> None:
        raise AssertionError("the simulator never fails a trial")

    @property
    def finished(self) -> bool:
        return not self.outstanding and not self.to_promote and self.started >= self.n

    def pending(self) -> list[Job]:
        return []

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        pass


def _run(n: int, workers: int, budget: float, cost: str = "seconds") -> tuple[Any, TwoRungs]:
    searcher = TwoRungs(n)
    method = sim.SearcherMethod(searcher, _table())
    trace = sim.simulate(_table(), method, workers=workers, budget=budget, cost=cost)
    return trace, searcher


@pytest.mark.parametrize("workers", [1, 2, 4])
def test_every_job_is_answered_once_with_the_epoch_it_reached(workers: int) -> None:
    """Each job gets exactly one result: resource 1 then 3 (final), the value of that epoch."""
    _, searcher = _run(6, workers, budget=1e9)
    assert len(searcher.results) == len(searcher.jobs) == 12
    assert not searcher.outstanding
    for r in searcher.results:
        row = r.trial_id % 3
        assert r.values == {"loss": VALUES[row, int(r.resource) - 1]}
        assert r.final == (r.resource == 3)
    assert sorted(r.trial_id for r in searcher.results if r.final) == list(range(6))


@pytest.mark.parametrize("workers", [1, 2, 4])
def test_no_more_jobs_run_at_once_than_workers(workers: int) -> None:
    """At most W jobs are outstanding, and W are busy when there is work enough."""
    trace, searcher = _run(6, workers, budget=1e9)
    assert searcher.max_outstanding <= workers
    assert trace.max_busy == workers


@pytest.mark.parametrize("workers", [1, 2, 4])
def test_compute_is_every_epoch_run_at_its_cost_resumed_epochs_not_twice(workers: int) -> None:
    """A resumed trial pays only its new epochs: 6 trials x 3 epochs at their seconds."""
    trace, _ = _run(6, workers, budget=1e9)
    assert trace.epochs == 18
    assert trace.spent == pytest.approx(2 * 3 * SECONDS.sum())
    assert trace.wall >= trace.spent / workers - 1e-9
    epochs_trace, _ = _run(6, workers, budget=1e9, cost="epochs")
    assert epochs_trace.spent == pytest.approx(18)


def test_one_worker_wall_time_is_the_compute() -> None:
    """With one worker nothing overlaps: the clock and the compute agree."""
    trace, _ = _run(3, 1, budget=1e9)
    assert trace.wall == pytest.approx(trace.spent) == pytest.approx(3 * SECONDS.sum())


def test_the_budget_stops_the_run_where_it_is_spent() -> None:
    """An epoch that would pass the budget is not counted; the compute ends at the budget."""
    # 1 worker: trial 0 epoch 1 (1 s), resumed epochs 2-3 (2 s), trial 1 epoch 1 (2 s) ...
    trace, searcher = _run(6, 1, budget=4.0)
    assert trace.spent == pytest.approx(4.0)
    assert trace.epochs == 3
    assert [r.trial_id for r in searcher.results] == [0, 0]


def test_the_incumbent_is_the_best_epoch_seen_stamped_with_its_compute() -> None:
    """Best value of any epoch so far, against the compute spent when it ended."""
    trace, _ = _run(3, 1, budget=10.5)  # exactly what the 3 trials cost
    # order: t0 e1=3 (1 s), t0 e2=2, e3=1 (3 s), t1 e1=5, t1 e2=4, e3=0.5 (9 s), t2 ...
    assert list(trace.incumbent) == [3.0, 2.0, 1.0, 0.5]
    assert list(trace.compute) == pytest.approx([1.0, 2.0, 3.0, 9.0])
    assert list(trace.at(np.array([0.0, 1.5 / 10.5, 1.0]))) == [np.inf, 3.0, 0.5]


def test_a_stalled_searcher_is_an_error() -> None:
    """Nothing running, nothing to start, not finished: the simulation says so."""

    class Stalled(TwoRungs):
        @property
        def finished(self) -> bool:
            return False

    method = sim.SearcherMethod(Stalled(1), _table())
    with pytest.raises(sim.SimulationError, match="starts nothing"):
        sim.simulate(_table(), method, workers=2, budget=1e9)


def test_our_asha_runs_to_its_end_on_the_simulator() -> None:
    """The real ASHA searcher: every job answered, nothing pending, finished."""
    searchers = pytest.importorskip("shipyard.search._searchers")
    table = _table()
    searcher = searchers.make_searcher(
        "asha",
        sim.table_space(table),
        [Objective("loss")],
        max_trials=3,
        max_resource=3.0,
        divisor=3,
    )
    trace = sim.simulate(table, sim.SearcherMethod(searcher, table), workers=2, budget=1e9)
    assert searcher.finished
    assert searcher.pending() == []
    assert trace.trials == 3
    assert trace.spent <= 3 * 3 * SECONDS.max()
