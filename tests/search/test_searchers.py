"""Searchers: grid, random, quasi-random, adaptive ASHA and TPE, driven without any clock."""

from __future__ import annotations

import heapq
import json
import math
import sys
from collections.abc import Callable, Mapping
from typing import Any

import pytest

from shipyard.errors import InvalidArgumentError, StateError
from shipyard.search._protocol import Job, Objective, Result, Searcher
from shipyard.search._searchers import (
    AshaSearcher,
    TpeProposer,
    TpeSearcher,
    bracket_quotas,
    make_searcher,
    rung_budgets,
)
from shipyard.search._space import Categorical, Float, Int, Space

LOSS = [Objective("loss")]

SPACE = Space(
    [
        Categorical("opt", ("sgd", "adam")),
        Float("lr", 1e-4, 1.0, log=True),
        Float("momentum", 0.0, 0.9, when={"opt": ("sgd",)}),
        Float("x", -1.0, 1.0),
        Int("layers", 1, 4),
    ]
)


def quality(config: Mapping[str, Any]) -> float:
    """A smooth loss with its minimum at lr=1e-2, x=0.3, adam, 2 layers."""
    loss = (math.log10(config["lr"]) + 2) ** 2 + (config["x"] - 0.3) ** 2
    loss += 0.1 * abs(config["layers"] - 2)
    return loss + (0.2 + 0.2 * config["momentum"] if config["opt"] == "sgd" else 0.0)


def curve(config: Mapping[str, Any], resource: float) -> float:
    """A fake learning curve: converges to quality(config) as the resource grows."""
    return quality(config) + 2.0 / (1.0 + resource)


def simulate(
    searcher: Searcher,
    workers: int,
    max_resource: float,
    *,
    fail: Callable[[Job], bool] | None = None,
    value_at: Callable[[Mapping[str, Any], float], float] = curve,
) -> dict[int, tuple[float, float]]:
    """Run a searcher against fake learning curves in simulated time.

    Each job takes as long as the resource it adds. Checks the protocol as it
    goes; returns the resource and value each trial ended at.
    """
    clock, seq = 0.0, 0
    running: list[tuple[float, int, Job]] = []
    reached: dict[int, tuple[float, float]] = {}
    suggested = answered = 0
    while not searcher.finished:
        while len(running) < workers and (job := searcher.suggest()) is not None:
            suggested += 1
            assert all(job.trial_id != j.trial_id for _, _, j in running), "one job per trial"
            assert job.resume == (job.trial_id in reached)
            start = reached[job.trial_id][0] if job.resume else 0.0
            target = max_resource if job.resource is None else job.resource
            assert target > start
            heapq.heappush(running, (clock + target - start, seq, job))
            seq += 1
        if not running:  # a used-up space shows when suggest finds no new config
            assert searcher.finished, "nothing runs and nothing starts, yet not finished"
            break
        assert sorted(j.trial_id for j in searcher.pending()) == sorted(
            j.trial_id for _, _, j in running
        )
        clock, _, job = heapq.heappop(running)
        answered += 1
        if fail is not None and fail(job):
            searcher.fail(job.trial_id)
            continue
        target = max_resource if job.resource is None else job.resource
        value = value_at(job.config, target)
        reached[job.trial_id] = (target, value)
        searcher.report(Result(job.trial_id, target, {"loss": value}, final=job.resource is None))
    assert suggested == answered
    assert not searcher.pending()
    assert searcher.suggest() is None
    return reached


# -- make_searcher -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "kwargs", "message"),
    [
        ("hyperband", {}, "unknown searcher 'hyperband'; expected one of 'grid'"),
        ("random", {"divisor": 3}, "the 'random' searcher has no option 'divisor'"),
        ("asha", {"mode": "reckless"}, "mode: expected one of 'aggressive', 'standard'"),
        ("asha", {"divisor": 1}, r"divisor: expected a number > 1"),
        ("asha", {"sampler": "cmaes"}, "sampler: expected one of 'random', 'sobol', 'tpe'"),
        ("asha", {"max_rungs": 0}, "max_rungs: expected an integer >= 1"),
        ("asha", {"n_startup_trials": 5}, "n_startup_trials is an option of the TPE sampler"),
        ("asha", {"min_resource": 10.0}, "expected max_resource >= min_resource"),
        ("asha", {"min_resource": 0.0}, "min_resource: expected a number > 0"),
        ("grid", {"float_points": 0}, "float_points: expected an integer >= 1"),
        ("tpe", {"max_trials": 0}, "max_trials: expected an integer >= 1"),
        ("sobol", {"seed": -1}, "seed: expected an integer >= 0"),
    ],
)
def test_bad_options_say_what_was_expected(name: str, kwargs: dict[str, Any], message: str) -> None:
    """An unknown searcher, option or out-of-range value raises InvalidArgumentError."""
    args: dict[str, Any] = {"max_trials": 4, "max_resource": 9.0, **kwargs}
    with pytest.raises(InvalidArgumentError, match=message):
        make_searcher(name, SPACE, LOSS, **args)


