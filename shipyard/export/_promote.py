"""Promotion: move an alias to a version through the production gates.

The alias is moved with a compare-and-set against the holder seen before the
gates ran, so two promotions racing for one alias cannot both win: the loser's
attempt is kept in the audit log as a ``conflict`` and it is told to look again
(its metric gate compared against a holder that is no longer current).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from shipyard._util import current_user
from shipyard.errors import InvalidArgumentError, NotFoundError
from shipyard.export._gates import (
    DEFAULT_CALLS,
    Gate,
    GateFailedError,
    GateReport,
    effective_contract,
    latency_gate,
    metrics_gate,
    signature_gate,
)
from shipyard.models import Contract
from shipyard.registry import RegistryClient
from shipyard.types import AliasEvent, ModelVersion

__all__ = ["PromotionResult", "check_gates", "promote"]


@dataclass(frozen=True)
class PromotionResult:
    report: GateReport
    event: AliasEvent

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.report.to_dict(),
            "outcome": self.event.outcome,
            "from_version": self.event.from_version,
            "to_version": self.event.to_version,
        }


def _holder(client: RegistryClient, model_id: str, alias: str) -> ModelVersion | None:
    try:
        return client.store.get_alias(model_id, alias)
    except NotFoundError:
        return None


def _metrics(client: RegistryClient, mv: ModelVersion | None) -> dict[str, float] | None:
    if mv is None or mv.run_id is None:
        return None
    return client.store.get_run(mv.run_id).metrics


def check_gates(
    client: RegistryClient,
    name: str,
    version: int,
    alias: str,
    *,
    calls: int | None = None,
    holder: ModelVersion | None = None,
) -> GateReport:
    """Run every gate for moving ``alias`` of ``name`` to ``version``; moves nothing."""
    from shipyard.export._export import export_version, production_predictor

    model = client.model(name)
    mv = client.store.get_model_version(model.id, version)
    contract = effective_contract(mv, model.contract)
    gates: list[Gate] = [signature_gate(mv.metadata.get("signature"))]
    if contract.format == "onnx":
        gates.append(_parity_gate(client, name, mv, export_version))
    else:
        gates.append(Gate("parity", None, "the contract's format is native: no export needed"))
    if any(g.name == "parity" and g.passed is False for g in gates):
        gates.append(Gate("latency", False, "not measured: the ONNX export is not usable"))
    else:
        gates.append(_latency(client, name, mv, contract, calls, production_predictor))
    candidate = _metrics(client, mv) or {}
    holder_metrics = _metrics(client, holder) if holder and holder.version != mv.version else None
    gates.append(
        metrics_gate(
            candidate,
            holder_metrics,
            holder.version if holder_metrics is not None and holder else None,
            contract,
        )
    )
    return GateReport(name, mv.version, alias, contract, gates)


def _parity_gate(client: RegistryClient, name: str, mv: ModelVersion, export_version: Any) -> Gate:
    exports = {e.format: e for e in client.store.list_model_exports(mv.model_id, mv.version)}
    found = exports.get("onnx")
    if found is None:
        try:
            result = export_version(f"models:/{name}/{mv.version}", "onnx", client=client)
        except Exception as e:  # a converter failure is this gate's verdict, not a crash
            return Gate("parity", False, f"ONNX export failed: {e}")
        report = result.parity.to_dict()
        made = " (exported now)"
    else:
        report, made = dict(found.report), ""
    data = {k: report.get(k) for k in ("max_abs", "max_rel", "rows", "rtol", "atol")}
    errors = ", ".join(
        f"max {what} {'-' if report.get(key) is None else format(report[key], '.3g')}"
        for what, key in (("abs", "max_abs"), ("rel", "max_rel"))
    )
    detail = f"{errors} on {report.get('rows')} rows (rtol {report.get('rtol')}){made}"
    return Gate("parity", bool(report.get("passed")), detail, data)


def _latency(
    client: RegistryClient,
    name: str,
    mv: ModelVersion,
    contract: Contract,
    calls: int | None,
    production_predictor: Any,
) -> Gate:
    try:
        predict, batch, how = production_predictor(client, name, mv, contract)
    except Exception as e:  # the model does not load as production would load it
        return Gate("latency", False, f"could not load the model to time it: {e}")
    n = calls or DEFAULT_CALLS
    try:
        return latency_gate(predict, batch, contract, calls=n, how=how)
    except Exception as e:
        return Gate("latency", False, f"predict failed while timing: {e}")


def promote(
    name: str,
    version: int,
    alias: str = "production",
    *,
    force: bool = False,
    reason: str = "",
    calls: int | None = None,
    actor: str | None = None,
    client: RegistryClient | None = None,
) -> PromotionResult:
    """Move ``alias`` of ``name`` to ``version`` if the gates pass.

    Raises:
        GateFailedError: a gate failed (the refusal is in the audit log).
        ConflictError: the alias moved while the gates ran (also in the audit log).
        InvalidArgumentError: ``force`` without a ``reason``.
    """
    from shipyard.registry import client as default_client

    client = client or default_client()
    if force and not reason.strip():
        raise InvalidArgumentError(
            "--force needs a reason (--reason '...'): it is kept in the audit log"
        )
    who = actor or current_user()
    model = client.model(name)
    holder = _holder(client, model.id, alias)
    report = check_gates(client, name, version, alias, calls=calls, holder=holder)
    if not report.passed and not force:
        client.store.record_alias_event(
            model.id, alias, version, outcome="refused", actor=who, reason=reason,
            report=report.to_dict(),
        )  # fmt: skip
        raise GateFailedError(report)
    event = client.store.set_alias(
        model.id,
        alias,
        version,
        expected=None if holder is None else holder.version,
        outcome="moved" if report.passed else "forced",
        actor=who,
        reason=reason,
        report=report.to_dict(),
    )
    return PromotionResult(report, event)
