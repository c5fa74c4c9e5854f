"""The dtype vocabulary of signatures and the casting rule of ``enforce``.

A signature names dtypes with a small, library-neutral vocabulary: ``bool``,
``int8``...``int64``, ``uint8``...``uint64``, ``float16``/``float32``/``float64``,
``string`` and ``datetime64``. NumPy and pandas dtypes (extension dtypes such
as ``Int64``, ``boolean``, ``string``/``str`` and ``category`` included) map to
it; anything else (mixed objects, periods, intervals) is refused at log time
with the column named, because a signature that cannot be checked is worse
than none.

Casting at predict time is *safe only*, so a request can never silently mean
something else than the training data did:

* the same dtype, ``bool`` to a number, and integers to a wider integer pass;
* a narrower integer passes when every value fits (``int64`` to ``int32``);
* integers to floats pass (what ``pandas`` does for a column with a gap);
* floats to another float width pass -- deliberately, narrowing included:
  ``float64`` NumPy arrays are the default everywhere and float32 models
  (torch, ONNX) compute at their own precision anyway; refusing would make
  every ``np.array([...])`` an error;
* floats to integers, numbers to strings and strings to numbers are refused:
  they change meaning (a rounded price, ``"1"`` vs ``1``), so the caller
  converts explicitly;
* strings: NumPy ``U``/``S`` arrays, pandas string columns and ``object``
  arrays of ``str`` (``None``/NaN allowed as missing) pass, as ``object``
  arrays of ``str`` (what scikit-learn encoders and onnxruntime expect).
"""

from __future__ import annotations

from typing import Any, NoReturn

import numpy as np

from shipyard.errors import InvalidArgumentError

__all__ = ["DTYPES", "cast", "dtype_of_array", "dtype_of_series"]

_NUMERIC = (
    "int8",
    "int16",
    "int32",
    "int64",
    "uint8",
    "uint16",
    "uint32",
    "uint64",
    "float16",
    "float32",
    "float64",
)
DTYPES = frozenset(("bool", "string", "datetime64", *_NUMERIC))
#: NumPy dtypes of the numeric and bool names (``np.dtype(name)`` costs microseconds).
_NUMPY = {name: np.dtype(name) for name in ("bool", *_NUMERIC)}


def _is_missing(value: object) -> bool:
    return value is None or (isinstance(value, float) and value != value)


def _object_kind(values: np.ndarray[Any, Any]) -> str:
    """``string``, ``bool``, ``int``, ``float`` or ``mixed`` for an object array."""
    kinds = set()
    for v in values.ravel():
        if _is_missing(v):
            continue
        if isinstance(v, str):
            kinds.add("string")
        elif isinstance(v, bool | np.bool_):
            kinds.add("bool")
        elif isinstance(v, int | np.integer):
            kinds.add("int")
        elif isinstance(v, float | np.floating):
            kinds.add("float")
        else:
            return "mixed"
    if not kinds:
        return "float"  # all missing: NaN is a float
    if kinds <= {"int", "bool"}:
        return "int" if "int" in kinds else "bool"
    if kinds <= {"int", "float", "bool"}:
        return "float"
    return kinds.pop() if len(kinds) == 1 else "mixed"


def dtype_of_array(values: np.ndarray[Any, Any], what: str) -> str:
    """The signature dtype of a NumPy array (``what`` names it in errors)."""
    kind = values.dtype.kind
    if kind == "b":
        return "bool"
    if kind in "iuf":
        return str(values.dtype.name)
    if kind in "US":
        return "string"
    if kind == "M":
        return "datetime64"
    if kind == "O":
        found = _object_kind(values)
        if found == "string":
            return "string"
        if found in ("int", "float", "bool"):
            return {"int": "int64", "float": "float64", "bool": "bool"}[found]
    raise InvalidArgumentError(
        f"{what} has dtype {values.dtype} ({_describe_kind(values)}), which a signature "
        "cannot describe: expected numbers, booleans, strings or datetimes; convert it "
        "first (e.g. .astype(str) or .astype(float))"
    )


