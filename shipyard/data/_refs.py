"""Dataset references users write: ``rides``, ``rides@latest``, ``rides@3``, ``rides@v3``."""

from __future__ import annotations

from dataclasses import dataclass

from shipyard.errors import InvalidArgumentError
from shipyard.validation import check_name, describe

__all__ = ["DatasetRef", "parse_ref"]


@dataclass(frozen=True, slots=True)
class DatasetRef:
    name: str
    version: int | None  # None: the latest

    def __str__(self) -> str:
        return f"{self.name}@{'latest' if self.version is None else self.version}"


def parse_ref(ref: object) -> DatasetRef:
    """Split ``NAME[@VERSION]``; VERSION is a number, ``vN`` or ``latest``."""
    if not isinstance(ref, str):
        raise InvalidArgumentError(
            f"invalid dataset reference: expected 'NAME' or 'NAME@VERSION', got {describe(ref)}"
        )
    name, sep, version = ref.rpartition("@") if "@" in ref else (ref, "", "")
    check_name(name, "dataset name")
    if not sep or version == "latest":
        return DatasetRef(name, None)
    digits = version[1:] if version[:1] in ("v", "V") else version
    if not digits.isdigit() or int(digits) < 1:
        raise InvalidArgumentError(
            f"invalid dataset reference {ref!r}: expected NAME@N, NAME@vN or NAME@latest "
            "(versions count from 1; see 'shipyard data log NAME')"
        )
    return DatasetRef(name, int(digits))
