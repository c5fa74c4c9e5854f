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
import re
import sys
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from shipyard._util import FrozenDict
from shipyard.errors import InvalidArgumentError, ShipyardError

if TYPE_CHECKING:
    import onnx
    import onnxruntime

__all__ = ["FLAVORS", "ExportError", "InputSpec", "OnnxModel", "OnnxRunner", "run_onnx", "to_onnx"]

#: The model families :func:`to_onnx` converts.
FLAVORS = ("sklearn", "torch", "xgboost")

_META = "shipyard.onnx"  # metadata_props key holding the JSON description
_INSTALL = "pip install 'shipyard[onnx]'"
Array = np.ndarray[Any, Any]


class ExportError(ShipyardError):
    """A model could not be converted to ONNX: the converter does not support it, or
    the graph it produced does not load in onnxruntime. The message names the model
    type and the converter's own message; the original exception is chained."""


@dataclass(frozen=True, slots=True)
class InputSpec:
    """One graph input: its name, dtype (``float32``, ``float64``, ``int64`` or
    ``string``) and shape (``None`` for a dynamic dimension). ``columns`` names the
    frame columns stacked, in order, into a matrix input; ``None`` for a
    per-column input or an array input."""

    name: str
    dtype: str
    shape: tuple[int | None, ...]
    columns: tuple[str, ...] | None = None


@dataclass(frozen=True, slots=True)
class OnnxModel:
    """A converted model: the serialized ``onnx.ModelProto`` and how to use it.

    ``outputs`` maps roles (``predict``, ``predict_proba``) to graph output names;
    ``flatten`` holds the roles whose ``[N, 1]`` output is returned as ``[N]``
    because the native model's is. ``converter`` names the tool and version (and,
    for torch, the exporter used); ``opset`` is the ``ai.onnx`` opset; ``notes``
    say what the conversion had to work around.
    """

    data: bytes = field(repr=False)
    inputs: tuple[InputSpec, ...]
    outputs: FrozenDict[str, str]
    converter: str
    opset: int
    flatten: frozenset[str] = frozenset()
    notes: tuple[str, ...] = ()
    _runner: OnnxRunner | None = field(default=None, init=False, repr=False, compare=False)

    @classmethod
    def from_bytes(cls, data: bytes) -> OnnxModel:
        """The model back from :attr:`data` (or any ONNX file: roles are then guessed
        from skl2onnx's and torch's output names, the first output being ``predict``).

        Raises:
            InvalidArgumentError: ``data`` is not an ONNX model.
        """
        onnx = _require("onnx")
        try:
            proto = onnx.load_from_string(data)
        except Exception as e:
            raise InvalidArgumentError(f"not a serialized ONNX model: {e}") from e
        meta = {p.key: p.value for p in proto.metadata_props}
        if _META in meta:
            desc = json.loads(meta[_META])
            inputs = tuple(
                InputSpec(
                    i["name"],
                    i["dtype"],
                    tuple(i["shape"]),
                    None if i["columns"] is None else tuple(i["columns"]),
                )
                for i in desc["inputs"]
            )
            outputs, flatten = desc["outputs"], desc["flatten"]
            converter, notes = desc["converter"], tuple(desc["notes"])
        else:
            inputs = tuple(_graph_inputs(proto))
            names = [o.name for o in proto.graph.output]
            outputs = {"predict": names[0]}
            if "label" in names and "probabilities" in names:
                outputs = {"predict": "label", "predict_proba": "probabilities"}
            flatten = []
            converter, notes = f"{proto.producer_name} {proto.producer_version}".strip(), ()
        return cls(
            data,
            inputs,
            FrozenDict(outputs),
            converter,
            _opset(proto),
            frozenset(flatten),
            notes,
        )

    def runner(self) -> OnnxRunner:
        """An :class:`OnnxRunner` on the default providers, created once and kept."""
        runner = self._runner
        if runner is None:
            runner = OnnxRunner.open(self)
            # a cache, not state: racing threads build equivalent sessions
            object.__setattr__(self, "_runner", runner)
        return runner


