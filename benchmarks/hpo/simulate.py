"""Replay learning-curve tables: searchers in simulated time, W workers, asynchronous.

A *table* (``tables/<task>.npz``, made by ``make_tables.py``) holds, for every
configuration of a discrete space, its validation loss after each epoch
1..R and the measured seconds of one epoch. A *method* is a searcher under
test behind one small interface (:class:`Method`): ours through the
:class:`~shipyard.search._protocol.Searcher` protocol, Optuna's samplers and
pruners through ask / report / should_prune / tell.

**Time and compute.** Each epoch of a configuration costs its measured
seconds (``cost="seconds"``, the default) or 1 (``cost="epochs"``). W
simulated workers run segments epoch by epoch; whenever one is free the
method is asked for the next segment (asynchronous: nobody waits for a batch
or a rung). *Compute* is worker-seconds spent: with every worker busy it grows
W times faster than the clock; a worker with nothing to do (the method
answered None) spends none. The run stops when compute reaches the budget (an
epoch in progress then is lost) or when the method is finished.

**Equal budget.** ``budget_for(table, n_full)`` is the compute of ``n_full``
full trainings of an average configuration (``n_full * R * mean(seconds)``):
the same for every method, whatever it does with it.

**Incumbent.** The best validation value of *any epoch of any trial* run so
far (every trial validates after every epoch, whoever scheduled it: a Trial
API trial reports each epoch, and a checkpoint of that epoch exists), stamped
with the compute spent when that epoch ended. The same definition for every
method; pruned and paused trials count for what they ran.

**Normalised regret** ``(incumbent - best) / (reference - best)``: ``best`` is
the best value of the table (any configuration, any epoch), ``reference`` the
median over configurations of each one's best epoch. 0 = the table's best; 1 =
a typical configuration picked blindly and trained fully.

**Our searchers' space.** One :class:`~shipyard.search._space.Int` per table
parameter, the *index* into its grid (``lr`` 0..6 for 1e-4..1e-1): the grids
are log-spaced (or small and ordinal), so an index is the natural coordinate,
and every config maps onto exactly one table row. Optuna gets the same
coordinates (``suggest_int(name, 0, n-1)``).
"""

from __future__ import annotations

import heapq
import json
import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, Protocol

import numpy as np

TABLES_DIR = Path(__file__).resolve().parent / "tables"


class SimulationError(RuntimeError):
    """The method broke the protocol, or the simulation could not go on."""


# -- tables ---------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Table:
    """Learning curves of every configuration of a discrete space."""

    name: str
    metric: str
    values: np.ndarray  # (n_configs, epochs): the metric after each epoch (lower is better)
    seconds: np.ndarray  # (n_configs,): one epoch's measured cost
    params: dict[str, tuple[float, ...]]  # grid of each parameter, in row order
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def epochs(self) -> int:
        return int(self.values.shape[1])

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(len(g) for g in self.params.values())

    @property
    def n_configs(self) -> int:
        return int(self.values.shape[0])

    def row(self, indices: Mapping[str, Any]) -> int:
        """The row of the configuration whose grid indices are ``indices``."""
        try:
            idx = tuple(int(indices[k]) for k in self.params)
        except (KeyError, TypeError, ValueError) as e:
            raise SimulationError(f"config {dict(indices)!r} is not a point of {self.name}") from e
        return int(np.ravel_multi_index(idx, self.shape))

    def config(self, row: int) -> dict[str, float]:
        """The parameter values (not indices) of a row."""
        idx = np.unravel_index(row, self.shape)
        return {k: g[i] for (k, g), i in zip(self.params.items(), idx, strict=True)}

    @property
    def best(self) -> float:
        return float(self.values.min())

    @property
    def reference(self) -> float:
        return float(np.median(self.values.min(axis=1)))

    def regret(self, value: np.ndarray | float) -> np.ndarray:
        return (np.asarray(value, dtype=float) - self.best) / (self.reference - self.best)


