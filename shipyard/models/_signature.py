"""Signatures: what a model package takes and returns, checked on every predict.

A :class:`Schema` has a *kind*, the kind of raw input the model was logged
with, because that is what its preprocessing expects:

* ``dataframe`` -- named, typed columns (:class:`ColSpec`); a scikit-learn
  ``ColumnTransformer`` selects columns by name, so names matter, order not;
* ``dict`` -- named tensors (:class:`TensorSpec`), e.g. the inputs of an ONNX
  graph or the keyword arguments of a ``forward``;
* ``ndarray`` -- one unnamed tensor.

:func:`enforce` turns what a caller has (a DataFrame, a dict of arrays or of
scalars, a list of row dicts, a NumPy array or nested lists) into that kind,
and refuses with a message naming the missing column, the wrong dtype or the
wrong shape and what was expected (casting rules in :mod:`._dtypes`). Extra
columns are dropped: serving payloads often carry ids the model never saw.
The first dimension of a tensor is the batch and may have any size (``-1``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from shipyard.errors import InvalidArgumentError
from shipyard.models._dtypes import DTYPES, cast, dtype_of_array, dtype_of_series
from shipyard.validation import describe

__all__ = [
    "ColSpec",
    "ColumnMatrix",
    "Schema",
    "Signature",
    "TensorSpec",
    "enforce",
    "enforce_arrays",
    "infer_schema",
    "infer_signature",
    "input_kind",
]

Kind = Literal["dataframe", "dict", "ndarray"]
KINDS: tuple[Kind, ...] = ("dataframe", "dict", "ndarray")


@dataclass(frozen=True, slots=True)
class ColSpec:
    """A named column of a table: one value per row."""

    name: str
    dtype: str

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "dtype": self.dtype}


@dataclass(frozen=True, slots=True)
class TensorSpec:
    """A tensor; ``shape[0]`` is the batch (``-1``: any size)."""

    name: str | None
    dtype: str
    shape: tuple[int, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "dtype": self.dtype, "shape": list(self.shape)}


def _shape_text(shape: Sequence[int]) -> str:
    return "(" + ", ".join("any" if d < 0 else str(d) for d in shape) + ")"


@dataclass(frozen=True, slots=True)
class Schema:
    """The inputs (or outputs) of a model: a kind and its specs."""

    kind: Kind
    specs: tuple[ColSpec | TensorSpec, ...]
    #: The input names, worked out once (read on every served request).
    _names: tuple[str, ...] = field(init=False, repr=False, compare=False)
    #: The one dtype every spec has, else None.
    _uniform: str | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_names", tuple(str(s.name) for s in self.specs))
        dtypes = {s.dtype for s in self.specs}
        object.__setattr__(self, "_uniform", dtypes.pop() if len(dtypes) == 1 else None)
        if self.kind not in KINDS:
            raise InvalidArgumentError(
                f"invalid schema kind {describe(self.kind)}: expected one of {list(KINDS)}"
            )
        want = ColSpec if self.kind == "dataframe" else TensorSpec
        for spec in self.specs:
            if not isinstance(spec, want):
                raise InvalidArgumentError(
                    f"invalid {self.kind} schema: expected {want.__name__} entries, got "
                    f"{describe(spec)}"
                )
            if spec.dtype not in DTYPES:
                raise InvalidArgumentError(
                    f"invalid dtype {spec.dtype!r} for {spec.name!r}: expected one of "
                    f"{sorted(DTYPES)}"
                )
        names = [s.name for s in self.specs]
        if self.kind == "ndarray" and len(self.specs) != 1:
            raise InvalidArgumentError(
                f"invalid ndarray schema: expected exactly one tensor, got {len(self.specs)}"
            )
        if self.kind != "ndarray" and (
            len(set(names)) != len(names) or any(not isinstance(n, str) or not n for n in names)
        ):
            raise InvalidArgumentError(
                f"invalid {self.kind} schema: expected unique, non-empty names, got {names}"
            )

    @property
    def names(self) -> list[str]:
        return list(self._names)

    @property
    def uniform_dtype(self) -> str | None:
        """The dtype every spec has, or None when they differ."""
        return self._uniform

    def describe(self) -> str:
        """``a: float64, c: string`` or ``x: float32 (any, 4)``, for messages."""
        parts = []
        for s in self.specs:
            shape = f" {_shape_text(s.shape)}" if isinstance(s, TensorSpec) else ""
            parts.append(f"{s.name or 'input'}: {s.dtype}{shape}")
        return ", ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "specs": [s.to_dict() for s in self.specs]}

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> Schema:
        if not isinstance(doc, Mapping) or not isinstance(doc.get("specs"), list):
            raise InvalidArgumentError(
                f"invalid schema: expected {{'kind': ..., 'specs': [...]}}, got {describe(doc)}"
            )
        kind = doc.get("kind")
        specs: list[ColSpec | TensorSpec] = []
        for item in doc["specs"]:
            if not isinstance(item, Mapping) or "dtype" not in item:
                raise InvalidArgumentError(
                    f"invalid schema entry: expected {{'name', 'dtype'[, 'shape']}}, got "
                    f"{describe(item)}"
                )
            if kind == "dataframe":
                specs.append(ColSpec(str(item.get("name")), str(item["dtype"])))
            else:
                shape = item.get("shape") or [-1]
                if not isinstance(shape, list | tuple) or not all(
                    isinstance(d, int) for d in shape
                ):
                    raise InvalidArgumentError(
                        f"invalid shape {describe(shape)} for {item.get('name')!r}: expected "
                        "a list of integers, -1 for any size"
                    )
                name = item.get("name")
                specs.append(
                    TensorSpec(None if name is None else str(name), item["dtype"], tuple(shape))
                )
        return cls(kind, tuple(specs))  # type: ignore[arg-type]  # checked in __post_init__


@dataclass(frozen=True, slots=True)
class Signature:
    """Input and output schemas of a model package (outputs may be unknown)."""

    inputs: Schema
    outputs: Schema | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "inputs": self.inputs.to_dict(),
            "outputs": None if self.outputs is None else self.outputs.to_dict(),
        }

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> Signature:
        if not isinstance(doc, Mapping) or "inputs" not in doc:
            raise InvalidArgumentError(
                f"invalid signature: expected {{'inputs': schema, 'outputs': schema}}, got "
                f"{describe(doc)}"
            )
        outputs = doc.get("outputs")
        return cls(
            Schema.from_dict(doc["inputs"]), None if outputs is None else Schema.from_dict(outputs)
        )


# -- inference ------------------------------------------------------------------


def loaded_pandas() -> Any:
    """pandas if some code already imported it, else None (an input cannot be a
    DataFrame then, and pandas is not imported for nothing). A module another
    thread is still importing counts as not loaded: its ``DataFrame`` may not
    exist yet."""
    import sys

    pd = sys.modules.get("pandas")
    return pd if getattr(pd, "DataFrame", None) is not None else None


def _is_frame(value: object) -> bool:
    pd = loaded_pandas()
    return pd is not None and isinstance(value, pd.DataFrame)


def _is_series(value: object) -> bool:
    pd = loaded_pandas()
    return pd is not None and isinstance(value, pd.Series)


def _is_records(value: object) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(r, Mapping) for r in value)


def _array(value: Any, what: str) -> np.ndarray[Any, Any]:
    try:
        arr = np.asarray(value)
    except (ValueError, TypeError) as e:
        raise InvalidArgumentError(f"{what}: cannot be read as an array ({e})") from None
    if arr.dtype.kind in "US":
        arr = arr.astype(object)
    return arr


def input_kind(example: Any) -> Kind:
    """The schema kind a raw example stands for."""
    if _is_frame(example) or _is_series(example) or _is_records(example):
        return "dataframe"
    if isinstance(example, Mapping):
        return "dict"
    return "ndarray"


def infer_schema(example: Any) -> Schema:
    """The schema of a raw example: a DataFrame (or Series, or list of row dicts)
    gives columns, a dict gives named tensors, anything array-like one tensor."""
    kind = input_kind(example)
    if kind == "dataframe":
        frame = _as_frame(example)
        return Schema(
            "dataframe",
            tuple(
                ColSpec(str(c), dtype_of_series(frame[c], f"column {str(c)!r}"))
                for c in frame.columns
            ),
        )
    if kind == "dict":
        specs = []
        for key, value in example.items():
            arr = _array(value, f"entry {key!r}")
            if arr.ndim == 0:
                arr = arr.reshape(1)
            specs.append(
                TensorSpec(str(key), dtype_of_array(arr, f"entry {key!r}"), (-1, *arr.shape[1:]))
            )
        return Schema("dict", tuple(specs))
    arr = _array(example, "the example")
    if arr.ndim == 0:
        raise InvalidArgumentError(
            f"cannot infer a signature from a scalar {describe(example)}: pass a batch "
            "(an array, list, dict of arrays or DataFrame)"
        )
    return Schema(
        "ndarray", (TensorSpec(None, dtype_of_array(arr, "the example"), (-1, *arr.shape[1:])),)
    )


def infer_signature(inputs: Any, outputs: Any = None) -> Signature:
    """A signature from an input example and, optionally, the model's output on it."""
    return Signature(infer_schema(inputs), None if outputs is None else infer_schema(outputs))


