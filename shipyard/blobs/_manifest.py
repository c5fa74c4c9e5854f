"""Directory manifests: a directory is stored as one blob listing its files.

The encoding is canonical so the same tree always gets the same digest, whatever
order the filesystem lists it in: UTF-8 JSON with sorted keys and no whitespace,
entries sorted by path (code point order)::

    {"entries":[{"digest":"...","mode":420,"path":"a/b.txt","size":3}],
     "format":"shipyard.manifest/1"}

``mode`` is ``0o644`` or ``0o755``: only the executable bit is kept, so a tree's
digest does not depend on the umask of the machine that stored it. Empty
directories are not recorded.
"""

from __future__ import annotations

import json
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from shipyard.blobs._hashing import check_digest, hash_bytes
from shipyard.errors import InvalidArgumentError, NotFoundError
from shipyard.validation import describe

__all__ = ["EXEC_MODE", "FILE_MODE", "MANIFEST_FORMAT", "Manifest", "ManifestEntry", "scan_tree"]

MANIFEST_FORMAT = "shipyard.manifest/1"
FILE_MODE = 0o644
EXEC_MODE = 0o755
_ENTRY_KEYS = frozenset({"path", "size", "digest", "mode"})


def _check_path(path: object) -> str:
    if (
        not isinstance(path, str)
        or not path
        or path.startswith("/")
        or "\\" in path
        or "\x00" in path
        or any(part in ("", ".", "..") for part in path.split("/"))
    ):
        raise InvalidArgumentError(
            "invalid manifest path: expected a relative POSIX path without empty, '.' "
            f"or '..' segments or backslashes, got {describe(path)}"
        )
    try:
        path.encode("utf-8")
    except UnicodeEncodeError as e:
        raise InvalidArgumentError(
            f"invalid manifest path {path!r}: the name is not valid UTF-8; rename the file"
        ) from e
    return path


@dataclass(frozen=True, slots=True)
class ManifestEntry:
    """One file of a tree: where it goes, how big it is, which blob holds it."""

    path: str
    size: int
    digest: str
    mode: int = FILE_MODE

    def __post_init__(self) -> None:
        _check_path(self.path)
        try:
            check_digest(self.digest)
        except InvalidArgumentError as e:
            raise InvalidArgumentError(f"invalid manifest entry {self.path!r}: {e}") from None
        if type(self.size) is not int or self.size < 0:
            raise InvalidArgumentError(
                f"invalid size for manifest entry {self.path!r}: expected an integer >= 0, "
                f"got {describe(self.size)}"
            )
        if self.mode not in (FILE_MODE, EXEC_MODE) or type(self.mode) is not int:
            raise InvalidArgumentError(
                f"invalid mode for manifest entry {self.path!r}: expected 0o644 or 0o755, "
                f"got {describe(self.mode)}"
            )

    @property
    def executable(self) -> bool:
        return self.mode == EXEC_MODE

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "size": self.size, "digest": self.digest, "mode": self.mode}


