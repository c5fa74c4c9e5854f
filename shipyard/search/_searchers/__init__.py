"""The searchers, built by name with :func:`make_searcher`.

=========  ================================================================
``grid``   every config of ``space.grid(float_points)`` once
``random`` i.i.d. uniform configs, never one twice
``sobol``  quasi-random configs (scrambled Sobol, SciPy)
``asha``   adaptive asynchronous successive halving (the default)
``tpe``    Optuna's TPE, every trial to its end
=========  ================================================================

Each is a pure state machine implementing
:class:`~shipyard.search._protocol.Searcher`; importing this package loads
neither SciPy nor Optuna (they come with the searcher that needs them).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from shipyard.errors import InvalidArgumentError
from shipyard.search._protocol import Objective, Searcher
from shipyard.search._searchers._asha import AshaSearcher, bracket_quotas, rung_budgets
from shipyard.search._searchers._basic import (
    GridSearcher,
    OneShotSearcher,
    RandomSearcher,
    SobolSearcher,
)
from shipyard.search._searchers._common import check_int, check_number, check_options
from shipyard.search._searchers._tpe import TpeProposer, TpeSearcher
from shipyard.search._space import Space

__all__ = [
    "SEARCHERS",
    "AshaSearcher",
    "GridSearcher",
    "OneShotSearcher",
    "RandomSearcher",
    "SobolSearcher",
    "TpeProposer",
    "TpeSearcher",
    "bracket_quotas",
    "make_searcher",
    "rung_budgets",
]

#: Searcher names and the options each takes.
SEARCHERS: dict[str, tuple[str, ...]] = {
    "grid": ("float_points",),
    "random": (),
    "sobol": (),
    "asha": ("divisor", "max_rungs", "mode", "n_startup_trials", "sampler"),
    "tpe": ("n_startup_trials",),
}


def make_searcher(
    name: str,
    space: Space,
    objectives: Sequence[Objective],
    *,
    max_trials: int,
    max_resource: float,
    min_resource: float = 1.0,
    seed: int = 0,
    **options: Any,
) -> Searcher:
    """Build a searcher by name.

    Args:
        name: ``grid``, ``random``, ``sobol``, ``asha`` or ``tpe``.
        space: the hyperparameters to search.
        objectives: the metrics to optimise; the first one ranks trials in ASHA.
        max_trials: the most trials to start.
        max_resource: a trial's full budget (ASHA's top rung), in reports of
            the first objective's metric.
        min_resource: ASHA's least rung budget.
        seed: makes every searcher deterministic.
        **options: the searcher's own options (see :data:`SEARCHERS`):
            ``float_points`` (grid); ``divisor``, ``max_rungs``, ``mode``,
            ``sampler``, ``n_startup_trials`` (asha); ``n_startup_trials`` (tpe).

    Returns:
        A fresh searcher.

    Raises:
        InvalidArgumentError: an unknown name or option, or a value out of range
            (the message says what was expected); a missing optional dependency
            (SciPy for ``sobol``, Optuna for ``tpe``), naming what to install.
    """
    if name not in SEARCHERS:
        raise InvalidArgumentError(
            f"unknown searcher {name!r}; expected one of {', '.join(map(repr, SEARCHERS))}"
        )
    check_options(name, options, SEARCHERS[name])
    check_int("max_trials", max_trials, 1)
    check_int("seed", seed, 0)
    max_resource = check_number("max_resource", max_resource, above=0)
    min_resource = check_number("min_resource", min_resource, above=0)
    if max_resource < min_resource:
        raise InvalidArgumentError(
            f"expected max_resource >= min_resource; got max_resource={max_resource:g}, "
            f"min_resource={min_resource:g}"
        )
    if name == "grid":
        return GridSearcher(space, objectives, max_trials=max_trials, **options)
    if name == "random":
        return RandomSearcher(space, objectives, max_trials=max_trials, seed=seed)
    if name == "sobol":
        return SobolSearcher(space, objectives, max_trials=max_trials, seed=seed)
    if name == "tpe":
        return TpeSearcher(space, objectives, max_trials=max_trials, seed=seed, **options)
    return AshaSearcher(
        space,
        objectives,
        max_trials=max_trials,
        max_resource=max_resource,
        min_resource=min_resource,
        seed=seed,
        **options,
    )