def test_objectives_are_required() -> None:
    """A searcher needs at least one objective, each metric once."""
    with pytest.raises(InvalidArgumentError, match="at least one Objective"):
        make_searcher("random", SPACE, [], max_trials=2, max_resource=1.0)
    with pytest.raises(InvalidArgumentError, match="distinct metrics"):
        make_searcher("random", SPACE, LOSS * 2, max_trials=2, max_resource=1.0)


def test_missing_optuna_names_the_install(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without Optuna, a TPE searcher says what to pip install."""
    monkeypatch.setitem(sys.modules, "optuna", None)
    with pytest.raises(InvalidArgumentError, match=r"pip install 'shipyard\[optuna\]'"):
        make_searcher("tpe", SPACE, LOSS, max_trials=2, max_resource=1.0)
    with pytest.raises(InvalidArgumentError, match=r"pip install 'shipyard\[optuna\]'"):
        make_searcher("asha", SPACE, LOSS, max_trials=2, max_resource=9.0, sampler="tpe")


def test_missing_scipy_names_the_install(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without SciPy, quasi-random search says what to pip install."""
    monkeypatch.setitem(sys.modules, "scipy.stats", None)
    with pytest.raises(InvalidArgumentError, match=r"pip install 'shipyard\[search\]'"):
        make_searcher("sobol", SPACE, LOSS, max_trials=2, max_resource=1.0)


# -- the protocol, for every searcher ------------------------------------------------------

ALL = [
    ("grid", {"float_points": 2}),
    ("random", {}),
    ("sobol", {}),
    ("tpe", {"n_startup_trials": 4}),
    ("asha", {}),
    ("asha", {"sampler": "sobol", "mode": "conservative"}),
    ("asha", {"sampler": "tpe", "n_startup_trials": 4, "mode": "aggressive"}),
]


def _build(name: str, options: dict[str, Any]) -> Searcher:
    return make_searcher(
        name, SPACE, LOSS, max_trials=24, max_resource=9.0, min_resource=1.0, seed=3, **options
    )


def _step(searcher: Searcher, log: list[Any]) -> bool:
    """Keep 3 jobs out; answer the oldest (every 7th trial fails). False when done."""
    while len(searcher.pending()) < 3 and (job := searcher.suggest()) is not None:
        log.append(job)
    if not searcher.pending():
        return False
    job = searcher.pending()[0]
    if job.trial_id % 7 == 3:
        searcher.fail(job.trial_id)
        log.append(("fail", job.trial_id))
    else:
        resource = 9.0 if job.resource is None else job.resource
        result = Result(
            job.trial_id,
            resource,
            {"loss": curve(job.config, resource)},
            final=job.resource is None,
        )
        searcher.report(result)
        log.append(result)
    return True


@pytest.mark.parametrize(("name", "options"), ALL)
def test_state_round_trip_continues_identically(name: str, options: dict[str, Any]) -> None:
    """A fresh searcher loaded with state_dict() mid-run makes the same later suggestions."""
    original = _build(name, options)
    log: list[Any] = []
    for _ in range(12):
        assert _step(original, log)
    state = json.loads(json.dumps(original.state_dict(), allow_nan=False))
    restored = _build(name, options)
    restored.load_state_dict(state)
    assert restored.pending() == original.pending()
    later_a: list[Any] = []
    later_b: list[Any] = []
    while _step(original, later_a):
        pass
    while _step(restored, later_b):
        pass
    assert later_a == later_b
    assert later_a
    assert original.finished
    assert restored.finished
    assert json.dumps(original.state_dict()) == json.dumps(restored.state_dict())


@pytest.mark.parametrize(("name", "options"), ALL)
def test_same_seed_same_run(name: str, options: dict[str, Any]) -> None:
    """Two searchers built alike and told the same results suggest the same jobs."""
    a, b = _build(name, options), _build(name, options)
    log_a: list[Any] = []
    log_b: list[Any] = []
    while _step(a, log_a):
        pass
    while _step(b, log_b):
        pass
    assert log_a == log_b


@pytest.mark.parametrize(("name", "options"), ALL)
def test_answers_must_match_a_job(name: str, options: dict[str, Any]) -> None:
    """Reporting or failing a trial with no outstanding job is a StateError."""
    searcher = _build(name, options)
    job = searcher.suggest()
    assert job is not None
    with pytest.raises(StateError, match="trial 5 has no outstanding job"):
        searcher.report(Result(5, 1.0, {"loss": 1.0}))
    searcher.fail(job.trial_id)
    with pytest.raises(StateError, match=f"trial {job.trial_id} has no outstanding job"):
        searcher.fail(job.trial_id)


def test_state_of_another_searcher_is_refused() -> None:
    """Loading a random searcher's state into a grid searcher raises InvalidArgumentError."""
    state = _build("random", {}).state_dict()
    with pytest.raises(InvalidArgumentError, match="'random' searcher into a 'grid'"):
        _build("grid", {}).load_state_dict(state)
    asha = _build("asha", {}).state_dict()
    other = make_searcher("asha", SPACE, LOSS, max_trials=24, max_resource=27.0)
    with pytest.raises(InvalidArgumentError, match="rungs"):
        other.load_state_dict(asha)


# -- grid, random, sobol -------------------------------------------------------------------


def test_grid_runs_every_config_once() -> None:
    """The grid searcher suggests each grid config once, to its full budget, then finishes."""
    grid = SPACE.grid(2)
    searcher = make_searcher("grid", SPACE, LOSS, max_trials=1000, max_resource=1.0, float_points=2)
    jobs = []
    while (job := searcher.suggest()) is not None:
        jobs.append(job)
    assert [dict(j.config) for j in jobs] == grid
    assert all(j.resource is None and not j.resume for j in jobs)
    assert [j.trial_id for j in jobs] == list(range(len(grid)))
    assert not searcher.finished
    for j in jobs:
        searcher.report(Result(j.trial_id, 1.0, {"loss": quality(j.config)}, final=True))
    assert searcher.finished


def test_grid_is_capped_by_max_trials() -> None:
    """max_trials stops the grid early."""
    searcher = make_searcher("grid", SPACE, LOSS, max_trials=3, max_resource=1.0)
    assert len(simulate(searcher, 2, 1.0)) == 3


def test_random_never_repeats_a_config() -> None:
    """Random search never suggests the same config twice and stops when the space is used up."""
    space = Space([Categorical("a", (1, 2, 3)), Int("b", 0, 3)])
    searcher = make_searcher("random", space, LOSS, max_trials=50, max_resource=1.0, seed=1)
    jobs = []
    while (job := searcher.suggest()) is not None:
        jobs.append(job)
    keys = [space.key(j.config) for j in jobs]
    assert len(keys) == len(set(keys)) == 12
    assert not searcher.finished
    for j in jobs:
        searcher.fail(j.trial_id)
    assert searcher.finished


def test_sobol_spreads_its_points() -> None:
    """The first 2^m quasi-random points put one point in each 1/2^m of a range."""
    space = Space([Float("u", 0.0, 1.0)])
    searcher = make_searcher("sobol", space, LOSS, max_trials=16, max_resource=1.0, seed=5)
    points = sorted(job.config["u"] for job in iter(searcher.suggest, None))
    assert [math.floor(u * 16) for u in points] == list(range(16))
    other = make_searcher("sobol", space, LOSS, max_trials=16, max_resource=1.0, seed=6)
    assert points != sorted(job.config["u"] for job in iter(other.suggest, None))


# -- ASHA ----------------------------------------------------------------------------------


def test_rung_budgets() -> None:
    """Budgets are max·η^-(n-1-k), integers when min and max are, at most max_rungs of them."""
    assert rung_budgets(1, 81, 3, 5) == (1, 3, 9, 27, 81)
    assert rung_budgets(1, 100, 3, 5) == (1, 4, 11, 33, 100)
    assert rung_budgets(1, 81, 3, 3) == (9, 27, 81)
    assert rung_budgets(1, 10, 3, 5) == (1, 3, 10)
    assert rung_budgets(2, 5, 3, 5) == (5,)
    assert rung_budgets(1, 3, 1.1, 5) == (2, 3)  # equal budgets after rounding merge
    assert rung_budgets(0.5, 4.5, 3, 5) == pytest.approx((0.5, 1.5, 4.5))


@pytest.mark.parametrize(
    ("mode", "brackets", "first_resources"),
    [
        ("aggressive", 1, {1}),
        ("standard", 4, {1, 3, 9, 27}),
        ("conservative", 5, {1, 3, 9, 27, None}),
    ],
)
def test_modes_set_the_brackets(
    mode: str, brackets: int, first_resources: set[float | None]
) -> None:
    """Bracket s starts trials s rungs higher; the mode sets how many brackets run."""
    searcher = make_searcher("asha", SPACE, LOSS, max_trials=100, max_resource=81.0, mode=mode)
    assert isinstance(searcher, AshaSearcher)
    assert searcher.budgets == (1, 3, 9, 27, 81)
    assert searcher.n_brackets == brackets
    assert searcher.bracket_budgets(brackets - 1) == (1, 3, 9, 27, 81)[brackets - 1 :]
    jobs = list(iter(searcher.suggest, None))
    assert len(jobs) == 100
    assert not any(j.resume for j in jobs)
    assert {j.resource for j in jobs} == first_resources
    by_resource = [sum(j.resource == r for j in jobs) for r in (1, 3, 9, 27, None)][:brackets]
    assert by_resource == searcher.quotas
    # every bracket gets trials from the start, the aggressive one the most
    assert {j.resource for j in jobs[: 2 * brackets]} == first_resources


def test_bracket_quotas_follow_hyperband() -> None:
    """max_trials is split like Hyperband: more trials to the brackets with more rungs."""
    quotas = bracket_quotas(100, 3, [5, 4, 3, 2, 1])
    assert sum(quotas) == 100
    assert quotas == sorted(quotas, reverse=True)
    assert quotas[1:] == [23, 10, 5, 3]
    assert bracket_quotas(2, 3, [5, 4, 3]) == [2, 0, 0]


def _asha(**options: Any) -> AshaSearcher:
    space = Space([Float("x", 0.0, 1.0)])
    searcher = make_searcher(
        "asha",
        space,
        options.pop("objectives", LOSS),
        max_trials=9,
        max_resource=9.0,
        mode="aggressive",
        **options,
    )
    assert isinstance(searcher, AshaSearcher)
    return searcher


def test_asha_promotes_the_top_third_by_resuming() -> None:
    """Only the top ⌊n/η⌋ of a rung are promoted, as resume jobs of the same trials with the
    next rung's resource; the top rung's job runs to the end."""
    searcher = _asha()
    jobs = list(iter(searcher.suggest, None))
    assert [(j.trial_id, j.resource, j.resume) for j in jobs] == [(i, 1, False) for i in range(9)]
    losses = [5.0, 3.0, 8.0, 0.5, 7.0, 1.0, 6.0, 4.0, 2.0]
    for i in range(9):
        searcher.report(Result(i, 1.0, {"loss": losses[i]}))
    promotions = list(iter(searcher.suggest, None))
    assert promotions == [Job(i, jobs[i].config, resource=3, resume=True) for i in (3, 5, 8)]
    assert not searcher.finished
    for i, loss in [(3, 0.4), (5, 0.9), (8, 0.2)]:
        searcher.report(Result(i, 3.0, {"loss": loss}))
    assert list(iter(searcher.suggest, None)) == [Job(8, jobs[8].config, None, resume=True)]
    assert not searcher.finished
    searcher.report(Result(8, 9.0, {"loss": 0.1}, final=True))
    assert searcher.finished


def test_asha_promotes_asynchronously() -> None:
    """ASHA does not wait for a rung to fill: a trial in the top third of the results so far
    is promoted at once (and may later be overtaken, as in Li et al.)."""
    searcher = _asha()
    jobs = list(iter(searcher.suggest, None))
    losses = [5.0, 3.0, 8.0, 0.5, 7.0, 1.0, 6.0, 4.0, 2.0]
    for i in range(2):
        searcher.report(Result(i, 1.0, {"loss": losses[i]}))
    assert searcher.suggest() is None  # 2 results: ⌊2/3⌋ = 0 to promote
    searcher.report(Result(2, 1.0, {"loss": losses[2]}))
    assert searcher.suggest() == Job(1, jobs[1].config, resource=3, resume=True)
    for i in range(3, 9):
        searcher.report(Result(i, 1.0, {"loss": losses[i]}))
    # 9 results: the top 3 are now trials 3, 5 and 8; trial 1 was promoted already
    assert [j.trial_id for j in iter(searcher.suggest, None)] == [3, 5, 8]


def test_asha_never_promotes_failed_or_finished_trials() -> None:
    """A failure, a final result or a missing metric makes a trial never promotable."""
    searcher = _asha()
    list(iter(searcher.suggest, None))
    searcher.report(Result(0, 1.0, {"loss": 0.1}, final=True))  # ended by itself
    searcher.report(Result(1, 1.0, {"accuracy": 0.9}))  # no loss: a failure
    searcher.report(Result(2, 1.0, {"loss": float("nan")}))  # cannot be ranked
    searcher.fail(3)
    for i in range(4, 9):
        searcher.report(Result(i, 1.0, {"loss": float(i)}))
    # rung 0 holds trials 0, 4..8: the top ⌊6/3⌋ = 2 are 0 (final) and 4
    assert [j.trial_id for j in iter(searcher.suggest, None)] == [4]
    searcher.report(Result(4, 3.0, {"loss": 1.0}))
    assert searcher.finished


def test_asha_trial_that_stops_early_is_not_ranked_at_the_rung() -> None:
    """A final result short of the job's resource does not count at that rung."""
    searcher = _asha()
    list(iter(searcher.suggest, None))
    for i in range(9):
        searcher.report(Result(i, 1.0, {"loss": float(i)}))
    assert [j.trial_id for j in iter(searcher.suggest, None)] == [0, 1, 2]
    searcher.report(Result(0, 2.0, {"loss": 0.0}, final=True))  # stopped at 2 of 3
    searcher.report(Result(1, 3.0, {"loss": 5.0}))
    searcher.report(Result(2, 3.0, {"loss": 4.0}))
    assert searcher.suggest() is None  # rung 1 has 2 trials: ⌊2/3⌋ = 0
    assert searcher.finished


def test_asha_maximises_when_asked() -> None:
    """With mode='max' the highest values are promoted."""
    searcher = _asha(objectives=[Objective("acc", "max"), Objective("latency")])
    list(iter(searcher.suggest, None))
    for i in range(9):
        searcher.report(Result(i, 1.0, {"acc": float(i), "latency": 1.0}))
    assert [j.trial_id for j in iter(searcher.suggest, None)] == [8, 7, 6]


def test_asha_stops_at_max_trials_and_when_the_space_is_used_up() -> None:
    """ASHA starts at most max_trials trials and never the same config twice."""
    space = Space([Categorical("c", ("a", "b"))])
    searcher = make_searcher("asha", space, LOSS, max_trials=10, max_resource=9.0)
    reached = simulate(searcher, 2, 9.0, value_at=lambda c, r: 1.0 / (1.0 + r))
    assert len(reached) == 2


@pytest.mark.parametrize("sampler", ["random", "sobol", "tpe"])
@pytest.mark.parametrize("workers", [1, 4])
def test_asha_simulation_finds_good_configs(sampler: str, workers: int) -> None:
    """Driven against fake learning curves, every job is answered, few trials reach the top,
    and the best of them is near the best config sampled."""
    options: dict[str, Any] = {"sampler": sampler}
    if sampler == "tpe":
        options["n_startup_trials"] = 8
    searcher = make_searcher(
        "asha", SPACE, LOSS, max_trials=40, max_resource=27.0, seed=2, **options
    )
    assert isinstance(searcher, AshaSearcher)
    reached = simulate(searcher, workers, 27.0, fail=lambda job: job.trial_id == 5)
    assert len(reached) == 39  # trial 5 failed before reporting anything
    configs = {t.trial_id: t.config for t in _first_jobs(searcher)}
    finals = {i: v for i, (r, v) in reached.items() if r == 27.0}
    assert 0 < len(finals) <= 10
    best = min(finals.values())
    ranked = sorted(quality(c) for i, c in configs.items() if i != 5)
    assert best - 2.0 / 28 <= ranked[len(ranked) // 10]  # among the best tenth sampled
    assert best < 0.5


def _first_jobs(searcher: AshaSearcher) -> list[Job]:
    state = searcher.state_dict()
    return [Job(i, t["config"]) for i, t in enumerate(state["trials"])]


def test_asha_with_tpe_tells_optuna_every_rung() -> None:
    """With the TPE sampler Optuna sees each ASHA trial at its latest rung: PRUNED with its
    curve while paused, COMPLETE once it finished the top rung, FAIL when it failed."""
    optuna = pytest.importorskip("optuna")
    searcher = make_searcher(
        "asha",
        SPACE,
        LOSS,
        max_trials=30,
        max_resource=9.0,
        seed=0,
        sampler="tpe",
        mode="aggressive",
        n_startup_trials=5,
    )
    assert isinstance(searcher, AshaSearcher)
    reached = simulate(searcher, 3, 9.0, fail=lambda job: job.trial_id == 4)
    proposer: TpeProposer = searcher.proposer  # type: ignore[assignment]
    states = optuna.trial.TrialState
    current = [proposer.current(i) for i in range(30)]
    assert current[4].state == states.FAIL
    pruned = [(i, t) for i, t in enumerate(current) if t.state == states.PRUNED]
    complete = [(i, t) for i, t in enumerate(current) if t.state == states.COMPLETE]
    assert len(pruned) + len(complete) == 29
    assert complete
    assert pruned
    for i, t in pruned:
        assert t.params == searcher.state_dict()["trials"][i]["config"]
        steps = list(t.intermediate_values)
        assert steps
        assert set(steps) <= {1, 3}
        assert t.intermediate_values[max(steps)] == pytest.approx(reached[i][1])
        assert t.value == pytest.approx(reached[i][1])
    for i, t in complete:
        assert t.intermediate_values.keys() == {1, 3, 9}
        assert t.value == pytest.approx(reached[i][1])
    # a promoted trial's earlier PRUNED copies are garbage, bounded by compaction
    study = proposer.study()
    live = {t.number for t in current}
    stale = [t for t in study.trials if t.number not in live and t.state != states.FAIL]
    assert len(stale) <= max(16, len(live) // 4)


def test_tpe_restores_its_study_exactly() -> None:
    """A restored TPE proposer replays the same Optuna trials as the original holds."""
    searcher = make_searcher(
        "asha",
        SPACE,
        LOSS,
        max_trials=20,
        max_resource=9.0,
        seed=1,
        sampler="tpe",
        n_startup_trials=3,
    )
    log: list[Any] = []
    for _ in range(25):
        _step(searcher, log)
    restored = make_searcher(
        "asha",
        SPACE,
        LOSS,
        max_trials=20,
        max_resource=9.0,
        seed=1,
        sampler="tpe",
        n_startup_trials=3,
    )
    restored.load_state_dict(json.loads(json.dumps(searcher.state_dict())))

    def trials(s: Searcher) -> list[tuple[Any, ...]]:
        study = s.proposer.study()  # type: ignore[attr-defined]
        return [(t.state, t.params, t.values, t.intermediate_values) for t in study.trials]

    assert trials(restored) == trials(searcher)


def test_tpe_beats_random_on_a_smooth_function() -> None:
    """On a smooth 2-D function TPE finds better configs than random search, on average."""
    space = Space([Float("x", -5.0, 5.0), Float("y", -5.0, 5.0)])

    def best(name: str, seed: int) -> float:
        searcher = make_searcher(name, space, LOSS, max_trials=40, max_resource=1.0, seed=seed)
        found = math.inf
        while (job := searcher.suggest()) is not None:
            loss = (job.config["x"] - 1) ** 2 + (job.config["y"] + 2) ** 2
            found = min(found, loss)
            searcher.report(Result(job.trial_id, 1.0, {"loss": loss}, final=True))
        assert searcher.finished
        return found

    seeds = range(4)
    tpe = sum(best("tpe", s) for s in seeds) / len(seeds)
    rnd = sum(best("random", s) for s in seeds) / len(seeds)
    assert tpe < rnd / 2


def test_tpe_never_repeats_a_config() -> None:
    """TPE does not rerun a config it proposed before; a used-up space ends the search."""
    space = Space([Categorical("c", ("a", "b", "c"))])
    searcher = make_searcher(
        "tpe", space, LOSS, max_trials=10, max_resource=1.0, seed=0, n_startup_trials=1
    )
    reached = simulate(searcher, 1, 1.0, value_at=lambda c, r: ord(c["c"]))
    assert len(reached) == 3


def test_tpe_handles_several_objectives() -> None:
    """With several objectives Optuna's study has one direction each; a missing one is FAIL."""
    optuna = pytest.importorskip("optuna")
    objectives = [Objective("loss"), Objective("acc", "max")]
    searcher = make_searcher(
        "tpe", SPACE, objectives, max_trials=14, max_resource=1.0, n_startup_trials=4
    )
    assert isinstance(searcher, TpeSearcher)
    while (job := searcher.suggest()) is not None:
        values = {"loss": quality(job.config), "acc": -quality(job.config) * job.config["x"]}
        if job.trial_id == 2:
            del values["acc"]
        searcher.report(Result(job.trial_id, 1.0, values, final=True))
    study = searcher.proposer.study()
    assert [d.name for d in study.directions] == ["MINIMIZE", "MAXIMIZE"]
    states = [t.state for t in study.trials]
    assert states.count(optuna.trial.TrialState.COMPLETE) == 13
    assert states[2] == optuna.trial.TrialState.FAIL
    assert searcher.finished


def test_tpe_conditional_parameters() -> None:
    """TPE proposes conditional parameters only where they are active."""
    searcher = make_searcher(
        "tpe", SPACE, LOSS, max_trials=25, max_resource=1.0, n_startup_trials=5
    )
    while (job := searcher.suggest()) is not None:
        assert SPACE.validate(job.config) == job.config
        searcher.report(Result(job.trial_id, 1.0, {"loss": quality(job.config)}, final=True))


def _run_tpe_on_a_grid(
    seed: int, max_trials: int, monkeypatch: pytest.MonkeyPatch | None = None
) -> tuple[list[dict[str, Any]], int]:
    """TPE on a 9 x 9 int grid with its optimum at (6, 2): the configs it proposed
    and how many times it asked Optuna."""
    space = Space([Int("a", 0, 8), Int("b", 0, 8)])
    searcher = make_searcher(
        "tpe", space, LOSS, max_trials=max_trials, max_resource=1.0, seed=seed, n_startup_trials=5
    )
    assert isinstance(searcher, TpeSearcher)
    asks = 0
    ask = searcher.proposer._ask

    def counted(*args: Any) -> Any:
        nonlocal asks
        asks += 1
        return ask(*args)

    if monkeypatch is not None:
        monkeypatch.setattr(searcher.proposer, "_ask", counted)
    configs = []
    while (job := searcher.suggest()) is not None:
        configs.append(job.config)
        loss = (job.config["a"] - 6) ** 2 + (job.config["b"] - 2) ** 2
        searcher.report(Result(job.trial_id, 1.0, {"loss": float(loss)}, final=True))
    return configs, asks


def test_tpe_replaces_a_tried_proposal_with_the_best_untried_in_one_ask(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """On a small discrete space TPE's proposals soon repeat tried configs: each such
    proposal becomes the untried config TPE ranks best, at the cost of one ask, and
    the search stays near the optimum rather than falling back to random configs."""
    pytest.importorskip("optuna")
    configs, asks = _run_tpe_on_a_grid(0, 60, monkeypatch)
    keys = [json.dumps(c, sort_keys=True) for c in configs]
    assert len(configs) == 60
    assert len(set(keys)) == 60
    assert asks == 60  # one ask a proposal
    # after the startup, mostly configs within 2 steps of the optimum (the 5 x 5 square
    # around it is 25 of the 81 configs; uniform proposals would land there 31% of the time)
    later = configs[5:30]
    near = sum(abs(c["a"] - 6) <= 2 and abs(c["b"] - 2) <= 2 for c in later)
    assert near >= 12
    # deterministic given the seed
    assert _run_tpe_on_a_grid(0, 60)[0] == configs


def test_tpe_asks_again_without_the_densities(monkeypatch: pytest.MonkeyPatch) -> None:
    """An Optuna without the hook that exposes TPE's densities: TPE asks again with
    other seeds (at most MAX_ASKS a proposal), then draws at random; never a repeat."""
    pytest.importorskip("optuna")
    import shipyard.search._searchers._tpe as tpe_module

    monkeypatch.setattr(tpe_module, "recording_tpe", lambda base: base)
    monkeypatch.setattr(tpe_module, "hooked", lambda base: False)
    configs, asks = _run_tpe_on_a_grid(1, 40, monkeypatch)
    assert len({json.dumps(c, sort_keys=True) for c in configs}) == len(configs) == 40
    assert 40 < asks <= 40 * tpe_module.MAX_ASKS