@dataclass(frozen=True, slots=True)
class Manifest:
    """The files of a directory tree, sorted by path.

    Entries given in any order are sorted on construction; duplicate paths, or a
    path that is also the parent directory of another, are refused.
    """

    FORMAT: ClassVar[str] = MANIFEST_FORMAT

    entries: tuple[ManifestEntry, ...] = ()

    def __post_init__(self) -> None:
        entries = tuple(sorted(self.entries, key=lambda e: e.path))
        object.__setattr__(self, "entries", entries)
        paths = {e.path for e in entries}
        if len(paths) != len(entries):
            dupes = sorted(p for p in paths if sum(e.path == p for e in entries) > 1)
            raise InvalidArgumentError(
                f"invalid manifest: expected unique paths, got duplicates {dupes[:5]}"
            )
        for e in entries:
            parts = e.path.split("/")
            for i in range(1, len(parts)):
                parent = "/".join(parts[:i])
                if parent in paths:
                    raise InvalidArgumentError(
                        f"invalid manifest: {parent!r} is listed as a file and as the "
                        f"directory holding {e.path!r}"
                    )

    @property
    def total_size(self) -> int:
        """The sum of the file sizes, in bytes."""
        return sum(e.size for e in self.entries)

    def __len__(self) -> int:
        return len(self.entries)

    def to_bytes(self) -> bytes:
        """The canonical encoding (the bytes whose digest names the tree)."""
        doc = {"format": MANIFEST_FORMAT, "entries": [e.to_dict() for e in self.entries]}
        text = json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return text.encode("utf-8")

    def digest(self) -> str:
        """The digest of :meth:`to_bytes`, i.e. the tree's blob digest."""
        return hash_bytes(self.to_bytes())

    @classmethod
    def from_bytes(cls, data: bytes) -> Manifest:
        """Decode and validate a manifest.

        Raises:
            InvalidArgumentError: ``data`` is not a ``shipyard.manifest/1`` document.
        """
        try:
            doc = json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise InvalidArgumentError(
                f"invalid manifest: expected UTF-8 JSON, got {describe(bytes(data[:40]))} ({e}); "
                "is this digest a file rather than a directory?"
            ) from e
        if not isinstance(doc, dict) or doc.get("format") != MANIFEST_FORMAT:
            got = doc.get("format") if isinstance(doc, dict) else doc
            raise InvalidArgumentError(
                f"invalid manifest: expected a JSON object with format {MANIFEST_FORMAT!r}, "
                f"got {describe(got)}; is this digest a file rather than a directory?"
            )
        raw = doc.get("entries")
        if set(doc) != {"format", "entries"} or not isinstance(raw, list):
            raise InvalidArgumentError(
                "invalid manifest: expected exactly the keys 'format' and 'entries' (a list), "
                f"got keys {sorted(doc)}"
            )
        entries = []
        for item in raw:
            if not isinstance(item, dict) or set(item) != _ENTRY_KEYS:
                raise InvalidArgumentError(
                    f"invalid manifest entry: expected an object with keys {sorted(_ENTRY_KEYS)}, "
                    f"got {describe(item)}"
                )
            entries.append(ManifestEntry(**item))
        return cls(tuple(entries))


def scan_tree(root: Path) -> list[tuple[str, Path, int]]:
    """``(relative POSIX path, file to read, mode)`` for every file under ``root``.

    A symbolic link to a regular file inside the tree stands for that file; any
    other link, and any special file, is refused. Empty folders yield nothing.

    Raises:
        NotFoundError: ``root`` does not exist.
        InvalidArgumentError: ``root`` is not a folder, or holds a refused entry.
        OSError: listing failed (callers translate it).
    """
    if not root.exists():
        raise NotFoundError(f"cannot store tree {root}: no such directory")
    if not root.is_dir():
        raise InvalidArgumentError(f"cannot store tree {root}: expected a directory, got a file")
    real_root = root.resolve()
    found: list[tuple[str, Path, int]] = []

    def refuse(path: Path, why: str) -> InvalidArgumentError:
        return InvalidArgumentError(
            f"cannot store tree {root}: {path} {why}; replace it with a regular file or remove it"
        )

    def walk(folder: Path, prefix: str) -> None:
        with os.scandir(folder) as it:
            for entry in it:
                rel = prefix + entry.name
                path = Path(entry.path)
                st = entry.stat(follow_symlinks=False)
                if stat.S_ISDIR(st.st_mode):
                    walk(path, rel + "/")
                    continue
                source = path
                if stat.S_ISLNK(st.st_mode):
                    try:
                        st = os.stat(path)
                    except OSError:
                        raise refuse(path, "is a dangling or looping symbolic link") from None
                    target = path.resolve()
                    if not target.is_relative_to(real_root):
                        raise refuse(path, f"is a symbolic link leaving the tree (to {target})")
                    if not stat.S_ISREG(st.st_mode):
                        raise refuse(path, "is a symbolic link to a directory or special file")
                    source = target
                elif not stat.S_ISREG(st.st_mode):
                    raise refuse(path, "is a special file (socket, pipe or device)")
                mode = EXEC_MODE if st.st_mode & 0o111 else FILE_MODE
                found.append((rel, source, mode))

    walk(root, "")
    return found
