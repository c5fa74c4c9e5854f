"""Opaque page tokens for ``search_runs``, tied to the query that made them."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Sequence

from shipyard.errors import InvalidArgumentError

__all__ = ["decode_page_token", "encode_page_token", "fingerprint"]


def fingerprint(
    experiment_ids: Sequence[str] | None,
    filter: str | None,
    order_by: Sequence[str] | None,
    *extra: object,
) -> str:
    """A short hash naming a query, so a page token cannot be used with another one."""
    ids = None if experiment_ids is None else sorted(experiment_ids)
    blob = json.dumps([ids, filter or "", list(order_by or ()), *map(repr, extra)])
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def encode_page_token(offset: int, fingerprint: str) -> str:
    """An opaque token for the page starting at ``offset`` of the query ``fingerprint``."""
    raw = json.dumps({"o": offset, "q": fingerprint}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_page_token(token: str, fingerprint: str) -> int:
    """The offset in a token from :func:`encode_page_token`.

    Raises:
        InvalidArgumentError: the token is malformed or belongs to another query.
    """
    try:
        data = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        offset, owner = data["o"], data["q"]
    except (TypeError, ValueError, KeyError, binascii.Error) as e:
        raise InvalidArgumentError(
            f"invalid page token: expected a next_page_token returned by search_runs, got "
            f"{token!r}; start again without a token"
        ) from e
    if not isinstance(offset, int) or isinstance(offset, bool) or offset < 0:
        raise InvalidArgumentError(
            f"invalid page token: expected a non-negative offset inside, got {offset!r}"
        )
    if owner != fingerprint:
        raise InvalidArgumentError(
            "page token does not belong to this query: it was returned for other "
            "experiment_ids, filter or order_by; pass the same ones, or start again "
            "without a token"
        )
    return offset
