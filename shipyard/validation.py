"""Checks on user input, shared by every layer and every store.

Each failure is an :class:`~shipyard.errors.InvalidArgumentError` whose message
has one shape: what was wrong, what was expected, what was received.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from shipyard.errors import InvalidArgumentError, NotFoundError
from shipyard.types import ParamValue

__all__ = [
    "MAX_KEY_LENGTH",
    "MAX_NAME_LENGTH",
    "MAX_PARAM_LENGTH",
    "MAX_TAG_LENGTH",
    "check_alias",
    "check_artifact_path",
    "check_digest",
    "check_id",
    "check_key",
    "check_model_name",
    "check_name",
    "check_param_value",
    "check_params",
    "check_step",
    "check_tag_value",
    "check_tags",
    "check_value",
    "describe",
    "settings_errors",
]

MAX_KEY_LENGTH = 250
MAX_NAME_LENGTH = 256
MAX_PARAM_LENGTH = 6000
MAX_TAG_LENGTH = 8000
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1

_KEY_RE = re.compile(r"[A-Za-z0-9_\-. /:]+")
_ID_RE = re.compile(r"[0-9a-f]{32}")
_MODEL_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}")
_ALIAS_RE = re.compile(r"[A-Za-z][A-Za-z0-9_\-]{0,63}")


def describe(value: object, limit: int = 60) -> str:
    """A short, safe rendering of a bad value for an error message."""
    text = repr(value)
    if len(text) > limit:
        text = f"{text[:limit]}... ({len(text)} characters)"
    return f"{text} ({type(value).__name__})"


def check_key(key: object, what: str = "key") -> str:
    """A metric, param or tag key: 1-250 of letters, digits, ``_ - . / : space``,
    not a path that climbs (``..``) or starts with ``/``."""
    if not isinstance(key, str):
        raise InvalidArgumentError(f"invalid {what}: expected a string, got {describe(key)}")
    if (
        not 0 < len(key) <= MAX_KEY_LENGTH
        or _KEY_RE.fullmatch(key) is None
        or key.startswith("/")
        or ".." in key.split("/")
    ):
        raise InvalidArgumentError(
            f"invalid {what} {describe(key)}: expected 1 to {MAX_KEY_LENGTH} characters of "
            "letters, digits, '_', '-', '.', '/', ':' and spaces, not starting with '/' "
            "and without '..' segments; rename it, e.g. 'val/loss'"
        )
    return key


def check_name(name: object, what: str = "name") -> str:
    """A human name (project, experiment, run): 1-256 printable characters."""
    if not isinstance(name, str):
        raise InvalidArgumentError(f"invalid {what}: expected a string, got {describe(name)}")
    if not name.strip() or len(name) > MAX_NAME_LENGTH or not name.isprintable():
        raise InvalidArgumentError(
            f"invalid {what} {describe(name)}: expected 1 to {MAX_NAME_LENGTH} printable "
            "characters, not only spaces"
        )
    return name


def check_model_name(name: object) -> str:
    """A registered model's name: it goes into ``models:/<name>/<version>`` and
    ``models:/<name>@<alias>``, so no ``/`` or ``@``."""
    if not isinstance(name, str) or _MODEL_NAME_RE.fullmatch(name) is None:
        raise InvalidArgumentError(
            f"invalid model name {describe(name)}: expected 1 to 128 letters, digits, '_', "
            "'-' or '.', starting with a letter or digit (it is used in "
            "'models:/<name>@<alias>' URIs), e.g. 'rides-pricing'"
        )
    return name


def check_alias(alias: object) -> str:
    """An alias (``production``): starts with a letter, so it never reads as a version."""
    if not isinstance(alias, str) or _ALIAS_RE.fullmatch(alias) is None:
        raise InvalidArgumentError(
            f"invalid alias {describe(alias)}: expected 1 to 64 letters, digits, '_' or '-', "
            "starting with a letter (so it cannot be mistaken for a version number), "
            "e.g. 'production'"
        )
    return alias


def check_id(value: object, what: str = "run id") -> str:
    """An id made by Shipyard: 32 lowercase hex digits."""
    if not isinstance(value, str) or _ID_RE.fullmatch(value) is None:
        raise InvalidArgumentError(
            f"invalid {what}: expected 32 lowercase hex digits (as printed by "
            f"'shipyard runs list'), got {describe(value)}"
        )
    return value


def check_value(value: object, key: str = "") -> float:
    """A metric value: anything ``float()`` accepts that is a number (NaN and inf
    are kept); a one-element tensor or NumPy scalar works."""
    if type(value) is float:
        return value
    if isinstance(value, str | bytes) or value is None:
        raise InvalidArgumentError(
            f"invalid value for metric {key!r}: expected a number, got {describe(value)}"
        )
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError, RuntimeError) as e:
        raise InvalidArgumentError(
            f"invalid value for metric {key!r}: expected a number (int, float, NumPy "
            f"scalar or one-element tensor), got {describe(value)}"
        ) from e


def check_step(step: object, key: str = "") -> int:
    """A step: an integer in int64 range (NumPy integers work; floats that are whole
    numbers are accepted, others are refused rather than silently truncated)."""
    if type(step) is int:
        result = step
    elif isinstance(step, bool) or step is None:
        raise InvalidArgumentError(
            f"invalid step for metric {key!r}: expected an integer, got {describe(step)}"
        )
    elif isinstance(step, float):
        if not step.is_integer():
            raise InvalidArgumentError(
                f"invalid step for metric {key!r}: expected an integer, got {describe(step)}"
            )
        result = int(step)
    else:
        try:
            result = int(step.__index__())  # type: ignore[attr-defined]
        except (AttributeError, TypeError) as e:
            raise InvalidArgumentError(
                f"invalid step for metric {key!r}: expected an integer, got {describe(step)}"
            ) from e
    if not INT64_MIN <= result <= INT64_MAX:
        raise InvalidArgumentError(
            f"invalid step for metric {key!r}: expected a 64-bit integer, got {result}"
        )
    return result


def check_param_value(key: str, value: object) -> ParamValue:
    """A param value keeps its JSON type: str, int, float, bool or None.

    NumPy scalars become their Python equivalents; other objects are refused
    rather than stringified, so ``params.lr < 0.1`` always compares numbers.
    """
    if value is None or isinstance(value, bool | int | float):
        if isinstance(value, bool):
            return bool(value)
        if isinstance(value, int):
            value = int(value)  # drop int subclasses (enums, NumPy types)
            return value if INT64_MIN <= value <= INT64_MAX else str(value)
        return value if type(value) is float or value is None else float(value)
    if isinstance(value, str):
        if len(value) > MAX_PARAM_LENGTH:
            raise InvalidArgumentError(
                f"param {key!r} is too long: expected at most {MAX_PARAM_LENGTH} characters, "
                f"got {len(value)}; log large values as an artifact instead"
            )
        return value
    item = getattr(value, "item", None)  # NumPy scalar / 0-d array
    if callable(item) and getattr(value, "ndim", None) == 0:
        return check_param_value(key, item())
    raise InvalidArgumentError(
        f"invalid value for param {key!r}: expected str, int, float, bool or None, got "
        f"{describe(value)}; convert it, e.g. str(value)"
    )


def check_tag_value(key: str, value: object) -> str:
    """A tag value: a string of at most 8000 characters."""
    if not isinstance(value, str):
        raise InvalidArgumentError(
            f"invalid value for tag {key!r}: expected a string, got {describe(value)}"
        )
    if len(value) > MAX_TAG_LENGTH:
        raise InvalidArgumentError(
            f"tag {key!r} is too long: expected at most {MAX_TAG_LENGTH} characters, "
            f"got {len(value)}; log large values as an artifact instead"
        )
    return value


_DIGEST_RE = re.compile(r"[0-9a-f]{64}")
MAX_PATH_LENGTH = 1024


def check_artifact_path(path: object) -> str:
    """A relative POSIX path inside a run: no leading '/', no '.' or '..' segments."""
    if not isinstance(path, str):
        raise InvalidArgumentError(
            f"invalid artifact path: expected a string, got {describe(path)}"
        )
    if (
        not 0 < len(path) <= MAX_PATH_LENGTH
        or path.startswith("/")
        or "\\" in path
        or not path.isprintable()
        or any(part in ("", ".", "..") for part in path.split("/"))
    ):
        raise InvalidArgumentError(
            f"invalid artifact path {describe(path)}: expected a relative path of 1 to "
            f"{MAX_PATH_LENGTH} characters like 'plots/roc.png', without '.' or '..' segments"
        )
    return path


def check_digest(digest: object) -> str:
    """A BLAKE3 digest: 64 lowercase hex digits."""
    if not isinstance(digest, str) or _DIGEST_RE.fullmatch(digest) is None:
        raise InvalidArgumentError(
            f"invalid blob digest: expected 64 lowercase hex digits, got {describe(digest)}"
        )
    return digest


def check_params(params: Mapping[str, Any]) -> dict[str, ParamValue]:
    if not isinstance(params, Mapping):
        raise InvalidArgumentError(f"params: expected a mapping, got {describe(params)}")
    return {check_key(k, "param key"): check_param_value(k, v) for k, v in params.items()}


def check_tags(tags: Mapping[str, Any]) -> dict[str, str]:
    if not isinstance(tags, Mapping):
        raise InvalidArgumentError(f"tags: expected a mapping, got {describe(tags)}")
    return {check_key(k, "tag key"): check_tag_value(k, v) for k, v in tags.items()}


def _where(loc: tuple[int | str, ...]) -> str:
    parts: list[str] = []
    for p in loc:
        if isinstance(p, int):
            parts.append(f"[{p}]")
        elif p in ("function-after", "function-before") or "[" in str(p):
            continue
        else:
            parts.append(("." if parts else "") + str(p))
    return "".join(parts) or "(top level)"


def settings_errors(error: Any, source: str) -> InvalidArgumentError:
    """A pydantic ``ValidationError`` of a config file as one error naming each
    field (``models[0].uri: ...``), what was expected, and what was given."""
    lines = []
    for err in error.errors():
        msg = str(err.get("msg", "")).removeprefix("Value error, ")
        got = err.get("input")
        shown = (
            "" if err.get("type") == "missing" or isinstance(got, Mapping) else f" (got {got!r})"
        )
        if err.get("type") == "extra_forbidden":
            msg = "unknown setting: check its spelling"
        lines.append(f"  {_where(tuple(err['loc']))}: {msg}{shown}")
    return InvalidArgumentError(f"{source} is invalid:\n" + "\n".join(lines))


def read_yaml(path: Any, what: str) -> Any:
    """The data of a YAML (or JSON) config file; NotFoundError or
    InvalidArgumentError naming the file (``what``: ``search config``...)."""
    from pathlib import Path

    import yaml

    p = Path(path)
    if not p.is_file():
        raise NotFoundError(f"{what} {str(p)!r} not found")
    try:
        return yaml.safe_load(p.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        raise InvalidArgumentError(f"{p}: not valid YAML: {e}") from None
