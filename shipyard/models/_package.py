"""The package on disk and in the blob store.

A package is a directory tree::

    shipyard-model.json        the manifest: format, flavor and its config,
                               signature, examples index and tolerances,
                               requirements, contract, lineage
    model/...                  the flavor's files
    examples/inputs.npz        golden inputs (no pickle)
    examples/outputs.npz       golden outputs

stored with ``BlobStore.put_tree``: the digest of its tree listing names the
package, identical files are stored once (weights, ONNX graphs and the
examples, written reproducibly; not skops files, which embed Python object
ids, nor the manifest, which holds the run and time), and every file is
verified against its digest when it is read. :func:`fetch_package` keeps a
local copy under ``$SHIPYARD_HOME/cache/models/<digest>`` and re-hashes it on
every load (BLAKE3 reads about a GB/s, so even large weights cost little):
a cached file changed by anyone is replaced from the verified store rather
than trusted. A blob that no longer matches its digest is refused with
:class:`~shipyard.errors.ModelIntegrityError` naming the package and the file.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shipyard.errors import (
    CorruptBlobError,
    InvalidArgumentError,
    ModelIntegrityError,
    NotFoundError,
    StoreError,
)

if TYPE_CHECKING:
    from shipyard.blobs import BlobStore, ManifestEntry

__all__ = [
    "FORMAT",
    "MANIFEST_FILE",
    "fetch_package",
    "json_safe",
    "read_manifest",
    "write_manifest",
]

MANIFEST_FILE = "shipyard-model.json"
FORMAT = "shipyard.model/1"
_REQUIRED = ("format", "flavor", "signature", "examples", "requirements", "lineage")
_COMPLETE = ".shipyard-complete"


def json_safe(value: Any) -> Any:
    """``value`` with non-finite floats as None (JSON has no NaN)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value


def write_manifest(directory: Path, doc: Mapping[str, Any]) -> None:
    text = json.dumps(json_safe(doc), indent=2, sort_keys=True, allow_nan=False)
    (directory / MANIFEST_FILE).write_text(text + "\n", encoding="utf-8")


def read_manifest(directory: Path, where: str) -> dict[str, Any]:
    """The package manifest, checked for the keys every loader relies on.

    Raises:
        NotFoundError: ``directory`` holds no package.
        InvalidArgumentError: the manifest is not a ``shipyard.model/1`` document.
    """
    path = directory / MANIFEST_FILE
    if not path.is_file():
        raise NotFoundError(
            f"{where} is not a model package: it has no {MANIFEST_FILE} (log one with "
            "shipyard.log_model or shipyard.models.save_package)"
        )
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise InvalidArgumentError(
            f"model package {where}: {MANIFEST_FILE} is not JSON ({e})"
        ) from e
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        got = doc.get("format") if isinstance(doc, dict) else type(doc).__name__
        raise InvalidArgumentError(
            f"model package {where}: expected manifest format {FORMAT!r}, got {got!r} "
            "(written by another Shipyard version? upgrade to read it)"
        )
    missing = [k for k in _REQUIRED if k not in doc]
    if missing:
        raise InvalidArgumentError(f"model package {where}: its manifest lacks {missing}")
    return doc


def _intact(path: Path, entry: ManifestEntry) -> bool:
    from shipyard.blobs import hash_file

    try:
        return path.stat().st_size == entry.size and hash_file(path) == entry.digest
    except OSError:
        return False


def fetch_package(blobs: BlobStore, digest: str, cache_root: Path, where: str) -> Path:
    """A verified local copy of the package ``digest`` names.

    Raises:
        ModelIntegrityError: a stored file (or the tree listing) no longer
            matches its digest; the message names the package and the file.
        NotFoundError: the blobs are not in this store.
    """
    try:
        manifest = blobs.read_manifest(digest)
    except CorruptBlobError as e:
        raise ModelIntegrityError(
            f"model package {where} is tampered with or corrupted: its file listing (blob "
            f"{digest} at {e.location}) no longer matches its digest; refusing to load it. "
            "Restore the blob from a remote or backup, or log the model again"
        ) from e
    except InvalidArgumentError as e:
        raise InvalidArgumentError(
            f"{where} is not a model package: blob {digest} is not a directory listing ({e})"
        ) from e
    target = cache_root / digest
    if (target / _COMPLETE).is_file() and all(
        _intact(target / e.path, e) for e in manifest.entries
    ):
        return target
    if target.exists():  # changed on disk, or left half-written: fetch it again
        shutil.rmtree(target, ignore_errors=True)
    cache_root.mkdir(parents=True, exist_ok=True)
    staging = cache_root / f".{digest}.{uuid.uuid4().hex}.tmp"
    try:
        blobs.get_tree(digest, staging, fresh=True)
    except CorruptBlobError as e:
        shutil.rmtree(staging, ignore_errors=True)
        names = [x.path for x in manifest.entries if x.digest == e.digest] or ["a file"]
        raise ModelIntegrityError(
            f"model package {where} is tampered with or corrupted: {', '.join(names)} no "
            f"longer matches the digest recorded when it was logged (blob {e.digest} at "
            f"{e.location}); refusing to load it. Restore the blob from a remote or backup, "
            "or log the model again"
        ) from e
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    (staging / _COMPLETE).write_text(digest)
    try:
        os.rename(staging, target)
    except OSError as e:  # another process may have put the same package there first
        shutil.rmtree(staging, ignore_errors=True)
        if not (target / _COMPLETE).is_file():
            raise StoreError(
                f"cannot place model package {where} in the cache folder {target}: {e}; check "
                "permissions and free space"
            ) from e
    return target