@cache
def load_table(name: str) -> Table:
    """A table by task name (``tables/<name>.npz``) or by path."""
    path = Path(name) if name.endswith(".npz") else TABLES_DIR / f"{name}.npz"
    with np.load(path) as z:
        meta = json.loads(str(z["meta"]))
        params = {k: tuple(float(v) for v in z[f"param_{k}"]) for k in meta["param_order"]}
        return Table(
            meta.get("task", path.stem),
            meta.get("metric", "val_loss"),
            z["values"].astype(np.float64),
            z["seconds"].astype(np.float64),
            params,
            meta,
        )


def budget_for(table: Table, n_full: float, cost: str = "seconds") -> float:
    """The compute of ``n_full`` full trainings of an average configuration."""
    per_epoch = float(table.seconds.mean()) if cost == "seconds" else 1.0
    return n_full * table.epochs * per_epoch


def table_space(table: Table) -> Any:
    """Our searchers' space: one Int grid index per table parameter."""
    from shipyard.search._space import Int, Space

    return Space([Int(k, 0, len(g) - 1) for k, g in table.params.items()])


# -- methods --------------------------------------------------------------------------------


@dataclass
class Segment:
    """A stretch of one trial to run: epochs ``start+1 .. stop`` of table row ``row``."""

    handle: Any  # the method's own (trial id, Optuna trial...)
    row: int
    start: int
    stop: int


class Method(Protocol):
    """What the simulator drives."""

    def start(self) -> Segment | None:
        """The next segment to run, or None when nothing can start now."""

    def epoch(self, segment: Segment, epoch: int, value: float) -> bool:
        """An epoch of a running segment ended: True to go on, False to stop it here."""

    def end(self, segment: Segment, reached: int, value: float) -> None:
        """The segment ended at epoch ``reached`` (its stop, or stopped by ``epoch``)."""

    @property
    def finished(self) -> bool:
        """True once the method will never start anything again."""


class SearcherMethod:
    """One of our searchers (anything implementing the Searcher protocol).

    A job's ``resource`` is the epoch count the trial must reach (None: all R);
    ``resume=True`` continues the trial from the epoch it paused at, a new job
    starts it from 0. Each job is answered once, with the value of its last epoch,
    ``final`` when the trial reached R.
    """

    def __init__(self, searcher: Any, table: Table) -> None:
        from shipyard.search._protocol import Result

        self.searcher = searcher
        self.table = table
        self._result = Result
        self._metric = searcher.objectives[0].metric
        self._reached: dict[int, int] = {}
        self.jobs = 0
        self.answers = 0

    def start(self) -> Segment | None:
        job = self.searcher.suggest()
        if job is None:
            return None
        self.jobs += 1
        row = self.table.row(job.config)
        begin = self._reached.get(job.trial_id, 0) if job.resume else 0
        if job.resource is None:
            stop = self.table.epochs
        else:
            stop = min(self.table.epochs, max(1, math.ceil(float(job.resource) - 1e-9)))
        return Segment(job.trial_id, row, begin, max(stop, begin))

    def epoch(self, segment: Segment, epoch: int, value: float) -> bool:
        return True

    def end(self, segment: Segment, reached: int, value: float) -> None:
        self._reached[segment.handle] = reached
        self.answers += 1
        final = reached >= self.table.epochs
        self.searcher.report(
            self._result(segment.handle, float(reached), {self._metric: value}, final=final)
        )

    @property
    def finished(self) -> bool:
        return bool(self.searcher.finished)


class OptunaMethod:
    """An Optuna study: a sampler, and a pruner or none (every trial to the end).

    With a pruner each epoch is ``trial.report(value, epoch)`` then
    ``trial.should_prune()``; a pruned trial is told PRUNED (Optuna keeps its last
    intermediate value), a trial that reached R is told its last value. Each
    trial is one segment from epoch 0 to R.
    """

    def __init__(self, table: Table, sampler: Any, pruner: Any | None) -> None:
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self.table = table
        self._pruned_state = optuna.trial.TrialState.PRUNED
        self._prunes = pruner is not None
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.study = optuna.create_study(
                direction="minimize",
                sampler=sampler,
                pruner=pruner if pruner is not None else optuna.pruners.NopPruner(),
            )

    def start(self) -> Segment | None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            trial = self.study.ask()
            idx = {k: trial.suggest_int(k, 0, len(g) - 1) for k, g in self.table.params.items()}
        return Segment(trial, self.table.row(idx), 0, self.table.epochs)

    def epoch(self, segment: Segment, epoch: int, value: float) -> bool:
        if not self._prunes:
            return True
        trial = segment.handle
        trial.report(value, epoch)
        return epoch >= self.table.epochs or not trial.should_prune()

    def end(self, segment: Segment, reached: int, value: float) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if reached < self.table.epochs:
                self.study.tell(segment.handle, state=self._pruned_state)
            else:
                self.study.tell(segment.handle, value)

    @property
    def finished(self) -> bool:
        return False


