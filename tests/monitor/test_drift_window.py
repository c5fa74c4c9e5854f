"""DriftWindow: PSI of served rows against the training profile over a sliding window."""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
import pytest

from shipyard.errors import InvalidArgumentError
from shipyard.models import PSI_MODERATE, PSI_SIGNIFICANT, Profile, infer_signature
from shipyard.models._profile import build_profile
from shipyard.monitor import DriftWindow


def _training(rows: int = 20_000, seed: int = 0) -> dict[str, np.ndarray[Any, Any]]:
    rng = np.random.default_rng(seed)
    return {
        "distance": rng.gamma(2.0, 2.0, rows),
        "zone": rng.choice(np.array(["north", "south", "east"], dtype=object), rows),
    }


def _profile() -> Profile:
    import pandas as pd

    frame = pd.DataFrame(_training())

    def predict(batch: Any) -> dict[str, Any]:
        return {"output": np.asarray(batch["distance"]) * 2.0}

    return build_profile(frame, infer_signature(frame), source="profile_data", predict=predict)


def _requests(
    count: int, rows: int, *, shift: float = 0.0, seed: int = 1
) -> list[dict[str, np.ndarray[Any, Any]]]:
    data = _training(count * rows, seed)
    data["distance"] = data["distance"] + shift
    return [{k: v[i * rows : (i + 1) * rows] for k, v in data.items()} for i in range(count)]


def test_an_unshifted_stream_scores_stable() -> None:
    """Requests drawn like the training data score below the moderate threshold."""
    window = DriftWindow(_profile(), window_rows=5000)
    for request in _requests(500, 10):
        window.add(request)
    scores = window.scores()
    assert set(scores) == {"distance", "zone"}
    assert max(scores.values()) < PSI_MODERATE
    assert window.rows == 5000


def test_a_shifted_feature_scores_above_the_threshold() -> None:
    """Shifting one feature by 3 units flags it, and only it."""
    window = DriftWindow(_profile(), window_rows=5000)
    for request in _requests(200, 25, shift=3.0):
        window.add(request)
    scores = window.scores()
    assert scores["distance"] > PSI_SIGNIFICANT
    assert scores["zone"] < PSI_MODERATE


def test_the_window_keeps_only_the_last_rows() -> None:
    """After drifted rows, window_rows of normal ones push them out again."""
    window = DriftWindow(_profile(), window_rows=2000)
    for request in _requests(100, 20, shift=5.0):
        window.add(request)
    assert window.scores()["distance"] > PSI_SIGNIFICANT
    for request in _requests(150, 10, seed=2):  # 1500 rows: drifted ones remain
        window.add(request)
    assert window.scores()["distance"] > PSI_MODERATE
    for request in _requests(60, 10, seed=3):  # 600 more: all 2000 are undrifted
        window.add(request)
    assert window.scores()["distance"] < PSI_MODERATE
    assert window.rows == 2000


def test_counts_match_the_last_rows_whatever_the_batch_sizes() -> None:
    """The ring's counts equal a fresh count of the last window_rows rows."""
    profile = _profile()
    window = DriftWindow(profile, window_rows=777)
    requests = _requests(60, 37, shift=1.0, seed=4)
    for i, request in enumerate(requests):
        window.add(request)
        if i % 7 == 0:
            window.scores()
    scores = window.scores()
    last = {k: np.concatenate([r[k] for r in requests])[-777:] for k in requests[0]}
    fresh = DriftWindow(profile, window_rows=777)
    fresh.add(last)
    assert fresh.scores() == pytest.approx(scores)


def test_pending_requests_are_bounded_without_scrapes() -> None:
    """Nobody calls scores(): old requests are dropped, never more than a window waits."""
    window = DriftWindow(_profile(), window_rows=100)
    for request in _requests(1000, 3):
        window.add(request)
    assert window.rows == 100
    assert window._inputs.pending_rows < 100 + 3


def test_output_scores_compare_predictions_with_the_output_profile() -> None:
    """Outputs shifted like the inputs drift; before any row there are no scores."""
    window = DriftWindow(_profile(), window_rows=1000)
    assert window.output_scores() == {}
    assert window.scores() == {}
    for request in _requests(50, 20, shift=4.0):
        window.add_outputs({"output": request["distance"] * 2.0})
    assert window.output_scores()["output"] > PSI_SIGNIFICANT
    assert window.output_rows == 1000


def test_concurrent_adds_from_threads_are_all_counted() -> None:
    """Eight threads adding while another scores: every row lands in the window."""
    window = DriftWindow(_profile(), window_rows=100_000)
    requests = _requests(800, 5)
    stop = threading.Event()

    def scrape() -> None:
        while not stop.is_set():
            window.scores()

    def add(part: list[dict[str, np.ndarray[Any, Any]]]) -> None:
        for r in part:
            window.add(r)

    scraper = threading.Thread(target=scrape)
    scraper.start()
    workers = [threading.Thread(target=add, args=(requests[i::8],)) for i in range(8)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    stop.set()
    scraper.join()
    scores = window.scores()
    assert window.rows == 4000
    assert window._inputs.filled == 4000
    assert max(scores.values()) < PSI_MODERATE


def test_requests_that_disagree_are_skipped_not_raised() -> None:
    """A request with columns of different lengths is dropped; the others count."""
    window = DriftWindow(_profile(), window_rows=1000)
    good = _requests(10, 10)
    window.add({"distance": np.ones(3), "zone": np.array(["north"], dtype=object)})
    for r in good:
        window.add(r)
    window.scores()
    assert window._inputs.filled == 100


def test_invalid_arguments_are_refused() -> None:
    """A window needs a Profile and a positive number of rows."""
    with pytest.raises(InvalidArgumentError, match="Profile"):
        DriftWindow({"features": []}, 10)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError, match="window_rows"):
        DriftWindow(_profile(), 0)