def _as_frame(value: Any) -> Any:
    import pandas as pd

    if isinstance(value, pd.DataFrame):
        return value
    if isinstance(value, pd.Series):
        return value.to_frame()
    return pd.DataFrame.from_records(value)


# -- enforcement ----------------------------------------------------------------


def enforce(schema: Schema, raw: Any) -> Any:
    """``raw`` converted to what the model takes, or InvalidArgumentError saying
    what is missing or wrong and what was expected."""
    if schema.kind == "dataframe":
        return _enforce_frame(schema, raw)
    if schema.kind == "dict":
        return _enforce_dict(schema, raw)
    spec = cast_spec(schema.specs[0])
    if _is_frame(raw):
        raw = raw.to_numpy()
    elif isinstance(raw, Mapping) and len(raw) == 1:
        raw = next(iter(raw.values()))
    elif isinstance(raw, Mapping):
        raise InvalidArgumentError(
            f"invalid input: expected one array ({schema.describe()}), got a dict with keys "
            f"{list(raw)[:10]}"
        )
    return _tensor(spec, _array(raw, "input"), "input")


class ColumnMatrix(Mapping[str, "np.ndarray[Any, Any]"]):
    """Columns of one dtype held as a 2-D matrix, one column per name: a mapping
    of column views that also hands over the whole matrix, so a request of many
    numeric columns is checked, cast and fed as one array instead of one per
    column (what a server decodes ``dataframe_split`` rows into)."""

    __slots__ = ("_index", "matrix", "names")

    def __init__(self, matrix: np.ndarray[Any, Any], names: Sequence[str]) -> None:
        if matrix.ndim != 2 or matrix.shape[1] != len(names):
            raise InvalidArgumentError(
                f"a column matrix needs shape (rows, {len(names)}), got {matrix.shape}"
            )
        self.matrix = matrix
        self.names = tuple(names)
        self._index = {n: i for i, n in enumerate(self.names)}

    def __getitem__(self, name: str) -> np.ndarray[Any, Any]:
        return self.matrix[:, self._index[name]]

    def __iter__(self) -> Any:
        return iter(self.names)

    def __len__(self) -> int:
        return len(self.names)

    def __contains__(self, name: object) -> bool:
        return name in self._index

    def select(self, names: tuple[str, ...]) -> np.ndarray[Any, Any] | None:
        """The matrix with the columns ``names`` in that order (no copy when they
        already are), or None when one of them is missing."""
        if self.names == names:
            return self.matrix
        if not self._index.keys() >= set(names):
            return None
        return self.matrix[:, [self._index[n] for n in names]]


