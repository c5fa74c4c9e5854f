"""Native models to ONNX, and ONNX models run on raw inputs.

:func:`to_onnx` converts a native object -- a scikit-learn estimator or pipeline
(skl2onnx), a torch ``nn.Module`` (``torch.onnx``) or an XGBoost model
(onnxmltools) -- given the raw input example it was trained on: a pandas
DataFrame, a dict of column arrays, or a 2-D NumPy array. :func:`run_onnx` and
:class:`OnnxRunner` feed the same raw inputs to onnxruntime.

Graph inputs. A DataFrame or dict example gives a scikit-learn model one input
per column, named as the column, shaped ``[None, 1]`` and typed from the column
(floats as float32, integers and booleans as int64, text and categories as
strings), so a ``ColumnTransformer`` and its encoders and scalers end up inside
the graph. A model that takes one matrix (``LinearRegression`` fit on a frame)
gets a single ``input`` instead, ``[None, n]`` float32, with the column order
recorded in :attr:`InputSpec.columns`. A 2-D array gives one ``input``. Torch
and XGBoost models always take one ``input`` (torch's with a dynamic batch
dimension); XGBoost's and torch's outputs are named by their converters.

Outputs are found by role: ``predict`` (labels or values) and, for classifiers,
``predict_proba`` (a plain probability matrix: no ZipMap). The roles, the input
specs and which outputs lose a trailing unit dimension to match the native
``predict`` are written into the model's ``metadata_props``, so the bytes alone
are enough to run it again (:meth:`OnnxModel.from_bytes`).

Floats are float32 throughout: skl2onnx's float64 tree ensembles do not load in
onnxruntime, so a float64 model is compared against float32 arithmetic, and the
parity check (:mod:`shipyard.export._parity`) reports what that costs.
"""

from __future__ import annotations

import copy
import io
import json
import logging
import warnings
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from shipyard._util import FrozenDict
from shipyard.errors import InvalidArgumentError
from shipyard.export._onnx import (
    _META,
    ExportError,
    InputSpec,
    OnnxModel,
    OnnxRunner,
    _columns,
    _first_line,
    _is_frame,
    _kind,
    _matrix,
    _name,
    _opset,
    _require,
    _session,
    run_onnx,
)

if TYPE_CHECKING:
    import onnx

__all__ = ["FLAVORS", "ExportError", "InputSpec", "OnnxModel", "OnnxRunner", "run_onnx", "to_onnx"]

#: The model families :func:`to_onnx` converts.
FLAVORS = ("sklearn", "torch", "xgboost")


def to_onnx(model: Any, example: Any, *, flavor: str, opset: int | None = None) -> OnnxModel:
    """Convert a native ``model`` to ONNX.

    Args:
        model: a fitted scikit-learn estimator or pipeline, a torch ``nn.Module``,
            or an XGBoost ``XGBRegressor``/``XGBClassifier``/regression ``Booster``.
        example: raw input the model accepts: a DataFrame, a dict of column arrays
            or a 2-D array (torch: an array of any rank, batch first).
        flavor: ``"sklearn"``, ``"torch"`` or ``"xgboost"``.
        opset: the ``ai.onnx`` opset to target; default: the converter's choice.

    Returns:
        The :class:`OnnxModel`, already checked to load in onnxruntime.

    Raises:
        InvalidArgumentError: unknown ``flavor``, bad ``opset`` or unusable example.
        ExportError: the converter does not support the model, the graph does not
            load, or the converter is not installed.
    """
    if flavor not in FLAVORS:
        raise InvalidArgumentError(f"flavor: expected one of {list(FLAVORS)}, got {flavor!r}")
    if opset is not None and (not isinstance(opset, int) or isinstance(opset, bool) or opset < 7):
        raise InvalidArgumentError(f"opset: expected an integer >= 7 or None, got {opset!r}")
    convert = {"sklearn": _sklearn, "torch": _torch, "xgboost": _xgboost}[flavor]
    proto, inputs, outputs, converter, notes = convert(model, example, opset)
    flatten = _flatten_roles(model, flavor, example, proto, outputs)
    desc = {
        "inputs": [
            {"name": i.name, "dtype": i.dtype, "shape": list(i.shape), "columns": i.columns}
            for i in inputs
        ],
        "outputs": outputs,
        "flatten": sorted(flatten),
        "converter": converter,
        "notes": list(notes),
    }
    proto.metadata_props.add(key=_META, value=json.dumps(desc))
    data = proto.SerializeToString()
    result = OnnxModel(
        data, tuple(inputs), FrozenDict(outputs), converter, _opset(proto), flatten, notes
    )
    try:
        session = _session(data, None)
    except ExportError as e:
        raise ExportError(
            f"{_name(model)} converted with {converter}, but {e}. Use an estimator the "
            "converter supports, or keep the model's native format in its production "
            "contract instead of ONNX"
        ) from e.__cause__
    object.__setattr__(result, "_runner", OnnxRunner(result, session))
    return result