class OnnxRunner:
    """An onnxruntime session for one :class:`OnnxModel`, fed raw inputs.

    Build it with :meth:`open`. ``run`` is thread-safe (onnxruntime sessions are)
    and cheap to call repeatedly: the session is created once.
    """

    def __init__(self, model: OnnxModel, session: onnxruntime.InferenceSession) -> None:
        self.model = model
        self.session = session
        self._roles = list(model.outputs)
        self._names = [model.outputs[r] for r in self._roles]

    @classmethod
    def open(
        cls, model: OnnxModel | bytes, *, providers: Sequence[str] | None = None
    ) -> OnnxRunner:
        """A runner for ``model`` on ``providers`` (default: CPU).

        Raises:
            ExportError: onnxruntime cannot load the graph.
        """
        if isinstance(model, bytes | bytearray):
            model = OnnxModel.from_bytes(bytes(model))
        return cls(model, _session(model.data, providers))

    def run(self, inputs: Any) -> dict[str, Array]:
        """The outputs by role for raw ``inputs`` (a DataFrame, a dict of column
        arrays, or an array), each column cast to its graph input's dtype.

        Raises:
            InvalidArgumentError: a column is missing or cannot be cast safely.
        """
        feeds = _feeds(self.model.inputs, inputs)
        arrays = self.session.run(self._names, feeds)
        out = {}
        for role, arr in zip(self._roles, arrays, strict=True):
            if role in self.model.flatten and arr.ndim == 2 and arr.shape[1] == 1:
                arr = arr[:, 0]
            out[role] = arr
        return out


def run_onnx(
    model: OnnxModel | bytes, inputs: Any, *, providers: Sequence[str] | None = None
) -> dict[str, Array]:
    """Run ``model`` on raw ``inputs``; the outputs by role (see :meth:`OnnxRunner.run`).

    An :class:`OnnxModel` keeps its default-provider session between calls; bytes,
    or explicit ``providers``, build a new session each time (keep an
    :class:`OnnxRunner` instead).
    """
    if isinstance(model, OnnxModel) and providers is None:
        return model.runner().run(inputs)
    return OnnxRunner.open(model, providers=providers).run(inputs)


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
    if columns is None:
        array = _matrix(example, "example")
        dtype = "string" if array.dtype.kind in "USO" else "float32"
        specs = [InputSpec("input", dtype, (None, array.shape[1]))]
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
    names = [o.name for o in proto.graph.output]
    if hasattr(model, "predict"):
        outputs = {"predict": names[0]}
        if proba and len(names) > 1:
            outputs["predict_proba"] = names[1]
    else:
        outputs = {"transform": names[0]}
    return proto, specs, outputs, f"skl2onnx {skl2onnx.__version__}", notes


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


def _is_frame(obj: Any) -> bool:
    pandas = sys.modules.get("pandas")
    return pandas is not None and isinstance(obj, pandas.DataFrame)


def _columns(raw: Any) -> dict[str, Any] | None:
    """The columns (Series or arrays) of a DataFrame or dict input, else None."""
    if _is_frame(raw):
        return {str(name): raw[name] for name in raw.columns}
    if isinstance(raw, Mapping):
        return {str(name): values for name, values in raw.items()}
    return None


def _kind(column: Any, name: str) -> str:
    """The graph dtype for one column: ``float32``, ``int64`` or ``string``."""
    dtype: Any = getattr(column, "dtype", None)
    if type(dtype).__name__ == "CategoricalDtype":
        column = dtype.categories
        dtype = column.dtype
    if dtype is None:
        column = np.asarray(column)
        dtype = column.dtype
    kind = getattr(dtype, "kind", "O")  # pandas extension dtypes have one too
    if kind == "f":
        return "float32"
    if kind in "iub":
        return "int64"
    if kind in "US":
        return "string"
    if kind == "O":
        values = column.to_numpy(dtype=object) if hasattr(column, "to_numpy") else column
        present = [v for v in np.asarray(values, dtype=object).ravel() if v is not None and v == v]
        if present and all(isinstance(v, str) for v in present):
            return "string"
    raise InvalidArgumentError(
        f"column {name!r}: expected numbers, booleans or text, got dtype {dtype}; "
        "ONNX export takes those only -- convert the column first"
    )


def _matrix(raw: Any, what: str) -> Array:
    """A 2-D array from an array, a DataFrame or a dict of 1-D columns."""
    columns = _columns(raw)
    if columns is not None:
        cols = [np.asarray(c.to_numpy() if hasattr(c, "to_numpy") else c) for c in columns.values()]
        if any(c.dtype.kind not in "iufb" for c in cols):
            raise InvalidArgumentError(
                f"{what}: expected numeric columns to stack into a matrix, got dtypes "
                f"{[str(c.dtype) for c in cols]}"
            )
        return np.column_stack([c.reshape(len(c), -1) for c in cols])
    array = np.asarray(raw)
    if array.ndim != 2:
        raise InvalidArgumentError(
            f"{what}: expected a 2-D array (rows x features), a DataFrame or a dict of "
            f"columns, got an array of shape {array.shape}"
        )
    return array


