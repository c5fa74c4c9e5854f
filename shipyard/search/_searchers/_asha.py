"""Adaptive asynchronous successive halving (ASHA), the default searcher.

**Successive halving** gives many configs a small budget and only the best
``1/η`` of them ``η`` times more, rung after rung. **Asynchronous** (Li et al.,
"A System for Massively Parallel Hyperparameter Tuning", MLSys 2020): nobody
waits for a rung to fill. Whenever a slot is free, :meth:`AshaSearcher.suggest`
scans the rungs from the top down and promotes a trial that is in the top
``⌊n_k/η⌋`` of the ``n_k`` trials recorded at rung ``k`` (by the first
objective) and was not promoted yet; only when there is none does it start a
new trial. Workers never idle, and a trial that looks good early may still be
overtaken as the rung fills (it simply is not promoted again).

**Promotion is a resume.** A trial pauses at each rung: it checkpoints and its
process exits, freeing the slot (``Job.resource`` is the total it must reach).
A promotion is ``Job(trial_id, config, resource=next budget, resume=True)``:
the same trial continues from its checkpoint, so the budget spent on the lower
rungs is not paid again, and the trial's curve stays one run. The top rung's
job has ``resource=None``: run to the trial's own end.

**Rungs.** With ``η = divisor``, ``r = min_resource`` and ``R = max_resource``
there are ``n_rungs = min(max_rungs, ⌊log_η(R/r)⌋ + 1)`` rungs with budgets
``R·η^-(n_rungs-1-k)`` for ``k = 0..n_rungs-1`` (rounded to integers, at least
``r``, when ``r`` and ``R`` are integers; a budget equal to the one below it is
dropped).

**Brackets** (Determined's *adaptive* ASHA, after Hyperband): the most
aggressive bracket starts trials at rung 0; bracket ``s`` starts them ``s``
rungs higher, hedging against a low budget that ranks configs badly. ``mode``
sets how many brackets run side by side: ``aggressive`` 1, ``standard``
``max(1, n_rungs - 1)``, ``conservative`` ``n_rungs`` (its last bracket runs
every trial to the end: random search). ``max_trials`` is split over the
brackets like Hyperband, in proportion to ``η^(m-1)/m`` for a bracket with
``m`` rungs (the remainder goes to the most aggressive one); new trials go,
in turn, to the bracket that has used the smallest share of its quota (ties
to the more aggressive one), so every bracket progresses from the start.
Promotions happen within a bracket.

**Ends.** A trial never promoted again: one whose result is ``final`` (it
ended by itself), one that failed, and one whose result lacks the first
objective or holds NaN or an infinite value (counted as a failure). With
several objectives, promotions follow the first one only; the others are just
recorded by the driver.

**Samplers.** New configs come from ``random`` (default), ``sobol`` or
``tpe``; with TPE every rung result is shown to Optuna (see ``_tpe.py``), a
paused trial as PRUNED with its learning curve, one that completed the top rung
as COMPLETE, so TPE learns from every budget.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from shipyard.errors import InvalidArgumentError
from shipyard.search._protocol import Job, Objective, Result, Searcher
from shipyard.search._searchers._common import (
    Observation,
    Proposer,
    RandomProposer,
    SobolProposer,
    check_choice,
    check_int,
    check_number,
    check_objectives,
    check_space,
    check_state,
    not_pending,
    primary_value,
)
from shipyard.search._space import Space

__all__ = ["MODES", "SAMPLERS", "AshaSearcher", "bracket_quotas", "rung_budgets"]

MODES = ("aggressive", "standard", "conservative")
SAMPLERS = ("random", "sobol", "tpe")
_EPS = 1e-9


def rung_budgets(
    min_resource: float, max_resource: float, divisor: float, max_rungs: int
) -> tuple[float, ...]:
    """The budgets of the most aggressive bracket's rungs, lowest first."""
    n = 1
    while n < max_rungs and min_resource * divisor**n <= max_resource * (1 + _EPS):
        n += 1
    raw = [max_resource * divisor ** -(n - 1 - k) for k in range(n)]
    if not (float(min_resource).is_integer() and float(max_resource).is_integer()):
        return tuple(raw)
    budgets: list[float] = []
    for b in [*raw[:-1], max_resource]:
        rounded = max(int(min_resource), round(b))
        if not budgets or rounded > budgets[-1]:
            budgets.append(rounded)
    return tuple(budgets)


def bracket_quotas(max_trials: int, divisor: float, rungs_per_bracket: Sequence[int]) -> list[int]:
    """How many of ``max_trials`` each bracket starts: proportional to
    ``η^(m-1)/m`` for ``m`` rungs, the remainder to the first bracket."""
    weights = [divisor ** (m - 1) / m for m in rungs_per_bracket]
    total = sum(weights)
    quotas = [int(max_trials * w / total) for w in weights]
    quotas[0] += max_trials - sum(quotas)
    return quotas