def _enforce_matrix(schema: Schema, arrays: ColumnMatrix) -> ColumnMatrix | None:
    """The whole-matrix check of :func:`enforce_arrays` for numeric columns of one
    signature dtype; None when the schema does not allow it (per column then)."""
    dtype = schema._uniform
    names = schema._names
    if arrays.matrix.dtype.kind not in "biuf" or dtype in (None, "string", "datetime64"):
        return None
    matrix = arrays.select(names)
    if matrix is None:
        return None
    try:
        return ColumnMatrix(cast(matrix, dtype, "input"), names)
    except InvalidArgumentError:
        return None  # the per-column check names the column


def enforce_arrays(
    schema: Schema, arrays: Mapping[str, np.ndarray[Any, Any]]
) -> Mapping[str, np.ndarray[Any, Any]]:
    """The fast path of :func:`enforce` for callers that already hold one NumPy array
    per input (an inference server decoding a request): the same dtype and shape
    rules, no pandas. Columns must be 1-D (or ``(N, 1)``) and of equal length; the
    one tensor of an ``ndarray`` schema may come under any name and is returned
    under its spec's name (or ``"input"``)."""
    if schema.kind == "ndarray":
        if len(arrays) != 1:
            raise InvalidArgumentError(
                f"invalid input: expected one tensor ({schema.describe()}), got "
                f"{len(arrays)}: {list(arrays)[:10]}"
            )
        spec = cast_spec(schema.specs[0])
        return {spec.name or "input": _tensor(spec, next(iter(arrays.values())), "input")}
    missing = [n for n in schema.names if n not in arrays]
    if missing:
        what = "column(s)" if schema.kind == "dataframe" else "input(s)"
        raise InvalidArgumentError(
            f"invalid input: missing {what} {missing}; expected {schema.describe()}; got "
            f"{list(arrays)[:30]}"
        )
    out: dict[str, np.ndarray[Any, Any]] = {}
    if schema.kind == "dict":
        for spec in map(cast_spec, schema.specs):
            name = str(spec.name)
            out[name] = _tensor(spec, arrays[name], f"input {name!r}")
        return out
    if isinstance(arrays, ColumnMatrix):
        fast = _enforce_matrix(schema, arrays)
        if fast is not None:
            return fast
    rows = -1
    for col in schema.specs:
        name = str(col.name)
        values = arrays[name]
        if values.ndim == 2 and values.shape[1] == 1:
            values = values.reshape(-1)
        elif values.ndim != 1:
            raise InvalidArgumentError(
                f"input column {name!r}: expected one value per row (shape (any,)), got "
                f"shape {tuple(values.shape)}"
            )
        if rows >= 0 and len(values) != rows:
            raise InvalidArgumentError(
                f"invalid input: columns have different lengths ({rows} rows before "
                f"{name!r}, which has {len(values)})"
            )
        rows = len(values)
        out[name] = cast(values, col.dtype, f"input column {name!r}")
    return out


