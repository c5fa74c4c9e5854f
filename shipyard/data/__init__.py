"""Data versioning: content-addressed datasets with lineage to every run.

    import shipyard

    shipyard.data.add("data/rides.parquet", name="rides")          # -> rides@1
    path = shipyard.data.use("rides@latest", role="train")          # recorded on the run

Module functions use one :class:`DataClient` built from the environment (the
same store and blob store as tracking).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shipyard.data._changes import Changes
from shipyard.data._client import AddResult, DataClient, Lineage, StatusReport
from shipyard.data._refs import DatasetRef, parse_ref
from shipyard.types import DatasetVersion

if TYPE_CHECKING:
    from shipyard.data._dvc import CorruptDvcObjectError
    from shipyard.data._step import Step, StepResult, step, step_key

_LAZY = {
    "CorruptDvcObjectError": "shipyard.data._dvc",
    "Step": "shipyard.data._step",
    "StepResult": "shipyard.data._step",
    "step": "shipyard.data._step",
    "step_key": "shipyard.data._step",
}


def __getattr__(name: str) -> Any:
    """Step cache and DVC import load on first use (they need BLAKE3 and YAML)."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'shipyard.data' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)


__all__ = [
    "AddResult",
    "Changes",
    "CorruptDvcObjectError",
    "DataClient",
    "DatasetRef",
    "Lineage",
    "StatusReport",
    "Step",
    "StepResult",
    "add",
    "checkout",
    "client",
    "diff",
    "import_dvc",
    "lineage",
    "log",
    "parse_ref",
    "pull",
    "push",
    "resolve",
    "status",
    "step",
    "step_key",
    "use",
]

_lock = threading.Lock()
_client: DataClient | None = None
_client_uri: str | None = None


def client() -> DataClient:
    """The client the module functions use (rebuilt if the tracking URI changed)."""
    global _client, _client_uri
    from shipyard import context

    with _lock:
        uri = context.tracking_uri()
        if _client is None or _client_uri != uri:
            _client, _client_uri = DataClient(uri), uri
        return _client


def add(
    path: str | os.PathLike[str], name: str | None = None, message: str = "", **kwargs: Any
) -> AddResult:
    """Version a file or folder; unchanged content returns the latest version."""
    return client().add(path, name, message, **kwargs)


def use(ref: str, role: str = "train") -> Path:
    """Local path of a dataset version, recorded as an input of the active run."""
    return client().use(ref, role)


def resolve(ref: str) -> DatasetVersion:
    return client().resolve(ref)


def status(name: str | None = None) -> list[StatusReport]:
    return client().status(name)


def log(name: str) -> list[DatasetVersion]:
    return client().log(name)


def diff(ref_a: str, ref_b: str | None = None) -> Changes:
    return client().diff(ref_a, ref_b)


def checkout(ref: str, dest: str | os.PathLike[str], *, force: bool = False) -> DatasetVersion:
    return client().checkout(ref, dest, force=force)


def lineage(ref: str) -> Lineage:
    return client().lineage(ref)


def push(remote: str, refs: Sequence[str] = ()) -> Any:
    return client().push(remote, refs)


def pull(remote: str, refs: Sequence[str] = ()) -> Any:
    return client().pull(remote, refs)


def import_dvc(
    dvc_file: str | os.PathLike[str], name: str | None = None, message: str = ""
) -> AddResult:
    """Version a DVC-tracked file or folder from its ``.dvc`` file and DVC cache,
    without copying the bytes where the blob store can hard-link them."""
    from shipyard.data._dvc import import_dvc as _import

    return _import(client(), dvc_file, name, message)
