"""Messages the registry sections of every store share, word for word."""

from __future__ import annotations

__all__ = ["alias_conflict", "alias_missing", "version_missing"]


def version_missing(model: str, version: int) -> str:
    return (
        f"registered model {model!r} has no version {version}; list its versions with "
        f"'shipyard models versions {model}'"
    )


def alias_missing(model: str, alias: str) -> str:
    return (
        f"registered model {model!r} has no alias {alias!r}; set it with "
        f"'shipyard models promote {model} VERSION --alias {alias}'"
    )


def alias_conflict(model: str, alias: str, holder: int | None) -> str:
    now = f"version {holder}" if holder is not None else "no version"
    return (
        f"alias {alias!r} of {model!r} moved while this change was prepared: it now points "
        f"at {now}; look again ('shipyard models show {model}') and retry"
    )
