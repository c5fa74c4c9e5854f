"""Small builders and state dumps shared by the store conformance tests."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import fields
from typing import Any

import numpy as np

from shipyard._util import new_id
from shipyard.errors import NotFoundError
from shipyard.store._base import Store
from shipyard.types import Experiment, MetricSeries, Project, Run

__all__ = [
    "all_runs",
    "make_experiment",
    "make_project",
    "make_run",
    "near_now",
    "run_state",
    "series",
    "store_state",
    "unique",
]


def unique(prefix: str) -> str:
    """A name no other test uses (random suffix; stores may be shared by a session)."""
    return f"{prefix}-{new_id()[-10:]}"


def make_project(store: Store, name: str | None = None) -> Project:
    return store.create_project(name or unique("project"))


def make_experiment(store: Store, name: str | None = None, **kwargs: Any) -> Experiment:
    project = make_project(store)
    return store.create_experiment(project.id, name or unique("experiment"), **kwargs)


def make_run(store: Store, experiment: Experiment | None = None, **kwargs: Any) -> Run:
    experiment = experiment or make_experiment(store)
    return store.create_run(experiment.id, **kwargs)


def series(
    key: str,
    steps: Iterable[int],
    values: Iterable[float],
    timestamps: Iterable[float] | None = None,
) -> MetricSeries:
    """A MetricSeries from plain iterables; timestamps default to 1000 + step index."""
    s = np.asarray(list(steps), dtype=np.int64)
    v = np.asarray(list(values), dtype=np.float64)
    t = (
        np.arange(len(s), dtype=np.float64) + 1000.0
        if timestamps is None
        else np.asarray(list(timestamps), dtype=np.float64)
    )
    return MetricSeries(key, s, v, t)


def near_now(t: float, now: float, slack: float = 60.0) -> bool:
    return abs(t - now) < slack


def _dump(value: Any) -> str:
    """A canonical text form where NaN equals NaN and mapping order does not matter."""
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k!r}: {_dump(v)}" for k, v in sorted(value.items())) + "}"
    if isinstance(value, float) and math.isnan(value):
        return "nan"
    return repr(value)


def run_state(store: Store, run_id: str) -> str:
    """Everything the store holds about a run, as comparable text."""
    run = store.get_run(run_id)
    parts = [
        _dump({f.name: getattr(run, f.name) for f in fields(run) if f.name not in _MAPS}),
        *(_dump(dict(getattr(run, f))) for f in _MAPS),
    ]
    for key in sorted(run.summaries):
        parts.append(f"{key}: {store.get_metric_history(run_id, key).points()!r}")
    parts.append(repr(store.list_artifacts(run_id)))
    return "\n".join(parts)


_MAPS = ("params", "tags", "summaries", "code", "environment")


def all_runs(store: Store, experiment_ids: Sequence[str] | None = None) -> list[Run]:
    return list(store.search_runs(experiment_ids, max_results=50_000, include_deleted=True))


def store_state(store: Store, run_ids: Sequence[str] = ()) -> str:
    """Projects, experiments (deleted included) and the given runs, as comparable text."""
    parts = [repr(store.list_projects()), repr(store.list_experiments(include_deleted=True))]
    for run_id in run_ids:
        try:
            parts.append(run_state(store, run_id))
        except NotFoundError:
            parts.append(f"{run_id}: missing")
    return "\n".join(parts)
