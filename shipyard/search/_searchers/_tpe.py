"""TPE through Optuna: a proposer that learns, and the full-budget TPE searcher.

Optuna is imported only when a TPE proposer is built; a missing Optuna raises
:class:`~shipyard.errors.InvalidArgumentError` naming ``pip install
'shipyard[optuna]'``.

**What Optuna sees.** Each trial of ours has one *current* Optuna trial that
shows its latest state: RUNNING while its first segment runs (with
``constant_liar``, TPE steers new proposals away from configs in flight);
PRUNED with intermediate values ``{step: value}`` once it paused at a rung
(TPE ranks pruned trials by the step they reached, then by value); COMPLETE
with its values once it finished (the top rung in ASHA); FAIL when it failed
without a result.

**How it gets there.** Optuna cannot change a finished trial, so a change is
appended: the new state is added as a frozen trial (``study.add_trial``), and
the trial it replaces becomes garbage: a RUNNING one is told FAIL, which TPE
ignores; a PRUNED one stays behind as a stale copy, which would make promoted
configs weigh twice in TPE's "below" set. So once garbage passes a quarter of
the current trials (:data:`GARBAGE_SHARE`), the study is rebuilt from the
current trials alone: a promoted config weighs at most a little extra, and the
rebuild (about 35 µs a trial) costs a few trials per proposal, amortised.

**Restoring is exact.** The study is a function of a log of entries, one per
Optuna trial, in order: the JSON state. A restored proposer replays the log
with ``study.add_trials`` and holds the same trials (states, values, curves,
order) as the original. An asked trial carries TPE's sampling notes in its
system attributes, which a replay would lack, so every ask is told FAIL at once
and a plain RUNNING copy of the config is added in its place.

The sampler is a fresh ``TPESampler(multivariate=True, group=True)`` seeded
from ``(seed, trial id, attempt)`` for each ask, so what is proposed depends on
the log alone. Configs are asked define-by-run, parameter by parameter in
space order, so conditional parameters are only suggested where they are active
(``group=True`` models each such sub-space jointly).

**Already tried.** A proposal whose config was already tried is not run
again (its known result is in the study already, as the original trial). Once
TPE models the trials, such a proposal is replaced by the untried config TPE
ranks best by its own densities (``_tpe_untried.py``): a proposal costs one ask.
Before that (fewer than ``n_startup_trials`` finished trials: Optuna samples at
random), or when no candidate is new, a uniformly random new config is drawn.
On an Optuna whose densities cannot be read, TPE asks again with another seed
instead, up to :data:`MAX_ASKS` times, before the random draw.
"""

from __future__ import annotations

import contextlib
import math
import warnings
from collections.abc import Container, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from shipyard.errors import InvalidArgumentError
from shipyard.search._protocol import Objective, Result
from shipyard.search._searchers._basic import OneShotSearcher
from shipyard.search._searchers._common import (
    Observation,
    Proposer,
    RandomProposer,
    check_int,
    check_objectives,
    check_space,
    derive_seed,
)
from shipyard.search._searchers._tpe_untried import (
    Densities,
    best_untried,
    hooked,
    recording_tpe,
)
from shipyard.search._space import Categorical, Float, Int, Space

if TYPE_CHECKING:
    from types import ModuleType

    import optuna

__all__ = ["GARBAGE_SHARE", "MAX_ASKS", "TpeProposer", "TpeSearcher"]

_INSTALL = "pip install 'shipyard[optuna]'"
#: Asks that may return an already tried config before a random one is drawn,
#: where the densities cannot be read (an Optuna without the hook).
MAX_ASKS = 8
#: Garbage (stale or told-FAIL Optuna trials) allowed, as a share of the current
#: trials (and at least _MIN_GARBAGE), before the study is rebuilt without it.
GARBAGE_SHARE = 0.25
_MIN_GARBAGE = 16
#: Stream id of the fallback random proposer's seed (apart from the TPE seeds).
_FALLBACK_STREAM = 0x7E


def import_optuna() -> ModuleType:
    """Optuna, with its logging quietened to warnings."""
    try:
        import optuna
    except ImportError as e:
        raise InvalidArgumentError(
            f"the TPE sampler needs Optuna, which is not installed ({e}): {_INSTALL}"
        ) from e
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


@contextlib.contextmanager
def _quiet(optuna: ModuleType) -> Iterator[None]:
    # group=True is marked experimental: a warning per sampler, which pytest
    # (and users running with -W error) would turn into a failure.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        yield


