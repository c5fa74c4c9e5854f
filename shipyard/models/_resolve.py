"""``models:/`` URIs, resolved through the registry's store methods.

Parsing is :func:`shipyard.uris.parse_models_uri`; the version (by number or
alias) comes from :meth:`~shipyard.store.Store.resolve_model_version`, so this
domain package needs neither ``shipyard.registry`` nor a client object.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from shipyard.config import settings
from shipyard.uris import parse_models_uri, parse_runs_uri

if TYPE_CHECKING:
    from shipyard.store import Store

__all__ = ["resolve_models_uri"]


def resolve_models_uri(uri: str, store: Store, project: str | None = None) -> tuple[str, str, str]:
    """``(package digest, run id, artifact path)`` of the model version a
    ``models:/`` URI names (run id and path are empty for a version registered
    without a run).

    Raises:
        InvalidArgumentError: not a ``models:/`` URI.
        NotFoundError: no such project, model, version or alias.
    """
    from shipyard.store import DEFAULT_PROJECT

    parsed = parse_models_uri(uri)
    name = project or settings().project or DEFAULT_PROJECT
    project_id = store.get_project_by_name(name).id
    mv = store.resolve_model_version(project_id, parsed.name, parsed.version, parsed.alias)
    path = parse_runs_uri(mv.source).path if mv.source.startswith("runs:/") else ""
    return mv.package_digest, mv.run_id or "", path