# --- converters -------------------------------------------------------------------

_Converted = tuple["onnx.ModelProto", list[InputSpec], dict[str, str], str, tuple[str, ...]]


def _sklearn(model: Any, example: Any, opset: int | None) -> _Converted:
    skl2onnx = _require("skl2onnx")
    from skl2onnx.common import data_types as t
    from sklearn.base import is_classifier

    types = {"float32": t.FloatTensorType, "int64": t.Int64TensorType, "string": t.StringTensorType}
    classifier = is_classifier(model)
    # probabilities as a plain tensor, not ZipMap's list of dicts (only classifiers
    # with predict_proba take the option)
    proba = classifier and hasattr(model, "predict_proba")
    options = {id(model): {"zipmap": False}} if proba else None

    def convert(specs: list[InputSpec]) -> onnx.ModelProto:
        initial = [(s.name, types[s.dtype](list(s.shape))) for s in specs]
        with warnings.catch_warnings():
            # the converter's use of deprecated APIs: not the user's to act on
            warnings.filterwarnings("ignore", category=FutureWarning)
            warnings.filterwarnings("ignore", category=DeprecationWarning)
            proto: onnx.ModelProto = skl2onnx.convert_sklearn(
                model, initial_types=initial, options=options, target_opset=opset
            )
        return proto

    columns = _columns(example)
    notes: tuple[str, ...] = ()
    stacked = _stacked(columns) if columns is not None and len(columns) > 1 else None
    if columns is None:
        array = _matrix(example, "example")
        dtype = "string" if array.dtype.kind in "USO" else "float32"
        specs = [InputSpec("input", dtype, (None, array.shape[1]))]
    elif stacked is not None and not _selects_columns(model):
        # numbers only and nothing picks columns by name: one matrix input, which
        # onnxruntime runs 3x faster than a Concat of one input per column
        try:
            proto = convert([stacked])
        except Exception:  # per column below
            pass
        else:
            return _sklearn_result(model, proto, [stacked], proba, skl2onnx, notes)
        specs = [InputSpec(name, _kind(col, name), (None, 1)) for name, col in columns.items()]
    else:
        specs = [InputSpec(name, _kind(col, name), (None, 1)) for name, col in columns.items()]
    try:
        proto = convert(specs)
    except Exception as e:
        stacked = _stacked(columns) if columns is not None and len(columns) > 1 else None
        if stacked is None:
            raise _export_error(model, f"skl2onnx {skl2onnx.__version__}", e) from e
        try:
            proto = convert([stacked])
        except Exception:
            raise _export_error(model, f"skl2onnx {skl2onnx.__version__}", e) from e
        specs = [stacked]
        notes = (f"one input per column failed ({_first_line(e)}); used one float32 matrix",)
    return _sklearn_result(model, proto, specs, proba, skl2onnx, notes)


def _sklearn_result(
    model: Any,
    proto: onnx.ModelProto,
    specs: list[InputSpec],
    proba: bool,
    skl2onnx: Any,
    notes: tuple[str, ...],
) -> _Converted:
    names = [o.name for o in proto.graph.output]
    if hasattr(model, "predict"):
        outputs = {"predict": names[0]}
        if proba and len(names) > 1:
            outputs["predict_proba"] = names[1]
    else:
        outputs = {"transform": names[0]}
    return proto, specs, outputs, f"skl2onnx {skl2onnx.__version__}", notes


