"""Argument checks every store applies the same way (so the conformance suite
sees one behaviour). Each failure is an InvalidArgumentError: what, expected, got."""

from __future__ import annotations

import enum
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any, TypeVar

from shipyard._util import now
from shipyard.errors import InvalidArgumentError
from shipyard.types import Artifact, MetricSeries, ParamValue
from shipyard.validation import (
    check_artifact_path,
    check_digest,
    check_params,
    check_tags,
    describe,
)

__all__ = [
    "check_artifact",
    "check_artifacts",
    "check_batch",
    "check_enum",
    "check_lookup_id",
    "check_metrics_arg",
    "check_text",
    "check_time",
    "check_version_fields",
    "to_json",
]

_E = TypeVar("_E", bound=enum.Enum)


def check_lookup_id(value: object, what: str) -> str:
    """An id to look up: any string (unknown ones are NotFoundError later)."""
    if not isinstance(value, str):
        raise InvalidArgumentError(f"invalid {what} id: expected a string, got {describe(value)}")
    return value


def check_text(value: object, what: str, limit: int | None = None) -> str:
    if not isinstance(value, str):
        raise InvalidArgumentError(f"invalid {what}: expected a string, got {describe(value)}")
    if limit is not None and len(value) > limit:
        raise InvalidArgumentError(
            f"invalid {what}: expected at most {limit} characters, got {len(value)}"
        )
    return value


