"""URIs users write: ``runs:/<run-id>/<path>``, ``models:/<name>/<version>`` and
``models:/<name>@<alias>`` (the last two also without ``models:/`` on the command
line: ``rides-pricing@production``)."""

from __future__ import annotations

from dataclasses import dataclass

from shipyard.errors import InvalidArgumentError
from shipyard.validation import check_alias, check_id, check_model_name

__all__ = ["ModelUri", "RunUri", "parse_models_uri", "parse_runs_uri"]


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


@dataclass(frozen=True, slots=True)
class ModelUri:
    """A registered model's version, by number or by alias (exactly one is set)."""

    name: str
    version: int | None = None
    alias: str | None = None

    def __str__(self) -> str:
        if self.alias is not None:
            return f"models:/{self.name}@{self.alias}"
        return f"models:/{self.name}/{self.version}"


_MODELS_FORMS = (
    "expected 'models:/<name>/<version>' or 'models:/<name>@<alias>', "
    "e.g. 'models:/rides-pricing/3' or 'models:/rides-pricing@production'"
)


def parse_models_uri(uri: str, *, bare: bool = False) -> ModelUri:
    """Split ``models:/<name>/<version>`` or ``models:/<name>@<alias>``.

    Args:
        uri: The URI.
        bare: Also accept the forms without the scheme (``name/3``, ``name@alias``),
            as the command line does.
    """
    if not isinstance(uri, str):
        raise InvalidArgumentError(f"invalid model URI {uri!r}: {_MODELS_FORMS}")
    if uri.startswith("models:/"):
        rest = uri[len("models:/") :].lstrip("/")
    elif bare and "://" not in uri and not uri.startswith("runs:/"):
        rest = uri
    else:
        raise InvalidArgumentError(f"invalid model URI {uri!r}: {_MODELS_FORMS}")
    try:
        if "@" in rest:
            name, _, alias = rest.partition("@")
            return ModelUri(check_model_name(name), alias=check_alias(alias))
        name, sep, number = rest.partition("/")
        if not sep or not number.isdigit() or int(number) < 1:
            raise InvalidArgumentError("a version number >= 1 or an alias is needed")
        return ModelUri(check_model_name(name), version=int(number))
    except InvalidArgumentError as e:
        raise InvalidArgumentError(f"invalid model URI {uri!r}: {e}; {_MODELS_FORMS}") from None