def _selects_columns(model: Any) -> bool:
    """Whether a ColumnTransformer sits anywhere in ``model`` (it selects by name)."""
    from sklearn.compose import ColumnTransformer

    if isinstance(model, ColumnTransformer):
        return True
    params = model.get_params(deep=True) if hasattr(model, "get_params") else {}
    return any(isinstance(v, ColumnTransformer) for v in params.values())


def _stacked(columns: Mapping[str, Any]) -> InputSpec | None:
    """One float32 matrix input over all-numeric ``columns``, else None."""
    kinds = [_kind(col, name) for name, col in columns.items()]
    if "string" in kinds:
        return None
    return InputSpec("input", "float32", (None, len(columns)), tuple(columns))


def _torch(model: Any, example: Any, opset: int | None) -> _Converted:
    torch = _require("torch")
    if not isinstance(model, torch.nn.Module):
        raise InvalidArgumentError(
            f"model: expected a torch.nn.Module for flavor 'torch', got {_name(model)}"
        )
    dtype = next((p.dtype for p in model.parameters() if p.is_floating_point()), torch.float32)
    columns = _columns(example)
    names = tuple(columns) if columns is not None else None
    array = np.asarray(example) if columns is None else _matrix(example, "example")
    if array.ndim < 1 or array.dtype.kind not in "iufb":
        raise InvalidArgumentError(
            f"example: expected a numeric array with a batch dimension first, got dtype "
            f"{array.dtype} and shape {array.shape}"
        )
    x = torch.from_numpy(np.ascontiguousarray(array)).to(dtype)
    spec = InputSpec("input", str(dtype).removeprefix("torch."), (None, *x.shape[1:]), names)
    common: dict[str, Any] = {"input_names": ["input"], "output_names": ["output"]}
    version = f"torch.onnx {torch.__version__}"
    training = model.training
    model.eval()
    # "torchvision is not installed. Skipping torchvision::nms": the exporter's
    # registry talking about libraries the model does not use
    registration = logging.getLogger("torch.onnx._internal.exporter._registration")
    level = registration.level
    registration.setLevel(logging.ERROR)
    try:
        with torch.no_grad(), warnings.catch_warnings():
            # the exporters' own deprecations, not the user's to act on
            warnings.filterwarnings("ignore", category=FutureWarning)
            warnings.filterwarnings("ignore", category=DeprecationWarning)
            warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
            try:
                program = torch.onnx.export(
                    model,
                    (x,),
                    dynamo=True,
                    verbose=False,
                    opset_version=opset,
                    dynamic_shapes=({0: torch.export.Dim("batch")},),
                    **common,
                )
                return program.model_proto, [spec], {"predict": "output"}, f"{version} (dynamo)", ()
            except Exception as e:
                dynamo_error = e
            buffer = io.BytesIO()
            try:
                torch.onnx.export(
                    model,
                    (x,),
                    buffer,
                    dynamo=False,
                    opset_version=opset,
                    dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}},
                    **common,
                )
            except Exception as e:
                raise _export_error(
                    model,
                    version,
                    e,
                    f"the dynamo exporter failed too: {_first_line(dynamo_error)}",
                ) from e
    finally:
        model.train(training)
        registration.setLevel(level)
    onnx = _require("onnx")
    note = (
        f"the dynamo exporter failed ({_first_line(dynamo_error)}); used TorchScript "
        "tracing, which freezes control flow to the path the example took"
    )
    proto = onnx.load_from_string(buffer.getvalue())
    return proto, [spec], {"predict": "output"}, f"{version} (torchscript)", (note,)