def _ours(name: str, **options: Any) -> Callable[[Table, int, int], Method]:
    def build(table: Table, seed: int, max_trials: int) -> Method:
        from shipyard.search._protocol import Objective
        from shipyard.search._searchers import make_searcher

        searcher = make_searcher(
            name,
            table_space(table),
            [Objective(table.metric, "min")],
            max_trials=max_trials,
            max_resource=float(table.epochs),
            min_resource=1.0,
            seed=seed,
            **options,
        )
        return SearcherMethod(searcher, table)

    return build


def optuna_sampler(sampler: str, seed: int) -> Any:
    """Optuna's TPE (``"tpe"``) or random sampler, seeded (its warnings silenced)."""
    import optuna

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if sampler == "tpe":
            return optuna.samplers.TPESampler(seed=seed)
        return optuna.samplers.RandomSampler(seed=seed)


def _optuna(sampler: str, pruner: str | None) -> Callable[[Table, int, int], Method]:
    def build(table: Table, seed: int, max_trials: int) -> Method:
        import optuna

        s = optuna_sampler(sampler, seed)
        r = table.epochs
        p = {
            None: None,
            "median": lambda: optuna.pruners.MedianPruner(),
            "sha": lambda: optuna.pruners.SuccessiveHalvingPruner(
                min_resource=1, reduction_factor=3
            ),
            "hyperband": lambda: optuna.pruners.HyperbandPruner(
                min_resource=1, max_resource=r, reduction_factor=3
            ),
        }[pruner]
        return OptunaMethod(table, s, p() if p is not None else None)

    return build


#: Every method of the table benchmark: name -> build(table, seed, max_trials).
#: Optuna: TPESampler and RandomSampler with their defaults (seeded); the SH and
#: Hyperband pruners with reduction factor 3 and min resource 1 epoch, like our
#: ASHA (Optuna's own defaults: 4, and a min resource guessed from the first trial).
METHODS: dict[str, Callable[[Table, int, int], Method]] = {
    "random": _ours("random"),
    "sobol": _ours("sobol"),
    "tpe": _ours("tpe"),
    "asha": _ours("asha"),  # the default: mode standard, sampler random
    "asha-aggressive": _ours("asha", mode="aggressive"),
    "asha-conservative": _ours("asha", mode="conservative"),
    "asha-tpe": _ours("asha", sampler="tpe"),
    "optuna-random": _optuna("random", None),
    "optuna-tpe": _optuna("tpe", None),
    "optuna-tpe+median": _optuna("tpe", "median"),
    "optuna-tpe+sha": _optuna("tpe", "sha"),
    "optuna-tpe+hyperband": _optuna("tpe", "hyperband"),
}
OPTUNA_PRUNED = ("optuna-tpe", "optuna-tpe+median", "optuna-tpe+sha", "optuna-tpe+hyperband")


# -- the simulator --------------------------------------------------------------------------


@dataclass
class Trace:
    """What one simulated search did."""

    budget: float
    compute: np.ndarray  # compute spent when the incumbent improved, increasing
    incumbent: np.ndarray  # the incumbent from then on, decreasing
    spent: float  # compute spent in all (== budget unless the method finished early)
    wall: float  # simulated time at the end
    epochs: int  # epochs completed
    segments: int  # segments started
    trials: int  # distinct trials started
    max_busy: int  # most workers busy at once

    def at(self, fractions: np.ndarray) -> np.ndarray:
        """The incumbent after ``fractions`` of the budget (inf before the first epoch)."""
        i = np.searchsorted(self.compute, np.asarray(fractions) * self.budget, side="right")
        padded = np.concatenate([[np.inf], self.incumbent])
        return padded[i]


