"""The model registry: named models, immutable versions, aliases and their audit log.

    import shipyard

    mv = shipyard.register_model("runs:/<run>/model", "rides-pricing")    # -> version 1
    shipyard.registry.client().lineage("models:/rides-pricing/1")

Promotion through the production gates is :func:`shipyard.export.promote`.
"""

from __future__ import annotations

import threading

from shipyard.registry._client import (
    MANIFEST_NAME,
    Lineage,
    RegistryClient,
    gated_aliases,
)
from shipyard.types import ModelVersion

__all__ = [
    "MANIFEST_NAME",
    "Lineage",
    "RegistryClient",
    "client",
    "gated_aliases",
    "register_model",
]

_lock = threading.Lock()
_client: tuple[str, RegistryClient] | None = None


def client() -> RegistryClient:
    """The registry client for the tracking URI in use (rebuilt when it changes)."""
    global _client
    from shipyard import context

    uri = context.tracking_uri()
    with _lock:
        if _client is None or _client[0] != uri:
            _client = (uri, RegistryClient(uri))
        return _client[1]


def register_model(
    source: str, name: str, *, description: str = "", tags: dict[str, str] | None = None
) -> ModelVersion:
    """Register the package at ``runs:/<run>/<path>`` as the next version of ``name``."""
    return client().register(source, name, description=description, tags=tags)
