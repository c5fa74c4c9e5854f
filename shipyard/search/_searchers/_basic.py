"""Searchers that run every trial to its end: grid, random, quasi-random.

Each trial is one job with ``resource=None`` (its full budget) and the searcher
never looks at results: what differs is only the proposer that draws configs.
:class:`OneShotSearcher` holds the bookkeeping; TPE (``_tpe.py``) reuses it
with a proposer that learns from the results.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from shipyard.search._protocol import Job, Objective, Result, Searcher
from shipyard.search._searchers._common import (
    GridProposer,
    Proposer,
    RandomProposer,
    SobolProposer,
    check_int,
    check_objectives,
    check_space,
    check_state,
    not_pending,
)
from shipyard.search._space import Space

__all__ = ["GridSearcher", "OneShotSearcher", "RandomSearcher", "SobolSearcher"]


class OneShotSearcher(Searcher):
    """Starts up to ``max_trials`` trials, each run once to its end.

    Trial ids count from 0 in the order trials are suggested. The searcher is
    finished when every job was answered and either ``max_trials`` trials were
    started or the proposer found no new config.
    """

    kind: ClassVar[str] = "one-shot"

    def __init__(
        self,
        space: Space,
        objectives: Sequence[Objective],
        *,
        max_trials: int,
        proposer: Proposer,
    ) -> None:
        self.space = check_space(space)
        self.objectives = check_objectives(objectives)
        self.max_trials = check_int("max_trials", max_trials, 1)
        self.proposer = proposer
        self._configs: list[dict[str, Any]] = []
        self._seen: set[str] = set()
        self._pending: dict[int, Job] = {}
        self._exhausted = False

    # -- the protocol ------------------------------------------------------------------

    def suggest(self) -> Job | None:
        if self._exhausted or len(self._configs) >= self.max_trials:
            return None
        trial_id = len(self._configs)
        config = self.proposer.propose(trial_id, self._seen)
        if config is None:
            self._exhausted = True
            return None
        self._configs.append(config)
        self._seen.add(self.space.key(config))
        job = Job(trial_id, dict(config))
        self._pending[trial_id] = job
        return job

    def report(self, result: Result) -> None:
        if result.trial_id not in self._pending:
            raise not_pending(result.trial_id)
        del self._pending[result.trial_id]
        self._on_result(result)

    def fail(self, trial_id: int) -> None:
        if trial_id not in self._pending:
            raise not_pending(trial_id)
        del self._pending[trial_id]
        self._on_failure(trial_id)

    @property
    def finished(self) -> bool:
        return not self._pending and (self._exhausted or len(self._configs) >= self.max_trials)

    def pending(self) -> list[Job]:
        return list(self._pending.values())

    def state_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "configs": [dict(c) for c in self._configs],
            "pending": list(self._pending),
            "exhausted": self._exhausted,
            "proposer": self.proposer.state_dict(),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        check_state(state, self.kind)
        self._configs = [dict(c) for c in state["configs"]]
        self._seen = {self.space.key(c) for c in self._configs}
        self._pending = {int(i): Job(int(i), dict(self._configs[int(i)])) for i in state["pending"]}
        self._exhausted = bool(state["exhausted"])
        self.proposer.load_state_dict(state["proposer"])

    # -- hooks -------------------------------------------------------------------------

    def _on_result(self, result: Result) -> None:
        """A trial ended with a result (nothing to do unless the proposer learns)."""

    def _on_failure(self, trial_id: int) -> None:
        """A trial failed."""


class GridSearcher(OneShotSearcher):
    """Every config of ``space.grid(float_points)`` once, in order, capped by
    ``max_trials``."""

    kind = "grid"

    def __init__(
        self,
        space: Space,
        objectives: Sequence[Objective],
        *,
        max_trials: int,
        float_points: int = 5,
    ) -> None:
        check_int("float_points", float_points, 1)
        super().__init__(
            space,
            objectives,
            max_trials=max_trials,
            proposer=GridProposer(check_space(space), float_points),
        )


class RandomSearcher(OneShotSearcher):
    """I.i.d. uniform configs (log-uniform on log scales), never one twice."""

    kind = "random"

    def __init__(
        self, space: Space, objectives: Sequence[Objective], *, max_trials: int, seed: int = 0
    ) -> None:
        check_int("seed", seed, 0)
        super().__init__(
            space,
            objectives,
            max_trials=max_trials,
            proposer=RandomProposer(check_space(space), seed),
        )


class SobolSearcher(OneShotSearcher):
    """Quasi-random configs from a scrambled Sobol sequence: better spread than
    random for the same number of trials, reproducible from ``seed``."""

    kind = "sobol"

    def __init__(
        self, space: Space, objectives: Sequence[Objective], *, max_trials: int, seed: int = 0
    ) -> None:
        check_int("seed", seed, 0)
        super().__init__(
            space,
            objectives,
            max_trials=max_trials,
            proposer=SobolProposer(check_space(space), seed),
        )
