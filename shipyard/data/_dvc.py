"""Import a DVC-tracked file or folder as a dataset version, reading DVC's cache.

Nothing is uploaded again: each cache object is checked against the md5 DVC
recorded, hashed with BLAKE3, and hard-linked into a local blob store on the
same filesystem (copied otherwise). DVC's cache layouts, both supported::

    <repo>/.dvc/cache/files/md5/ab/cdef...     DVC 3 (outs with ``hash: md5``)
    <repo>/.dvc/cache/ab/cdef...               DVC 2 ("legacy" md5, text files
                                               hashed with CRLF turned into LF)

A folder's md5 ends in ``.dir`` and names a JSON object listing
``[{"md5": ..., "relpath": ...}, ...]``. ``cache.dir`` in ``.dvc/config`` (or
``config.local``) moves the cache. DVC does not track executable bits, so files
get mode 0o644 unless an ``isexec`` flag says otherwise.
"""

from __future__ import annotations

import hashlib
import json
import mmap
import os
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import blake3

from shipyard.data._changes import compare
from shipyard.data._client import AddResult
from shipyard.errors import CorruptBlobError, InvalidArgumentError, NotFoundError, StoreError
from shipyard.validation import check_name, describe

if TYPE_CHECKING:
    from shipyard.blobs import LocalBlobStore, ManifestEntry
    from shipyard.data._client import DataClient

__all__ = ["CorruptDvcObjectError", "find_dvc_cache", "import_dvc"]

Progress = Callable[[int, int], None]
#: DVC 2 read files in chunks this big and normalised CRLF within each chunk.
_DVC2_CHUNK = 1 << 20
_AUTO: int = blake3.blake3.AUTO
_THREADED_MIN = 1 << 20


class CorruptDvcObjectError(CorruptBlobError):
    """A DVC cache object's content does not match the md5 DVC recorded for it."""

    def __init__(self, md5: str, location: str, actual: str, path: str) -> None:
        self.digest, self.location, self.actual, self.path = md5, location, actual, path
        StoreError.__init__(
            self,
            f"DVC cache object for {path!r} at {location} is corrupted: DVC recorded md5 "
            f"{md5}, its content hashes to {actual}; delete that cache file, run 'dvc pull' "
            "to fetch it again, then import again",
        )


@dataclass(frozen=True, slots=True)
class _Object:
    path: str  # in the manifest
    md5: str
    cache_file: Path
    mode: int


def import_dvc(
    client: DataClient,
    dvc_file: str | os.PathLike[str],
    name: str | None = None,
    message: str = "",
    *,
    cache_dir: str | os.PathLike[str] | None = None,
    progress: Progress | None = None,
) -> AddResult:
    """Version the output a ``.dvc`` file tracks, from DVC's cache, as dataset ``name``.

    Args:
        client: Where the version goes.
        dvc_file: A ``.dvc`` file with one entry under ``outs``.
        name: The dataset (default: the tracked file or folder's name).
        message: The version's message.
        cache_dir: DVC's cache (default: ``cache.dir`` from the repository's
            config, else ``<repo>/.dvc/cache``).
        progress: Called as ``progress(bytes_done, bytes_total)`` while hashing.

    Returns:
        Like :meth:`DataClient.add`; the version's source is the tracked path in
        the workspace, so ``shipyard data status`` compares against it.

    Raises:
        InvalidArgumentError: the file is not a ``.dvc`` file with one output.
        NotFoundError: no DVC repository above it, or cache objects are missing.
        CorruptDvcObjectError: a cache object does not match its md5.
    """
    from shipyard.blobs import Manifest

    dvc_path = Path(dvc_file).expanduser().resolve()
    out = _read_out(dvc_path)
    md5, legacy = str(out["md5"]), out.get("hash") != "md5"
    cache = Path(cache_dir).expanduser().resolve() if cache_dir else find_dvc_cache(dvc_path)
    workspace = (dvc_path.parent / str(out["path"])).resolve()
    name = check_name(name or workspace.name, "dataset name")
    kind = "dir" if md5.endswith(".dir") else "file"
    if kind == "dir":
        objects = _dir_objects(cache, md5, legacy)
    else:
        mode = 0o755 if out.get("isexec") else 0o644
        objects = [_Object(workspace.name, md5, _cache_file(cache, md5, legacy), mode)]
    missing = [o.md5 for o in objects if not o.cache_file.is_file()]
    if missing:
        raise NotFoundError(
            f"cannot import {dvc_path}: {len(missing)} of {len(objects)} objects are not in the "
            f"DVC cache {cache} (first: md5 {missing[0]}); run 'dvc pull {dvc_path.name}' first"
        )
    entries = _bring_in(client, objects, legacy, progress)
    manifest = Manifest(tuple(entries))
    digest = client.blobs.put_bytes(manifest.to_bytes())
    store = client.store
    ds = store.get_or_create_dataset(store.get_or_create_project(client.project).id, name)
    latest = store.latest_dataset_version(ds.id)
    changes = compare(client.manifest(latest).entries if latest else (), manifest.entries)
    if latest is not None and latest.digest == digest:
        return AddResult(ds, latest, changes, created=False)
    version = store.create_dataset_version(
        ds.id,
        digest,
        num_files=len(manifest),
        size=manifest.total_size,
        message=message,
        source=str(workspace),
        metadata={"kind": kind, "imported_from": "dvc", "dvc_file": str(dvc_path), "md5": md5},
    )
    return AddResult(ds, version, changes, created=True)