def _describe_kind(values: np.ndarray[Any, Any]) -> str:
    if values.dtype.kind != "O":
        return "not supported"
    types = sorted({type(v).__name__ for v in values.ravel()[:1000]})
    return f"Python objects of types {types}"


def dtype_of_series(series: Any, what: str) -> str:
    """The signature dtype of a pandas Series, extension dtypes included."""
    import pandas as pd

    dtype = series.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        return dtype_of_array(np.asarray(dtype.categories), what)
    if isinstance(dtype, np.dtype):
        return dtype_of_array(series.to_numpy(), what)
    api = pd.api.types
    if api.is_bool_dtype(dtype):
        return "bool"
    if api.is_string_dtype(dtype):
        return "string"
    if api.is_integer_dtype(dtype) or api.is_float_dtype(dtype):
        return str(np.dtype(dtype.numpy_dtype).name)
    if api.is_datetime64_any_dtype(dtype):
        return "datetime64"
    raise InvalidArgumentError(
        f"{what} has pandas dtype {dtype}, which a signature cannot describe: expected "
        "numbers, booleans, strings or datetimes; convert the column first"
    )


def _refuse(what: str, expected: str, values: np.ndarray[Any, Any], hint: str) -> NoReturn:
    raise InvalidArgumentError(
        f"{what}: expected dtype {expected}, got {values.dtype}"
        f"{' (' + _object_kind(values) + ' values)' if values.dtype.kind == 'O' else ''}; {hint}"
    )


def cast(values: np.ndarray[Any, Any], expected: str, what: str) -> np.ndarray[Any, Any]:
    """``values`` as ``expected`` under the safe rule above, or InvalidArgumentError
    naming ``what``, the expected dtype and the one received."""
    same = _NUMPY.get(expected)
    if same is not None and values.dtype == same:  # (a dtype == None is float64!)
        return values  # already right: the serving fast path
    if not values.size:  # no values, nothing to misread: an empty request of any dtype
        return values.astype(object if expected == "string" else same or values.dtype)
    kind = values.dtype.kind
    if kind == "O":
        found = _object_kind(values)
        if expected == "string" and found == "string":
            return values
        if found == "string" and not values.size:
            return values
        if found in ("int", "bool", "float") and expected != "string":
            missing = any(_is_missing(v) for v in values.ravel())
            numeric = {"int": np.int64, "bool": np.bool_}.get(found, np.float64)
            values = np.asarray(
                [np.nan if _is_missing(v) else v for v in values.ravel()],
                dtype=np.float64 if missing else numeric,
            ).reshape(values.shape)
            kind = values.dtype.kind
        else:
            _refuse(what, expected, values, "convert the values to the expected type first")
    if expected == "string":
        if kind in "US":
            return values.astype(str).astype(object)
        _refuse(what, expected, values, "pass strings (numbers are not converted to text)")
    if expected == "datetime64":
        if kind == "M":
            return values
        _refuse(what, expected, values, "pass datetime64 values (e.g. pd.to_datetime)")
    if expected == "bool":
        if kind == "b":
            return values
        _refuse(what, expected, values, "pass booleans")
    target = _NUMPY[expected]
    if kind in "US" or kind == "M":
        _refuse(what, expected, values, "pass numbers (strings and dates are not parsed)")
    if target.kind == "f":
        return values.astype(target, copy=False)
    # integer target
    if kind == "f":
        _refuse(what, expected, values, "floats are not converted to integers: round them first")
    if kind == "b" or np.can_cast(values.dtype, target):
        return values.astype(target, copy=False)
    info = np.iinfo(target)
    if values.size and (values.min() < info.min or values.max() > info.max):
        raise InvalidArgumentError(
            f"{what}: expected dtype {expected}, got {values.dtype} values from "
            f"{values.min()} to {values.max()}, outside {expected}'s range "
            f"[{info.min}, {info.max}]"
        )
    return values.astype(target)