@dataclass
class _Entry:
    """One Optuna trial of the log. ``trial_id`` is None for garbage: a told-FAIL
    ask or RUNNING copy, or a stale PRUNED copy of a trial that moved on."""

    trial_id: int | None
    config: dict[str, Any]
    state: Literal["running", "pruned", "complete", "failed"] = "running"
    values: tuple[float, ...] | None = None
    curve: tuple[tuple[int, float], ...] = ()


class TpeProposer(Proposer):
    """Configs proposed by Optuna's TPE from what became of earlier trials.

    Args:
        space: the search space.
        directions: ``"minimize"`` or ``"maximize"`` per modelled objective.
        seed: the seed every TPE seed is derived from.
        n_startup_trials: finished trials (complete or pruned) before TPE
            models them; until then Optuna samples at random.
    """

    def __init__(
        self,
        space: Space,
        directions: Sequence[Literal["minimize", "maximize"]],
        seed: int,
        *,
        n_startup_trials: int = 10,
    ) -> None:
        self._optuna = import_optuna()
        self.space = space
        self.directions = tuple(directions)
        self.seed = seed
        self.n_startup_trials = check_int("n_startup_trials", n_startup_trials, 0)
        self._fallback = RandomProposer(space, derive_seed(seed, _FALLBACK_STREAM))
        self._entries: list[_Entry] = []
        self._current: dict[int, int] = {}  # trial id -> index of its current entry
        self._study: optuna.Study | None = None
        d = self._optuna.distributions
        self._distributions: dict[str, Any] = {}
        for p in space.params:
            if isinstance(p, Int):
                dist: Any = d.IntDistribution(p.low, p.top, log=p.log, step=p.step)
            elif isinstance(p, Float):
                dist = d.FloatDistribution(p.low, p.high, log=p.log)
            else:
                dist = d.CategoricalDistribution(p.choices)
            self._distributions[p.name] = dist

    # -- proposing ---------------------------------------------------------------------

    def propose(self, trial_id: int, seen: Container[str]) -> dict[str, Any] | None:
        garbage = len(self._entries) - len(self._current)
        if garbage > max(_MIN_GARBAGE, GARBAGE_SHARE * len(self._current)):
            self._compact()
        study = self.study()
        can_rank = hooked(self._optuna.samplers.TPESampler)
        for attempt in range(MAX_ASKS):
            config, densities = self._ask(study, derive_seed(self.seed, trial_id, attempt))
            if self.space.key(config) not in seen:
                self._append(_Entry(trial_id, config))
                return config
            if densities:
                seed = derive_seed(self.seed, trial_id, MAX_ASKS)  # no ask's seed
                best = best_untried(self.space, self._distributions, densities, seen, seed)
                if best is not None:
                    self._append(_Entry(trial_id, best))
                    return best
            if can_rank:
                break  # no untried candidate, or TPE sampled at random (startup)
        drawn = self._fallback.draw(seen)
        if drawn is not None:
            self._append(_Entry(trial_id, drawn))
        return drawn

    def _ask(self, study: optuna.Study, seed: int) -> tuple[dict[str, Any], list[Densities]]:
        """One ask, told FAIL at once (see the module docstring), and the densities
        TPE built for it."""
        with _quiet(self._optuna):
            sampler = self._sampler(seed)
            study.sampler = sampler
            trial = study.ask()
            config = self._suggest(trial)
            study.tell(trial, state=self._optuna.trial.TrialState.FAIL)
        self._entries.append(_Entry(None, config, "failed"))
        return config, list(getattr(sampler, "recorded", ()))

    def _suggest(self, trial: optuna.Trial) -> dict[str, Any]:
        config: dict[str, Any] = {}
        for p in self.space.params:
            if not self.space.active(p.name, config):
                continue
            if isinstance(p, Int):
                config[p.name] = trial.suggest_int(p.name, p.low, p.top, step=p.step, log=p.log)
            elif isinstance(p, Float):
                config[p.name] = trial.suggest_float(p.name, p.low, p.high, log=p.log)
            else:
                assert isinstance(p, Categorical)
                config[p.name] = trial.suggest_categorical(p.name, p.choices)
        return config

    def _sampler(self, seed: int) -> optuna.samplers.BaseSampler:
        with _quiet(self._optuna):
            sampler: optuna.samplers.BaseSampler = recording_tpe(self._optuna.samplers.TPESampler)(
                seed=seed,
                n_startup_trials=self.n_startup_trials,
                multivariate=True,
                group=True,
                constant_liar=True,
            )
        return sampler

    # -- learning ----------------------------------------------------------------------

    def observe(self, trial_id: int, observation: Observation) -> None:
        index = self._current.get(trial_id)
        if index is None:
            return  # not a trial this proposer drew
        old = self._entries[index]
        new = _Entry(trial_id, old.config, observation.state, observation.values, observation.curve)
        if new == old:
            return
        if old.state == "running":
            if self._study is not None:
                self._study.tell(index, state=self._optuna.trial.TrialState.FAIL)
            old.state = "failed"
            if new.state == "failed":
                return  # the entry now says it all
        old.trial_id = None
        self._append(new)

    def _append(self, entry: _Entry) -> None:
        assert entry.trial_id is not None
        self._current[entry.trial_id] = len(self._entries)
        self._entries.append(entry)
        if self._study is not None:
            self._study.add_trial(self._frozen(entry))

    def _compact(self) -> None:
        self._entries = [e for e in self._entries if e.trial_id is not None]
        self._current = {
            e.trial_id: i for i, e in enumerate(self._entries) if e.trial_id is not None
        }
        self._study = None

    def _frozen(self, entry: _Entry) -> optuna.trial.FrozenTrial:
        states = self._optuna.trial.TrialState
        values: Sequence[float] | None = None
        if entry.state == "complete":
            values = entry.values
        elif entry.state == "pruned" and entry.curve:
            values = [entry.curve[-1][1]]  # what tell(state=PRUNED) stores
        frozen: optuna.trial.FrozenTrial = self._optuna.trial.create_trial(
            state={
                "running": states.RUNNING,
                "pruned": states.PRUNED,
                "complete": states.COMPLETE,
                "failed": states.FAIL,
            }[entry.state],
            params=dict(entry.config),
            distributions={k: self._distributions[k] for k in entry.config},
            values=values,
            intermediate_values=dict(entry.curve),
        )
        return frozen

    def study(self) -> optuna.Study:
        """The in-memory Optuna study the next proposal asks, garbage included
        (rebuilt from the log when there is none yet)."""
        if self._study is None:
            op = self._optuna
            with _quiet(op):
                study: optuna.Study = op.create_study(
                    directions=list(self.directions), sampler=self._sampler(self.seed)
                )
                study.add_trials([self._frozen(e) for e in self._entries])
            self._study = study
        return self._study

    def current(self, trial_id: int) -> optuna.trial.FrozenTrial:
        """The Optuna trial that shows what became of our trial ``trial_id``."""
        return self.study().trials[self._current[trial_id]]

    # -- state -------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        return {
            "entries": [
                {
                    "trial_id": e.trial_id,
                    "config": dict(e.config),
                    "state": e.state,
                    "values": None if e.values is None else list(e.values),
                    "curve": [[step, value] for step, value in e.curve],
                }
                for e in self._entries
            ],
            "fallback": self._fallback.state_dict(),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self._entries = [
            _Entry(
                None if e["trial_id"] is None else int(e["trial_id"]),
                dict(e["config"]),
                e["state"],
                None if e["values"] is None else tuple(float(v) for v in e["values"]),
                tuple((int(s), float(v)) for s, v in e["curve"]),
            )
            for e in state["entries"]
        ]
        self._current = {
            e.trial_id: i for i, e in enumerate(self._entries) if e.trial_id is not None
        }
        self._study = None
        self._fallback.load_state_dict(state["fallback"])


