"""How a RUN argument is resolved (in-process, on the memory store)."""

from __future__ import annotations

import pytest

from shipyard import InvalidArgumentError, NotFoundError, TrackingClient
from shipyard.cli._common import resolve_run, search_all


@pytest.fixture
def client() -> TrackingClient:
    """A memory-store client with one experiment."""
    c = TrackingClient("memory:", "memory://unused")
    c.create_experiment("x")
    return c


@pytest.mark.parametrize("name", ["it's", "back\\slash", "pct%name", "under_score", "a\\'b"])
def test_names_with_quotes_and_wildcards_match_exactly(client: TrackingClient, name: str) -> None:
    """Quotes, backslashes and LIKE wildcards in a name are matched literally."""
    experiment = client.get_experiment("x").id
    for other in ("pctXname", "underXscore", "its"):
        client.store.create_run(experiment, name=other)
    run = client.store.create_run(experiment, name=name)
    assert resolve_run(client, name).id == run.id


def test_id_prefix_needs_six_digits(client: TrackingClient) -> None:
    """A hex reference shorter than six digits is only tried as a name."""
    run = client.store.create_run(client.get_experiment("x").id, name="r")
    with pytest.raises(NotFoundError, match="at least 6 hex digits"):
        resolve_run(client, run.id[-5:])
    assert resolve_run(client, run.id[-6:]).id == run.id
    assert resolve_run(client, run.id[:20]).id == run.id


def test_ambiguous_prefix(client: TrackingClient) -> None:
    """Two runs sharing a prefix make it ambiguous; the error lists both."""
    experiment = client.get_experiment("x").id
    a = client.store.create_run(experiment)
    b = client.store.create_run(experiment)
    shared = next(i for i in range(32) if a.id[i] != b.id[i])
    if shared < 6:
        pytest.skip("the two ids differ within the first six digits")
    with pytest.raises(InvalidArgumentError, match="ambiguous") as info:
        resolve_run(client, a.id[:6])
    assert a.id in str(info.value)
    assert b.id in str(info.value)


def test_search_all_pages_past_one_store_call(
    client: TrackingClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """search_all pages through results and reports whether more remain."""
    import shipyard.cli._common as common

    monkeypatch.setattr(common, "PAGE_SIZE", 2)
    experiment = client.get_experiment("x").id
    ids = {client.store.create_run(experiment).id for _ in range(5)}
    found, more = search_all(client, None, None, None, 10)
    assert {r.id for r in found} == ids
    assert more is False
    some, more = search_all(client, ["x"], None, None, 3)
    assert len(some) == 3
    assert more is True
