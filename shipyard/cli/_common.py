"""What the commands share: the client, run references, paged search.

A RUN argument is a full run id, a unique prefix or suffix of at least
:data:`MIN_ID_PART` hex digits, or a unique run name. Run ids are UUIDv7
(time-ordered): runs started in the same minute share their leading digits,
while the trailing ones are random, so a short suffix is usually the handier
part to type.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import click

from shipyard.errors import InvalidArgumentError, NotFoundError
from shipyard.tracking import TrackingClient
from shipyard.types import Run
from shipyard.validation import check_name

__all__ = [
    "MIN_ID_PART",
    "CliState",
    "get_client",
    "missing_store",
    "no_runs_hint",
    "require_store",
    "resolve_run",
    "search_all",
]

MIN_ID_PART = 6
#: Runs per store call when paging through a search.
PAGE_SIZE = 1000
_HEX = re.compile(r"[0-9a-f]+")
_FULL_ID = re.compile(r"[0-9a-f]{32}")
_NO_RUNS_HINT = (
    "no runs yet: start one from Python with\n"
    "    with shipyard.start_run(experiment='my-experiment'):\n"
    "        shipyard.log_metric('loss', 0.5)\n"
    "or point at another store with --tracking-uri / SHIPYARD_TRACKING_URI"
)


@dataclass(frozen=True, slots=True)
class CliState:
    """Global options, kept on the click context."""

    tracking_uri: str | None = None
    blob_uri: str | None = None


def get_client() -> TrackingClient:
    """A client for the stores named by ``--tracking-uri`` and ``--blob-uri`` (else
    the environment)."""
    ctx = click.get_current_context()
    state = ctx.find_object(CliState) or CliState()
    return TrackingClient(tracking_uri=state.tracking_uri, blob_uri=state.blob_uri)


def missing_store(client: TrackingClient) -> str | None:
    """The path of the SQLite store when that file does not exist yet (nothing was
    ever tracked there), so read-only commands do not create it; else None."""
    uri = client.tracking_uri
    if not uri.startswith("sqlite:///"):
        return None
    path = uri[len("sqlite:///") :].split("?", 1)[0]
    if not path or path == ":memory:" or Path(path).expanduser().exists():
        return None
    return path


def no_runs_hint() -> str:
    return _NO_RUNS_HINT


def require_store(client: TrackingClient) -> None:
    """Refuse to look something up in a store that was never created."""
    path = missing_store(client)
    if path is not None:
        raise NotFoundError(
            f"no store at {path}: nothing has been tracked there yet; start a run with "
            "shipyard.start_run(), or point --tracking-uri (SHIPYARD_TRACKING_URI) at "
            "another store"
        )


def search_all(
    client: TrackingClient,
    experiments: Sequence[str] | None,
    filter: str | None,
    order_by: Sequence[str] | None,
    limit: int,
    *,
    include_deleted: bool = False,
) -> tuple[list[Run], bool]:
    """Up to ``limit`` matching runs, paging as needed; and whether more match."""
    runs: list[Run] = []
    token: str | None = None
    while True:
        want = min(PAGE_SIZE, limit - len(runs))
        page = client.search_runs(
            list(experiments) if experiments else None,
            filter or None,
            list(order_by) if order_by else None,
            max_results=want,
            page_token=token,
            include_deleted=include_deleted,
        )
        runs.extend(page.items)
        token = page.next_page_token
        if token is None or len(runs) >= limit:
            return runs[:limit], token is not None


def _quote(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def resolve_run(client: TrackingClient, ref: str) -> Run:
    """The run a RUN argument names (see the module docstring).

    Raises:
        NotFoundError: nothing matches.
        InvalidArgumentError: several runs match, or the reference is malformed.
    """
    require_store(client)
    if _FULL_ID.fullmatch(ref):
        return client.get_run(ref)
    candidates: list[Run] = []
    if _HEX.fullmatch(ref) and len(ref) >= MIN_ID_PART:
        candidates, _ = search_all(
            client, None, f"run_id LIKE '{ref}%' or run_id LIKE '%{ref}'", None, 11
        )
        what = f"id prefix or suffix {ref!r}"
    if not candidates:
        check_name(ref, "run reference")
        candidates, _ = search_all(client, None, f"run_name = {_quote(ref)}", None, 11)
        what = f"name {ref!r}"
    if not candidates:
        hint = (
            f"; an id part needs at least {MIN_ID_PART} hex digits"
            if _HEX.fullmatch(ref) and len(ref) < MIN_ID_PART
            else ""
        )
        raise NotFoundError(
            f"no run matches {ref!r}: expected a run id, a unique id prefix or suffix, "
            f"or a run name{hint}; list runs with 'shipyard runs list'"
        )
    if len(candidates) > 1:
        shown = ", ".join(r.id for r in candidates[:10])
        more = " and more" if len(candidates) > 10 else ""
        raise InvalidArgumentError(
            f"run {what} is ambiguous: it matches {shown}{more}; "
            "give more digits or the full run id"
        )
    return candidates[0]
