"""The production gates a version passes before a gated alias points at it.

A contract (declared when the model was logged, overridden per registered model)
says what production needs, e.g.::

    {"latency_p99_ms": 100, "batch_size": 1, "device": "cpu", "format": "onnx",
     "min_metrics": {"val_auc": 0.9, "val_rmse": {"max": 3.0}}}

The gates, in order (each reports what it measured, so a refusal is actionable):

* **signature** -- the package declares its inputs (serving validates requests
  against them);
* **parity** -- when the contract's format is ONNX: the version has an ONNX
  export whose parity check passed (exported now if it has none);
* **latency** -- the model, loaded as production would load it (the ONNX export,
  or the native flavor), answers ``batch_size`` rows in process; p50 and p99 over
  ``calls`` timed calls after a warm-up must be within the budget;
* **metrics** -- the run's metrics meet the contract's thresholds, and are no
  worse than those of the version the alias points at now (for every metric the
  contract names, in the direction it names).

Latency is measured here, in process, on this machine: it is a floor for what a
server adds, and the report says which device and how many calls.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from shipyard.errors import StateError
from shipyard.models import Contract
from shipyard.types import ModelVersion

__all__ = [
    "DEFAULT_CALLS",
    "Gate",
    "GateFailedError",
    "GateReport",
    "effective_contract",
    "latency_gate",
    "metrics_gate",
    "signature_gate",
]

DEFAULT_CALLS = 200
_WARMUP = 10
#: Registered-model keys that are not part of a package's contract.
_REGISTRY_KEYS = ("gated_aliases",)


def effective_contract(mv: ModelVersion, model_contract: Mapping[str, Any]) -> Contract:
    """The package's contract with the registered model's keys over it, validated."""
    logged = mv.metadata.get("contract") or {}
    merged = {**(logged if isinstance(logged, Mapping) else {}), **model_contract}
    return Contract.from_dict(
        {k: v for k, v in merged.items() if v is not None and k not in _REGISTRY_KEYS}
    )


@dataclass(frozen=True)
class Gate:
    """One gate's verdict: ``passed`` is None when the contract does not ask for it."""

    name: str
    passed: bool | None
    detail: str
    data: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "passed": self.passed, "detail": self.detail, **self.data}


@dataclass(frozen=True)
class GateReport:
    """Every gate run for one promotion."""

    model: str
    version: int
    alias: str
    contract: Contract
    gates: list[Gate]

    @property
    def passed(self) -> bool:
        return all(g.passed is not False for g in self.gates)

    @property
    def failed(self) -> list[Gate]:
        return [g for g in self.gates if g.passed is False]

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "version": self.version,
            "alias": self.alias,
            "passed": self.passed,
            "contract": self.contract.to_dict(),
            "gates": [g.to_dict() for g in self.gates],
        }

    def summary(self) -> str:
        if self.passed:
            return "all gates passed"
        return "; ".join(f"{g.name}: {g.detail}" for g in self.failed)

    def table(self) -> Any:
        """A rich table of the gates (the CLI prints it)."""
        from rich.table import Table
        from rich.text import Text

        out = Table(title=f"gates for {self.model}/{self.version} -> @{self.alias}")
        for column in ("gate", "result", "detail"):
            out.add_column(column)
        for g in self.gates:
            mark = {True: ("pass", "green"), False: ("FAIL", "red"), None: ("skip", "dim")}
            word, style = mark[g.passed]
            out.add_row(g.name, Text(word, style=style), g.detail)
        return out


class GateFailedError(StateError):
    """A promotion refused by its gates; ``report`` says which and why."""

    def __init__(self, report: GateReport) -> None:
        self.report = report
        super().__init__(
            f"promotion of {report.model}/{report.version} to @{report.alias} refused: "
            f"{report.summary()}; fix the version, or move it anyway with --force "
            "--reason '...' (the audit log keeps the reason)"
        )


# -- the gates ------------------------------------------------------------------------------