def find_dvc_cache(start: Path) -> Path:
    """The DVC cache of the repository holding ``start``: ``cache.dir`` from
    ``.dvc/config.local`` or ``.dvc/config`` (relative to ``.dvc/``), else ``.dvc/cache``.

    Raises:
        NotFoundError: no folder above ``start`` holds a ``.dvc`` folder.
    """
    for folder in [start, *start.parents]:
        dot_dvc = folder / ".dvc"
        if dot_dvc.is_dir():
            for config in (dot_dvc / "config.local", dot_dvc / "config"):
                cache_dir = _config_value(config, "cache", "dir")
                if cache_dir:
                    return (dot_dvc / Path(cache_dir).expanduser()).resolve()
            return dot_dvc / "cache"
    raise NotFoundError(
        f"cannot import {start}: no DVC repository (a '.dvc' folder) above it; "
        "pass cache_dir= to name DVC's cache"
    )


def _config_value(path: Path, section: str, key: str) -> str | None:
    """One value from DVC's configobj-style INI file (``[cache]`` / ``dir = ...``)."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return None
    current = None
    for raw in lines:
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("[") and line.endswith("]"):
            current = line[1:-1].strip().strip("'\"")
        elif current == section and "=" in line:
            k, _, v = line.partition("=")
            if k.strip() == key:
                return v.strip().strip("'\"")
    return None


def _read_out(dvc_path: Path) -> dict[str, Any]:
    import yaml

    try:
        doc = yaml.safe_load(dvc_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise NotFoundError(f"cannot import {dvc_path}: no such file") from None
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise InvalidArgumentError(f"cannot import {dvc_path}: expected YAML, got {e}") from e
    outs = doc.get("outs") if isinstance(doc, dict) else None
    if not isinstance(outs, list) or len(outs) != 1 or not isinstance(outs[0], dict):
        raise InvalidArgumentError(
            f"cannot import {dvc_path}: expected a .dvc file with exactly one entry under "
            f"'outs', got {describe(outs)}; import pipeline outputs (dvc.lock) one by one"
        )
    out: dict[str, Any] = outs[0]
    md5, path = out.get("md5"), out.get("path")
    if not isinstance(md5, str) or len(md5.removesuffix(".dir")) != 32 or not path:
        raise InvalidArgumentError(
            f"cannot import {dvc_path}: expected 'md5' (32 hex digits, '.dir' for a folder) "
            f"and 'path' in its output, got md5={describe(md5)} path={describe(path)}; "
            "is it committed ('dvc commit')?"
        )
    return out


def _cache_file(cache: Path, md5: str, legacy: bool) -> Path:
    """Where DVC keeps ``md5``: DVC 3's ``files/md5/`` or DVC 2's cache root."""
    dvc3, dvc2 = cache / "files" / "md5" / md5[:2] / md5[2:], cache / md5[:2] / md5[2:]
    first, second = (dvc2, dvc3) if legacy else (dvc3, dvc2)
    return first if first.exists() or not second.exists() else second


def _dir_objects(cache: Path, md5: str, legacy: bool) -> list[_Object]:
    listing = _cache_file(cache, md5, legacy)
    try:
        data = listing.read_bytes()
    except FileNotFoundError:
        raise NotFoundError(
            f"cannot import: the folder listing md5 {md5} is not in the DVC cache {cache}; "
            "run 'dvc pull' first"
        ) from None
    actual = hashlib.md5(data).hexdigest() + ".dir"
    if actual != md5:
        raise CorruptDvcObjectError(md5, str(listing), actual, "(folder listing)")
    try:
        items = json.loads(data)
        return [
            _Object(
                str(i["relpath"]),
                str(i["md5"]),
                _cache_file(cache, str(i["md5"]), legacy),
                0o755 if i.get("isexec") else 0o644,
            )
            for i in items
        ]
    except (ValueError, TypeError, KeyError, AttributeError) as e:
        raise InvalidArgumentError(
            f"cannot import: DVC folder listing {listing} is not a JSON list of "
            f"{{'md5', 'relpath'}} objects ({e})"
        ) from e


def _bring_in(
    client: DataClient, objects: list[_Object], legacy: bool, progress: Progress | None
) -> list[ManifestEntry]:
    """Verify, hash and store every object; return the manifest entries."""
    from shipyard.blobs import LocalBlobStore, ManifestEntry

    blobs = client.blobs
    local = blobs if isinstance(blobs, LocalBlobStore) else None
    total = sum(o.cache_file.stat().st_size for o in objects)
    done = 0

    def one(obj: _Object) -> ManifestEntry:
        md5, digest, size = _hash_object(obj.cache_file, obj.md5, legacy)
        if md5 != obj.md5:
            raise CorruptDvcObjectError(obj.md5, str(obj.cache_file), md5, obj.path)
        stored = blobs.exists(digest)
        if not stored and not (local and _hardlink_into_local_store(local, obj.cache_file, digest)):
            blobs.put_file_as(obj.cache_file, digest)
        return ManifestEntry(obj.path, size, digest, obj.mode)

    entries = []
    with ThreadPoolExecutor(max_workers=min(16, (os.cpu_count() or 2) + 4)) as pool:
        for entry in pool.map(one, objects):
            entries.append(entry)
            done += entry.size
            if progress is not None:
                progress(done, total)
    return entries


def _hash_object(path: Path, expected: str, legacy: bool) -> tuple[str, str, int]:
    """(md5 as DVC computes it, BLAKE3 digest, size) of a cache object, mapped once.

    DVC 2 ("legacy" md5) hashed files it took for text with CRLF turned into LF,
    1 MiB at a time; its text test varied between releases, so when the raw md5
    does not match, the normalised one is tried.
    """
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        if size == 0:
            return hashlib.md5(b"").hexdigest(), str(blake3.blake3(b"").hexdigest()), 0
        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
            threads = _AUTO if size >= _THREADED_MIN else 1
            digest = str(blake3.blake3(mm, max_threads=threads).hexdigest())
            md5 = hashlib.md5(mm).hexdigest()
            if md5 != expected and legacy and mm.find(b"\r\n") != -1:
                text = hashlib.md5()
                for start in range(0, size, _DVC2_CHUNK):
                    text.update(mm[start : start + _DVC2_CHUNK].replace(b"\r\n", b"\n"))
                md5 = text.hexdigest() if text.hexdigest() == expected else md5
            return md5, digest, size


def _hardlink_into_local_store(store: LocalBlobStore, source: Path, digest: str) -> bool:
    """Publish a DVC cache file as blob ``digest`` by hard-linking it, not copying.

    Uses the layout :class:`~shipyard.blobs.LocalBlobStore` documents: a new name
    in ``<root>/tmp``, made read-only (0o444, as DVC keeps its cache anyway, and
    both names share one inode), then renamed to ``<root>/objects/ab/cdef...``.
    Deleting either name later leaves the other intact.

    Returns:
        False if the link cannot be made (another filesystem, no hard links,
        permission denied): the caller copies instead.
    """
    tmp_dir = store.root / "tmp"
    final = store.root / "objects" / digest[:2] / digest[2:]
    tmp = tmp_dir / uuid.uuid4().hex
    try:
        tmp_dir.mkdir(parents=True, exist_ok=True)
        os.link(source, tmp)
    except OSError:
        return False
    try:
        if os.stat(tmp).st_mode & 0o222:
            os.chmod(tmp, 0o444)
        final.parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp, final)  # a racing writer's identical blob may be replaced: harmless
        if store.fsync:
            fd = os.open(final.parent, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
    except OSError:
        return False
    finally:
        if tmp.exists():
            os.unlink(tmp)
    return True
