"""What the searchers share: option checks, JSON-safe random state, proposers.

A *proposer* draws the config of each new trial: uniformly at random, from a
scrambled Sobol sequence, down a grid, or from Optuna's TPE (``_tpe.py``). A
searcher decides *when* trials start and how far they run; the proposer only
decides *what* they are, so ASHA can take any of them as its ``sampler``.
Proposers never repeat a config: the searcher hands them the set of
:meth:`~shipyard.search._space.Space.key` of every config it started.
"""

from __future__ import annotations

import abc
import math
import warnings
from collections.abc import Container, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from shipyard.errors import InvalidArgumentError, StateError
from shipyard.search._protocol import Objective
from shipyard.search._space import Space

if TYPE_CHECKING:
    import numpy as np

__all__ = [
    "GridProposer",
    "Observation",
    "Proposer",
    "RandomProposer",
    "SobolProposer",
    "check_options",
    "check_state",
    "derive_seed",
    "load_rng",
    "new_rng",
    "primary_value",
    "rng_state",
]

#: Consecutive duplicate draws after which a random or quasi-random proposer
#: concludes the space is used up.
MAX_DUPLICATE_DRAWS = 100


# -- checks --------------------------------------------------------------------------------


def check_int(what: str, value: object, minimum: int) -> int:
    """``value`` as an int >= ``minimum``, or an InvalidArgumentError saying so."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise InvalidArgumentError(
            f"{what}: expected an integer >= {minimum}; got {value!r} ({type(value).__name__})"
        )
    return value


def check_number(what: str, value: object, *, above: float) -> float:
    """``value`` as a finite float > ``above``."""
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or not value > above
    ):
        raise InvalidArgumentError(
            f"{what}: expected a number > {above:g}; got {value!r} ({type(value).__name__})"
        )
    return float(value)


def check_choice(what: str, value: object, choices: Sequence[str]) -> str:
    if not isinstance(value, str) or value not in choices:
        raise InvalidArgumentError(
            f"{what}: expected one of {', '.join(map(repr, choices))}; got {value!r}"
        )
    return value


def check_objectives(objectives: Sequence[Objective]) -> tuple[Objective, ...]:
    objectives = tuple(objectives)
    if not objectives or not all(isinstance(o, Objective) for o in objectives):
        raise InvalidArgumentError(
            f"a searcher needs at least one Objective; got {list(objectives)!r}"
        )
    metrics = [o.metric for o in objectives]
    if len(set(metrics)) != len(metrics):
        raise InvalidArgumentError(f"objectives must name distinct metrics; got {metrics}")
    return objectives


def check_space(space: object) -> Space:
    if not isinstance(space, Space):
        raise InvalidArgumentError(f"expected a Space; got {type(space).__name__}")
    return space


def check_options(searcher: str, options: Mapping[str, Any], accepted: Sequence[str]) -> None:
    """An InvalidArgumentError for any option the searcher does not take."""
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        takes = ", ".join(accepted) if accepted else "no options"
        raise InvalidArgumentError(
            f"the {searcher!r} searcher has no option {unknown[0]!r}; it takes {takes}"
        )


def check_state(state: Mapping[str, Any], kind: str) -> None:
    """The state must come from a searcher of the same kind."""
    got = state.get("kind") if isinstance(state, Mapping) else None
    if got != kind:
        raise InvalidArgumentError(
            f"cannot load the state of a {got!r} searcher into a {kind!r} searcher; "
            "build the searcher with the arguments that made the state"
        )


def not_pending(trial_id: int) -> StateError:
    return StateError(
        f"trial {trial_id} has no outstanding job: every job is answered once, "
        "by report() or fail()"
    )


def primary_value(objectives: Sequence[Objective], values: Mapping[str, float]) -> float | None:
    """The first objective's value, or None when it is missing or not finite
    (a NaN or infinite loss counts as a failed trial: it cannot be ranked)."""
    value = values.get(objectives[0].metric)
    if value is None or isinstance(value, bool):
        return None
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


# -- randomness ----------------------------------------------------------------------------


def derive_seed(*parts: int) -> int:
    """A 32-bit seed that depends on every part (seed, counter, attempt...)."""
    import numpy as np

    return int(np.random.SeedSequence(list(parts)).generate_state(1)[0])


def new_rng(seed: int) -> np.random.Generator:
    import numpy as np

    return np.random.default_rng(seed)


def rng_state(rng: np.random.Generator) -> dict[str, Any]:
    """The PCG64 state as JSON; its 128-bit integers become strings, which JSON
    readers that use doubles cannot mangle."""
    s = rng.bit_generator.state
    return {
        "state": str(s["state"]["state"]),
        "inc": str(s["state"]["inc"]),
        "has_uint32": int(s["has_uint32"]),
        "uinteger": int(s["uinteger"]),
    }


def load_rng(rng: np.random.Generator, state: Mapping[str, Any]) -> None:
    rng.bit_generator.state = {
        "bit_generator": "PCG64",
        "state": {"state": int(state["state"]), "inc": int(state["inc"])},
        "has_uint32": int(state["has_uint32"]),
        "uinteger": int(state["uinteger"]),
    }


# -- proposers -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Observation:
    """What became of a trial, for proposers that learn (TPE).

    ``curve`` holds ``(step, value)`` of the first objective at each rung the
    trial reached (ASHA); ``values`` the final value of every objective it
    modelled (a complete trial).
    """

    state: Literal["pruned", "complete", "failed"]
    values: tuple[float, ...] | None = None
    curve: tuple[tuple[int, float], ...] = ()


class Proposer(abc.ABC):
    """Draws the configs of new trials; its state is JSON like a searcher's."""

    @abc.abstractmethod
    def propose(self, trial_id: int, seen: Container[str]) -> dict[str, Any] | None:
        """A config whose key is not in ``seen`` for the new trial ``trial_id``,
        or None when no new config can be found (the space is used up)."""

    def observe(self, trial_id: int, observation: Observation) -> None:  # noqa: B027
        """Learn what became of a trial (a no-op unless the proposer models results)."""

    @abc.abstractmethod
    def state_dict(self) -> dict[str, Any]: ...

    @abc.abstractmethod
    def load_state_dict(self, state: Mapping[str, Any]) -> None: ...


