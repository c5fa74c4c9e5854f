"""TPE's choice among untried configs, for the TPE proposer (``_tpe.py``).

On a small discrete space TPE soon proposes configs it already ran: its best
candidates are near, and often at, its best observations. Asking again with
another seed mostly returns another tried config (and each ask costs a full
TPE fit), so instead the proposal that duplicated is replaced by the untried
config TPE ranks best by its own criterion, ``log l(x) - log g(x)`` with the
"below" and "above" densities that ask built:

* :func:`recording_tpe` is ``optuna.samplers.TPESampler`` with its
  ``_compute_acquisition_func`` hook (Optuna >= 4.0) recording the densities
  of every sub-space it samples (``group=True`` models each sub-space of
  parameters that occur together separately);
* :func:`best_untried` scores :data:`N_CANDIDATES` candidates, half drawn from
  the below densities (as TPE draws its own) and half uniformly, and returns the
  best one not tried (scores summed over the sub-spaces a candidate has; the
  first on ties). Everything is seeded: the same seed, the same choice.

An Optuna whose hook is gone or changed records nothing; the proposer then
asks again instead (see ``_tpe.py``).
"""

from __future__ import annotations

import functools
from collections.abc import Container, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from shipyard.search._searchers._common import new_rng
from shipyard.search._space import Space

__all__ = ["N_CANDIDATES", "Densities", "best_untried", "hooked", "recording_tpe"]

#: Candidates scored when an ask duplicates a tried config: half drawn from the
#: below densities, half uniformly.
N_CANDIDATES = 128


@dataclass(frozen=True)
class Densities:
    """TPE's below and above Parzen estimators of one sub-space, as one ask
    built them; ``names`` are the parameters they model."""

    names: tuple[str, ...]
    below: Any
    above: Any


def _usable(samples: object, *estimators: object) -> bool:
    return isinstance(samples, dict) and all(
        callable(getattr(m, "log_pdf", None)) and callable(getattr(m, "sample", None))
        for m in estimators
    )


@functools.cache
def recording_tpe(base: type) -> type:
    """``base`` (``TPESampler``) recording in ``recorded`` the densities of each
    of its samples; without the hook, a plain TPE that records nothing."""

    class RecordingTPESampler(base):  # type: ignore[misc]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.recorded: list[Densities] = []

        def _compute_acquisition_func(
            self, samples: Any, below: Any, above: Any, *args: Any, **kwargs: Any
        ) -> Any:
            if _usable(samples, below, above):
                self.recorded.append(Densities(tuple(samples), below, above))
            return super()._compute_acquisition_func(samples, below, above, *args, **kwargs)

    return RecordingTPESampler


def hooked(base: type) -> bool:
    """Whether ``base`` (``TPESampler``) has the hook :func:`recording_tpe` uses."""
    return callable(getattr(base, "_compute_acquisition_func", None))


def best_untried(
    space: Space,
    distributions: Mapping[str, Any],
    densities: Sequence[Densities],
    seen: Container[str],
    seed: int,
) -> dict[str, Any] | None:
    """The untried candidate with the highest ``log l - log g``, or None when
    every candidate was tried. ``distributions`` are Optuna's, by parameter."""
    import numpy as np

    n_below = N_CANDIDATES // 2
    fixed: list[dict[str, Any]] = [{} for _ in range(N_CANDIDATES)]
    state = np.random.RandomState(seed)  # what Optuna's estimators sample with
    for d in densities:
        for name, xs in d.below.sample(state, n_below).items():
            to_external = distributions[name].to_external_repr
            for i, x in enumerate(xs):
                fixed[i][name] = to_external(x)
    rng = new_rng(seed)
    candidates: list[dict[str, Any]] = []
    keys: set[str] = set()
    for values in fixed:
        config = _complete(space, values, rng.random(len(space.params)).tolist())
        key = space.key(config)
        if key not in seen and key not in keys:
            keys.add(key)
            candidates.append(config)
    if not candidates:
        return None
    score = np.zeros(len(candidates))
    for d in densities:
        rows = [i for i, c in enumerate(candidates) if all(n in c for n in d.names)]
        if rows:
            x = {
                n: np.asarray(
                    [distributions[n].to_internal_repr(candidates[i][n]) for i in rows],
                    dtype=float,
                )
                for n in d.names
            }
            score[rows] += d.below.log_pdf(x) - d.above.log_pdf(x)
    return candidates[int(np.argmax(score))]


def _complete(space: Space, fixed: Mapping[str, Any], units: Sequence[float]) -> dict[str, Any]:
    """A config with the ``fixed`` values where they are active, the others at
    ``units`` (one coordinate per parameter, as in ``Space.from_unit``)."""
    config: dict[str, Any] = {}
    for p, u in zip(space.params, units, strict=True):
        if space.active(p.name, config):
            config[p.name] = fixed[p.name] if p.name in fixed else p.from_unit(float(u))
    return config
