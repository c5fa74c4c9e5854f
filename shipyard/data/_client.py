"""``DataClient``: versioned datasets on the metadata store and the blob store.

A version is a manifest blob listing (path, size, BLAKE3 digest, mode); its
identity is the manifest's digest, so adding unchanged data makes no new
version and identical files are stored once.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import threading
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from shipyard import context
from shipyard._workspace import Workspace
from shipyard.data._changes import Changes, compare
from shipyard.data._refs import parse_ref
from shipyard.errors import InvalidArgumentError, NotFoundError, StateError
from shipyard.store import Store
from shipyard.types import Dataset, DatasetVersion, Run
from shipyard.validation import check_key, check_name

if TYPE_CHECKING:
    from shipyard.blobs import BlobStore, Manifest, ManifestEntry
    from shipyard.data._scan import FileEntry
    from shipyard.data._statcache import StatCache

__all__ = ["ENV_DATA_PINS", "AddResult", "DataClient", "Lineage", "StatusReport", "data_pins"]

logger = logging.getLogger("shipyard.data")

Progress = Callable[[int, int], None]
#: ``{"rides": 3}``: a reference to rides without a version number means version 3.
#: ``shipyard reproduce`` sets it so a re-run reads what the recorded run read.
ENV_DATA_PINS = "SHIPYARD_DATA_PINS"


def data_pins() -> dict[str, int]:
    """The pins in ``SHIPYARD_DATA_PINS`` (none when unset)."""
    raw = os.environ.get(ENV_DATA_PINS)
    if not raw:
        return {}
    try:
        pins = json.loads(raw)
    except ValueError:
        pins = None
    if not isinstance(pins, dict) or not all(
        isinstance(k, str) and type(v) is int and v >= 1 for k, v in pins.items()
    ):
        raise InvalidArgumentError(
            f"environment variable {ENV_DATA_PINS} must hold a JSON object of dataset name to "
            f'version number, e.g. {{"rides": 3}}; got {raw!r}'
        )
    return pins


@dataclass(frozen=True, slots=True)
class AddResult:
    dataset: Dataset
    version: DatasetVersion
    changes: Changes
    created: bool  # False when the content equals the latest version


@dataclass(frozen=True, slots=True)
class StatusReport:
    dataset: Dataset
    version: DatasetVersion | None
    source: str
    changes: Changes
    missing: bool = False  # the source path no longer exists


@dataclass(frozen=True, slots=True)
class Lineage:
    version: DatasetVersion
    runs: tuple[tuple[Run, str], ...]  # (run, role)
    produced_by: Run | None
    #: ``(model name, version)`` of registered versions made by those runs.
    models: tuple[tuple[str, int], ...] = ()


class DataClient(Workspace):
    """Add, inspect, restore and move dataset versions; record what runs read.

    Takes :class:`~shipyard._workspace.Workspace`'s arguments.
    """

    def __init__(
        self,
        tracking_uri: str | None = None,
        blob_uri: str | None = None,
        *,
        store: Store | None = None,
        blobs: BlobStore | None = None,
        home: Path | None = None,
        project: str | None = None,
    ) -> None:
        super().__init__(
            tracking_uri, blob_uri, store=store, blobs=blobs, home=home, project=project
        )
        self._cache: StatCache | None = None
        self._lock = threading.Lock()

    @property
    def stat_cache(self) -> StatCache:
        with self._lock:
            if self._cache is None:
                from shipyard.data._statcache import StatCache

                path = self.home / "cache" / "stat.db"
                path.parent.mkdir(parents=True, exist_ok=True)
                self._cache = StatCache(path)
            return self._cache

    # -- resolving ----------------------------------------------------------------

    def dataset(self, name: str) -> Dataset:
        return self.store.get_dataset_by_name(self._project_id(), check_name(name, "dataset name"))

    def resolve(self, ref: str) -> DatasetVersion:
        """The version a reference names (``NAME``, ``NAME@latest``, ``NAME@3``).

        Under ``SHIPYARD_DATA_PINS`` a reference without a version number means the
        pinned version; an explicit number is used as asked, with a warning when it is
        not the pinned one.
        """
        parsed = parse_ref(ref)
        ds = self.dataset(parsed.name)
        pin = data_pins().get(ds.name)
        if pin is not None and parsed.version is None:
            return self.store.get_dataset_version(ds.id, pin)
        if parsed.version is not None:
            if pin is not None and pin != parsed.version:
                logger.warning(
                    "dataset %s: using version %d as asked, though %s pins version %d "
                    "(the version the reproduced run read)",
                    ds.name,
                    parsed.version,
                    ENV_DATA_PINS,
                    pin,
                )
            return self.store.get_dataset_version(ds.id, parsed.version)
        latest = self.store.latest_dataset_version(ds.id)
        if latest is None:
            raise NotFoundError(f"dataset {ds.name!r} has no versions yet; add one first")
        return latest

    def manifest(self, version: DatasetVersion) -> Manifest:
        return self.blobs.read_manifest(version.digest)

    def entries(self, version: DatasetVersion) -> list[FileEntry]:
        """A version's files without per-entry validation: the manifest blob is
        verified against its digest, so its content is what we wrote. ~10x faster
        than :meth:`manifest` on 100,000 files (it matters for ``status``)."""
        from shipyard.data._scan import FileEntry

        raw = json.loads(self.blobs.get_bytes(version.digest))
        return [FileEntry(e["path"], e["size"], e["digest"], e["mode"]) for e in raw["entries"]]

    # -- add / status -----------------------------------------------------------

    def _scan(self, path: Path, exclude: Sequence[str], progress: Progress | None) -> Any:
        from shipyard.data._scan import scan

        return scan(path, cache=self.stat_cache, exclude=exclude, progress=cast(Any, progress))

    def add(
        self,
        path: str | os.PathLike[str],
        name: str | None = None,
        message: str = "",
        *,
        exclude: Sequence[str] = (),
        progress: Progress | None = None,
        run_id: str | None = None,
        metadata: dict[str, Any] | None = None,
        source: str | None = None,
    ) -> AddResult:
        """Version the file or folder at ``path`` as dataset ``name`` (default: its
        folder name). Unchanged content returns the latest version, not a new one.
        ``source`` is what ``status`` compares against later (default: ``path``;
        ``""`` for outputs that have no lasting folder)."""
        root = Path(path).expanduser()
        if not root.exists():
            raise InvalidArgumentError(f"cannot add {str(root)!r}: no such file or directory")
        root = root.resolve()
        name = check_name(name or root.name, "dataset name")
        result = self._scan(root, exclude, progress)
        entries = list(result.entries)
        manifest = result.manifest()
        with self.blobs.batch():  # one flush for all new blobs, before the version refers to them
            self._upload(root, entries, progress)
            digest = self.blobs.put_bytes(manifest.to_bytes())
        ds = self.store.get_or_create_dataset(self._project_id(), name)
        latest = self.store.latest_dataset_version(ds.id)
        old = self.entries(latest) if latest is not None else []
        changes = compare(old, entries)
        if latest is not None and latest.digest == digest:
            return AddResult(ds, latest, changes, created=False)
        if run_id is None:
            run_id = context.active_run_id()  # added inside a run: that run produced it
        version = self.store.create_dataset_version(
            ds.id,
            digest,
            num_files=len(entries),
            size=manifest.total_size,
            message=message,
            source=str(root) if source is None else source,
            run_id=run_id,
            metadata={
                "kind": "file" if root.is_file() else "dir",
                "tree": tree_signature(entries),
                **(metadata or {}),
            },
        )
        return AddResult(ds, version, changes, created=True)

    def _upload(self, root: Path, entries: list[FileEntry], progress: Progress | None) -> None:
        """Store each file whose blob is missing (hashes are known from the scan)."""
        from concurrent.futures import ThreadPoolExecutor

        blobs = self.blobs
        single = root.is_file()
        todo = [e for e in entries if not blobs.exists(e.digest)]
        total = sum(e.size for e in todo)
        done = 0

        def put(entry: FileEntry) -> int:
            source = root if single else root / entry.path
            blobs.put_file_as(source, entry.digest)
            return entry.size

        with ThreadPoolExecutor(max_workers=min(8, (os.cpu_count() or 2) * 2)) as pool:
            for size in pool.map(put, todo):
                done += size
                if progress is not None:
                    progress(done, total)

    def status(self, name: str | None = None) -> list[StatusReport]:
        """What changed in each dataset's source folder since its latest version."""
        project = self._project_id()
        datasets = [self.dataset(name)] if name else self.store.list_datasets(project)
        reports = []
        for ds in datasets:
            latest = self.store.latest_dataset_version(ds.id)
            if latest is None or not latest.source:
                continue
            source = Path(latest.source)
            if not source.exists():
                reports.append(StatusReport(ds, latest, latest.source, Changes(), missing=True))
                continue
            scanned = self._scan(source, (), None).entries
            if latest.metadata.get("tree") == tree_signature(scanned):
                # Same paths, digests and modes as the version: clean, without
                # reading its manifest (that costs more than the walk on 100k files).
                changes = Changes(unchanged=len(scanned))
            else:
                changes = compare(self.entries(latest), scanned)
            reports.append(StatusReport(ds, latest, latest.source, changes))
        return reports

    # -- inspect ----------------------------------------------------------------

    def log(self, name: str) -> list[DatasetVersion]:
        return self.store.list_dataset_versions(self.dataset(name).id)

    def ls(self, ref: str) -> list[ManifestEntry]:
        return list(self.manifest(self.resolve(ref)).entries)

    def diff(self, ref_a: str, ref_b: str | None = None) -> Changes:
        """Changes from version ``ref_a`` to ``ref_b`` (default: the version before
        ``ref_a`` to ``ref_a``)."""
        b = self.resolve(ref_a if ref_b is None else ref_b)
        if ref_b is None:
            if b.version == 1:
                return compare([], self.entries(b))
            a = self.store.get_dataset_version(b.dataset_id, b.version - 1)
        else:
            a = self.resolve(ref_a)
        return compare(self.entries(a), self.entries(b))

    def lineage(self, ref: str) -> Lineage:
        version = self.resolve(ref)
        runs = tuple(
            (self.store.get_run(i.run_id), i.role) for i in self.store.list_version_runs(version.id)
        )
        producer = self.store.get_run(version.run_id) if version.run_id else None
        names: dict[str, str] = {}
        models = []
        for run, _ in runs:
            for mv in self.store.list_run_model_versions(run.id):
                if mv.model_id not in names:
                    names[mv.model_id] = self.store.get_registered_model(mv.model_id).name
                models.append((names[mv.model_id], mv.version))
        return Lineage(version, runs, producer, tuple(dict.fromkeys(models)))

    # -- restore ----------------------------------------------------------------

    def checkout(
        self, ref: str, dest: str | os.PathLike[str], *, force: bool = False
    ) -> DatasetVersion:
        """Restore a version into ``dest`` exactly, verifying every byte.

        ``dest`` must be missing or empty unless ``force`` (then files the version
        does not list are removed). Files are copies, never links to the cache, so
        editing them cannot corrupt stored data. The tree is written to a
        temporary sibling folder and renamed into place, so a killed checkout
        leaves no half-restored ``dest``.
        """
        version = self.resolve(ref)
        target = Path(dest).expanduser()
        if target.exists() and not target.is_dir():
            raise InvalidArgumentError(f"cannot check out into {str(target)!r}: it is a file")
        nonempty = target.exists() and any(target.iterdir())
        if nonempty and not force:
            raise StateError(
                f"cannot check out into {str(target)!r}: the folder is not empty; choose an "
                "empty folder or pass --force to make it match the version exactly"
            )
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = target.parent / f".{target.name}.shipyard-{uuid.uuid4().hex[:8]}"
        try:
            self.blobs.get_tree(version.digest, staging, fresh=True)
            if target.exists():
                backup = target.parent / f".{target.name}.old-{uuid.uuid4().hex[:8]}"
                target.rename(backup)
                staging.rename(target)
                shutil.rmtree(backup, ignore_errors=True)
            else:
                staging.rename(target)
        finally:
            if staging.exists():
                shutil.rmtree(staging, ignore_errors=True)
        return version

    def materialize(self, version: DatasetVersion) -> Path:
        """A read-only local copy of a version under SHIPYARD_HOME, made once."""
        ds = self.store.get_dataset(version.dataset_id)
        path = self.home / "datasets" / ds.name / f"v{version.version}"
        marker = path / ".shipyard-complete"
        if marker.exists() and marker.read_text() == version.digest:
            return path
        self.checkout(f"{ds.name}@{version.version}", path, force=True)
        marker.write_text(version.digest)
        return path

    def use(self, ref: str, role: str = "train", *, run_id: str | None = None) -> Path:
        """Materialize a version if needed, record it as an input of the active run
        (or ``run_id``), and return its local path."""
        check_key(role, "input role")
        version = self.resolve(ref)
        path = self.materialize(version)
        run = run_id or context.active_run_id()
        if run is not None:
            self.store.log_inputs(run, [(version.id, role)])
        if version.metadata.get("kind") == "file":
            return path / self.manifest(version).entries[0].path
        return path

    # -- remotes ----------------------------------------------------------------

    def _digests(self, versions: Sequence[DatasetVersion]) -> list[str]:
        out: list[str] = []
        for v in versions:
            out.append(v.digest)
            out.extend(e.digest for e in self.entries(v))
        return list(dict.fromkeys(out))

    def versions_for(self, refs: Sequence[str]) -> list[DatasetVersion]:
        """Versions named by refs; a bare NAME means every version of it."""
        if not refs:
            return [
                v
                for ds in self.store.list_datasets(self._project_id())
                for v in self.store.list_dataset_versions(ds.id)
            ]
        out: list[DatasetVersion] = []
        for ref in refs:
            parsed = parse_ref(ref)
            if "@" not in ref:
                out.extend(self.log(parsed.name))
            else:
                out.append(self.resolve(ref))
        return out

    def push(
        self, remote: str, refs: Sequence[str] = (), *, progress: Progress | None = None
    ) -> Any:
        """Copy the blobs of the named versions (default: all) to ``remote``."""
        from shipyard.data._remote import push

        digests = self._digests(self.versions_for(refs))
        return push(self.blobs, digests, remote, progress=cast(Any, progress))

    def pull(
        self, remote: str, refs: Sequence[str] = (), *, progress: Progress | None = None
    ) -> Any:
        """Fetch the blobs of the named versions from ``remote`` (manifests first)."""
        from shipyard.data._remote import TransferReport, pull

        versions = self.versions_for(refs)
        first = pull(self.blobs, [v.digest for v in versions], remote, progress=cast(Any, progress))
        rest = pull(self.blobs, self._digests(versions), remote, progress=cast(Any, progress))
        # The second pass sees the manifests as present: count them once, as moved.
        return TransferReport(
            objects_moved=first.objects_moved + rest.objects_moved,
            bytes_moved=first.bytes_moved + rest.bytes_moved,
            objects_skipped=rest.objects_skipped - first.objects_moved,
            requests=first.requests + rest.requests,
            packs_written=first.packs_written + rest.packs_written,
            seconds=first.seconds + rest.seconds,
        )


def tree_signature(entries: Sequence[FileEntry]) -> str:
    """A digest of the paths, digests and modes of every file: equal signatures mean
    equal trees. ~15 ms for 100,000 files (columns joined in C, no JSON), and it is
    stored on versions, so an unchanged ``status`` never reads the manifest."""
    from array import array
    from operator import itemgetter

    import blake3

    h = blake3.blake3()
    h.update("\0".join(map(itemgetter(0), entries)).encode("utf-8", "surrogateescape"))
    h.update(b"\1")
    h.update("".join(map(itemgetter(2), entries)).encode("ascii"))
    h.update(b"\1")
    h.update(array("i", map(itemgetter(3), entries)).tobytes())
    return str(h.hexdigest())
