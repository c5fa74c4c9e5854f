"""Export a registered version to ONNX, check parity, attach the export to the version.

The export is a model package of its own (flavor ``onnx``, the same raw input
signature, golden examples replayed on load), stored content-addressed and
attached to the version it came from with its parity report -- only when parity
passes, so an attached export is always one that agrees with the original.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shipyard.errors import InvalidArgumentError, NotFoundError
from shipyard.export._convert import ExportError, OnnxModel, to_onnx
from shipyard.export._parity import ParityReport, check_parity
from shipyard.models import Contract, LoadedModel, load_package, save_package
from shipyard.registry import RegistryClient
from shipyard.types import ModelVersion

__all__ = ["ExportResult", "export_version", "golden_input", "production_predictor"]

#: Parity tolerance when the contract sets none (float32 graphs against float64 models).
DEFAULT_RTOL, DEFAULT_ATOL = 1e-4, 1e-5
FORMATS = ("onnx",)


@dataclass(frozen=True)
class ExportResult:
    uri: str
    format: str
    package_digest: str
    converter: str
    parity: ParityReport

    def to_dict(self) -> dict[str, Any]:
        return {
            "uri": self.uri,
            "format": self.format,
            "package_digest": self.package_digest,
            "converter": self.converter,
            "parity": self.parity.to_dict(),
        }


def golden_input(loaded: LoadedModel) -> Any:
    """The package's golden input; InvalidArgumentError when it was logged without one."""
    example = loaded.golden_input()
    if example is None:
        raise InvalidArgumentError(
            f"{loaded.uri} has no golden examples: log it with input_example= so exports "
            "can be checked and latency measured"
        )
    return example


def _native_outputs(loaded: LoadedModel) -> Any:
    has_proba = hasattr(loaded, "predict_proba")

    def run(inputs: Any) -> dict[str, Any]:
        out = {"predict": loaded.predict(inputs)}
        if has_proba:
            out["predict_proba"] = loaded.predict_proba(inputs)
        return out

    return run


def _package_graph(model: OnnxModel) -> Any:
    """The graph with one output, ``predict``, shaped as the native model's predict."""
    import onnx
    from onnx import TensorProto, helper

    proto = onnx.load_from_string(model.data)
    name = model.outputs["predict"]
    found = next(o for o in proto.graph.output if o.name == name)
    if "predict" in model.flatten:
        shape = helper.make_tensor("shipyard_flat_shape", TensorProto.INT64, [1], [-1])
        proto.graph.initializer.append(shape)
        proto.graph.node.append(
            helper.make_node("Reshape", [name, "shipyard_flat_shape"], ["predict"])
        )
        elem = found.type.tensor_type.elem_type
        out = helper.make_tensor_value_info("predict", elem, ["N"])
    else:
        out = found
    del proto.graph.output[:]
    proto.graph.output.append(out)
    return proto


def export_version(
    uri: str,
    fmt: str = "onnx",
    *,
    client: RegistryClient | None = None,
    rtol: float | None = None,
    atol: float | None = None,
) -> ExportResult:
    """Export the version ``uri`` names (``models:/NAME/3``, ``NAME@alias``) to ``fmt``.

    Parity is checked on the golden examples and a generated batch, with the
    contract's ``parity_rtol``/``parity_atol`` (default 1e-4/1e-5).

    Raises:
        ExportError: the converter failed, or parity is over tolerance (the
            message names the worst element); nothing is attached then.
        InvalidArgumentError: an unknown format, or a package without examples.
    """
    from shipyard.export._gates import effective_contract
    from shipyard.registry import client as default_client

    if fmt not in FORMATS:
        raise InvalidArgumentError(
            f"cannot export to {fmt!r}: expected one of {', '.join(FORMATS)}"
        )
    client = client or default_client()
    mv = client.resolve(uri)
    model = client.store.get_registered_model(mv.model_id)
    contract = effective_contract(mv, model.contract)
    loaded = load_package(mv.package_digest)
    example = golden_input(loaded)
    onnx_model = _convert(loaded, example)
    parity = check_parity(
        _native_outputs(loaded),
        onnx_model.runner().run,
        [example],
        rtol=rtol if rtol is not None else contract.parity_rtol or DEFAULT_RTOL,
        atol=atol if atol is not None else contract.parity_atol or DEFAULT_ATOL,
    )
    if not parity.passed:
        raise ExportError(
            f"export of models:/{model.name}/{mv.version} to ONNX does not match the "
            f"original: {parity.summary()}; loosen parity_rtol/parity_atol in the contract "
            "if that difference is acceptable, or keep the native format"
        )
    with tempfile.TemporaryDirectory(prefix="shipyard-export-") as tmp:
        folder = Path(tmp) / "package"
        save_package(
            _package_graph(onnx_model),
            folder,
            flavor="onnx",
            input_example=example,
            contract=contract.to_dict() | {"format": "onnx"},
        )
        digest = client.blobs.put_tree(folder)
    report = parity.to_dict() | {"converter": onnx_model.converter, "opset": onnx_model.opset}
    client.store.put_model_export(model.id, mv.version, fmt, digest, report)
    return ExportResult(
        f"models:/{model.name}/{mv.version}", fmt, digest, onnx_model.converter, parity
    )


def _convert(loaded: LoadedModel, example: Any) -> OnnxModel:
    if loaded.flavor not in ("sklearn", "torch", "xgboost"):
        raise ExportError(
            f"cannot export a {loaded.flavor} model to ONNX: supported flavors are sklearn, "
            "torch and xgboost (an onnx package already is ONNX)"
        )
    return to_onnx(loaded.raw, example, flavor=loaded.flavor)


def _batch(example: Any, rows: int) -> Any:
    """``rows`` rows cycled from the example (a DataFrame, dict of arrays or array)."""
    import numpy as np

    if hasattr(example, "iloc"):
        index = np.arange(rows) % len(example)
        return example.iloc[index].reset_index(drop=True)
    if isinstance(example, dict):
        first = next(iter(example.values()))
        index = np.arange(rows) % len(first)
        return {k: np.asarray(v)[index] for k, v in example.items()}
    arr = np.asarray(example)
    return arr[np.arange(rows) % len(arr)]


def production_predictor(
    client: RegistryClient, name: str, mv: ModelVersion, contract: Contract
) -> tuple[Any, Any, str]:
    """``(predict, batch, how)``: the model loaded as production would load it (the ONNX
    export when the contract's format is onnx), and a ``batch_size`` batch."""
    if contract.format == "onnx":
        exports = {e.format: e for e in client.store.list_model_exports(mv.model_id, mv.version)}
        if "onnx" not in exports:
            raise NotFoundError(f"models:/{name}/{mv.version} has no ONNX export")
        loaded = load_package(
            exports["onnx"].package_digest, device=contract.device, verify_examples=False
        )
        how = f"onnx export on onnxruntime, {contract.device}"
    else:
        loaded = load_package(mv.package_digest, device=contract.device, verify_examples=False)
        how = f"native {loaded.flavor}, {contract.device}"
    batch = _batch(golden_input(loaded), contract.batch_size)
    return loaded.predict, batch, f"{how}, batch {contract.batch_size}"
