"""What changed between two manifests (or a manifest and a workspace scan)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Protocol

__all__ = ["Changes", "compare"]


@dataclass(frozen=True, slots=True)
class Changes:
    added: tuple[str, ...] = ()
    modified: tuple[str, ...] = ()
    deleted: tuple[str, ...] = ()
    unchanged: int = 0
    bytes_added: int = field(default=0)

    @property
    def empty(self) -> bool:
        return not (self.added or self.modified or self.deleted)

    def summary(self) -> str:
        if self.empty:
            return f"no changes ({self.unchanged:,} files unchanged)"
        return (
            f"{len(self.added):,} added, {len(self.modified):,} modified, "
            f"{len(self.deleted):,} deleted, {self.unchanged:,} unchanged"
        )


class _Entry(Protocol):
    @property
    def path(self) -> str: ...
    @property
    def size(self) -> int: ...
    @property
    def digest(self) -> str: ...
    @property
    def mode(self) -> int: ...


def compare(old: Iterable[_Entry], new: Iterable[_Entry]) -> Changes:
    """Paths added, modified (content or executable bit) and deleted from old to new."""
    before = {e.path: e for e in old}
    added: list[str] = []
    modified: list[str] = []
    unchanged = 0
    bytes_added = 0
    seen: set[str] = set()
    for e in new:
        seen.add(e.path)
        prev = before.get(e.path)
        if prev is None:
            added.append(e.path)
            bytes_added += e.size
        elif prev.digest != e.digest or prev.mode != e.mode:
            modified.append(e.path)
            bytes_added += e.size
        else:
            unchanged += 1
    deleted = sorted(p for p in before if p not in seen)
    return Changes(tuple(added), tuple(modified), tuple(deleted), unchanged, bytes_added)
