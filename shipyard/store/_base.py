"""The one storage interface for metadata.

Contract (every implementation, checked by :mod:`shipyard.testing.store_conformance`):

* **Thread safety.** One store object may be used from many threads at once.
  Several processes may share one database (SQLite included): writes are
  serialized by the backend and retried on lock contention, so callers never
  see "database is locked".
* **Immutability.** Returned entities are frozen (:mod:`shipyard.types`); they
  are snapshots and never change after they are returned.
* **Missing ids** raise :class:`~shipyard.errors.NotFoundError` naming the id.
  Bad arguments raise :class:`~shipyard.errors.InvalidArgumentError`; a name
  that is taken or a param re-logged with another value raises
  :class:`~shipyard.errors.ConflictError`; writing to a deleted run raises
  :class:`~shipyard.errors.StateError`. A failed call changes nothing.
* **Backend failures** raise :class:`~shipyard.errors.StoreError` chained to
  the original exception.
* **Metrics** are ingested as columns (:class:`~shipyard.types.MetricSeries`).
  Steps may arrive out of order; all points are kept (NaN and inf included).
  History comes back ordered by step, then by order of logging. Timestamps are
  kept to the millisecond (every store rounds them the same way).

Later capabilities (datasets, models, registry, checkpoints) extend the
interface by adding sections like the tracking one below, each with its own
conformance tests, so a backend implements the whole platform or fails loudly
at construction (ABC) -- no silently missing methods.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from types import EllipsisType
from typing import Any

from shipyard.errors import ConflictError, InvalidArgumentError, NotFoundError
from shipyard.types import (
    AliasEvent,
    Artifact,
    Dataset,
    DatasetVersion,
    Experiment,
    Lifecycle,
    MetricSeries,
    ModelExport,
    ModelVersion,
    Page,
    ParamValue,
    Project,
    RegisteredModel,
    Run,
    RunInput,
    RunStatus,
)

__all__ = ["DEFAULT_PROJECT", "Store"]

DEFAULT_PROJECT = "default"


class Store(abc.ABC):
    """Metadata store: projects, experiments, runs, params, tags, metrics, artifacts."""

    #: The URI this store was opened from (``sqlite:///...``, ``memory:``...).
    uri: str = ""

    def close(self) -> None:  # noqa: B027 - optional hook, most stores hold nothing
        """Release connections. The store must not be used afterwards."""

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- projects ---------------------------------------------------------------

    @abc.abstractmethod
    def create_project(self, name: str, description: str = "") -> Project:
        """Create a project. ConflictError if the name is taken."""

    @abc.abstractmethod
    def get_project(self, project_id: str) -> Project: ...

    @abc.abstractmethod
    def get_project_by_name(self, name: str) -> Project: ...

    @abc.abstractmethod
    def list_projects(self) -> list[Project]:
        """All projects, ordered by name."""

    # -- experiments ------------------------------------------------------------

    @abc.abstractmethod
    def create_experiment(
        self,
        project_id: str,
        name: str,
        *,
        description: str = "",
        tags: Mapping[str, str] | None = None,
        experiment_id: str | None = None,
    ) -> Experiment:
        """Create an experiment in a project. ConflictError if the project already
        has one of that name (deleted ones included: restore or rename it)."""

    @abc.abstractmethod
    def get_experiment(self, experiment_id: str) -> Experiment: ...

    @abc.abstractmethod
    def get_experiment_by_name(self, project_id: str, name: str) -> Experiment: ...

    @abc.abstractmethod
    def list_experiments(
        self, project_id: str | None = None, *, include_deleted: bool = False
    ) -> list[Experiment]:
        """Experiments ordered by creation time, oldest first."""

    @abc.abstractmethod
    def update_experiment(
        self,
        experiment_id: str,
        *,
        name: str | None = None,
        description: str | None = None,
        lifecycle: Lifecycle | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> Experiment:
        """Change the given fields; ``tags`` are merged into the existing ones."""

    # -- runs -------------------------------------------------------------------

    @abc.abstractmethod
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
        """Create a run. ``run_id`` lets a client choose the id (offline sync);
        creating an id that exists raises ConflictError. StateError if the
        experiment is deleted."""

    @abc.abstractmethod
    def get_run(self, run_id: str) -> Run: ...

    @abc.abstractmethod
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
        """Change the given fields (``None`` leaves a field as it is). Setting the
        status back to RUNNING (a resume) clears ``end_time``."""

    @abc.abstractmethod
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
        """Runs matching a filter (grammar in :mod:`shipyard.store._filter`), in the
        given order (default: newest first), one page at a time."""

    @abc.abstractmethod
    def log_batch(
        self,
        run_id: str,
        *,
        params: Mapping[str, ParamValue] | None = None,
        tags: Mapping[str, str] | None = None,
        metrics: Sequence[MetricSeries] = (),
    ) -> None:
        """Write params, tags and metric points atomically: all or nothing.

        A param already logged with a different value raises ConflictError; the
        same value again is a no-op. Tags overwrite.
        """

    @abc.abstractmethod
    def delete_tag(self, run_id: str, key: str) -> None:
        """Remove a tag; NotFoundError if the run has no such tag."""

    @abc.abstractmethod
    def get_metric_history(
        self, run_id: str, key: str, *, max_points: int | None = None
    ) -> MetricSeries:
        """All points of a metric ordered by (step, time). With ``max_points``, a
        downsample that keeps the first and last point and each bucket's min and
        max, so spikes survive (see :func:`shipyard.store.downsample`).
        NotFoundError if the run has no such metric."""

    @abc.abstractmethod
    def log_artifacts(self, run_id: str, artifacts: Sequence[Artifact]) -> None:
        """Record artifacts (already in the blob store); a path logged again is
        replaced."""

    @abc.abstractmethod
    def list_artifacts(self, run_id: str) -> list[Artifact]:
        """Artifacts of a run ordered by path."""

    @abc.abstractmethod
    def delete_artifacts(self, run_id: str, paths: Sequence[str]) -> None:
        """Forget these artifact records of a run (checkpoint retention). Paths not
        recorded are ignored; the blobs stay until a garbage collection finds no
        record that names them."""

    # -- datasets (data versioning) ----------------------------------------------

    @abc.abstractmethod
    def create_dataset(self, project_id: str, name: str, *, description: str = "") -> Dataset:
        """Create a dataset. ConflictError if the project already has that name."""

    @abc.abstractmethod
    def get_dataset(self, dataset_id: str) -> Dataset: ...

    @abc.abstractmethod
    def get_dataset_by_name(self, project_id: str, name: str) -> Dataset: ...

    @abc.abstractmethod
    def list_datasets(self, project_id: str | None = None) -> list[Dataset]:
        """Datasets ordered by name."""

    @abc.abstractmethod
    def create_dataset_version(
        self,
        dataset_id: str,
        digest: str,
        *,
        num_files: int,
        size: int,
        message: str = "",
        source: str = "",
        run_id: str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> DatasetVersion:
        """Record a new version (number = previous highest + 1, atomically, so
        concurrent adders get distinct numbers). ``digest`` names the manifest
        blob; the caller stores the blobs first."""

    @abc.abstractmethod
    def get_dataset_version(self, dataset_id: str, version: int) -> DatasetVersion:
        """A version by number; NotFoundError naming the dataset and number."""

    @abc.abstractmethod
    def get_dataset_version_by_id(self, version_id: str) -> DatasetVersion: ...

    @abc.abstractmethod
    def list_dataset_versions(self, dataset_id: str) -> list[DatasetVersion]:
        """Versions ordered by number, oldest first."""

    @abc.abstractmethod
    def log_inputs(self, run_id: str, inputs: Sequence[tuple[str, str]]) -> None:
        """Record ``(dataset_version_id, role)`` pairs as inputs of a run. Logging
        the same pair again is a no-op; unknown versions are NotFoundError."""

    @abc.abstractmethod
    def list_run_inputs(self, run_id: str) -> list[RunInput]:
        """Inputs of a run, oldest first."""

    @abc.abstractmethod
    def list_version_runs(self, dataset_version_id: str) -> list[RunInput]:
        """The runs that read a dataset version (its lineage), oldest first."""

    @abc.abstractmethod
    def get_step_result(self, key: str) -> str | None:
        """The dataset version id a cached preprocessing step produced, or None."""

    @abc.abstractmethod
    def put_step_result(self, key: str, dataset_version_id: str) -> None:
        """Remember a preprocessing step's output (``key`` hashes its code, inputs
        and arguments); a key stored again is overwritten."""

    # -- model registry -----------------------------------------------------------

    @abc.abstractmethod
    def create_registered_model(
        self,
        project_id: str,
        name: str,
        *,
        description: str = "",
        tags: Mapping[str, str] | None = None,
        contract: Mapping[str, Any] | None = None,
    ) -> RegisteredModel:
        """Create a registered model. ConflictError if the project has that name."""

    @abc.abstractmethod
    def get_registered_model(self, model_id: str) -> RegisteredModel: ...

    @abc.abstractmethod
    def get_registered_model_by_name(self, project_id: str, name: str) -> RegisteredModel: ...

    @abc.abstractmethod
    def list_registered_models(self, project_id: str | None = None) -> list[RegisteredModel]:
        """Registered models ordered by name."""

    @abc.abstractmethod
    def update_registered_model(
        self,
        model_id: str,
        *,
        description: str | None = None,
        tags: Mapping[str, str] | None = None,
        contract: Mapping[str, Any] | None = None,
    ) -> RegisteredModel:
        """Change what is given: the description, tags (merged over the old ones)
        or the contract (replaced)."""

    @abc.abstractmethod
    def create_model_version(
        self,
        model_id: str,
        package_digest: str,
        *,
        run_id: str | None = None,
        source: str = "",
        description: str = "",
        tags: Mapping[str, str] | None = None,
        metadata: Mapping[str, Any] | None = None,
        created_by: str = "",
    ) -> ModelVersion:
        """Record a new immutable version (number = previous highest + 1,
        atomically). The caller stores the package first."""

    @abc.abstractmethod
    def get_model_version(self, model_id: str, version: int) -> ModelVersion:
        """A version by number; NotFoundError naming the model and number."""

    @abc.abstractmethod
    def list_model_versions(self, model_id: str) -> list[ModelVersion]:
        """Versions ordered by number, oldest first."""

    @abc.abstractmethod
    def list_run_model_versions(self, run_id: str) -> list[ModelVersion]:
        """The model versions made from a run's packages (lineage), oldest first."""

    @abc.abstractmethod
    def update_model_version(
        self,
        model_id: str,
        version: int,
        *,
        description: str | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> ModelVersion:
        """Change a version's description or tags (merged); its package never changes."""

    @abc.abstractmethod
    def put_model_export(
        self, model_id: str, version: int, fmt: str, package_digest: str, report: Mapping[str, Any]
    ) -> ModelExport:
        """Attach an export of a version (one per format: a new one replaces it)."""

    @abc.abstractmethod
    def list_model_exports(self, model_id: str, version: int) -> list[ModelExport]:
        """Exports of a version, ordered by format."""

    @abc.abstractmethod
    def set_alias(
        self,
        model_id: str,
        alias: str,
        version: int,
        *,
        expected: int | EllipsisType | None = ...,
        outcome: str = "moved",
        actor: str = "",
        reason: str = "",
        report: Mapping[str, Any] | None = None,
    ) -> AliasEvent:
        """Point ``alias`` at ``version`` and append the move to the audit log, atomically.

        ``expected`` makes it a compare-and-set: the version the caller saw holding
        the alias (``None``: no holder). If the alias holds another version by
        then, nothing moves, a ``conflict`` event is appended, and ConflictError
        says who holds it now. ``outcome`` is ``moved`` or ``forced``.
        """

    @abc.abstractmethod
    def record_alias_event(
        self,
        model_id: str,
        alias: str,
        version: int | None,
        *,
        outcome: str,
        actor: str = "",
        reason: str = "",
        report: Mapping[str, Any] | None = None,
    ) -> AliasEvent:
        """Append an attempt that moved nothing (``refused`` by a gate) to the audit log."""

    @abc.abstractmethod
    def delete_alias(
        self, model_id: str, alias: str, *, actor: str = "", reason: str = ""
    ) -> AliasEvent:
        """Remove an alias (NotFoundError if unset); the audit log keeps a ``removed`` event."""

    @abc.abstractmethod
    def get_alias(self, model_id: str, alias: str) -> ModelVersion:
        """The version an alias points at; NotFoundError naming the alias if unset."""

    @abc.abstractmethod
    def list_aliases(self, model_id: str) -> dict[str, int]:
        """Alias name -> version number, ordered by alias."""

    @abc.abstractmethod
    def list_alias_events(self, model_id: str, alias: str | None = None) -> list[AliasEvent]:
        """The audit log of a model (or one alias), oldest first."""

    # -- conveniences derived from the core -------------------------------------

    def get_or_create_project(self, name: str) -> Project:
        try:
            return self.get_project_by_name(name)
        except NotFoundError:
            try:
                return self.create_project(name)
            except ConflictError:  # another process won the race
                return self.get_project_by_name(name)

    def get_or_create_experiment(self, project_id: str, name: str) -> Experiment:
        try:
            return self.get_experiment_by_name(project_id, name)
        except NotFoundError:
            try:
                return self.create_experiment(project_id, name)
            except ConflictError:
                return self.get_experiment_by_name(project_id, name)

    def get_or_create_dataset(self, project_id: str, name: str) -> Dataset:
        try:
            return self.get_dataset_by_name(project_id, name)
        except NotFoundError:
            try:
                return self.create_dataset(project_id, name)
            except ConflictError:
                return self.get_dataset_by_name(project_id, name)

    def resolve_model_version(
        self, project_id: str, name: str, version: int | None = None, alias: str | None = None
    ) -> ModelVersion:
        """The version of model ``name`` that a number or an alias names."""
        model = self.get_registered_model_by_name(project_id, name)
        if alias is not None:
            return self.get_alias(model.id, alias)
        if version is None:
            raise InvalidArgumentError("resolve_model_version: give a version or an alias")
        return self.get_model_version(model.id, version)

    def latest_dataset_version(self, dataset_id: str) -> DatasetVersion | None:
        versions = self.list_dataset_versions(dataset_id)
        return versions[-1] if versions else None

    def log_param(self, run_id: str, key: str, value: ParamValue) -> None:
        self.log_batch(run_id, params={key: value})

    def log_params(self, run_id: str, params: Mapping[str, ParamValue]) -> None:
        self.log_batch(run_id, params=params)

    def set_tag(self, run_id: str, key: str, value: str) -> None:
        self.log_batch(run_id, tags={key: value})

    def set_tags(self, run_id: str, tags: Mapping[str, str]) -> None:
        self.log_batch(run_id, tags=tags)

    def log_metrics(self, run_id: str, metrics: Sequence[MetricSeries]) -> None:
        self.log_batch(run_id, metrics=metrics)

    def iter_runs(
        self,
        experiment_ids: Sequence[str] | None = None,
        filter: str | None = None,
        order_by: Sequence[str] | None = None,
        *,
        page_size: int = 1000,
    ) -> Any:
        """Every matching run, fetching page after page."""
        token: str | None = None
        while True:
            page = self.search_runs(experiment_ids, filter, order_by, page_size, token)
            yield from page.items
            token = page.next_page_token
            if token is None:
                return
