"""Input and output drift over a sliding window of served rows.

A server calls :meth:`DriftWindow.add` on every request, so that call only
appends a reference to the request's arrays under a lock; nothing is binned
there. The work happens in :meth:`DriftWindow.scores`, which a Prometheus
scrape of ``/metrics`` (or a timer) calls every few seconds: it concatenates
the pending requests per input, buckets each feature with the training
profile's bins (:func:`shipyard.models.bucket_indices`, vectorised), writes the
bucket indices into a ring of the last ``window_rows`` rows while keeping the
per-bucket counts up to date (the rows a write overwrites are subtracted), and
returns the PSI of each feature against the profile.

Pending requests are bounded too: when more than ``window_rows`` rows wait
for a score, the oldest whole requests are dropped (they would leave the
window at the next score anyway), so a server nobody scrapes does not grow.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from shipyard.errors import InvalidArgumentError
from shipyard.models import (
    FeatureProfile,
    Profile,
    bucket_indices,
    feature_columns,
    output_columns,
    psi,
)
from shipyard.validation import describe

__all__ = ["DriftWindow"]

logger = logging.getLogger("shipyard.monitor")

Arrays = Mapping[str, Any]


def _rows(arrays: Arrays) -> int:
    for value in arrays.values():
        try:
            return len(value)
        except TypeError:
            return 1
    return 0


def _concat(batches: Sequence[Arrays]) -> dict[str, np.ndarray[Any, Any]]:
    """One array per input key; KeyError or ValueError when batches disagree."""
    if len(batches) == 1:
        return {k: np.atleast_1d(np.asarray(v)) for k, v in batches[0].items()}
    return {
        key: np.concatenate([np.atleast_1d(np.asarray(b[key])) for b in batches])
        for key in batches[0]
    }


class _Stream:
    """The bucket indices of the last ``capacity`` rows of some features (a ring),
    their per-bucket counts, and the requests waiting to be bucketed. Callers
    hold the locks: ``DriftWindow._lock`` for ``pending``, ``_score_lock`` for
    the rest."""

    def __init__(
        self,
        features: Sequence[FeatureProfile],
        capacity: int,
        columns: Callable[[Arrays], dict[str, np.ndarray[Any, Any]]],
    ) -> None:
        self.features = tuple(features)
        self.capacity = capacity
        self.columns = columns
        self.pending: deque[tuple[Arrays, int]] = deque()
        self.pending_rows = 0
        self.ring = np.zeros((capacity, len(self.features)), dtype=np.int16)
        self.counts = [np.zeros(len(f.proportions), dtype=np.int64) for f in self.features]
        self.pos = 0
        self.filled = 0

    def append(self, arrays: Arrays) -> None:
        rows = _rows(arrays)
        if rows <= 0:
            return
        self.pending.append((arrays, rows))
        self.pending_rows += rows
        while self.pending_rows - self.pending[0][1] >= self.capacity:
            _, dropped = self.pending.popleft()
            self.pending_rows -= dropped

    def take(self) -> list[Arrays]:
        batches = [b for b, _ in self.pending]
        self.pending.clear()
        self.pending_rows = 0
        return batches

    def ingest(self, batches: list[Arrays]) -> None:
        if not batches or not self.features:
            return
        try:
            codes = self._codes(_concat(batches))
        except (KeyError, ValueError, TypeError):
            # requests that disagree in keys or shapes: bucket them one by one, skipping bad ones
            for batch in batches:
                try:
                    self._push(self._codes(_concat([batch])))
                except (KeyError, ValueError, TypeError) as e:
                    logger.warning("drift: skipped a request that cannot be bucketed: %s", e)
            return
        self._push(codes)

    def _codes(self, merged: dict[str, np.ndarray[Any, Any]]) -> np.ndarray[Any, Any]:
        columns = self.columns(merged)
        n = _rows(merged)
        codes = np.empty((n, len(self.features)), dtype=np.int16)
        for j, f in enumerate(self.features):
            values = columns.get(f.name)
            missing = len(f.proportions) - 1
            if values is None:
                codes[:, j] = missing  # an absent input counts as missing
                continue
            if len(values) != n:
                raise ValueError(f"{f.name!r} has {len(values)} rows, expected {n}")
            try:
                codes[:, j] = bucket_indices(f, values)
            except InvalidArgumentError as e:
                logger.warning("drift: cannot bucket %s: %s", f.name, e)
                codes[:, j] = missing
        return codes

    def _push(self, codes: np.ndarray[Any, Any]) -> None:
        n = len(codes)
        if n == 0:
            return
        if n >= self.capacity:
            self.ring[:] = codes[-self.capacity :]
            self.pos, self.filled = 0, self.capacity
            for j, f in enumerate(self.features):
                self.counts[j] = np.bincount(self.ring[:, j], minlength=len(f.proportions))
            return
        index = (self.pos + np.arange(n)) % self.capacity
        old = self.ring[index[index < self.filled]]
        for j, f in enumerate(self.features):
            size = len(f.proportions)
            self.counts[j] -= np.bincount(old[:, j], minlength=size)
            self.counts[j] += np.bincount(codes[:, j], minlength=size)
        self.ring[index] = codes
        self.pos = (self.pos + n) % self.capacity
        self.filled = min(self.capacity, self.filled + n)

    def scores(self) -> dict[str, float]:
        if self.filled == 0:
            return {}
        return {f.name: psi(f.proportions, self.counts[j]) for j, f in enumerate(self.features)}


class DriftWindow:
    """PSI of each input feature (and output) over the last ``window_rows`` rows
    served, against a package's training profile. Thread-safe.

    Args:
        profile: the package's profile (:func:`shipyard.models.profile_of`).
        window_rows: how many of the latest rows the scores describe.

    Raises:
        InvalidArgumentError: ``profile`` is not a Profile or ``window_rows`` < 1.
    """

    def __init__(self, profile: Profile, window_rows: int = 10_000) -> None:
        if not isinstance(profile, Profile):
            raise InvalidArgumentError(
                f"invalid profile: expected a shipyard.models.Profile (profile_of(manifest)), "
                f"got {describe(profile)}"
            )
        if isinstance(window_rows, bool) or not isinstance(window_rows, int) or window_rows < 1:
            raise InvalidArgumentError(
                f"invalid window_rows {describe(window_rows)}: expected a positive integer"
            )
        self.profile = profile
        self.window_rows = window_rows
        self._lock = threading.Lock()
        self._score_lock = threading.Lock()
        self._inputs = _Stream(
            profile.features, window_rows, lambda arrays: feature_columns(profile, arrays)
        )
        self._outputs = _Stream(
            profile.outputs, window_rows, lambda arrays: output_columns(profile, arrays)
        )

    def add(self, inputs: Mapping[str, np.ndarray[Any, Any]]) -> None:
        """Queue one request's decoded inputs (one array per column or tensor, as
        :func:`shipyard.models.feature_columns` takes them). Cheap: no copy, no binning;
        do not modify the arrays afterwards."""
        with self._lock:
            self._inputs.append(inputs)

    def add_outputs(self, outputs: Mapping[str, np.ndarray[Any, Any]]) -> None:
        """Queue one request's outputs by name (``output`` for a single array)."""
        with self._lock:
            self._outputs.append(outputs)

    def scores(self) -> dict[str, float]:
        """PSI per input feature over the window (empty before any row)."""
        return self._score(self._inputs)

    def output_scores(self) -> dict[str, float]:
        """PSI per output over the window, against the profile's outputs."""
        return self._score(self._outputs)

    def _score(self, stream: _Stream) -> dict[str, float]:
        with self._score_lock:
            with self._lock:
                batches = stream.take()
            stream.ingest(batches)
            return stream.scores()

    @property
    def rows(self) -> int:
        """Input rows the window holds, counting those not yet scored."""
        with self._lock:
            return min(self.window_rows, self._inputs.filled + self._inputs.pending_rows)

    @property
    def output_rows(self) -> int:
        """Output rows the window holds, counting those not yet scored."""
        with self._lock:
            return min(self.window_rows, self._outputs.filled + self._outputs.pending_rows)
