"""The production contract declared next to a model: what it must meet to ship.

Logged with the package and checked later by the registry's gates (latency
budget, target format, export parity, metric thresholds). Validated strictly
when logged, so a typo (``latency_p99`` for ``latency_p99_ms``) fails at once
instead of making a gate silently vacuous months later.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from shipyard._util import FrozenDict
from shipyard.errors import InvalidArgumentError
from shipyard.validation import check_key, describe

__all__ = ["Contract", "MetricThreshold"]

_FIELDS = (
    "batch_size",
    "device",
    "format",
    "latency_p50_ms",
    "latency_p99_ms",
    "min_metrics",
    "parity_atol",
    "parity_rtol",
)


@dataclass(frozen=True, slots=True)
class MetricThreshold:
    """A metric must be at least ``min`` and/or at most ``max``."""

    min: float | None = None
    max: float | None = None

    def check(self, value: float) -> bool:
        if math.isnan(value):
            return False
        return (self.min is None or value >= self.min) and (self.max is None or value <= self.max)

    def describe(self) -> str:
        parts = []
        if self.min is not None:
            parts.append(f">= {self.min:g}")
        if self.max is not None:
            parts.append(f"<= {self.max:g}")
        return " and ".join(parts)

    def to_dict(self) -> dict[str, float]:
        return {k: v for k, v in (("min", self.min), ("max", self.max)) if v is not None}


def _number(key: str, value: object, *, positive: bool = True) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidArgumentError(
            f"invalid contract {key}: expected a finite number, got {describe(value)}"
        )
    if positive and value <= 0:
        raise InvalidArgumentError(
            f"invalid contract {key}: expected a number > 0, got {describe(value)}"
        )
    return float(value)


def _threshold(name: str, value: object) -> MetricThreshold:
    if isinstance(value, Mapping):
        unknown = sorted(set(value) - {"min", "max"})
        if unknown or not value:
            raise InvalidArgumentError(
                f"invalid contract min_metrics[{name!r}]: expected a number (at least) or "
                f"{{'min': x}} / {{'max': x}}, got keys {sorted(value)}"
            )
        low = value.get("min")
        high = value.get("max")
        return MetricThreshold(
            None if low is None else _number(f"min_metrics[{name!r}].min", low, positive=False),
            None if high is None else _number(f"min_metrics[{name!r}].max", high, positive=False),
        )
    return MetricThreshold(min=_number(f"min_metrics[{name!r}]", value, positive=False))


@dataclass(frozen=True, slots=True)
class Contract:
    """What a model must meet in production.

    Build with :meth:`from_dict` (validates); ``min_metrics`` maps a metric to
    a threshold: ``{"val_auc": 0.9}`` means at least 0.9, and
    ``{"val_rmse": {"max": 3.0}}`` at most 3.0. ``parity_rtol``/``parity_atol``
    bound the difference between the native model and an export (None: the
    exporter's defaults).
    """

    latency_p99_ms: float | None = None
    latency_p50_ms: float | None = None
    batch_size: int = 1
    device: Literal["cpu", "cuda"] = "cpu"
    format: Literal["native", "onnx"] = "native"
    min_metrics: FrozenDict[str, MetricThreshold] = field(default_factory=FrozenDict)
    parity_rtol: float | None = None
    parity_atol: float | None = None

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any] | Contract) -> Contract:
        """Validate a contract given as a mapping.

        Raises:
            InvalidArgumentError: an unknown key (the message lists the valid
                ones) or a value of the wrong type or range.
        """
        if isinstance(doc, Contract):
            return doc
        if not isinstance(doc, Mapping):
            raise InvalidArgumentError(
                f"invalid contract: expected a mapping like {{'latency_p99_ms': 100}}, got "
                f"{describe(doc)}"
            )
        unknown = sorted(str(k) for k in doc if k not in _FIELDS)
        if unknown:
            raise InvalidArgumentError(
                f"invalid contract: unknown key(s) {unknown}; valid keys are {list(_FIELDS)}"
            )
        kw: dict[str, Any] = {}
        for key in ("latency_p99_ms", "latency_p50_ms", "parity_rtol", "parity_atol"):
            if doc.get(key) is not None:
                kw[key] = _number(key, doc[key])
        if "batch_size" in doc:
            size = doc["batch_size"]
            if isinstance(size, bool) or not isinstance(size, int) or size < 1:
                raise InvalidArgumentError(
                    f"invalid contract batch_size: expected an integer >= 1, got {describe(size)}"
                )
            kw["batch_size"] = size
        for key, allowed in (("device", ("cpu", "cuda")), ("format", ("native", "onnx"))):
            if key in doc:
                if doc[key] not in allowed:
                    raise InvalidArgumentError(
                        f"invalid contract {key}: expected one of {list(allowed)}, got "
                        f"{describe(doc[key])}"
                    )
                kw[key] = doc[key]
        metrics = doc.get("min_metrics") or {}
        if not isinstance(metrics, Mapping):
            raise InvalidArgumentError(
                f"invalid contract min_metrics: expected a mapping of metric to threshold, got "
                f"{describe(metrics)}"
            )
        kw["min_metrics"] = FrozenDict(
            {check_key(k, "metric key"): _threshold(k, v) for k, v in metrics.items()}
        )
        p50, p99 = kw.get("latency_p50_ms"), kw.get("latency_p99_ms")
        if p50 is not None and p99 is not None and p50 > p99:
            raise InvalidArgumentError(
                f"invalid contract: latency_p50_ms ({p50:g}) is above latency_p99_ms ({p99:g})"
            )
        return cls(**kw)

    def to_dict(self) -> dict[str, Any]:
        """The canonical form (thresholds as ``{"min": x}`` / ``{"max": x}``)."""
        return {
            "latency_p99_ms": self.latency_p99_ms,
            "latency_p50_ms": self.latency_p50_ms,
            "batch_size": self.batch_size,
            "device": self.device,
            "format": self.format,
            "min_metrics": {k: t.to_dict() for k, t in self.min_metrics.items()},
            "parity_rtol": self.parity_rtol,
            "parity_atol": self.parity_atol,
        }

    def check_metrics(self, metrics: Mapping[str, float]) -> list[str]:
        """Why ``metrics`` fail the thresholds (empty when they pass); a metric
        that was never logged fails."""
        problems = []
        for name, threshold in self.min_metrics.items():
            if name not in metrics:
                problems.append(f"{name} was not logged (needs {threshold.describe()})")
            elif not threshold.check(float(metrics[name])):
                problems.append(f"{name} = {metrics[name]:g} (needs {threshold.describe()})")
        return problems