class RandomProposer(Proposer):
    """I.i.d. uniform configs; a duplicate is re-drawn, up to
    :data:`MAX_DUPLICATE_DRAWS` times in a row."""

    def __init__(self, space: Space, seed: int) -> None:
        self.space = space
        self._rng = new_rng(seed)

    def propose(self, trial_id: int, seen: Container[str]) -> dict[str, Any] | None:
        return self.draw(seen)

    def draw(self, seen: Container[str]) -> dict[str, Any] | None:
        for _ in range(MAX_DUPLICATE_DRAWS):
            config = self.space.sample(self._rng)
            if self.space.key(config) not in seen:
                return config
        return None

    def state_dict(self) -> dict[str, Any]:
        return {"rng": rng_state(self._rng)}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        load_rng(self._rng, state["rng"])


class SobolProposer(Proposer):
    """Points of a scrambled Sobol sequence (``scipy.stats.qmc``) seeded with
    ``seed``, mapped by :meth:`Space.from_unit`. Its state is the number of
    points drawn: a restored proposer rebuilds the sequence and fast-forwards.
    Points whose config was seen are skipped (ints and categoricals collide)."""

    def __init__(self, space: Space, seed: int) -> None:
        try:
            from scipy.stats import qmc
        except ImportError as e:
            raise InvalidArgumentError(
                f"quasi-random search needs SciPy, which is not installed ({e}): "
                "pip install 'shipyard[search]'"
            ) from e
        self.space = space
        self._seed = seed
        self._qmc = qmc
        self._sobol = self._sequence()
        self._drawn = 0

    def _sequence(self) -> Any:
        rng = new_rng(self._seed)  # a Generator means the same thing to every SciPy
        try:
            return self._qmc.Sobol(d=len(self.space), scramble=True, rng=rng)
        except TypeError:  # SciPy < 1.15 names it seed
            return self._qmc.Sobol(d=len(self.space), scramble=True, seed=rng)

    def propose(self, trial_id: int, seen: Container[str]) -> dict[str, Any] | None:
        for _ in range(MAX_DUPLICATE_DRAWS):
            with warnings.catch_warnings():
                # Drawing one point at a time is why we use Sobol: the balance
                # property of 2^m points is not what we are after.
                warnings.simplefilter("ignore", UserWarning)
                point = self._sobol.random(1)[0]
            self._drawn += 1
            config = self.space.from_unit([float(x) for x in point])
            if self.space.key(config) not in seen:
                return config
        return None

    def state_dict(self) -> dict[str, Any]:
        return {"drawn": self._drawn}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self._sobol = self._sequence()
        self._drawn = int(state["drawn"])
        self._sobol.fast_forward(self._drawn)


class GridProposer(Proposer):
    """The configs of :meth:`Space.grid`, in order, each once."""

    def __init__(self, space: Space, float_points: int) -> None:
        self.space = space
        self._grid = space.grid(float_points)
        self._next = 0

    def __len__(self) -> int:
        return len(self._grid)

    def propose(self, trial_id: int, seen: Container[str]) -> dict[str, Any] | None:
        while self._next < len(self._grid):
            config = self._grid[self._next]
            self._next += 1
            if self.space.key(config) not in seen:
                return config
        return None

    def state_dict(self) -> dict[str, Any]:
        return {"next": self._next}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self._next = int(state["next"])