def simulate(
    table: Table,
    method: Method,
    *,
    workers: int,
    budget: float,
    cost: str = "seconds",
) -> Trace:
    """Run ``method`` on ``table`` with ``workers`` workers until ``budget`` compute.

    Returns:
        The incumbent against compute, and counters.

    Raises:
        SimulationError: the method stalls (nothing running, nothing to start,
            not finished) or proposes a point outside the table.
    """
    if cost not in ("seconds", "epochs"):
        raise ValueError(f"cost: expected 'seconds' or 'epochs'; got {cost!r}")
    per_epoch = table.seconds if cost == "seconds" else np.ones(table.n_configs)
    values = table.values
    n_epochs = table.epochs
    now = spent = 0.0
    events: list[tuple[float, int, int]] = []  # (time, sequence, worker)
    running: dict[int, tuple[Segment, int]] = {}  # worker -> (segment, epochs reached)
    free = list(range(workers - 1, -1, -1))
    seq = 0
    best = math.inf
    comp: list[float] = []
    inc: list[float] = []
    epochs = segments = 0
    trials: set[Any] = set()
    max_busy = 0

    def launch() -> None:
        nonlocal seq, segments, max_busy
        while free:
            seg = method.start()
            if seg is None:
                return
            if not 0 <= seg.row < table.n_configs or not 0 <= seg.start <= seg.stop <= n_epochs:
                raise SimulationError(f"segment out of the table: {seg}")
            segments += 1
            trials.add(getattr(seg.handle, "number", seg.handle))
            if seg.stop == seg.start:  # nothing to run: answer at once, at no cost
                method.end(seg, seg.start, float(values[seg.row, seg.start - 1]))
                continue
            w = free.pop()
            running[w] = (seg, seg.start)
            max_busy = max(max_busy, len(running))
            heapq.heappush(events, (now + per_epoch[seg.row], seq, w))
            seq += 1

    launch()
    while True:
        if not events:
            if method.finished:
                break
            raise SimulationError("the method starts nothing, runs nothing and is not finished")
        t, _, w = heapq.heappop(events)
        busy = len(running)
        if spent + busy * (t - now) > budget * (1 + 1e-12):
            now += (budget - spent) / busy
            spent = budget
            break
        spent += busy * (t - now)
        now = t
        seg, reached = running[w]
        reached += 1
        epochs += 1
        value = float(values[seg.row, reached - 1])
        if value < best:
            best = value
            comp.append(spent)
            inc.append(value)
        go_on = method.epoch(seg, reached, value)
        if reached >= seg.stop or not go_on:
            del running[w]
            free.append(w)
            method.end(seg, reached, value)
            launch()
        else:
            running[w] = (seg, reached)
            heapq.heappush(events, (now + per_epoch[seg.row], seq, w))
            seq += 1
    return Trace(
        budget,
        np.asarray(comp),
        np.asarray(inc),
        spent,
        now,
        epochs,
        segments,
        len(trials),
        max_busy,
    )


@dataclass(frozen=True)
class Run:
    """One simulation to do (picklable, for a process pool)."""

    task: str
    method: str
    workers: int
    seed: int
    n_full: float
    cost: str = "seconds"


def run_one(run: Run, fractions: Sequence[float]) -> dict[str, Any]:
    """Simulate one run; its regret at each fraction of the budget and counters."""
    table = load_table(run.task)
    budget = budget_for(table, run.n_full, run.cost)
    # enough trials that the budget, not max_trials, ends every search
    max_trials = table.n_configs
    method = METHODS[run.method](table, run.seed, max_trials)
    trace = simulate(table, method, workers=run.workers, budget=budget, cost=run.cost)
    return {
        "run": run,
        "regret": table.regret(trace.at(np.asarray(fractions))),
        "spent": trace.spent / budget,
        "trials": trace.trials,
        "epochs": trace.epochs,
        "max_busy": trace.max_busy,
    }
