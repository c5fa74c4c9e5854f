"""URIs users write: ``runs:/<run-id>/<path>`` (later ``models:/<name>/<version>``
and ``models:/<name>@<alias>``)."""

from __future__ import annotations

from dataclasses import dataclass

from shipyard.errors import InvalidArgumentError
from shipyard.validation import check_id

__all__ = ["RunUri", "parse_runs_uri"]


@dataclass(frozen=True, slots=True)
class RunUri:
    run_id: str
    path: str

    def __str__(self) -> str:
        return f"runs:/{self.run_id}/{self.path}" if self.path else f"runs:/{self.run_id}"


def parse_runs_uri(uri: str) -> RunUri:
    """Split ``runs:/<run-id>/<path>``; the path may be empty (the run's root)."""
    if not isinstance(uri, str) or not uri.startswith("runs:/"):
        raise InvalidArgumentError(
            f"invalid run URI {uri!r}: expected 'runs:/<run-id>/<artifact-path>'"
        )
    rest = uri[len("runs:/") :].lstrip("/")
    run_id, _, path = rest.partition("/")
    try:
        check_id(run_id)
    except InvalidArgumentError as e:
        raise InvalidArgumentError(
            f"invalid run URI {uri!r}: {e}; expected 'runs:/<run-id>/<artifact-path>'"
        ) from None
    path = path.strip("/")
    if ".." in path.split("/"):
        raise InvalidArgumentError(f"invalid run URI {uri!r}: the path may not contain '..'")
    return RunUri(run_id, path)