def cast_spec(spec: ColSpec | TensorSpec) -> TensorSpec:
    """A spec of a tensor schema (Schema guarantees the type; this tells mypy)."""
    if not isinstance(spec, TensorSpec):
        raise InvalidArgumentError(f"expected a tensor spec, got {describe(spec)}")
    return spec


def _tensor(spec: TensorSpec, arr: np.ndarray[Any, Any], what: str) -> np.ndarray[Any, Any]:
    shape = spec.shape
    if arr.ndim == len(shape) - 1 and shape[-1] == 1:
        arr = arr.reshape(*arr.shape, 1)  # a column fed to an (N, 1) input
    elif arr.ndim == len(shape) - 1 and len(shape) > 1 and arr.shape == tuple(shape[1:]):
        arr = arr.reshape(1, *arr.shape)  # one example without its batch dimension
    if arr.ndim != len(shape) or any(
        want >= 0 and got != want for got, want in zip(arr.shape, shape, strict=True)
    ):
        raise InvalidArgumentError(
            f"{what}: expected shape {_shape_text(shape)}, got {tuple(arr.shape)}"
        )
    return cast(arr, spec.dtype, what)


def _enforce_dict(schema: Schema, raw: Any) -> dict[str, np.ndarray[Any, Any]]:
    if _is_frame(raw):
        raw = {str(c): raw[c].to_numpy() for c in raw.columns}
    elif _is_records(raw):
        frame = _as_frame(raw)
        raw = {str(c): frame[c].to_numpy() for c in frame.columns}
    elif not isinstance(raw, Mapping) and len(schema.specs) == 1:
        raw = {schema.names[0]: raw}
    if not isinstance(raw, Mapping):
        raise InvalidArgumentError(
            f"invalid input: expected a dict of arrays with keys {schema.names}, got "
            f"{type(raw).__name__}"
        )
    missing = [n for n in schema.names if n not in raw]
    if missing:
        raise InvalidArgumentError(
            f"invalid input: missing {missing}; expected {schema.describe()}; got keys "
            f"{[str(k) for k in raw][:20]}"
        )
    out = {}
    for spec in map(cast_spec, schema.specs):
        name = str(spec.name)
        out[name] = _tensor(spec, _array(raw[name], repr(name)), f"input {name!r}")
    return out