class TpeSearcher(OneShotSearcher):
    """Optuna's TPE, every trial run to its end (``resource=None``).

    Single-objective, or multi-objective with one Optuna direction per
    objective (TPE then models the Pareto front). A trial that fails, or that
    does not report every objective as a finite number, is FAIL to Optuna.
    """

    kind = "tpe"

    def __init__(
        self,
        space: Space,
        objectives: Sequence[Objective],
        *,
        max_trials: int,
        seed: int = 0,
        n_startup_trials: int = 10,
    ) -> None:
        check_int("seed", seed, 0)
        objectives = check_objectives(objectives)
        self.proposer: TpeProposer
        super().__init__(
            space,
            objectives,
            max_trials=max_trials,
            proposer=TpeProposer(
                check_space(space),
                [directions(o) for o in objectives],
                seed,
                n_startup_trials=n_startup_trials,
            ),
        )

    def _on_result(self, result: Result) -> None:
        values = []
        for o in self.objectives:
            v = result.values.get(o.metric)
            if v is None or isinstance(v, bool) or not math.isfinite(float(v)):
                self.proposer.observe(result.trial_id, Observation("failed"))
                return
            values.append(float(v))
        self.proposer.observe(result.trial_id, Observation("complete", tuple(values)))

    def _on_failure(self, trial_id: int) -> None:
        self.proposer.observe(trial_id, Observation("failed"))


def directions(objective: Objective) -> Literal["minimize", "maximize"]:
    """The Optuna direction of an objective."""
    return "minimize" if objective.mode == "min" else "maximize"
