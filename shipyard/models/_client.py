"""``ModelClient``: log model packages to runs and load them back by URI.

Reaches the active run through :mod:`shipyard.context` (``shipyard.tracking`` is
a sibling and is never imported here) and opens the same store and blob store
the tracking client uses, from the same settings.

A package is stored with ``put_tree`` and recorded as a ``dir`` artifact of the
run, so ``runs:/<run>/<name>`` resolves through ``Store.list_artifacts`` and
every other artifact tool (download, UI listing, lineage) sees it too.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shipyard import context
from shipyard._util import FrozenDict
from shipyard._workspace import Workspace
from shipyard.errors import InvalidArgumentError, NotFoundError, StateError
from shipyard.models._build import build_package
from shipyard.models._loaded import LoadedModel, open_package
from shipyard.models._package import fetch_package, json_safe
from shipyard.models._resolve import resolve_models_uri
from shipyard.models._signature import Signature
from shipyard.types import Artifact
from shipyard.uris import parse_runs_uri
from shipyard.validation import check_artifact_path, check_id, describe

if TYPE_CHECKING:
    from shipyard.models._contract import Contract

__all__ = ["ModelClient", "ModelInfo"]

_DIGEST_RE = re.compile(r"[0-9a-f]{64}")
#: Code-version fields copied from the run (the diff text itself stays on the run).
_CODE_KEYS = (
    "git_commit",
    "git_branch",
    "git_remote",
    "git_dirty",
    "git_diff_digest",
    "git_diff_bytes",
    "git_untracked_count",
    "entry_point",
)


@dataclass(frozen=True, slots=True)
class ModelInfo:
    """What ``log_model`` stored: where, under which digest, and its key facts."""

    name: str
    uri: str
    digest: str
    flavor: str
    run_id: str
    signature: Signature | None
    requirements: tuple[str, ...]
    size: int
    created_at: float
    manifest: FrozenDict[str, Any] = field(default_factory=FrozenDict)


def _tree_size(directory: Path) -> int:
    return sum(p.stat().st_size for p in directory.rglob("*") if p.is_file())


class ModelClient(Workspace):
    """Log and load model packages on a store and a blob store.

    Args:
        tracking_uri: store URI; default the one tracking uses
            (``set_tracking_uri``, else ``SHIPYARD_TRACKING_URI``, else the
            embedded SQLite store under ``SHIPYARD_HOME``).
        blob_uri: blob store URL; default ``SHIPYARD_BLOB_URI`` or
            ``$SHIPYARD_HOME/blobs``.
        store, blobs: already opened ones (override the URIs).
        home: where the local package cache lives (default ``SHIPYARD_HOME``).
        project: the project registered models are looked up in.
    """

    @property
    def cache_root(self) -> Path:
        return self.home / "cache" / "models"

    # -- logging ------------------------------------------------------------------

    def log_model(
        self,
        model: Any,
        name: str,
        *,
        signature: Signature | Mapping[str, Any] | None = None,
        input_example: Any = None,
        profile_data: Any = None,
        requirements: Sequence[str] | str | os.PathLike[str] | None = None,
        contract: Mapping[str, Any] | Contract | None = None,
        flavor: str | None = None,
        run_id: str | None = None,
        allow_pickle: bool = False,
        tolerance: Mapping[str, float] | None = None,
        verify: bool = True,
        **options: Any,
    ) -> ModelInfo:
        """Store ``model`` as a package and record it as artifact ``name`` of the
        active run (or ``run_id``). See :func:`shipyard.models.log_model`."""
        path = check_artifact_path(name)
        run_id = run_id if run_id is not None else context.active_run_id()
        if run_id is None:
            raise StateError(
                "log_model needs a run to record the model on: call it inside "
                "'with shipyard.start_run():', or pass run_id=...; to write a package "
                "without a run use shipyard.models.save_package(model, path)"
            )
        check_id(run_id)
        lineage = self._lineage(run_id)
        uri = f"runs:/{run_id}/{path}"
        with tempfile.TemporaryDirectory(prefix="shipyard-model-") as tmp:
            root = Path(tmp)
            manifest = build_package(
                model,
                root,
                flavor=flavor,
                signature=signature,
                input_example=input_example,
                profile_data=profile_data,
                requirements=requirements,
                contract=contract,
                allow_pickle=allow_pickle,
                tolerance=tolerance,
                lineage=lineage,
                verify=verify,
                options=options,
                where=uri,
            )
            digest = self.blobs.put_tree(root)
            size = _tree_size(root)
        now = time.time()
        self.store.log_artifacts(run_id, [Artifact(path, digest, size, "dir", now)])
        sig = manifest["signature"]
        return ModelInfo(
            name=path,
            uri=uri,
            digest=digest,
            flavor=manifest["flavor"]["name"],
            run_id=run_id,
            signature=None if sig is None else Signature.from_dict(sig),
            requirements=tuple(manifest["requirements"]),
            size=size,
            created_at=now,
            manifest=FrozenDict(manifest),
        )

    def _lineage(self, run_id: str) -> dict[str, Any]:
        """Where the model came from: run, code version, data versions, metrics, params."""
        run = self.store.get_run(run_id)
        datasets = []
        for item in self.store.list_run_inputs(run_id):
            version = self.store.get_dataset_version_by_id(item.dataset_version_id)
            dataset = self.store.get_dataset(version.dataset_id)
            datasets.append(
                {
                    "name": dataset.name,
                    "version": version.version,
                    "version_id": version.id,
                    "digest": version.digest,
                    "role": item.role,
                }
            )
        return {
            "run_id": run.id,
            "run_name": run.name,
            "experiment_id": run.experiment_id,
            "code": {k: run.code[k] for k in _CODE_KEYS if k in run.code},
            "datasets": datasets,
            "metrics": json_safe(run.metrics),
            "params": dict(run.params),
        }

    # -- loading ------------------------------------------------------------------

    def load_model(
        self,
        uri: str | os.PathLike[str],
        *,
        allow_pickle: bool = False,
        trust_types: Sequence[str] = (),
        device: str = "cpu",
        code_free: bool | None = None,
        threads: int | None = None,
        verify_examples: bool = True,
    ) -> LoadedModel:
        """Load a package by URI, digest or local folder. See
        :func:`shipyard.models.load_model`."""
        if device not in ("cpu", "cuda"):
            raise InvalidArgumentError(
                f"invalid device {describe(device)}: expected 'cpu' or 'cuda'"
            )
        if isinstance(trust_types, str):
            trust_types = [trust_types]
        kwargs: dict[str, Any] = {
            "allow_pickle": bool(allow_pickle),
            "trust_types": tuple(trust_types),
            "device": device,
            "code_free": code_free,
            "threads": threads,
            "verify_examples": verify_examples,
        }
        if isinstance(uri, os.PathLike):
            uri = os.fspath(uri)
        if not isinstance(uri, str) or not uri:
            raise InvalidArgumentError(
                f"invalid model URI {describe(uri)}: expected 'runs:/<run-id>/<name>', "
                "'models:/<name>/<version>', 'models:/<name>@<alias>', a digest or a folder"
            )
        if uri.startswith("runs:/"):
            digest = self._run_artifact(uri)
        elif uri.startswith("models:/"):
            digest, _, _ = resolve_models_uri(uri, self.store, self.project)
        elif _DIGEST_RE.fullmatch(uri):
            digest = uri
        else:
            return open_package(Path(uri).expanduser(), uri, **kwargs)
        directory = fetch_package(self.blobs, digest, self.cache_root, uri)
        return open_package(directory, uri, digest=digest, **kwargs)

    def _run_artifact(self, uri: str) -> str:
        parsed = parse_runs_uri(uri)
        if not parsed.path:
            raise InvalidArgumentError(
                f"invalid model URI {uri!r}: name the model, as in 'runs:/<run-id>/model'"
            )
        artifacts = self.store.list_artifacts(parsed.run_id)
        for artifact in artifacts:
            if artifact.path == parsed.path:
                if artifact.kind != "dir":
                    raise InvalidArgumentError(
                        f"{uri} is a file artifact, not a model package (log one with "
                        "shipyard.log_model)"
                    )
                return artifact.digest
        folders = [a.path for a in artifacts if a.kind == "dir"]
        raise NotFoundError(
            f"run {parsed.run_id} has no model {parsed.path!r}; its folder artifacts are "
            f"{folders[:20]}"
        )

    # -- without a run ----------------------------------------------------------------

    @staticmethod
    def save_package(
        model: Any,
        path: str | os.PathLike[str],
        *,
        signature: Signature | Mapping[str, Any] | None = None,
        input_example: Any = None,
        profile_data: Any = None,
        requirements: Sequence[str] | str | os.PathLike[str] | None = None,
        contract: Mapping[str, Any] | Contract | None = None,
        flavor: str | None = None,
        allow_pickle: bool = False,
        tolerance: Mapping[str, float] | None = None,
        verify: bool = True,
        **options: Any,
    ) -> dict[str, Any]:
        """Write a package to the new (or empty) folder ``path``; return its manifest."""
        target = Path(path).expanduser()
        if target.exists() and (not target.is_dir() or any(target.iterdir())):
            raise InvalidArgumentError(
                f"cannot save a model package to {str(target)!r}: it exists and is not an "
                "empty folder"
            )
        created = not target.exists()
        target.mkdir(parents=True, exist_ok=True)
        try:
            return build_package(
                model,
                target,
                flavor=flavor,
                signature=signature,
                input_example=input_example,
                profile_data=profile_data,
                requirements=requirements,
                contract=contract,
                allow_pickle=allow_pickle,
                tolerance=tolerance,
                verify=verify,
                options=options,
                where=str(target),
            )
        except BaseException:
            if created:
                shutil.rmtree(target, ignore_errors=True)
            else:
                for child in target.iterdir():
                    if child.is_dir():
                        shutil.rmtree(child, ignore_errors=True)
                    else:
                        child.unlink()
            raise
