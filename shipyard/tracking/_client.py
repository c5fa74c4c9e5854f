"""``TrackingClient``: explicit, synchronous access to runs (MLflow's
``MlflowClient``). The fluent functions (``shipyard.start_run``...) use one."""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from shipyard.config import Settings, settings
from shipyard.errors import InvalidArgumentError, NotFoundError, StoreError
from shipyard.store import DEFAULT_PROJECT, Store, open_store
from shipyard.tracking import _liveness
from shipyard.types import (
    Artifact,
    Experiment,
    Lifecycle,
    MetricSeries,
    Page,
    ParamValue,
    Run,
    RunStatus,
)
from shipyard.validation import check_key, check_name, describe

if TYPE_CHECKING:
    from shipyard.blobs import BlobStore

__all__ = ["TrackingClient"]


def _artifact_path(path: str | None, what: str = "artifact path") -> str:
    if path is None or path == "":
        return ""
    if not isinstance(path, str):
        raise InvalidArgumentError(f"invalid {what}: expected a string, got {describe(path)}")
    clean = path.replace("\\", "/").strip("/")
    if any(part in ("", ".", "..") for part in clean.split("/")):
        raise InvalidArgumentError(
            f"invalid {what} {path!r}: expected a relative path like 'plots/roc.png' "
            "without '.' or '..' segments"
        )
    return clean


