"""Request and response bodies: the Open Inference Protocol v2 (JSON, and the
binary tensor extension tritonclient uses by default) and MLflow's ``/invocations``.

Decoders turn a body into one NumPy array per input name -- what
:func:`shipyard.models.enforce_arrays` checks against the signature -- and never
build a pandas object; encoders write NumPy outputs with orjson's native NumPy
support. Anything malformed raises :class:`BadRequestError` with a message saying
what was wrong and what was expected; the app answers it as a 400 in the
protocol's own error format.

Values are never coerced across kinds here: a JSON float sent as ``INT64`` or a
string sent as ``FP32`` is refused, as the signature's casting rule refuses it
(:mod:`shipyard.models._dtypes`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import orjson

from shipyard.errors import InvalidArgumentError
from shipyard.models import ColumnMatrix

__all__ = [
    "OIP_DTYPES",
    "BadRequestError",
    "as_matrix",
    "decode_invocations",
    "decode_v2",
    "encode_invocations",
    "encode_v2",
    "oip_datatype",
    "parse_json",
]


class BadRequestError(InvalidArgumentError):
    """A request body the server cannot use (answered with a 400)."""


#: OIP v2 datatypes and the NumPy dtypes they travel as.
OIP_DTYPES: dict[str, np.dtype[Any]] = {
    "BOOL": np.dtype(np.bool_),
    "UINT8": np.dtype(np.uint8),
    "UINT16": np.dtype(np.uint16),
    "UINT32": np.dtype(np.uint32),
    "UINT64": np.dtype(np.uint64),
    "INT8": np.dtype(np.int8),
    "INT16": np.dtype(np.int16),
    "INT32": np.dtype(np.int32),
    "INT64": np.dtype(np.int64),
    "FP16": np.dtype(np.float16),
    "FP32": np.dtype(np.float32),
    "FP64": np.dtype(np.float64),
    "BYTES": np.dtype(object),
}
_SIGNATURE_TO_OIP = {
    "bool": "BOOL",
    "string": "BYTES",
    "datetime64": "BYTES",
    **{dt.name: name for name, dt in OIP_DTYPES.items() if dt.kind in "uif"},
}
_NUMPY_TO_OIP = {dt: name for name, dt in OIP_DTYPES.items() if dt.kind != "O"}
#: JSON value kinds (NumPy ``dtype.kind`` of ``np.asarray(data)``) each datatype takes.
_ACCEPTS = {"b": "b", "u": "iu", "i": "iu", "f": "iuf", "O": "USO"}
_NUMPY_OPTS = orjson.OPT_SERIALIZE_NUMPY


def oip_datatype(dtype: str | np.dtype[Any]) -> str:
    """The OIP datatype of a signature dtype name or a NumPy dtype."""
    if isinstance(dtype, np.dtype):
        return _NUMPY_TO_OIP.get(dtype, "BYTES")
    return _SIGNATURE_TO_OIP.get(str(dtype), "BYTES")


def parse_json(body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as e:
        raise BadRequestError(f"the request body is not valid JSON: {e}") from None


def _field(doc: Mapping[str, Any], key: str, kind: type | tuple[type, ...], what: str) -> Any:
    value = doc.get(key)
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        want = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise BadRequestError(f"{what}: '{key}' must be a {want}, got {_kind_of(value)}")
    return value


def _kind_of(value: object) -> str:
    if value is None:
        return "nothing (the field is missing or null)"
    names: dict[type, str] = {dict: "an object", list: "a list", str: "a string"}
    return names.get(type(value), type(value).__name__)


# -- Open Inference Protocol v2 -------------------------------------------------------


#: The largest dimension a request may declare (a zero-size tensor could otherwise
#: claim any shape).
MAX_DIM = 2**31 - 1


def _shape(entry: Mapping[str, Any], what: str) -> tuple[int, ...]:
    shape = _field(entry, "shape", list, what)
    if not all(isinstance(d, int) and not isinstance(d, bool) and 0 <= d <= MAX_DIM for d in shape):
        raise BadRequestError(
            f"{what}: 'shape' must be a list of integers from 0 to {MAX_DIM}, got {shape}"
        )
    return tuple(shape)


def _params(doc: Mapping[str, Any], what: str) -> Mapping[str, Any]:
    params = doc.get("parameters")
    if params is None:
        return {}
    if not isinstance(params, dict):
        raise BadRequestError(f"{what}: 'parameters' must be an object, got {_kind_of(params)}")
    return params


def _from_json(data: Any, datatype: str, dtype: np.dtype[Any], what: str) -> np.ndarray[Any, Any]:
    try:
        arr = np.asarray(data)
    except ValueError:
        raise BadRequestError(f"{what}: 'data' is ragged; expected a flat or nested list") from None
    if arr.dtype.kind == "O" and dtype.kind != "O":
        raise BadRequestError(
            f"{what}: 'data' holds nulls or mixed values; {datatype} takes numbers only"
        )
    if arr.size and arr.dtype.kind not in _ACCEPTS[dtype.kind]:
        got = {"b": "booleans", "i": "integers", "u": "integers", "f": "floats"}.get(
            arr.dtype.kind, "strings"
        )
        raise BadRequestError(f"{what}: datatype {datatype} cannot hold {got}")
    if dtype.kind == "O":
        return arr.astype(object)
    if dtype.kind in "iu" and arr.size and arr.dtype != dtype:
        info = np.iinfo(dtype)
        if arr.min() < info.min or arr.max() > info.max:
            raise BadRequestError(
                f"{what}: a value does not fit datatype {datatype} [{info.min}, {info.max}]"
            )
    return arr.astype(dtype, copy=False)


def _from_binary(raw: memoryview, dtype: np.dtype[Any], count: int, what: str) -> Any:
    if dtype.kind != "O":
        if len(raw) != count * dtype.itemsize:
            raise BadRequestError(
                f"{what}: binary data holds {len(raw)} bytes; shape and datatype need "
                f"{count * dtype.itemsize}"
            )
        if dtype.kind == "b":  # any non-zero byte is true (NumPy bools must be 0 or 1)
            return np.frombuffer(raw, dtype=np.uint8) != 0
        return np.frombuffer(raw, dtype=dtype.newbyteorder("<"))
    out: list[str] = []
    pos = 0
    while pos < len(raw):
        if pos + 4 > len(raw):
            raise BadRequestError(f"{what}: truncated BYTES element in binary data")
        size = int.from_bytes(raw[pos : pos + 4], "little")
        item = bytes(raw[pos + 4 : pos + 4 + size])
        if len(item) != size:
            raise BadRequestError(f"{what}: truncated BYTES element in binary data")
        try:
            out.append(item.decode())
        except UnicodeDecodeError:
            raise BadRequestError(f"{what}: a BYTES element is not UTF-8 text") from None
        pos += 4 + size
    arr = np.empty(len(out), dtype=object)
    arr[:] = out
    return arr


def _table(entries: list[Any]) -> ColumnMatrix | None:
    """A table sent as one JSON input per column -- every input a plain object of
    the same numeric datatype and the same one-column shape, with its data inline --
    decoded with one ``np.asarray`` over all columns; None for anything else (the
    input-by-input path then checks and explains)."""
    if len(entries) < 2:
        return None
    first = entries[0]
    if not isinstance(first, dict):
        return None
    datatype, shape = first.get("datatype"), first.get("shape")
    dtype = OIP_DTYPES.get(datatype) if isinstance(datatype, str) else None
    if dtype is None or dtype.kind == "O" or not isinstance(shape, list):
        return None
    if not (len(shape) == 1 or (len(shape) == 2 and shape[1] == 1)):
        return None
    names, data = [], []
    for entry in entries:
        if (
            not isinstance(entry, dict)
            or entry.get("datatype") != datatype
            or entry.get("shape") != shape
            or "parameters" in entry
            or not isinstance(entry.get("name"), str)
            or not isinstance(entry.get("data"), list)
        ):
            return None
        names.append(entry["name"])
        data.append(entry["data"])
    if len(set(names)) != len(names):
        return None
    try:
        arr = _from_json(data, str(datatype), dtype, "inputs")
        rows = int(shape[0])
    except (BadRequestError, TypeError, ValueError):
        return None
    if arr.ndim != 2 or arr.shape != (len(names), rows):
        return None
    return ColumnMatrix(arr.T, names)


def decode_v2(
    body: bytes, header_length: int | None = None
) -> tuple[Mapping[str, np.ndarray[Any, Any]], dict[str, Any]]:
    """``(inputs by name, request)`` from an OIP v2 infer body; with ``header_length``
    (the ``Inference-Header-Content-Length`` header) the JSON is followed by the
    binary tensors of the inputs whose parameters give ``binary_data_size``."""
    if header_length is None:
        doc, binary = parse_json(body), memoryview(b"")
    else:
        if header_length > len(body):
            raise BadRequestError(
                f"Inference-Header-Content-Length is {header_length}, but the body has only "
                f"{len(body)} bytes"
            )
        doc, binary = parse_json(body[:header_length]), memoryview(body)[header_length:]
    if not isinstance(doc, dict):
        raise BadRequestError(
            'an inference request must be a JSON object: {"inputs": [{"name", "shape", '
            f'"datatype", "data"}}, ...]}}; got {_kind_of(doc)}'
        )
    entries = _field(doc, "inputs", list, "inference request")
    if binary.nbytes == 0:
        table = _table(entries)
        if table is not None:
            return table, doc
    inputs: dict[str, np.ndarray[Any, Any]] = {}
    offset = 0
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise BadRequestError(f"inputs[{i}] must be an object, got {_kind_of(entry)}")
        name = _field(entry, "name", str, f"inputs[{i}]")
        what = f"input {name!r}"
        datatype = _field(entry, "datatype", str, what)
        dtype = OIP_DTYPES.get(datatype)
        if dtype is None:
            raise BadRequestError(
                f"{what}: unknown datatype {datatype!r}; expected one of {', '.join(OIP_DTYPES)}"
            )
        shape = _shape(entry, what)
        count = math.prod(shape)
        size = _params(entry, what).get("binary_data_size")
        if size is not None:
            if (
                not isinstance(size, int)
                or isinstance(size, bool)
                or size < 0
                or offset + size > len(binary)
            ):
                raise BadRequestError(
                    f"{what}: binary_data_size {size!r} does not fit the {len(binary)} "
                    "binary bytes after the JSON header"
                )
            arr = _from_binary(binary[offset : offset + size], dtype, count, what)
            offset += size
        elif "data" in entry:
            arr = _from_json(entry["data"], datatype, dtype, what)
        else:
            raise BadRequestError(f"{what}: no 'data' (and no binary_data_size parameter)")
        if arr.size != count:
            raise BadRequestError(
                f"{what}: 'data' holds {arr.size} values; shape {list(shape)} needs {count}"
            )
        if name in inputs:
            raise BadRequestError(f"input {name!r} is given twice")
        inputs[name] = arr.reshape(shape)
    if offset != len(binary):
        raise BadRequestError(
            f"the body has {len(binary) - offset} binary bytes no input's binary_data_size "
            "accounts for"
        )
    return inputs, doc


def as_matrix(inputs: Mapping[str, np.ndarray[Any, Any]]) -> Mapping[str, np.ndarray[Any, Any]]:
    """OIP inputs that are columns of one numeric dtype and length (a table sent as
    one input per column) stacked into a :class:`ColumnMatrix`; others as they are."""
    if len(inputs) < 2 or isinstance(inputs, ColumnMatrix):
        return inputs
    first = next(iter(inputs.values()))
    if first.dtype.kind not in "biuf" or first.ndim == 0:
        return inputs
    rows = first.shape[0]
    for arr in inputs.values():
        if (
            arr.dtype != first.dtype
            or not (arr.ndim == 1 or (arr.ndim == 2 and arr.shape[1] == 1))
            or arr.shape[0] != rows
        ):
            return inputs
    return ColumnMatrix(np.column_stack(list(inputs.values())), list(inputs))


def _binary_bytes(arr: np.ndarray[Any, Any]) -> bytes:
    if arr.dtype.kind not in "OUSM":
        return np.ascontiguousarray(arr, dtype=arr.dtype.newbyteorder("<")).tobytes()
    parts = []
    for v in arr.ravel():
        b = v if isinstance(v, bytes) else str(v).encode()
        parts.append(len(b).to_bytes(4, "little") + b)
    return b"".join(parts)


def _plain(arr: np.ndarray[Any, Any]) -> Any:
    """A flat array orjson can write (object and datetime arrays as lists)."""
    flat = arr.reshape(-1)
    if flat.dtype.kind in "OUSM":
        return [None if v is None else str(v) for v in flat.tolist()]
    if flat.dtype.kind == "f" and flat.dtype.itemsize == 2:
        return flat.astype(np.float32)
    return np.ascontiguousarray(flat)


def encode_v2(
    model: str,
    version: int,
    outputs: Mapping[str, np.ndarray[Any, Any]],
    request: Mapping[str, Any],
) -> tuple[bytes, int | None]:
    """``(body, header length or None)`` of an infer response: the outputs the request
    asked for (all by default), as binary tensors where it asked for them."""
    wanted = request.get("outputs")
    binary_default = bool(_params(request, "inference request").get("binary_data_output", False))
    chosen: list[tuple[str, bool]] = []
    if isinstance(wanted, list) and wanted:
        for item in wanted:
            name = item.get("name") if isinstance(item, dict) else None
            if not isinstance(name, str) or name not in outputs:
                raise BadRequestError(
                    f"unknown output {name!r} requested; this model returns {sorted(outputs)}"
                )
            params = _params(item, f"output {name!r}")
            chosen.append((name, bool(params.get("binary_data", binary_default))))
    else:
        chosen = [(name, binary_default) for name in outputs]
    docs, blobs = [], []
    for name, binary in chosen:
        arr = outputs[name]
        doc: dict[str, Any] = {
            "name": name,
            "datatype": oip_datatype(arr.dtype),
            "shape": list(arr.shape),
        }
        if binary:
            blob = _binary_bytes(arr)
            doc["parameters"] = {"binary_data_size": len(blob)}
            blobs.append(blob)
        else:
            doc["data"] = _plain(arr)
        docs.append(doc)
    response: dict[str, Any] = {
        "model_name": model,
        "model_version": str(version),
        "outputs": docs,
    }
    if "id" in request:
        response["id"] = request["id"]
    head = orjson.dumps(response, option=_NUMPY_OPTS)
    if not blobs:
        return head, None
    return head + b"".join(blobs), len(head)


# -- MLflow /invocations --------------------------------------------------------------

_INVOCATION_KEYS = ("dataframe_split", "dataframe_records", "instances", "inputs")


def _array(values: Any, what: str) -> np.ndarray[Any, Any]:
    try:
        arr = np.asarray(values)
    except ValueError:
        raise BadRequestError(f"{what}: ragged nested lists; expected equal-length rows") from None
    return arr


def _columns_of_rows(
    rows: Sequence[Any], columns: Sequence[str], what: str, matrix: bool
) -> Mapping[str, np.ndarray[Any, Any]]:
    if not rows:
        return {c: np.asarray([], dtype=np.float64) for c in columns}
    if matrix:  # every column has one numeric dtype: checked and fed as one matrix
        try:
            arr = np.asarray(rows)
        except ValueError:  # ragged: the loop below says which row
            arr = np.empty(0)
        if arr.ndim == 2 and arr.shape[1] == len(columns) and arr.dtype.kind in "biuf":
            return ColumnMatrix(arr, columns)
    for i, row in enumerate(rows):
        if not isinstance(row, list) or len(row) != len(columns):
            raise BadRequestError(
                f"{what}: row {i} must be a list of {len(columns)} values (one per column "
                f"{list(columns)[:10]}), got {_kind_of(row)}"
                + (f" of {len(row)}" if isinstance(row, list) else "")
            )
    return {c: np.asarray(col) for c, col in zip(columns, zip(*rows, strict=True), strict=True)}


def _columns_of_records(records: list[Any], what: str) -> dict[str, np.ndarray[Any, Any]]:
    names: dict[str, None] = {}
    for i, r in enumerate(records):
        if not isinstance(r, dict):
            raise BadRequestError(
                f"{what}[{i}] must be an object of column values, got {_kind_of(r)}"
            )
        names.update(dict.fromkeys(r))
    return {c: np.asarray([r.get(c) for r in records]) for c in names}


def decode_invocations(
    body: bytes, kind: str, names: Sequence[str], *, matrix: bool = False
) -> Mapping[str, np.ndarray[Any, Any]]:
    """One array per input from an MLflow scoring body, for a signature of ``kind``
    (``dataframe``, ``dict`` or ``ndarray``) whose inputs are ``names``. With
    ``matrix`` (every column of the signature has one numeric dtype) rows of numbers
    come back as one :class:`ColumnMatrix`; otherwise column by column, so an
    integer column keeps its integers beside a float one."""
    doc = parse_json(body)
    keys = [k for k in _INVOCATION_KEYS if isinstance(doc, dict) and k in doc]
    if len(keys) != 1:
        raise BadRequestError(
            "an /invocations body must be a JSON object with exactly one of "
            f"{', '.join(_INVOCATION_KEYS)} (MLflow's scoring formats); got "
            + (f"keys {sorted(doc)[:10]}" if isinstance(doc, dict) else _kind_of(doc))
        )
    key = keys[0]
    value = doc[key]
    if key == "dataframe_split":
        if not isinstance(value, dict):
            raise BadRequestError(
                'dataframe_split must be {"columns": [...], "data": [[...], ...]}, got '
                + _kind_of(value)
            )
        data = _field(value, "data", list, "dataframe_split")
        columns = value.get("columns")
        if columns is None:
            columns = list(names)
        if not isinstance(columns, list) or not all(isinstance(c, str) for c in columns):
            raise BadRequestError("dataframe_split: 'columns' must be a list of column names")
        if kind == "ndarray":
            return {"input": _array(data, "dataframe_split.data")}
        return _columns_of_rows(data, columns, "dataframe_split.data", matrix)
    if key == "dataframe_records":
        if not isinstance(value, list):
            raise BadRequestError(
                f"dataframe_records must be a list of objects, got {_kind_of(value)}"
            )
        return _columns_of_records(value, "dataframe_records")
    if key == "instances":
        if not isinstance(value, list):
            raise BadRequestError(f"instances must be a list, got {_kind_of(value)}")
        if value and isinstance(value[0], dict):
            return _columns_of_records(value, "instances")
        if kind == "ndarray":
            return {"input": _array(value, "instances")}
        return _columns_of_rows(value, names, "instances", matrix)
    if isinstance(value, dict):
        return {str(k): _array(v, f"inputs.{k}") for k, v in value.items()}
    if kind == "ndarray" or not isinstance(value, list):
        return {"input": _array(value, "inputs")}
    return _columns_of_rows(value, names, "inputs", matrix)


def encode_invocations(outputs: Mapping[str, np.ndarray[Any, Any]]) -> bytes:
    """``{"predictions": ...}``: the one output as a list, or one record per row when
    the model returns several named outputs of the same length (MLflow's form for
    DataFrame outputs)."""
    if len(outputs) == 1:
        arr = next(iter(outputs.values()))
        value: Any = arr.tolist() if arr.dtype.kind in "OUSM" or arr.ndim > 1 else arr
        if isinstance(value, np.ndarray):
            value = _plain(value)
        return orjson.dumps({"predictions": value}, option=_NUMPY_OPTS)
    lengths = {len(a) if a.ndim else -1 for a in outputs.values()}
    if len(lengths) == 1 and -1 not in lengths:
        lists = {k: v.tolist() for k, v in outputs.items()}
        records = [dict(zip(lists, row, strict=True)) for row in zip(*lists.values(), strict=True)]
        return orjson.dumps({"predictions": records})
    return orjson.dumps({"predictions": {k: v.tolist() for k, v in outputs.items()}})
