"""``search_runs`` for the SQL store: parse, compile, page."""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from shipyard.errors import InvalidArgumentError, NotFoundError
from shipyard.store._filter import parse_filter, parse_order_by
from shipyard.store._paging import decode_page_token, encode_page_token, fingerprint
from shipyard.store._sql import _schema as t
from shipyard.store._sql._search import compile_query
from shipyard.types import Lifecycle
from shipyard.validation import describe

MAX_RESULTS = 50_000


def check_max_results(max_results: object) -> int:
    if (
        not isinstance(max_results, int)
        or isinstance(max_results, bool)
        or not 1 <= max_results <= MAX_RESULTS
    ):
        raise InvalidArgumentError(
            f"max_results: expected an integer from 1 to {MAX_RESULTS:,}, got "
            f"{describe(max_results)}; page through more with next_page_token"
        )
    return max_results


def search(
    conn: Connection,
    experiment_ids: Sequence[str] | None,
    filter: str | None,
    order_by: Sequence[str] | None,
    max_results: int,
    page_token: str | None,
    include_deleted: bool,
) -> tuple[list[str], str | None]:
    """Ids of one page of matching runs, in order, and the next page's token."""
    if isinstance(experiment_ids, str):
        raise InvalidArgumentError(
            "experiment_ids: expected a list of experiment ids, got a single string; "
            "wrap it in a list"
        )
    limit = check_max_results(max_results)
    expr = parse_filter(filter)
    order = parse_order_by(order_by)
    key = fingerprint(experiment_ids, filter, order_by, include_deleted)
    offset = 0 if page_token is None else decode_page_token(page_token, key)
    stmt = sa.select(t.runs.c.id)
    if experiment_ids is not None:
        ids = list(experiment_ids)
        for exp_id in ids:
            if not isinstance(exp_id, str):
                raise InvalidArgumentError(
                    f"experiment_ids: expected experiment id strings, got {describe(exp_id)}"
                )
        if not ids:
            return [], None
        found = {
            r[0]
            for r in conn.execute(sa.select(t.experiments.c.id).where(t.experiments.c.id.in_(ids)))
        }
        missing = [i for i in ids if i not in found]
        if missing:
            raise NotFoundError(
                f"experiment {missing[0][:80]!r} not found; list them with "
                "'shipyard experiments list'"
            )
        stmt = stmt.where(t.runs.c.experiment_id.in_(ids))
    if not include_deleted:
        stmt = stmt.where(t.runs.c.lifecycle == Lifecycle.ACTIVE.value)
    stmt = compile_query(stmt, expr, order, conn.dialect.name)
    rows = conn.execute(stmt.limit(limit + 1).offset(offset)).all()
    run_ids = [r[0] for r in rows[:limit]]
    token = encode_page_token(offset + limit, key) if len(rows) > limit else None
    return run_ids, token