def _enforce_frame(schema: Schema, raw: Any) -> Any:
    import pandas as pd

    names = schema.names
    if isinstance(raw, pd.DataFrame | pd.Series) or _is_records(raw):
        frame = _as_frame(raw)
    elif isinstance(raw, Mapping):
        values = dict(raw)
        if values and all(np.ndim(v) == 0 for v in values.values()):
            values = {k: [v] for k, v in values.items()}  # one row given as scalars
        try:
            frame = pd.DataFrame(values)
        except ValueError as e:
            raise InvalidArgumentError(
                f"invalid input: expected columns of equal length for {names}, got {e}"
            ) from None
    elif isinstance(raw, np.ndarray | list | tuple):
        if np.ndim(raw) != 2 or np.shape(raw)[1] != len(names):
            raise InvalidArgumentError(
                f"invalid input: expected a table with columns {names}, got an array of shape "
                f"{np.shape(raw)}; pass a DataFrame, a dict of columns, a list of row dicts "
                f"or a 2-D array with {len(names)} columns in that order"
            )
        frame = pd.DataFrame(list(raw) if isinstance(raw, tuple) else raw, columns=names)
    else:
        raise InvalidArgumentError(
            f"invalid input: expected a DataFrame, a dict of columns or a list of row dicts "
            f"with columns {names}, got {type(raw).__name__}"
        )
    have = [str(c) for c in frame.columns]
    missing = [n for n in names if n not in have]
    if missing:
        raise InvalidArgumentError(
            f"invalid input: missing column(s) {missing}; expected columns {schema.describe()}; "
            f"got columns {have[:30]}"
        )
    frame.columns = have
    out = {}
    for spec in schema.specs:
        column = _column_values(frame[spec.name], spec.dtype)
        out[spec.name] = cast(column, spec.dtype, f"input column {spec.name!r}")
    return pd.DataFrame(out, index=frame.index, copy=False)


def _column_values(series: Any, dtype: str) -> np.ndarray[Any, Any]:
    import pandas as pd

    if isinstance(series.dtype, np.dtype):
        return np.asarray(series.to_numpy())
    if isinstance(series.dtype, pd.CategoricalDtype) or dtype == "string":
        return np.asarray(series.to_numpy(dtype=object))
    if series.isna().any():
        return np.asarray(series.to_numpy(dtype=np.float64, na_value=np.nan))
    numpy_dtype = getattr(series.dtype, "numpy_dtype", None)
    return np.asarray(series.to_numpy(dtype=numpy_dtype))
