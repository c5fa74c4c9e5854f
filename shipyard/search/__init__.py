"""Hyperparameter search: experiments of trials, adaptive ASHA, local or Ray.

    shipyard experiment run search.yaml      # or, from Python:
    from shipyard.search import load_config, run_experiment
    experiment_id, state = run_experiment(load_config("search.yaml"))

Pieces (each its own module):

* ``_space``: the parameters (int, float with log scale, categorical,
  conditional) and sampling from them;
* ``_protocol`` and ``_searchers``: searchers as pure state machines (grid,
  random, quasi-random, adaptive ASHA with promotion by checkpoint resume, TPE
  through Optuna) -- the same objects the benchmark replays;
* ``_config``: ``search.yaml``, validated with pydantic;
* ``_experiment`` and ``_state``: the driver, and what it persists so an
  experiment resumes after a crash or a pause;
* ``_executor``, ``_local``, ``_ray``: where trial processes run.

Trials are ordinary training runs driven through the Core API's environment
(``SHIPYARD_RUN_ID``, ``SHIPYARD_HPARAMS``, ``SHIPYARD_PAUSE_AFTER``), so any
Trial class or Core API script is a trial without changes.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from shipyard.search._protocol import Job, Objective, Result, Searcher

if TYPE_CHECKING:
    from shipyard.search._config import SearchConfig, load_config, parse_config
    from shipyard.search._local import LocalExecutor
    from shipyard.search._run import request, resume_experiment, run_experiment
    from shipyard.search._searchers import make_searcher
    from shipyard.search._space import Categorical, Float, Int, Space
    from shipyard.search._state import ExperimentState, TrialRecord, read_state

__all__ = [
    "Categorical",
    "ExperimentState",
    "Float",
    "Int",
    "Job",
    "LocalExecutor",
    "Objective",
    "Result",
    "SearchConfig",
    "Searcher",
    "Space",
    "TrialRecord",
    "load_config",
    "make_searcher",
    "parse_config",
    "read_state",
    "request",
    "resume_experiment",
    "run_experiment",
]

_LAZY = {
    "SearchConfig": "_config", "load_config": "_config", "parse_config": "_config",
    "request": "_run", "resume_experiment": "_run",
    "run_experiment": "_run", "LocalExecutor": "_local",
    "make_searcher": "_searchers", "Categorical": "_space", "Float": "_space",
    "Int": "_space", "Space": "_space", "ExperimentState": "_state",
    "TrialRecord": "_state", "read_state": "_state",
}  # fmt: skip


def __getattr__(name: str) -> Any:
    """Load the heavier pieces (pydantic, the driver) on first use."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'shipyard.search' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"shipyard.search.{module}"), name)
    globals()[name] = value
    return value
