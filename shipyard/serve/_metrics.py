"""The server's Prometheus metrics, in one registry per server process.

Names follow Prometheus conventions (``_total`` counters, ``_seconds``
histograms). Label children are cached per (model, version, protocol, status),
so the request path pays one dict lookup and two lock-free-ish increments
(a few hundred nanoseconds), not ``labels()`` argument parsing.

Drift gauges are not stored: a custom collector asks each served model's
drift window for its scores when ``/metrics`` is scraped, so the binning work
happens at scrape time, off the request path.

With ``--workers N`` the counters and histograms are shared through
prometheus_client's multiprocess mode (``PROMETHEUS_MULTIPROC_DIR``, set by the
server before the workers start); drift gauges are per worker, labelled with
its pid, because each worker sees its own share of the traffic.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

__all__ = ["CONTENT_TYPE", "ServerMetrics"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_LATENCY_BUCKETS = (
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    10.0,
)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)

#: ``(model, version, kind, name, score)`` rows the drift collector publishes.
DriftRows = Callable[[], Iterable[tuple[str, str, str, str, float, int]]]


class _DriftCollector(Collector):
    def __init__(self, rows: DriftRows, pid_label: bool) -> None:
        self._rows = rows
        self._pid = str(os.getpid()) if pid_label else None

    def collect(self) -> Iterator[GaugeMetricFamily]:
        extra = ["pid"] if self._pid else []
        inputs = GaugeMetricFamily(
            "shipyard_input_drift_psi",
            "Population stability index of an input feature over the drift window, "
            "against the training profile in the model package (<0.1 stable, >0.25 drift)",
            labels=["model", "version", "feature", *extra],
        )
        outputs = GaugeMetricFamily(
            "shipyard_output_drift_psi",
            "Population stability index of a model output over the drift window, against "
            "the predictions on the training profile",
            labels=["model", "version", "output", *extra],
        )
        rows = GaugeMetricFamily(
            "shipyard_drift_window_rows",
            "Rows in the drift window the scores are computed over",
            labels=["model", "version", *extra],
        )
        seen = set()
        for model, version, kind, name, score, count in self._rows():
            pid = [self._pid] if self._pid else []
            family = inputs if kind == "input" else outputs
            family.add_metric([model, version, name, *pid], score)
            if (model, version) not in seen:
                seen.add((model, version))
                rows.add_metric([model, version, *pid], count)
        yield inputs
        yield outputs
        yield rows


class ServerMetrics:
    """The counters, histograms and gauges of one server process."""

    def __init__(self, drift_rows: DriftRows | None = None) -> None:
        disable_created_metrics()  # type: ignore[no-untyped-call]  # *_created: noise
        self.multiprocess = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))
        self.registry = CollectorRegistry()
        reg = self.registry if not self.multiprocess else None
        self.requests = Counter(
            "shipyard_requests",
            "Inference requests by model, version, protocol and HTTP status",
            ["model", "version", "protocol", "status"],
            registry=reg,
        )
        self.latency = Histogram(
            "shipyard_request_duration_seconds",
            "Time from the request's body to its response, in seconds",
            ["model", "version", "protocol"],
            buckets=_LATENCY_BUCKETS,
            registry=reg,
        )
        self.rows = Counter(
            "shipyard_predicted_rows", "Rows predicted", ["model", "version"], registry=reg
        )
        self.batch_size = Histogram(
            "shipyard_batch_size",
            "Rows per model call (micro-batches merge concurrent requests)",
            ["model"],
            buckets=_BATCH_BUCKETS,
            registry=reg,
        )
        mode: dict[str, Any] = {"multiprocess_mode": "max"} if self.multiprocess else {}
        self.loaded_version = Gauge(
            "shipyard_model_loaded_version",
            "The model version this server answers with",
            ["model"],
            registry=reg,
            **mode,
        )
        self.ready = Gauge(
            "shipyard_model_ready", "1 when the model can answer", ["model"], registry=reg, **mode
        )
        self.load_failures = Counter(
            "shipyard_model_load_failures",
            "Versions that failed to load (the previous one kept serving)",
            ["model", "version"],
            registry=reg,
        )
        self.swaps = Counter(
            "shipyard_model_swaps",
            "Hot swaps to a new version after its alias moved",
            ["model"],
            registry=reg,
        )
        self.prediction_log_dropped = Counter(
            "shipyard_prediction_log_failures",
            "Prediction log flushes that failed (sampled predictions kept in memory or dropped)",
            ["model"],
            registry=reg,
        )
        self._children: dict[tuple[str, str, str, int], tuple[Any, Any]] = {}
        if drift_rows is not None:
            self.registry.register(_DriftCollector(drift_rows, self.multiprocess))

    def observe(self, model: str, version: str, protocol: str, status: int, seconds: float) -> None:
        key = (model, version, protocol, status)
        pair = self._children.get(key)
        if pair is None:
            pair = (
                self.requests.labels(model, version, protocol, str(status)),
                self.latency.labels(model, version, protocol),
            )
            self._children[key] = pair
        pair[0].inc()
        pair[1].observe(seconds)

    def render(self) -> bytes:
        if not self.multiprocess:
            return generate_latest(self.registry)
        from prometheus_client import multiprocess

        shared = CollectorRegistry()
        multiprocess.MultiProcessCollector(shared)  # type: ignore[no-untyped-call]
        return generate_latest(shared) + generate_latest(self.registry)