def _xgboost(model: Any, example: Any, opset: int | None) -> _Converted:
    onnxmltools = _require("onnxmltools")
    xgboost = _require("xgboost")
    from onnxmltools.convert.common.data_types import FloatTensorType
    from onnxmltools.convert.common.onnx_ex import get_maximum_opset_supported

    version = f"onnxmltools {onnxmltools.__version__}"
    columns = _columns(example)
    if columns is None:
        specs = [InputSpec("input", "float32", (None, _matrix(example, "example").shape[1]))]
    else:
        stacked = _stacked(columns)
        if stacked is None:
            raise ExportError(
                f"cannot export {_name(model)} with {version}: its example has text or "
                "categorical columns, which the XGBoost converter does not take; encode "
                "them as numbers, or serve the model in its native format"
            )
        specs = [stacked]
    booster = model if isinstance(model, xgboost.Booster) else None
    if booster is not None:
        objective = json.loads(booster.save_config())["learner"]["objective"]["name"]
        if not objective.startswith("reg:"):
            raise ExportError(
                f"cannot export an XGBoost Booster with objective {objective!r}: a raw "
                "Booster converts only for regression objectives (reg:*); export the "
                "XGBClassifier instead, or serve the model in its native format"
            )
    if not isinstance(model, xgboost.Booster | xgboost.XGBModel):
        raise InvalidArgumentError(
            f"model: expected an XGBoost XGBModel or Booster for flavor 'xgboost', "
            f"got {_name(model)}"
        )
    target = opset or int(get_maximum_opset_supported())
    try:
        converted = model
        if (booster if booster is not None else model.get_booster()).feature_names:
            # onnxmltools reads features as f0, f1, ...: drop the names (the order
            # stays) on a copy
            converted = copy.deepcopy(model)
            inner = converted if booster is not None else converted.get_booster()
            inner.feature_names = None
            inner.feature_types = None
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=FutureWarning)
            proto = onnxmltools.convert_xgboost(
                converted,
                initial_types=[("input", FloatTensorType(list(specs[0].shape)))],
                target_opset=target,
            )
    except Exception as e:
        raise _export_error(model, version, e) from e
    if not any(d.domain in ("", "ai.onnx") for d in proto.opset_import):
        # the graph uses ai.onnx.ml operators only; record the ai.onnx opset targeted
        proto.opset_import.add(domain="", version=target)
    names = [o.name for o in proto.graph.output]
    outputs = {"predict": names[0]}
    if isinstance(model, xgboost.XGBClassifier) and len(names) > 1:
        outputs["predict_proba"] = names[1]
    return proto, specs, outputs, version, ()


def _flatten_roles(
    model: Any, flavor: str, example: Any, proto: onnx.ModelProto, outputs: Mapping[str, str]
) -> frozenset[str]:
    """The roles whose declared ``[N, 1]`` output the native model returns as ``[N]``."""
    if flavor == "torch":
        return frozenset()
    shapes = {
        o.name: [
            d.dim_value if d.HasField("dim_value") else None for d in o.type.tensor_type.shape.dim
        ]
        for o in proto.graph.output
    }
    name = outputs.get("predict")
    if name is None or len(shapes[name]) != 2 or shapes[name][1] != 1:
        return frozenset()
    try:
        if hasattr(model, "predict") and not _is_booster(model):
            native = np.asarray(model.predict(_head(example)))
            return frozenset({"predict"}) if native.ndim == 1 else frozenset()
    except Exception:
        pass  # an example the native model rejects: assume sklearn's 1-D convention
    return frozenset({"predict"})


def _is_booster(model: Any) -> bool:
    return type(model).__name__ == "Booster" and type(model).__module__.startswith("xgboost")


def _head(example: Any, rows: int = 2) -> Any:
    """The first ``rows`` of ``example``, a dict becoming the DataFrame sklearn takes."""
    if isinstance(example, Mapping):
        import pandas

        return pandas.DataFrame({k: np.asarray(v)[:rows].ravel() for k, v in example.items()})
    return example[:rows] if not _is_frame(example) else example.iloc[:rows]


# --- inputs -----------------------------------------------------------------------


# --- helpers ----------------------------------------------------------------------


def _export_error(model: Any, converter: str, error: BaseException, extra: str = "") -> ExportError:
    return ExportError(
        f"cannot export {_name(model)} to ONNX with {converter}: {_first_line(error).rstrip('.')}"
        f"{'; ' + extra if extra else ''}. Use an estimator the converter supports, or keep "
        "the model's native format in its production contract instead of ONNX"
    )