def _cast(values: Array, dtype: str, what: str) -> Array:
    """``values`` as graph dtype ``dtype``, refusing casts that change meaning."""
    kind = values.dtype.kind
    if dtype == "string":
        if kind in "US":
            return values.astype(object)
        if kind == "O" and all(isinstance(v, str) for v in values.ravel()):
            return values
        missing = kind == "O" and any(v is None or v != v for v in values.ravel())
        raise InvalidArgumentError(
            f"{what}: expected text, got "
            + (
                "missing values, which ONNX string inputs cannot hold (onnxruntime would "
                "read them as the text 'None'/'nan'); fill them first"
                if missing
                else f"dtype {values.dtype}; convert to str first"
            )
        )
    if kind == "O":
        try:
            values = values.astype(np.float64)
        except (TypeError, ValueError):
            raise InvalidArgumentError(f"{what}: expected numbers, got {values.dtype}") from None
        kind = "f"
    if kind not in "iufb":
        raise InvalidArgumentError(f"{what}: expected numbers, got dtype {values.dtype}")
    integral = kind != "f" or (np.isfinite(values).all() and (values == np.round(values)).all())
    if dtype == "int64" and not integral:
        raise InvalidArgumentError(
            f"{what}: expected integers, got floats with fractions or missing values; "
            "round or fill them first"
        )
    return values.astype(dtype, copy=False)


def _feeds(specs: Sequence[InputSpec], raw: Any) -> dict[str, Array]:
    columns = _columns(raw)
    if columns is None:
        array = np.asarray(raw)
        if len(specs) == 1:
            spec = specs[0]
            if array.ndim == len(spec.shape) - 1:
                array = array[None]  # one row
            return {spec.name: _cast(array, spec.dtype, f"input {spec.name!r}")}
        if array.ndim != 2 or array.shape[1] != len(specs):
            raise InvalidArgumentError(
                f"inputs: expected {len(specs)} columns {[s.name for s in specs]}, got an "
                f"array of shape {array.shape}"
            )
        columns = {s.name: array[:, j] for j, s in enumerate(specs)}
    feeds = {}
    for spec in specs:
        names = spec.columns or (spec.name,)
        missing = [n for n in names if n not in columns]
        if missing:
            raise InvalidArgumentError(
                f"inputs: missing column(s) {missing}; the model takes {list(names)}, "
                f"got {list(columns)}"
            )
        parts = []
        for n in names:
            col = columns[n]
            arr = col.to_numpy() if hasattr(col, "to_numpy") else np.asarray(col)
            parts.append(_cast(arr.reshape(len(arr), -1), spec.dtype, f"column {n!r}"))
        feeds[spec.name] = parts[0] if len(parts) == 1 else np.concatenate(parts, axis=1)
    return feeds


# --- helpers ----------------------------------------------------------------------


def _require(module: str) -> Any:
    try:
        return __import__(module)
    except ImportError as e:
        raise ExportError(f"ONNX export needs {module}, which is not installed: {_INSTALL}") from e


def _session(data: bytes, providers: Sequence[str] | None) -> onnxruntime.InferenceSession:
    ort = _require("onnxruntime")
    try:
        return ort.InferenceSession(data, providers=list(providers or ["CPUExecutionProvider"]))
    except Exception as e:
        raise ExportError(
            f"onnxruntime {ort.__version__} cannot load the graph: {_first_line(e)}"
        ) from e


def _graph_inputs(proto: onnx.ModelProto) -> list[InputSpec]:
    onnx = _require("onnx")
    specs = []
    for i in proto.graph.input:
        tensor = i.type.tensor_type
        dtype = onnx.helper.tensor_dtype_to_np_dtype(tensor.elem_type)
        shape = tuple(d.dim_value if d.HasField("dim_value") else None for d in tensor.shape.dim)
        specs.append(InputSpec(i.name, "string" if dtype.kind == "O" else dtype.name, shape))
    return specs


def _opset(proto: onnx.ModelProto) -> int:
    return max((d.version for d in proto.opset_import if d.domain in ("", "ai.onnx")), default=0)


def _name(model: Any) -> str:
    return f"{type(model).__module__}.{type(model).__qualname__}"


def _first_line(error: BaseException, limit: int = 300) -> str:
    """``Type: message`` on one line: the summary torch.export gives, if any, else
    the message's first line; colour codes dropped, long text cut."""
    lines = [ln.strip() for ln in re.sub(r"\x1b\[[0-9;]*m", "", str(error)).splitlines()]
    lines = [ln for ln in lines if ln]
    if "## Exception summary" in lines[:-1]:
        lines = lines[lines.index("## Exception summary") + 1 :]
    text = f"{type(error).__name__}: {lines[0]}" if lines else type(error).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _export_error(model: Any, converter: str, error: BaseException, extra: str = "") -> ExportError:
    return ExportError(
        f"cannot export {_name(model)} to ONNX with {converter}: {_first_line(error).rstrip('.')}"
        f"{'; ' + extra if extra else ''}. Use an estimator the converter supports, or keep "
        "the model's native format in its production contract instead of ONNX"
    )
