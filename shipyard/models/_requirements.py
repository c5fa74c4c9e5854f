"""Requirements of a model package: what must be installed to load it.

Taken from the flavor (the libraries its files need, e.g. scikit-learn, skops,
NumPy and SciPy for a pipeline) pinned to the versions installed *here*, plus
what the user names. Never from scanning ``sys.modules``: MLflow does that and
pins torch for an sklearn model because some library imported it. Versions come
from ``importlib.metadata`` (cached: no ``pip freeze`` per call).
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Iterable, Sequence
from importlib import metadata
from pathlib import Path

from shipyard.errors import InvalidArgumentError, NotFoundError
from shipyard.validation import describe

__all__ = ["installed_version", "merge_requirements", "pinned"]

_NAME_RE = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


@functools.lru_cache(maxsize=256)
def installed_version(distribution: str) -> str | None:
    """The installed version of a distribution, or None."""
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def pinned(distributions: Iterable[str]) -> list[str]:
    """``name==version`` for each installed distribution (missing ones are left out:
    a flavor lists optional helpers such as pandas)."""
    out = []
    for name in distributions:
        version = installed_version(name)
        if version is not None:
            out.append(f"{name}=={version}")
    return out


def _canonical(requirement: str) -> str:
    match = _NAME_RE.match(requirement)
    return re.sub(r"[-_.]+", "-", match.group(1)).lower() if match else requirement


def _user_requirements(extra: Sequence[str] | str | os.PathLike[str]) -> list[str]:
    # A path object, or a string naming an existing file, is a requirements file;
    # any other string is one specifier.
    if isinstance(extra, os.PathLike) or (isinstance(extra, str) and Path(extra).is_file()):
        path = Path(extra)
        if not path.is_file():
            raise NotFoundError(f"requirements file {str(path)!r} does not exist")
        lines = path.read_text().splitlines()
        return [ln.split("#", 1)[0].strip() for ln in lines if ln.split("#", 1)[0].strip()]
    items = [extra] if isinstance(extra, str) else list(extra)
    for item in items:
        if (
            not isinstance(item, str)
            or not item.strip()
            or "\n" in item
            or not _NAME_RE.match(item)
        ):
            raise InvalidArgumentError(
                f"invalid requirement {describe(item)}: expected a specifier like 'lightgbm>=4' "
                "or a path to a requirements file"
            )
    return [i.strip() for i in items]


def merge_requirements(
    flavor: Sequence[str], extra: Sequence[str] | str | os.PathLike[str] | None
) -> list[str]:
    """The flavor's pins with the user's requirements; a user entry for the same
    distribution replaces the pin (the user may know a range works)."""
    user = _user_requirements(extra) if extra is not None else []
    names = {_canonical(u) for u in user}
    merged = [r for r in flavor if _canonical(r) not in names] + user
    return sorted(dict.fromkeys(merged), key=_canonical)
