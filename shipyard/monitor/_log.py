"""Sampled prediction logs: a fraction of served requests, written as JSON lines to
the blob store as artifacts of a *serving run*.

The request path pays one ``random() < sample_rate`` draw per request (a
sampled request keeps all its rows, so a batch is never cut apart) and, when
sampled, one append under a lock. A daemon thread writes the pending rows
every ``flush_seconds``, or sooner once ``flush_rows`` wait, as one file::

    predictions/20240501T120304.123456Z-000007.jsonl

named by the UTC time of its first row and a sequence number, one line per
row::

    {"ts": 1714565000.25, "version": 3, "inputs": {"distance": 2.5, "zone": "north"},
     "outputs": {"output": 11.2}}

Values are plain JSON: numbers, strings, booleans, lists for the rows of
``(N, k)`` tensors; NaN, infinities and other missing values are ``null``;
datetimes are ISO text. Tensors of more than :data:`MAX_ROW_VALUES` values per
row (images), and arrays whose length is not the request's row count, are left
out of the file.

The serving run is created at the first write, in experiment ``serving``,
named ``serve <model>``, tagged ``shipyard.serve.model`` and
``shipyard.serve.uri`` (how ``shipyard monitor`` finds it), and is ended
(FINISHED) by :meth:`PredictionLog.close`. A file's rows are all older than
the next file's first row, so a reader can skip files by name alone.

Failures never reach the server: a write that fails is logged (logger
``shipyard.monitor``), counted in ``failures``, and its rows are kept for the
next attempt while they fit under ``max_pending_rows``; rows beyond that cap
are dropped and counted in ``dropped``, so a stuck store cannot grow memory.
"""

from __future__ import annotations

import json
import logging
import math
import random
import tempfile
import threading
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from shipyard.errors import InvalidArgumentError
from shipyard.validation import describe

if TYPE_CHECKING:
    from shipyard.tracking import TrackingClient

__all__ = [
    "MAX_ROW_VALUES",
    "MODEL_TAG",
    "PREDICTIONS_DIR",
    "SAMPLE_RATE_TAG",
    "SERVING_EXPERIMENT",
    "URI_TAG",
    "PredictionLog",
    "file_name",
    "parse_file_name",
]

logger = logging.getLogger("shipyard.monitor")

SERVING_EXPERIMENT = "serving"
MODEL_TAG = "shipyard.serve.model"
URI_TAG = "shipyard.serve.uri"
SAMPLE_RATE_TAG = "shipyard.serve.sample_rate"
PREDICTIONS_DIR = "predictions"
#: Values per row above which a tensor is not written (an image is not a log line).
MAX_ROW_VALUES = 1024
_STAMP = "%Y%m%dT%H%M%S.%fZ"


def file_name(start: float, seq: int) -> str:
    """``20240501T120304.123456Z-000007.jsonl`` for a file whose first row is at ``start``."""
    return f"{datetime.fromtimestamp(start, tz=UTC).strftime(_STAMP)}-{seq:06d}.jsonl"


def parse_file_name(name: str) -> tuple[float, int] | None:
    """``(start time, sequence number)`` of a prediction file's name (a path's last
    part), or None if it is not one."""
    base = name.rsplit("/", 1)[-1]
    stamp, sep, rest = base.partition("Z-")
    if not sep or not rest.endswith(".jsonl"):
        return None
    try:
        when = datetime.strptime(stamp + "Z", _STAMP).replace(tzinfo=UTC)
        return when.timestamp(), int(rest[: -len(".jsonl")])
    except ValueError:
        return None


class _Request(NamedTuple):
    ts: float
    version: int
    inputs: Mapping[str, Any]
    outputs: Mapping[str, Any]
    rows: int


def _json_value(value: Any) -> Any:
    if value is None or isinstance(value, str | bool):
        return value
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, int | bool | str):
        return value
    if type(value).__name__ in ("NAType", "NaTType"):
        return None
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


_to_json = np.frompyfunc(_json_value, 1, 1)


