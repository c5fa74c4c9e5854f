"""The in-memory store: the reference implementation of the :class:`Store` contract.

Pure Python and NumPy, one lock, nothing persisted. Tests and notebooks use it
(``memory:``); every other store must behave the same, which
:mod:`shipyard.testing.store_conformance` checks.

Each write validates everything first and changes state only after nothing can
fail any more, so a failed call changes nothing. Params, tags and summaries are
kept as frozen mappings replaced on write (copy on write), so a snapshot handed
out earlier never changes; ``code`` and ``environment`` are kept as JSON text,
as a SQL store keeps them, and parsed afresh for each snapshot.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from shipyard._util import FrozenDict, new_id, now
from shipyard.errors import ConflictError, InvalidArgumentError, NotFoundError, StateError
from shipyard.store import _evaluate, _filter, _paging
from shipyard.store._base import Store
from shipyard.store._checks import (
    check_artifact_paths,
    check_artifacts,
    check_batch,
    check_enum,
    check_text,
    check_time,
    to_json,
)
from shipyard.store._columns import fold_summary
from shipyard.store._downsample import downsample
from shipyard.store._memory_data import MemoryDatasets
from shipyard.store._memory_registry import MemoryRegistry
from shipyard.types import (
    Artifact,
    Experiment,
    Lifecycle,
    MetricSeries,
    Page,
    ParamValue,
    Project,
    Run,
    RunStatus,
    same_param,
)
from shipyard.validation import (
    MAX_NAME_LENGTH,
    check_id,
    check_key,
    check_name,
    check_tags,
    describe,
)

if TYPE_CHECKING:
    import numpy.typing as npt

__all__ = ["MAX_RESULTS_LIMIT", "MemoryStore"]

MAX_RESULTS_LIMIT = 50_000
_T = TypeVar("_T")
_Columns = tuple["npt.NDArray[np.int64]", "npt.NDArray[np.float64]", "npt.NDArray[np.float64]"]


@dataclass(slots=True)
class _RunRecord:
    """The mutable state of one run; :meth:`snapshot` makes the frozen entity."""

    run: Run  # every field except code and environment is kept current here
    code: str = "{}"
    environment: str = "{}"
    points: dict[str, list[_Columns]] = field(default_factory=dict)
    artifacts: dict[str, Artifact] = field(default_factory=dict)

    def snapshot(self) -> Run:
        return replace(
            self.run,
            code=FrozenDict(json.loads(self.code)),
            environment=FrozenDict(json.loads(self.environment)),
        )


class MemoryStore(MemoryDatasets, MemoryRegistry, Store):
    """A complete, thread-safe :class:`Store` held in this process's memory."""

    def __init__(self, uri: str = "memory:") -> None:
        self.uri = uri
        self._lock = threading.RLock()
        self._projects: dict[str, Project] = {}
        self._experiments: dict[str, Experiment] = {}  # insertion order = creation order
        self._runs: dict[str, _RunRecord] = {}
        self._init_datasets()
        self._init_registry()

    # -- lookups (callers hold the lock) ---------------------------------------------

    def _project(self, project_id: object) -> Project:
        return _find(self._projects, project_id, "project", "shipyard projects list")

    def _experiment(self, experiment_id: object) -> Experiment:
        return _find(self._experiments, experiment_id, "experiment", "shipyard experiments list")

    def _record(self, run_id: object) -> _RunRecord:
        return _find(self._runs, run_id, "run", "shipyard runs list")

    def _writable(self, run_id: object) -> _RunRecord:
        record = self._record(run_id)
        if record.run.lifecycle is Lifecycle.DELETED:
            raise StateError(
                f"run {run_id} is deleted and cannot be written to; restore it first "
                "(update_run(..., lifecycle=Lifecycle.ACTIVE))"
            )
        return record

    # -- projects -------------------------------------------------------------------

    def create_project(self, name: str, description: str = "") -> Project:
        check_name(name, "project name")
        check_text(description, "description")
        with self._lock:
            if any(p.name == name for p in self._projects.values()):
                raise ConflictError(f"a project named {name!r} already exists; pick another name")
            project = Project(id=new_id(), name=name, description=description, created_at=now())
            self._projects[project.id] = project
            return project

    def get_project(self, project_id: str) -> Project:
        with self._lock:
            return self._project(project_id)

    def get_project_by_name(self, name: str) -> Project:
        check_name(name, "project name")
        with self._lock:
            for project in self._projects.values():
                if project.name == name:
                    return project
        raise NotFoundError(f"project {name!r} not found; create it with create_project({name!r})")

    def list_projects(self) -> list[Project]:
        with self._lock:
            return sorted(self._projects.values(), key=lambda p: p.name)

    # -- experiments ----------------------------------------------------------------

    def create_experiment(
        self,
        project_id: str,
        name: str,
        *,
        description: str = "",
        tags: Mapping[str, str] | None = None,
        experiment_id: str | None = None,
    ) -> Experiment:
        check_name(name, "experiment name")
        check_text(description, "description")
        checked_tags = check_tags(tags or {})
        if experiment_id is not None:
            check_id(experiment_id, "experiment id")
        with self._lock:
            self._project(project_id)
            self._check_free_name(project_id, name)
            if experiment_id is not None and experiment_id in self._experiments:
                raise ConflictError(f"experiment {experiment_id} already exists")
            experiment = Experiment(
                id=experiment_id or new_id(),
                project_id=project_id,
                name=name,
                description=description,
                tags=FrozenDict(checked_tags),
                created_at=now(),
            )
            self._experiments[experiment.id] = experiment
            return experiment

    def _check_free_name(self, project_id: str, name: str) -> None:
        for other in self._experiments.values():
            if other.project_id == project_id and other.name == name:
                deleted = (
                    " (deleted: restore or rename it)"
                    if other.lifecycle is Lifecycle.DELETED
                    else ""
                )
                raise ConflictError(
                    f"project {project_id} already has an experiment named {name!r}{deleted}; "
                    "pick another name"
                )

    def get_experiment(self, experiment_id: str) -> Experiment:
        with self._lock:
            return self._experiment(experiment_id)

    def get_experiment_by_name(self, project_id: str, name: str) -> Experiment:
        check_name(name, "experiment name")
        with self._lock:
            self._project(project_id)
            for experiment in self._experiments.values():
                if experiment.project_id == project_id and experiment.name == name:
                    return experiment
        raise NotFoundError(f"experiment {name!r} not found in project {project_id}")

    def list_experiments(
        self, project_id: str | None = None, *, include_deleted: bool = False
    ) -> list[Experiment]:
        with self._lock:
            if project_id is not None:
                self._project(project_id)
            return [
                e
                for e in self._experiments.values()
                if (project_id is None or e.project_id == project_id)
                and (include_deleted or e.lifecycle is Lifecycle.ACTIVE)
            ]

    def update_experiment(
        self,
        experiment_id: str,
        *,
        name: str | None = None,
        description: str | None = None,
        lifecycle: Lifecycle | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> Experiment:
        changes: dict[str, Any] = {}
        if name is not None:
            changes["name"] = check_name(name, "experiment name")
        if description is not None:
            changes["description"] = check_text(description, "description")
        if lifecycle is not None:
            changes["lifecycle"] = check_enum(Lifecycle, lifecycle, "lifecycle")
        checked_tags = check_tags(tags) if tags is not None else {}
        with self._lock:
            experiment = self._experiment(experiment_id)
            if name is not None and name != experiment.name:
                self._check_free_name(experiment.project_id, name)
            if checked_tags:
                changes["tags"] = FrozenDict({**experiment.tags, **checked_tags})
            updated = replace(experiment, **changes)
            self._experiments[experiment.id] = updated
            return updated

    # -- runs -----------------------------------------------------------------------

    def create_run(
        self,
        experiment_id: str,
        *,
        run_id: str | None = None,
        name: str | None = None,
        start_time: float | None = None,
        status: RunStatus = RunStatus.RUNNING,
        user: str = "",
        parent_run_id: str | None = None,
        tags: Mapping[str, str] | None = None,
        code: Mapping[str, Any] | None = None,
        environment: Mapping[str, Any] | None = None,
        process: str | None = None,
    ) -> Run:
        if run_id is not None:
            check_id(run_id, "run id")
        if parent_run_id is not None:
            check_id(parent_run_id, "parent run id")
        new_run_id = run_id or new_id()
        run = Run(
            id=new_run_id,
            experiment_id=experiment_id,
            name=check_name(name, "run name") if name is not None else f"run-{new_run_id[-8:]}",
            status=check_enum(RunStatus, status, "status"),
            start_time=now() if start_time is None else check_time(start_time, "start_time"),
            user=check_text(user, "user", MAX_NAME_LENGTH),
            parent_run_id=parent_run_id,
            tags=FrozenDict(check_tags(tags or {})),
            process=None if process is None else check_text(process, "process", 512),
        )
        record = _RunRecord(
            run, to_json(code or {}, "code"), to_json(environment or {}, "environment")
        )
        with self._lock:
            experiment = self._experiment(experiment_id)
            if experiment.lifecycle is Lifecycle.DELETED:
                raise StateError(
                    f"experiment {experiment_id} ({experiment.name!r}) is deleted; "
                    "restore it before creating runs in it"
                )
            if new_run_id in self._runs:
                raise ConflictError(f"run {new_run_id} already exists; choose another run id")
            self._runs[new_run_id] = record
            return record.snapshot()

    def get_run(self, run_id: str) -> Run:
        with self._lock:
            return self._record(run_id).snapshot()

    def update_run(
        self,
        run_id: str,
        *,
        status: RunStatus | None = None,
        end_time: float | None = None,
        name: str | None = None,
        lifecycle: Lifecycle | None = None,
        heartbeat_time: float | None = None,
        process: str | None = None,
        code: Mapping[str, Any] | None = None,
        environment: Mapping[str, Any] | None = None,
    ) -> Run:
        changes: dict[str, Any] = {}
        if status is not None:
            changes["status"] = check_enum(RunStatus, status, "status")
            if changes["status"] is RunStatus.RUNNING and end_time is None:
                changes["end_time"] = None  # resumed: no longer ended
        if end_time is not None:
            changes["end_time"] = check_time(end_time, "end_time")
        if name is not None:
            changes["name"] = check_name(name, "run name")
        if lifecycle is not None:
            changes["lifecycle"] = check_enum(Lifecycle, lifecycle, "lifecycle")
        if heartbeat_time is not None:
            changes["heartbeat_time"] = check_time(heartbeat_time, "heartbeat_time")
        if process is not None:
            changes["process"] = check_text(process, "process", 512)
        code_json = None if code is None else to_json(code, "code")
        env_json = None if environment is None else to_json(environment, "environment")
        with self._lock:
            record = self._record(run_id)
            record.run = replace(record.run, **changes)
            if code_json is not None:
                record.code = code_json
            if env_json is not None:
                record.environment = env_json
            return record.snapshot()

    def search_runs(
        self,
        experiment_ids: Sequence[str] | None = None,
        filter: str | None = None,
        order_by: Sequence[str] | None = None,
        max_results: int = 1000,
        page_token: str | None = None,
        *,
        include_deleted: bool = False,
    ) -> Page[Run]:
        if isinstance(max_results, bool) or not isinstance(max_results, int):
            raise InvalidArgumentError(
                f"invalid max_results: expected an integer, got {describe(max_results)}"
            )
        if not 1 <= max_results <= MAX_RESULTS_LIMIT:
            raise InvalidArgumentError(
                f"invalid max_results: expected 1 to {MAX_RESULTS_LIMIT}, got {max_results}; "
                "page through larger results with next_page_token"
            )
        if isinstance(experiment_ids, str) or not isinstance(experiment_ids, Sequence | None):
            raise InvalidArgumentError(
                f"experiment_ids: expected a list of ids, got {describe(experiment_ids)}"
            )
        if filter is not None and not isinstance(filter, str):
            raise InvalidArgumentError(f"filter: expected a string, got {describe(filter)}")
        expr = _filter.parse_filter(filter)
        order = _filter.parse_order_by(order_by)
        wanted = None if experiment_ids is None else [str(e) for e in experiment_ids]
        fingerprint = _paging.fingerprint(wanted, filter, order_by, include_deleted)
        offset = 0 if page_token is None else _paging.decode_page_token(page_token, fingerprint)
        with self._lock:
            for experiment_id in experiment_ids or ():
                self._experiment(experiment_id)
            chosen = None if wanted is None else set(wanted)
            runs = [
                r.snapshot()
                for r in self._runs.values()
                if (chosen is None or r.run.experiment_id in chosen)
                and (include_deleted or r.run.lifecycle is Lifecycle.ACTIVE)
            ]
        matching = [r for r in runs if expr is None or _evaluate.evaluate(expr, r) is True]
        ordered = _evaluate.sort_runs(matching, order)
        items = tuple(ordered[offset : offset + max_results])
        end = offset + len(items)
        token = _paging.encode_page_token(end, fingerprint) if end < len(ordered) else None
        return Page(items=items, next_page_token=token)

    # -- logging --------------------------------------------------------------------

    def log_batch(
        self,
        run_id: str,
        *,
        params: Mapping[str, ParamValue] | None = None,
        tags: Mapping[str, str] | None = None,
        metrics: Sequence[MetricSeries] = (),
    ) -> None:
        new_params, new_tags, checked = check_batch(params, tags, metrics)
        series = [(s.key, (s.steps.copy(), s.values.copy(), s.timestamps.copy())) for s in checked]
        with self._lock:
            record = self._writable(run_id)
            run = record.run
            for key, value in new_params.items():
                if key in run.params and not same_param(run.params[key], value):
                    raise ConflictError(
                        f"param {key!r} of run {run_id} was already logged as "
                        f"{describe(run.params[key])} and cannot change to {describe(value)}; "
                        "params are immutable: log the new value under another key or in a new run"
                    )
            # Nothing below can fail: the batch is applied whole.
            summaries = dict(run.summaries)
            for key, columns in series:
                if len(columns[0]):
                    record.points.setdefault(key, []).append(columns)
                    summaries[key] = fold_summary(summaries.get(key), MetricSeries(key, *columns))
            fresh = {k: v for k, v in new_params.items() if k not in run.params}
            record.run = replace(
                run,
                params=FrozenDict({**run.params, **fresh}) if fresh else run.params,
                tags=FrozenDict({**run.tags, **new_tags}) if new_tags else run.tags,
                summaries=FrozenDict(summaries) if series else run.summaries,
            )

    def delete_tag(self, run_id: str, key: str) -> None:
        check_key(key, "tag key")
        with self._lock:
            record = self._writable(run_id)
            if key not in record.run.tags:
                raise NotFoundError(f"run {run_id} has no tag {key!r}")
            tags = {k: v for k, v in record.run.tags.items() if k != key}
            record.run = replace(record.run, tags=FrozenDict(tags))

    def get_metric_history(
        self, run_id: str, key: str, *, max_points: int | None = None
    ) -> MetricSeries:
        check_key(key, "metric key")
        if max_points is not None and (
            isinstance(max_points, bool) or not isinstance(max_points, int) or max_points < 1
        ):
            raise InvalidArgumentError(
                f"invalid max_points: expected an integer >= 1 or None, got {describe(max_points)}"
            )
        with self._lock:
            chunks = self._record(run_id).points.get(key)
            if not chunks:
                raise NotFoundError(f"run {run_id} has no metric {key!r}")
            if len(chunks) > 1:  # compact, so later reads concatenate less
                chunks[:] = [tuple(np.concatenate(c) for c in zip(*chunks, strict=True))]  # type: ignore[list-item]
            steps, values, times = chunks[0]
        order = np.argsort(steps, kind="stable")
        steps, values, times = steps[order], values[order], times[order]
        total = len(steps)
        if max_points is not None:
            steps, values, times = downsample(steps, values, times, max_points)
        for array in (steps, values, times):
            array.flags.writeable = False
        return MetricSeries(key, steps, values, times, total=total)

    # -- artifacts ------------------------------------------------------------------

    def log_artifacts(self, run_id: str, artifacts: Sequence[Artifact]) -> None:
        checked = check_artifacts(artifacts)
        with self._lock:
            record = self._writable(run_id)
            for artifact in checked:
                record.artifacts[artifact.path] = artifact

    def list_artifacts(self, run_id: str) -> list[Artifact]:
        with self._lock:
            return sorted(self._record(run_id).artifacts.values(), key=lambda a: a.path)

    def delete_artifacts(self, run_id: str, paths: Sequence[str]) -> None:
        checked = check_artifact_paths(paths)
        with self._lock:
            record = self._writable(run_id)
            for path in checked:
                record.artifacts.pop(path, None)


# -- checks and conversions (pure functions) -------------------------------------------


def _find(table: dict[str, _T], key: object, what: str, command: str) -> _T:
    if not isinstance(key, str):
        raise InvalidArgumentError(f"invalid {what} id: expected a string, got {describe(key)}")
    found = table.get(key)
    if found is None:
        shown = key if len(key) <= 64 else f"{key[:64]}..."
        raise NotFoundError(f"{what} {shown} not found; list them with '{command}'")
    return found
