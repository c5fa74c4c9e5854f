"""The way to production: ONNX export with a parity check, and promotion of a
version to a gated alias through the production contract.

    from shipyard.export import export_version, promote

    export_version("models:/rides-pricing/3")                # parity-checked, attached
    promote("rides-pricing", 3, "production")                # gates, then the alias moves

Conversion (:mod:`._convert`) and the parity check (:mod:`._parity`) work on native
objects and raw inputs; :mod:`._export` applies them to registered versions;
:mod:`._gates` and :mod:`._promote` are the production gates.
"""

from __future__ import annotations

from shipyard.export._convert import ExportError, OnnxModel, OnnxRunner, run_onnx, to_onnx
from shipyard.export._export import ExportResult, export_version, golden_input
from shipyard.export._gates import Gate, GateFailedError, GateReport
from shipyard.export._parity import ParityReport, check_parity, generated_batch
from shipyard.export._promote import PromotionResult, check_gates, promote

__all__ = [
    "ExportError",
    "ExportResult",
    "Gate",
    "GateFailedError",
    "GateReport",
    "OnnxModel",
    "OnnxRunner",
    "ParityReport",
    "PromotionResult",
    "check_gates",
    "check_parity",
    "export_version",
    "generated_batch",
    "golden_input",
    "promote",
    "run_onnx",
    "to_onnx",
]