@dataclass
class _Trial:
    config: dict[str, Any]
    bracket: int
    #: The rung its latest job aims at; the trial was promoted from every rung below.
    target: int
    #: The first objective's value recorded at each rung it reached.
    values: dict[int, float] = field(default_factory=dict)
    #: ``(step, value)`` of every result, for TPE.
    curve: dict[int, float] = field(default_factory=dict)
    dead: bool = False


class AshaSearcher(Searcher):
    """Adaptive ASHA over ``space``; see the module docstring for the algorithm.

    Args:
        space: the search space.
        objectives: what to optimise; promotions follow ``objectives[0]``.
        max_trials: how many trials to start, over all brackets.
        max_resource: the top rung's budget (a trial's full length).
        min_resource: the least budget of the lowest rung.
        seed: seeds the sampler.
        divisor: η, the promotion ratio (> 1).
        max_rungs: the most rungs a bracket has.
        mode: ``aggressive``, ``standard`` or ``conservative`` (brackets).
        sampler: ``random``, ``sobol`` or ``tpe`` for new configs.
        n_startup_trials: TPE only: trials before TPE models them.

    Raises:
        InvalidArgumentError: an option out of its range.
    """

    kind = "asha"

    def __init__(
        self,
        space: Space,
        objectives: Sequence[Objective],
        *,
        max_trials: int,
        max_resource: float,
        min_resource: float = 1.0,
        seed: int = 0,
        divisor: float = 3,
        max_rungs: int = 5,
        mode: Literal["aggressive", "standard", "conservative"] = "standard",
        sampler: Literal["random", "sobol", "tpe"] = "random",
        n_startup_trials: int | None = None,
    ) -> None:
        self.space = check_space(space)
        self.objectives = check_objectives(objectives)
        self.max_trials = check_int("max_trials", max_trials, 1)
        self.min_resource = check_number("min_resource", min_resource, above=0)
        self.max_resource = check_number("max_resource", max_resource, above=0)
        if self.max_resource < self.min_resource:
            raise InvalidArgumentError(
                f"ASHA: expected max_resource >= min_resource; got max_resource="
                f"{max_resource:g}, min_resource={min_resource:g}"
            )
        self.divisor = check_number("divisor", divisor, above=1)
        self.max_rungs = check_int("max_rungs", max_rungs, 1)
        self.mode = check_choice("mode", mode, MODES)
        self.sampler = check_choice("sampler", sampler, SAMPLERS)
        check_int("seed", seed, 0)
        if n_startup_trials is not None and sampler != "tpe":
            raise InvalidArgumentError(
                f"n_startup_trials is an option of the TPE sampler; got sampler={sampler!r}"
            )
        self.budgets = rung_budgets(
            self.min_resource, self.max_resource, self.divisor, self.max_rungs
        )
        n = len(self.budgets)
        self.n_brackets = {"aggressive": 1, "standard": max(1, n - 1), "conservative": n}[mode]
        self.quotas = bracket_quotas(
            max_trials, self.divisor, [n - s for s in range(self.n_brackets)]
        )
        self.proposer = self._proposer(seed, n_startup_trials)
        self._integral = all(float(b).is_integer() for b in self.budgets)
        self._trials: list[_Trial] = []
        self._seen: set[str] = set()
        self._pending: dict[int, Job] = {}
        self._exhausted = False
        self._reset_rungs()

    def _proposer(self, seed: int, n_startup_trials: int | None) -> Proposer:
        if self.sampler == "random":
            return RandomProposer(self.space, seed)
        if self.sampler == "sobol":
            return SobolProposer(self.space, seed)
        from shipyard.search._searchers._tpe import TpeProposer, directions

        return TpeProposer(
            self.space,
            [directions(self.objectives[0])],
            seed,
            n_startup_trials=10 if n_startup_trials is None else n_startup_trials,
        )

    def _reset_rungs(self) -> None:
        n = len(self.budgets)
        # _rungs[s][k]: (signed value, trial id) of bracket s at rung k, best first
        self._rungs: list[list[list[tuple[float, int]]]] = [
            [[] for _ in range(n)] for _ in range(self.n_brackets)
        ]
        self._started = [0] * self.n_brackets

    # -- the protocol ------------------------------------------------------------------

    @property
    def n_rungs(self) -> int:
        return len(self.budgets)

    def bracket_budgets(self, bracket: int) -> tuple[float, ...]:
        """The budgets of a bracket's rungs (bracket 0 is the most aggressive)."""
        return self.budgets[bracket:]

    def _resource(self, rung: int) -> float | None:
        return None if rung == self.n_rungs - 1 else self.budgets[rung]

    def suggest(self) -> Job | None:
        found = self._promotable()
        if found is not None:
            trial_id, rung = found
            trial = self._trials[trial_id]
            trial.target = rung + 1
            job = Job(trial_id, dict(trial.config), self._resource(rung + 1), resume=True)
        else:
            if self._exhausted or len(self._trials) >= self.max_trials:
                return None
            bracket = min(
                (s for s in range(self.n_brackets) if self._started[s] < self.quotas[s]),
                key=lambda s: (self._started[s] / self.quotas[s], s),
            )
            trial_id = len(self._trials)
            config = self.proposer.propose(trial_id, self._seen)
            if config is None:
                self._exhausted = True
                return None
            self._trials.append(_Trial(config, bracket, target=bracket))
            self._seen.add(self.space.key(config))
            self._started[bracket] += 1
            job = Job(trial_id, dict(config), self._resource(bracket), resume=False)
        self._pending[trial_id] = job
        return job

    def _promotable(self) -> tuple[int, int] | None:
        """The paused trial to promote next and its rung: top rungs first, then
        the most aggressive bracket, then the best value."""
        for k in range(self.n_rungs - 2, -1, -1):
            for s in range(min(k, self.n_brackets - 1) + 1):
                entries = self._rungs[s][k]
                top = math.floor(len(entries) / self.divisor + _EPS)
                for _, trial_id in entries[:top]:
                    trial = self._trials[trial_id]
                    if not trial.dead and trial.target == k:
                        return trial_id, k
        return None

    def report(self, result: Result) -> None:
        job = self._pending.pop(result.trial_id, None)
        if job is None:
            raise not_pending(result.trial_id)
        trial = self._trials[result.trial_id]
        value = primary_value(self.objectives, result.values)
        if value is None:
            self._end(result.trial_id)
            return
        rung = trial.target
        top = rung == self.n_rungs - 1
        reached = job.resource is None or result.resource >= job.resource * (1 - _EPS)
        if reached or not result.final:
            trial.values[rung] = value
            sign = self.objectives[0].sign()
            bisect.insort(self._rungs[trial.bracket][rung], (sign * value, result.trial_id))
        trial.curve[self._step(result.resource)] = value
        trial.dead = result.final or top
        self.proposer.observe(
            result.trial_id,
            Observation(
                "complete" if top else "pruned",
                (value,) if top else None,
                tuple(sorted(trial.curve.items())),
            ),
        )

    def fail(self, trial_id: int) -> None:
        if self._pending.pop(trial_id, None) is None:
            raise not_pending(trial_id)
        self._end(trial_id)

    def _end(self, trial_id: int) -> None:
        trial = self._trials[trial_id]
        trial.dead = True
        # what it reached before failing is still a sound observation
        curve = tuple(sorted(trial.curve.items()))
        self.proposer.observe(trial_id, Observation("pruned" if curve else "failed", None, curve))

    def _step(self, resource: float) -> int:
        """Optuna's integer step for a resource: the resource itself when budgets
        are integers (epochs), else millionths of ``max_resource``."""
        if self._integral:
            return round(resource)
        return round(1e6 * resource / self.max_resource)

    @property
    def finished(self) -> bool:
        can_start = not self._exhausted and len(self._trials) < self.max_trials
        return not self._pending and not can_start and self._promotable() is None

    def pending(self) -> list[Job]:
        return list(self._pending.values())

    # -- state -------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "budgets": list(self.budgets),
            "quotas": list(self.quotas),
            "trials": [
                {
                    "config": dict(t.config),
                    "bracket": t.bracket,
                    "target": t.target,
                    "values": [[k, v] for k, v in t.values.items()],
                    "curve": [[k, v] for k, v in t.curve.items()],
                    "dead": t.dead,
                }
                for t in self._trials
            ],
            "pending": list(self._pending),
            "exhausted": self._exhausted,
            "proposer": self.proposer.state_dict(),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        check_state(state, self.kind)
        if list(state["budgets"]) != list(self.budgets) or list(state["quotas"]) != self.quotas:
            raise InvalidArgumentError(
                f"this ASHA state has rungs {state['budgets']} and bracket quotas "
                f"{state['quotas']}, but the searcher has {list(self.budgets)} and "
                f"{self.quotas}; build it with the arguments that made the state"
            )
        self._trials = [
            _Trial(
                dict(t["config"]),
                int(t["bracket"]),
                int(t["target"]),
                {int(k): float(v) for k, v in t["values"]},
                {int(k): float(v) for k, v in t["curve"]},
                bool(t["dead"]),
            )
            for t in state["trials"]
        ]
        self._seen = {self.space.key(t.config) for t in self._trials}
        self._reset_rungs()
        sign = self.objectives[0].sign()
        for trial_id, t in enumerate(self._trials):
            self._started[t.bracket] += 1
            for k, v in t.values.items():
                bisect.insort(self._rungs[t.bracket][k], (sign * v, trial_id))
        self._pending = {}
        for i in state["pending"]:
            t = self._trials[int(i)]
            resume = t.target > t.bracket
            self._pending[int(i)] = Job(int(i), dict(t.config), self._resource(t.target), resume)
        self._exhausted = bool(state["exhausted"])
        self.proposer.load_state_dict(state["proposer"])