def signature_gate(signature: Any) -> Gate:
    """The package declares its inputs: ``signature`` is its manifest's (or a model
    version's metadata's) ``signature`` entry."""
    inputs = signature.get("inputs") if isinstance(signature, Mapping) else None
    specs = inputs.get("specs") if isinstance(inputs, Mapping) else None
    if not specs:
        return Gate(
            "signature",
            False,
            "the package declares no input signature; log it with input_example= or signature=",
        )
    names = [str(s.get("name") or s.get("dtype", "?")) for s in specs if isinstance(s, Mapping)]
    kind = inputs.get("kind", "inputs") if isinstance(inputs, Mapping) else "inputs"
    return Gate("signature", True, f"{kind} of {len(specs)}: {', '.join(names)}"[:100])


def latency_gate(
    predict: Callable[[Any], Any], batch: Any, contract: Contract, *, calls: int, how: str
) -> Gate:
    """Time ``calls`` calls of ``predict(batch)`` after a warm-up; compare with the budget."""
    p99_budget, p50_budget = contract.latency_p99_ms, contract.latency_p50_ms
    for _ in range(_WARMUP):
        predict(batch)
    times = []
    clock = time.perf_counter
    for _ in range(calls):
        t0 = clock()
        predict(batch)
        times.append((clock() - t0) * 1000.0)
    times.sort()
    p50, p99 = _quantile(times, 0.50), _quantile(times, 0.99)
    data = {"p50_ms": round(p50, 4), "p99_ms": round(p99, 4), "calls": calls, "loaded_as": how}
    measured = f"p50 {p50:.3f} ms, p99 {p99:.3f} ms over {calls} calls ({how})"
    if p99_budget is None and p50_budget is None:
        return Gate("latency", None, f"{measured}; no budget in the contract", data)
    over = []
    if p99_budget is not None and p99 > p99_budget:
        over.append(f"p99 {p99:.3f} ms > budget {p99_budget} ms")
    if p50_budget is not None and p50 > p50_budget:
        over.append(f"p50 {p50:.3f} ms > budget {p50_budget} ms")
    budget = ", ".join(
        f"{k} {v} ms" for k, v in (("p99", p99_budget), ("p50", p50_budget)) if v is not None
    )
    if over:
        return Gate("latency", False, f"{'; '.join(over)} ({measured})", data)
    return Gate("latency", True, f"{measured}; within {budget}", data)


def metrics_gate(
    candidate: Mapping[str, float],
    holder: Mapping[str, float] | None,
    holder_version: int | None,
    contract: Contract,
) -> Gate:
    """Thresholds of the contract, then no regression against the current holder (for
    each metric the contract names, in its direction: ``min`` higher is better)."""
    if not contract.min_metrics:
        return Gate("metrics", None, "the contract names no metrics (min_metrics)")
    problems = contract.check_metrics(candidate)
    for name, threshold in contract.min_metrics.items():
        value = candidate.get(name)
        before = None if holder is None else holder.get(name)
        if value is None or before is None or math.isnan(value) or math.isnan(before):
            continue
        higher_is_better = threshold.min is not None
        if (value < before) if higher_is_better else (value > before):
            problems.append(
                f"{name} {value:.6g} is worse than {before:.6g} of version {holder_version} "
                "(the alias's current holder)"
            )
    data = {
        "candidate": {k: candidate.get(k) for k in contract.min_metrics},
        "holder": None if holder is None else {k: holder.get(k) for k in contract.min_metrics},
        "holder_version": holder_version,
    }
    if problems:
        return Gate("metrics", False, "; ".join(problems), data)
    seen = ", ".join(f"{k}={candidate[k]:.6g}" for k in contract.min_metrics)
    against = f", no worse than version {holder_version}" if holder is not None else ""
    return Gate("metrics", True, f"{seen} meet the contract{against}", data)


def _quantile(sorted_values: list[float], q: float) -> float:
    """Linear-interpolated quantile of an ascending list."""
    if not sorted_values:
        return math.nan
    pos = (len(sorted_values) - 1) * q
    lo = math.floor(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)