class TrackingClient:
    """Runs, experiments, metrics and artifacts on a store and a blob store.

    Args:
        tracking_uri: store URI; default from ``SHIPYARD_TRACKING_URI`` or the
            embedded SQLite store under ``SHIPYARD_HOME``.
        blob_uri: blob store URL; default ``SHIPYARD_BLOB_URI`` or
            ``$SHIPYARD_HOME/blobs``.
        store: an already opened store (overrides ``tracking_uri``).
    """

    def __init__(
        self,
        tracking_uri: str | None = None,
        blob_uri: str | None = None,
        *,
        store: Store | None = None,
        blobs: BlobStore | None = None,
        config: Settings | None = None,
    ) -> None:
        self.settings = config or settings()
        self.tracking_uri = tracking_uri or (store.uri if store else self.settings.tracking_uri)
        self.blob_uri = blob_uri or self.settings.blob_uri
        self._store = store
        self._blobs = blobs
        self._lock = threading.Lock()

    @property
    def store(self) -> Store:
        if self._store is None:
            with self._lock:
                if self._store is None:
                    self._store = open_store(self.tracking_uri)
        return self._store

    @property
    def blobs(self) -> BlobStore:
        if self._blobs is None:
            with self._lock:
                if self._blobs is None:
                    from shipyard.blobs import open_blob_store

                    self._blobs = open_blob_store(self.blob_uri)
        return self._blobs

    # -- experiments ------------------------------------------------------------

    def project_id(self, project: str | None = None) -> str:
        return self.store.get_or_create_project(
            project or self.settings.project or DEFAULT_PROJECT
        ).id

    def create_experiment(
        self,
        name: str,
        *,
        description: str = "",
        tags: Mapping[str, str] | None = None,
        project: str | None = None,
    ) -> Experiment:
        return self.store.create_experiment(
            self.project_id(project), name, description=description, tags=tags
        )

    def get_experiment(self, name_or_id: str, *, project: str | None = None) -> Experiment:
        """An experiment by name (in the project) or by id."""
        check_name(name_or_id, "experiment")
        try:
            return self.store.get_experiment_by_name(self.project_id(project), name_or_id)
        except NotFoundError:
            if len(name_or_id) == 32:
                try:
                    return self.store.get_experiment(name_or_id)
                except NotFoundError:
                    pass
            raise

    def get_or_create_experiment(self, name: str, *, project: str | None = None) -> Experiment:
        check_name(name, "experiment name")
        exp = self.store.get_or_create_experiment(self.project_id(project), name)
        if exp.lifecycle is Lifecycle.DELETED:
            from shipyard.errors import StateError

            raise StateError(f"experiment {name!r} is deleted; restore it or choose another name")
        return exp

    def list_experiments(
        self, *, project: str | None = None, include_deleted: bool = False
    ) -> list[Experiment]:
        return self.store.list_experiments(
            self.project_id(project), include_deleted=include_deleted
        )

    # -- runs -------------------------------------------------------------------

    def get_run(self, run_id: str) -> Run:
        """A run; a RUNNING run whose process died is marked KILLED first."""
        return self._reap(self.store.get_run(run_id))

    def search_runs(
        self,
        experiments: Sequence[str] | str | None = None,
        filter: str | None = None,
        order_by: Sequence[str] | None = None,
        max_results: int = 1000,
        page_token: str | None = None,
        *,
        include_deleted: bool = False,
    ) -> Page[Run]:
        """Runs matching a filter, e.g. ``"metrics.val_rmse < 3 and params.alpha >= 0.05"``.

        Args:
            experiments: experiment names or ids (default: every experiment).
            filter: the search grammar (see :mod:`shipyard.store._filter`).
            order_by: e.g. ``["metrics.val_rmse", "start_time DESC"]``.
        """
        ids = None
        if experiments is not None:
            names = [experiments] if isinstance(experiments, str) else list(experiments)
            ids = [self.get_experiment(n).id for n in names]
        page = self.store.search_runs(
            ids, filter, order_by, max_results, page_token, include_deleted=include_deleted
        )
        return Page(tuple(self._reap(r) for r in page.items), page.next_page_token)

    def _reap(self, run: Run) -> Run:
        if run.status is not RunStatus.RUNNING:
            return run
        import time

        stale = (
            run.heartbeat_time is not None
            and time.time() - run.heartbeat_time > self.settings.heartbeat_timeout
        )
        if not (_liveness.is_dead(run.process) or stale):
            return run
        try:
            # Re-read first: the run may have finished, or been resumed by another
            # process, since ``run`` was read (the window left is milliseconds).
            now = self.store.get_run(run.id)
            if now.status is not RunStatus.RUNNING or now.process != run.process:
                return now
            return self.store.update_run(
                run.id, status=RunStatus.KILLED, end_time=run.heartbeat_time or time.time()
            )
        except StoreError:
            return run

    def set_terminated(
        self,
        run_id: str,
        status: RunStatus | str = RunStatus.FINISHED,
        end_time: float | None = None,
    ) -> Run:
        import time

        status = RunStatus(status)
        return self.store.update_run(run_id, status=status, end_time=end_time or time.time())

    def delete_run(self, run_id: str) -> None:
        self.store.update_run(run_id, lifecycle=Lifecycle.DELETED)

    # -- logging (synchronous; the fluent API buffers instead) -------------------

    def log_param(self, run_id: str, key: str, value: ParamValue) -> None:
        self.store.log_batch(run_id, params={key: value})

    def log_params(self, run_id: str, params: Mapping[str, ParamValue]) -> None:
        self.store.log_batch(run_id, params=params)

    def set_tag(self, run_id: str, key: str, value: str) -> None:
        self.store.log_batch(run_id, tags={key: value})

    def log_metric(
        self, run_id: str, key: str, value: float, step: int = 0, timestamp: float | None = None
    ) -> None:
        import time

        from shipyard.store import series

        ts = time.time() if timestamp is None else timestamp
        self.store.log_batch(run_id, metrics=[series(key, [step], [value], [ts])])

    def get_metric_history(
        self, run_id: str, key: str, *, max_points: int | None = None
    ) -> MetricSeries:
        """A metric's points ordered by step; with ``max_points``, a downsample
        keeping each bucket's min and max so spikes stay visible."""
        check_key(key, "metric key")
        return self.store.get_metric_history(run_id, key, max_points=max_points)

    # -- artifacts --------------------------------------------------------------

    def log_artifact(
        self, run_id: str, local_path: str | os.PathLike[str], artifact_path: str | None = None
    ) -> Artifact:
        """Store a file (or a directory, as a manifest) under ``artifact_path/<name>``."""
        path = Path(local_path)
        if not path.exists():
            raise InvalidArgumentError(
                f"cannot log artifact {str(path)!r}: no such file or directory"
            )
        dest = "/".join(p for p in (_artifact_path(artifact_path), path.resolve().name) if p)
        artifact = self._put(path, dest)
        self.store.log_artifacts(run_id, [artifact])
        return artifact

    def log_artifacts(
        self, run_id: str, local_dir: str | os.PathLike[str], artifact_path: str | None = None
    ) -> list[Artifact]:
        """Store a directory's contents: under ``artifact_path`` as one directory
        artifact, or (no path) each top-level entry at the run's root, as MLflow."""
        root = Path(local_dir)
        if not root.is_dir():
            raise InvalidArgumentError(f"cannot log artifacts from {str(root)!r}: not a directory")
        prefix = _artifact_path(artifact_path)
        if prefix:
            artifacts = [self._put(root, prefix)]
        else:
            artifacts = [self._put(p, p.name) for p in sorted(root.iterdir())]
        self.store.log_artifacts(run_id, artifacts)
        return artifacts

    def _put(self, path: Path, dest: str) -> Artifact:
        import time

        if path.is_dir():
            digest = self.blobs.put_tree(path)
            size = self.blobs.read_manifest(digest).total_size
            return Artifact(dest, digest, size, "dir", time.time())
        digest = self.blobs.put_file(path)
        return Artifact(dest, digest, path.stat().st_size, "file", time.time())

    def list_artifacts(self, run_id: str, path: str | None = None) -> list[Artifact]:
        """Artifacts of a run; with ``path``, those under it (inside directories too)."""
        prefix = _artifact_path(path)
        out: list[Artifact] = []
        for a in self.store.list_artifacts(run_id):
            if not prefix or a.path == prefix or a.path.startswith(prefix + "/"):
                out.append(a)
            elif a.kind == "dir" and prefix.startswith(a.path + "/"):
                inner = prefix[len(a.path) + 1 :]
                for e in self.blobs.read_manifest(a.digest).entries:
                    if e.path == inner or e.path.startswith(inner + "/"):
                        out.append(
                            Artifact(f"{a.path}/{e.path}", e.digest, e.size, "file", a.created_at)
                        )
        return out

    def download_artifacts(
        self, run_id: str, path: str = "", dst: str | os.PathLike[str] = "."
    ) -> Path:
        """Copy a run's artifact (file, directory, or everything) to ``dst``; every
        byte is verified against its digest. Returns the local path."""
        prefix = _artifact_path(path)
        target = Path(dst)
        matches = self.list_artifacts(run_id, prefix)
        if not matches:
            raise NotFoundError(f"run {run_id} has no artifact {prefix!r}")
        for a in matches:
            rel = a.path[len(prefix) :].lstrip("/") if prefix else a.path
            local = target / (rel or Path(a.path).name)
            if a.kind == "dir":
                self.blobs.get_tree(a.digest, local)
            else:
                local.parent.mkdir(parents=True, exist_ok=True)
                self.blobs.get_file(a.digest, local)
        if any(a.path == prefix for a in matches):
            return target / Path(prefix).name
        return target
