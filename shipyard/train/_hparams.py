"""Hyperparameters: what a training run is given, from where, in which order.

Later sources win, key by key:

1. the defaults the script or Trial declares;
2. a YAML or JSON file (``--hparams hp.yaml`` of ``shipyard train``, or the
   ``SHIPYARD_HPARAMS_FILE`` environment variable);
3. ``SHIPYARD_HPARAMS``: a JSON object in the environment. This is how a
   launcher hands a trial its values: the search runner, ``shipyard reproduce``
   (the recorded params) and ``torchrun`` workers all set it;
4. explicit overrides (``--set lr=0.1`` on the command line).

Values stay typed (numbers are numbers) and must be JSON-like, because they
become the run's params and must replay exactly.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from shipyard.errors import InvalidArgumentError

__all__ = [
    "ENV_HPARAMS",
    "ENV_HPARAMS_FILE",
    "load_hparams",
    "params_of",
    "parse_assignment",
    "read_file",
]

ENV_HPARAMS = "SHIPYARD_HPARAMS"
ENV_HPARAMS_FILE = "SHIPYARD_HPARAMS_FILE"

_SCALARS = (str, int, float, bool, type(None))


def _check(values: Any, where: str) -> dict[str, Any]:
    if not isinstance(values, Mapping):
        raise InvalidArgumentError(
            f"hyperparameters from {where}: expected a mapping of name to value, got "
            f"{type(values).__name__}"
        )
    out: dict[str, Any] = {}
    for key, value in values.items():
        if not isinstance(key, str) or not key:
            raise InvalidArgumentError(
                f"hyperparameters from {where}: names must be non-empty strings, got {key!r}"
            )
        if not _json_like(value):
            raise InvalidArgumentError(
                f"hyperparameter {key!r} from {where}: expected a number, string, bool, "
                f"null, or a list/mapping of those, got {type(value).__name__}"
            )
        out[key] = value
    return out


def _json_like(value: Any) -> bool:
    if isinstance(value, _SCALARS):
        return True
    if isinstance(value, (list, tuple)):
        return all(_json_like(v) for v in value)
    if isinstance(value, Mapping):
        return all(isinstance(k, str) and _json_like(v) for k, v in value.items())
    return False


def read_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read hyperparameters from a YAML (``.yaml``/``.yml``) or JSON file."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as e:
        raise InvalidArgumentError(f"cannot read hyperparameter file {p}: {e}") from e
    if p.suffix.lower() in (".yaml", ".yml"):
        import yaml

        try:
            values = yaml.safe_load(text)
        except yaml.YAMLError as e:
            raise InvalidArgumentError(f"hyperparameter file {p} is not valid YAML: {e}") from e
    else:
        try:
            values = json.loads(text)
        except ValueError as e:
            raise InvalidArgumentError(
                f"hyperparameter file {p} is not valid JSON ({e}); use a .yaml name for YAML"
            ) from e
    return _check({} if values is None else values, str(p))


def parse_assignment(text: str) -> tuple[str, Any]:
    """``"lr=0.1"`` -> ``("lr", 0.1)``: the value is read as JSON, else kept as text."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise InvalidArgumentError(f"expected NAME=VALUE (for example lr=0.1), got {text!r}")
    try:
        value: Any = json.loads(raw)
    except ValueError:
        value = raw
    return key.strip(), value


def load_hparams(
    defaults: Mapping[str, Any] | None = None,
    *,
    file: str | os.PathLike[str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The hyperparameters of this run: defaults < file < ``SHIPYARD_HPARAMS`` <
    overrides (see the module docstring).

    Raises:
        InvalidArgumentError: a source is unreadable or holds a value that is not
            JSON-like.
    """
    out = _check(dict(defaults or {}), "the defaults")
    path = file if file is not None else os.environ.get(ENV_HPARAMS_FILE) or None
    if path is not None:
        out.update(read_file(path))
    env = os.environ.get(ENV_HPARAMS)
    if env:
        try:
            values = json.loads(env)
        except ValueError as e:
            raise InvalidArgumentError(
                f"environment variable {ENV_HPARAMS} must hold a JSON object: {e}"
            ) from e
        out.update(_check(values, f"environment variable {ENV_HPARAMS}"))
    if overrides:
        out.update(_check(dict(overrides), "the overrides"))
    return out


def params_of(hparams: Mapping[str, Any]) -> dict[str, Any]:
    """Hyperparameters as run params: scalars as they are, lists and mappings as
    JSON text (params are scalars; the exact values go to a tag)."""
    return {
        k: v if isinstance(v, _SCALARS) else json.dumps(v, sort_keys=True)
        for k, v in hparams.items()
    }