def check_time(value: object, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidArgumentError(
            f"invalid {what}: expected seconds since the epoch as a finite number, "
            f"got {describe(value)}"
        )
    return float(value)


def check_enum(kind: type[_E], value: object, what: str) -> _E:
    if isinstance(value, str) and value in kind._value2member_map_:
        return kind(value)
    choices = ", ".join(str(m.value) for m in kind)
    raise InvalidArgumentError(f"invalid {what}: expected one of {choices}, got {describe(value)}")


def to_json(value: object, what: str) -> str:
    """A mapping as canonical JSON text; NaN, sets and arbitrary objects are refused."""
    if not isinstance(value, Mapping):
        raise InvalidArgumentError(f"invalid {what}: expected a mapping, got {describe(value)}")
    try:
        return json.dumps(dict(value), allow_nan=False, sort_keys=True)
    except (TypeError, ValueError) as e:
        raise InvalidArgumentError(
            f"invalid {what}: expected JSON-serializable values (str, number, bool, None, "
            f"lists and string-keyed mappings of them): {e}"
        ) from None


def check_metrics_arg(metrics: object) -> Sequence[MetricSeries]:
    if not isinstance(metrics, Sequence) or isinstance(metrics, str | MetricSeries):
        raise InvalidArgumentError(
            f"metrics: expected a list of MetricSeries, got {describe(metrics)}"
        )
    return metrics


def check_artifact(artifact: object) -> Artifact:
    if not isinstance(artifact, Artifact):
        raise InvalidArgumentError(f"artifacts: expected Artifact items, got {describe(artifact)}")
    path = check_artifact_path(artifact.path)
    check_digest(artifact.digest)
    if type(artifact.size) is not int or artifact.size < 0:
        raise InvalidArgumentError(
            f"invalid size for artifact {path!r}: expected a byte count >= 0, "
            f"got {describe(artifact.size)}"
        )
    if artifact.kind not in ("file", "dir"):
        raise InvalidArgumentError(
            f"invalid kind for artifact {path!r}: expected 'file' or 'dir', "
            f"got {describe(artifact.kind)}"
        )
    created = now() if artifact.created_at == 0 else check_time(artifact.created_at, "created_at")
    return replace(artifact, created_at=created)


def check_artifacts(artifacts: object) -> list[Artifact]:
    if not isinstance(artifacts, Sequence) or isinstance(artifacts, str | Artifact):
        raise InvalidArgumentError(
            f"artifacts: expected a list of Artifact, got {describe(artifacts)}"
        )
    return [check_artifact(a) for a in artifacts]


def check_artifact_paths(paths: object) -> list[str]:
    if not isinstance(paths, Sequence) or isinstance(paths, str):
        raise InvalidArgumentError(
            f"artifact paths: expected a list of strings, got {describe(paths)}"
        )
    for p in paths:
        if not isinstance(p, str) or not p:
            raise InvalidArgumentError(
                f"artifact path: expected a non-empty string, got {describe(p)}"
            )
    return list(paths)


MAX_ROLE_LENGTH = 64
MAX_STEP_KEY_LENGTH = 256


def check_version_number(
    value: object, what: str = "dataset version", example: str = "'rides@3'"
) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidArgumentError(
            f"invalid {what}: expected an integer >= 1 (as in {example}), got {describe(value)}"
        )
    return value


def check_count(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidArgumentError(
            f"invalid {what}: expected an integer >= 0, got {describe(value)}"
        )
    return value


def check_inputs(inputs: object) -> list[tuple[str, str]]:
    """``(dataset_version_id, role)`` pairs; a role is a short key like 'train'."""
    from shipyard.validation import check_key

    if not isinstance(inputs, Sequence) or isinstance(inputs, str):
        raise InvalidArgumentError(
            f"inputs: expected a list of (dataset_version_id, role) pairs, got {describe(inputs)}"
        )
    out = []
    for item in inputs:
        if not (isinstance(item, tuple | list) and len(item) == 2):
            raise InvalidArgumentError(
                f"inputs: expected (dataset_version_id, role) pairs, got {describe(item)}"
            )
        version_id = check_lookup_id(item[0], "dataset version")
        role = check_key(item[1], "input role")
        if len(role) > MAX_ROLE_LENGTH:
            raise InvalidArgumentError(
                f"invalid input role: expected at most {MAX_ROLE_LENGTH} characters, "
                f"got {len(role)}"
            )
        out.append((version_id, role))
    return out


def check_step_key(key: object) -> str:
    return check_text(key, "step key", MAX_STEP_KEY_LENGTH)


def check_batch(
    params: Mapping[str, Any] | None, tags: Mapping[str, Any] | None, metrics: object
) -> tuple[dict[str, ParamValue], dict[str, str], list[MetricSeries]]:
    """The arguments of ``log_batch``, checked whole before anything is written."""
    from shipyard.store._columns import check_series

    return (
        check_params(params or {}),
        check_tags(tags or {}),
        [check_series(s) for s in check_metrics_arg(metrics)],
    )


def check_version_fields(
    digest: object,
    num_files: object,
    size: object,
    message: object,
    source: object,
    run_id: object,
    metadata: object,
) -> str:
    """The fields of a new dataset version; returns ``metadata`` as JSON text."""
    from shipyard.validation import check_id

    check_digest(digest)
    check_count(num_files, "num_files")
    check_count(size, "size")
    check_text(message, "message", 10_000)
    check_text(source, "source", 4096)
    if run_id is not None:
        check_id(run_id)
    return to_json(metadata or {}, "metadata")


#: What an audit-log event may record; ``set_alias`` takes the first two.
ALIAS_OUTCOMES = ("moved", "forced", "refused", "conflict", "removed")
#: Export formats a version may carry.
EXPORT_FORMAT_RE = r"[a-z][a-z0-9_\-]{0,31}"


def check_outcome(value: object, allowed: Sequence[str]) -> str:
    if not isinstance(value, str) or value not in allowed:
        raise InvalidArgumentError(
            f"invalid outcome: expected one of {', '.join(allowed)}, got {describe(value)}"
        )
    return value


def check_registry_text(
    description: object, tags: object, what: str = "description"
) -> tuple[str | None, dict[str, str] | None]:
    """An optional description and optional tags (each ``None`` when not given)."""
    desc = None if description is None else check_text(description, what, 10_000)
    tag_map = None if tags is None else check_tags(tags)  # type: ignore[arg-type]
    return desc, tag_map


def check_model_version(value: object) -> int:
    return check_version_number(value, "model version", "'models:/rides-pricing/3'")


def check_model_version_fields(
    package_digest: object, run_id: object, source: object, created_by: object, metadata: object
) -> str:
    """The fields of a new model version; returns ``metadata`` as JSON text."""
    from shipyard.validation import check_id

    check_digest(package_digest)
    if run_id is not None:
        check_id(run_id)
    check_text(source, "source", 4096)
    check_text(created_by, "created_by", 256)
    return to_json(metadata or {}, "metadata")


def check_event_fields(actor: object, reason: object, report: object) -> str:
    """Who and why of an alias event; returns ``report`` as JSON text."""
    check_text(actor, "actor", 256)
    check_text(reason, "reason", 10_000)
    return to_json(report or {}, "report")


def check_export_format(fmt: object) -> str:
    if not isinstance(fmt, str) or re.fullmatch(EXPORT_FORMAT_RE, fmt) is None:
        raise InvalidArgumentError(
            f"invalid export format {describe(fmt)}: expected a short lowercase name such as 'onnx'"
        )
    return fmt


def check_expected(expected: object) -> None:
    if expected is not ... and expected is not None:
        check_model_version(expected)
