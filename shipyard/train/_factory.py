"""The factory a Trial's model package is rebuilt with: the Trial's own
``build_model`` (for fine-tuning the logged model with its code)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["trial_model"]


def trial_model(trial: str, hparams: Mapping[str, Any]) -> Any:
    """Import the Trial class ``trial`` ("pkg.module:Class") and build its model."""
    from shipyard.models._refs import resolve_reference
    from shipyard.train._trial import Trial

    cls = resolve_reference(
        trial, "trial", allow_class=lambda c: isinstance(c, type) and issubclass(c, Trial)
    )
    return cls(dict(hparams)).build_model()