def _row_values(values: Any, rows: int) -> list[Any] | None:
    """Per-row plain JSON values of one input or output, or None to leave it out."""
    arr = np.asarray(values)
    if arr.ndim == 0:
        return [_json_value(arr.item())] * rows
    if len(arr) != rows or arr.size > MAX_ROW_VALUES * rows:
        return None
    kind = arr.dtype.kind
    if kind == "f":
        obj = arr.astype(object)
        obj[~np.isfinite(arr)] = None
        result: list[Any] = obj.tolist()
        return result
    if kind in "biu":
        return list(arr.tolist())
    if kind in "US":
        return list(arr.astype(str).tolist())
    if kind in "mM":
        text = np.datetime_as_string(arr) if kind == "M" else arr.astype(str)
        obj = text.astype(object)
        obj[np.isnat(arr)] = None
        return list(obj.tolist())
    return list(np.asarray(_to_json(arr), dtype=object).tolist())


def _columns(arrays: Mapping[str, Any], rows: int) -> dict[str, list[Any]]:
    out = {}
    for key, values in arrays.items():
        column = _row_values(values, rows)
        if column is not None:
            out[str(key)] = column
    return out


def _encode(requests: list[_Request]) -> bytes:
    lines = []
    for r in requests:
        ins = _columns(r.inputs, r.rows)
        outs = _columns(r.outputs, r.rows)
        for i in range(r.rows):
            row = {
                "ts": r.ts,
                "version": r.version,
                "inputs": {k: v[i] for k, v in ins.items()},
                "outputs": {k: v[i] for k, v in outs.items()},
            }
            lines.append(json.dumps(row, separators=(",", ":"), allow_nan=False))
    return ("\n".join(lines) + "\n").encode("utf-8")


