"""ONNX models as Shipyard holds them, and running them on raw inputs.

:class:`OnnxModel` is a serialized graph plus what it takes to use it (input
specs, which output is ``predict`` and which ``predict_proba``), written into the
graph's ``metadata_props`` so the bytes alone are enough. :class:`OnnxRunner`
feeds raw inputs -- a DataFrame, a dict of column arrays, an array -- casting each
column to its graph input's dtype and refusing lossy casts. Conversion from
native models is :mod:`shipyard.export._convert`.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from shipyard._util import FrozenDict
from shipyard.errors import InvalidArgumentError, ShipyardError

if TYPE_CHECKING:
    import onnx
    import onnxruntime

__all__ = ["ExportError", "InputSpec", "OnnxModel", "OnnxRunner", "run_onnx"]


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
