"""The production contract checked on a logged package, before any registration.

A search checks every trial this way (``SHIPYARD_CONTRACT``, see ``shipyard
train``): the registry's gates need a registered version, a trial has only a
run. Same gates, minus the comparison with an alias's holder:

* signature -- the package declares its inputs;
* latency -- the package loaded with its native flavor, timed in process (a
  contract with ``format: onnx`` gets its export, parity and ONNX Runtime timing
  at promotion, where the version exists to hold the export);
* metrics -- the run's metrics meet the contract's thresholds.

The measured p50/p99 come back as figures a search can optimise
(``contract.latency_p99_ms``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from shipyard.export._gates import DEFAULT_CALLS, Gate, latency_gate, signature_gate
from shipyard.models import Contract, LoadedModel, load_model

__all__ = ["check_package_contract"]


def _predictor(loaded: LoadedModel, contract: Contract) -> tuple[Any, str]:
    how = f"native {loaded.flavor}, {contract.device}"
    if contract.format == "onnx":  # the export and its parity are gated at promotion
        how += "; the ONNX export is timed when a version is promoted"
    return loaded.predict, how


def check_package_contract(
    model_uri: str,
    contract: Mapping[str, Any] | Contract,
    *,
    metrics: Mapping[str, float] | None = None,
    calls: int = DEFAULT_CALLS,
) -> dict[str, Any]:
    """Check the package at ``model_uri`` against ``contract``; returns
    ``{"passed": bool, "gates": [...], "latency_p50_ms": ..., "latency_p99_ms": ...}``
    (latencies absent when they could not be measured). Never raises for a
    failing model: a failure is a gate's verdict."""
    from shipyard.export._export import _batch, golden_input

    c = contract if isinstance(contract, Contract) else Contract.from_dict(dict(contract))
    gates: list[Gate] = []
    out: dict[str, Any] = {}
    try:
        loaded = load_model(model_uri, device=c.device, verify_examples=False)
    except Exception as e:
        gates.append(Gate("load", False, f"could not load {model_uri}: {e}"))
        loaded = None
    if loaded is not None:
        gates.append(signature_gate(loaded.manifest.get("signature")))
        try:
            predict, how = _predictor(loaded, c)
            batch = _batch(golden_input(loaded), c.batch_size)
            gate = latency_gate(predict, batch, c, calls=calls, how=f"{how}, batch {c.batch_size}")
            out["latency_p50_ms"] = gate.data["p50_ms"]
            out["latency_p99_ms"] = gate.data["p99_ms"]
        except Exception as e:
            gate = Gate("latency", False, f"could not time the model: {e}")
        gates.append(gate)
    if c.min_metrics:
        problems = c.check_metrics(dict(metrics or {}))
        gates.append(Gate("metrics", not problems, "; ".join(problems) or "thresholds met"))
    out["passed"] = all(g.passed is not False for g in gates)
    out["gates"] = [g.to_dict() for g in gates]
    return out