class PredictionLog:
    """Samples served requests and writes them to a serving run's artifacts.

    Args:
        tracking_client: where the serving run and its files go.
        model_name: the registered model served (tag ``shipyard.serve.model``).
        uri: what was asked to be served, e.g. ``models:/rides@production``.
        sample_rate: the fraction of requests kept, 0 to 1.
        flush_rows: write as soon as this many rows wait.
        flush_seconds: write at least this often while rows wait.
        max_pending_rows: rows held in memory at most; beyond, new rows are
            dropped and counted in ``dropped``.
        seed: seed of the sampling draws (tests; default: random).

    Attributes:
        run_id: the serving run (None until the first write).
        failures: writes that failed (each logged).
        dropped: rows dropped because ``max_pending_rows`` were waiting.
        written: rows written.
        files: files written.

    Raises:
        InvalidArgumentError: a rate outside [0, 1], or a non-positive size or period.
    """

    def __init__(
        self,
        tracking_client: TrackingClient,
        model_name: str,
        uri: str,
        *,
        sample_rate: float = 0.01,
        flush_rows: int = 1000,
        flush_seconds: float = 60.0,
        max_pending_rows: int = 100_000,
        seed: int | None = None,
    ) -> None:
        if isinstance(sample_rate, bool) or not isinstance(sample_rate, int | float):
            raise InvalidArgumentError(
                f"invalid sample_rate {describe(sample_rate)}: expected a number from 0 to 1"
            )
        if not 0.0 <= sample_rate <= 1.0:
            raise InvalidArgumentError(
                f"invalid sample_rate {sample_rate!r}: expected a fraction from 0 to 1 "
                "(0.01 keeps one request in a hundred)"
            )
        for name, value in (("flush_rows", flush_rows), ("max_pending_rows", max_pending_rows)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InvalidArgumentError(
                    f"invalid {name} {describe(value)}: expected a positive integer"
                )
        if not isinstance(flush_seconds, int | float) or not flush_seconds > 0:
            raise InvalidArgumentError(
                f"invalid flush_seconds {describe(flush_seconds)}: expected a positive number "
                "of seconds"
            )
        self.client = tracking_client
        self.model_name = model_name
        self.uri = uri
        self.sample_rate = float(sample_rate)
        self.flush_rows = flush_rows
        self.flush_seconds = float(flush_seconds)
        self.max_pending_rows = max_pending_rows
        self.run_id: str | None = None
        self.failures = 0
        self.dropped = 0
        self.written = 0
        self.files = 0
        self._random = random.Random(seed).random
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._pending: list[_Request] = []
        self._pending_rows = 0
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._closed = False
        self._seq = 0

    # -- the request path ------------------------------------------------------------

    def record(
        self,
        version: int,
        inputs: Mapping[str, np.ndarray[Any, Any]],
        outputs: Mapping[str, np.ndarray[Any, Any]],
        rows: int,
    ) -> None:
        """Keep this request (all ``rows`` of it) with probability ``sample_rate``.
        Keeps references: do not modify the arrays afterwards."""
        if self._random() >= self.sample_rate or rows <= 0:
            return
        with self._lock:
            if self._closed:
                return
            if self._pending_rows + rows > self.max_pending_rows:
                self.dropped += rows
                return
            # stamped under the lock: rows are appended in time order, so each file's
            # rows all precede the next file's first row (readers skip files by name)
            self._pending.append(_Request(time.time(), version, inputs, outputs, rows))
            self._pending_rows += rows
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._loop, name="shipyard-prediction-log", daemon=True
                )
                self._thread.start()
            if self._pending_rows >= self.flush_rows:
                self._wake.set()

    @property
    def pending_rows(self) -> int:
        """Rows sampled and not yet written."""
        return self._pending_rows

    # -- writing ---------------------------------------------------------------------

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.flush_seconds)
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                self.flush()
            except Exception:  # a bug must not end the thread silently
                logger.exception("prediction log of %s: flush failed", self.model_name)

    def flush(self) -> int:
        """Write the pending rows now, as one file; return how many were written
        (0 when there were none, or when the write failed: see ``failures``)."""
        with self._flush_lock:
            with self._lock:
                requests, self._pending = self._pending, []
                rows, self._pending_rows = self._pending_rows, 0
            if not requests:
                return 0
            try:
                data = _encode(requests)
            except Exception as e:  # unencodable values: retrying would not help
                self.failures += 1
                self.dropped += rows
                logger.warning(
                    "prediction log of %s: dropped %d sampled rows that cannot be written as "
                    "JSON: %s",
                    self.model_name,
                    rows,
                    e,
                )
                return 0
            try:
                self._write(data, min(r.ts for r in requests))
            except Exception as e:  # the store or blob store is down: keep the rows if they fit
                self.failures += 1
                with self._lock:
                    if self._pending_rows + rows <= self.max_pending_rows:
                        self._pending[:0] = requests
                        self._pending_rows += rows
                        kept = "kept for the next attempt"
                    else:
                        self.dropped += rows
                        kept = "dropped (too many rows waiting)"
                logger.warning(
                    "prediction log of %s: cannot write %d sampled rows to the serving run "
                    "(%s: %s); they are %s",
                    self.model_name,
                    rows,
                    type(e).__name__,
                    e,
                    kept,
                )
                return 0
            self.written += rows
            self.files += 1
            return rows

    def _write(self, data: bytes, start: float) -> None:
        run_id = self._ensure_run()
        name = file_name(start, self._seq)
        self._seq += 1
        with tempfile.TemporaryDirectory(prefix="shipyard-predictions-") as tmp:
            path = Path(tmp) / name
            path.write_bytes(data)
            self.client.log_artifact(run_id, path, PREDICTIONS_DIR)

    def _ensure_run(self) -> str:
        if self.run_id is None:
            from shipyard._util import current_user
            from shipyard.tracking._liveness import process_id

            experiment = self.client.get_or_create_experiment(SERVING_EXPERIMENT)
            run = self.client.store.create_run(
                experiment.id,
                name=f"serve {self.model_name}",
                user=current_user(),
                tags={
                    MODEL_TAG: self.model_name,
                    URI_TAG: self.uri,
                    SAMPLE_RATE_TAG: repr(self.sample_rate),
                },
                process=process_id(),  # so a server killed hard shows as KILLED
            )
            self.run_id = run.id
        return self.run_id

    def close(self, timeout: float = 30.0) -> None:
        """Stop the writer thread, write what is pending, and end the serving run
        (FINISHED). Later records are ignored. Never raises for a store failure."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self.flush()
        if self.run_id is not None:
            try:
                self.client.set_terminated(self.run_id, "FINISHED")
            except Exception as e:
                self.failures += 1
                logger.warning(
                    "prediction log of %s: cannot end serving run %s: %s",
                    self.model_name,
                    self.run_id,
                    e,
                )

    def __enter__(self) -> PredictionLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
