"""Warm starts: initial weights from a checkpoint, a model package or a
safetensors file."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from shipyard.errors import InvalidArgumentError, NotFoundError
from shipyard.uris import parse_runs_uri

if TYPE_CHECKING:
    from shipyard.tracking import TrackingClient

__all__ = ["warm_start"]


def _load_weights(model: Any, weights: dict[str, Any], source: str) -> None:
    result = model.load_state_dict(weights, strict=False)
    if result.missing_keys and len(result.missing_keys) == len(model.state_dict()):
        raise InvalidArgumentError(
            f"init_from {source!r}: none of its weights match the model's parameter names "
            f"(first expected {result.missing_keys[0]!r}); is it the same architecture?"
        )


def warm_start(model: Any, source: str, client: TrackingClient | None) -> None:
    """Load initial weights into ``model`` from ``source``:

    * ``runs:/RUN`` or ``runs:/RUN/checkpoints/step-...``: a checkpoint's model;
    * ``models:/NAME/3``, ``models:/NAME@alias``, ``runs:/RUN/model``: a torch
      model package's weights;
    * a path to a ``.safetensors`` file.

    Keys are matched by name, without requiring every key (a new head on a
    pretrained body); a source sharing no key with the model is an error.
    """
    from shipyard.models import load_model
    from shipyard.tracking import get_client
    from shipyard.train._checkpoint import PREFIX, Checkpoints

    if source.endswith(".safetensors") and not source.startswith(("runs:/", "models:/")):
        path = Path(source)
        if not path.is_file():
            raise NotFoundError(f"init_from: no safetensors file at {path}")
        from safetensors.torch import load_file

        _load_weights(model, load_file(str(path)), source)
        return
    if source.startswith("runs:/"):
        uri = parse_runs_uri(source)
        if not uri.path or uri.path.startswith(PREFIX):
            ckpts = Checkpoints(client or get_client(), uri.run_id)
            infos = ckpts.list()
            if uri.path.startswith(PREFIX + "/"):
                infos = [i for i in infos if i.path == uri.path]
            if not infos:
                raise NotFoundError(f"init_from {source!r}: no such checkpoint")
            state = ckpts.load(infos[-1])
            _load_weights(model, state.get("model", state), source)
            return
    if source.startswith(("runs:/", "models:/")):
        loaded = load_model(source, code_free=False, verify_examples=False)
        raw = getattr(loaded, "raw", None)
        if raw is None or not hasattr(raw, "state_dict"):
            raise InvalidArgumentError(
                f"init_from {source!r}: that package does not hold a torch module with weights "
                "(a torch flavor logged with factory=...)"
            )
        _load_weights(model, raw.state_dict(), source)
        return
    raise InvalidArgumentError(
        f"init_from {source!r}: expected runs:/RUN (a checkpoint), models:/NAME@alias, "
        "runs:/RUN/model, or a .safetensors file"
    )
