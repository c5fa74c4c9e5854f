"""Golden examples: the raw input example and the model's outputs on it, recorded
at log time and replayed when the package is loaded.

Each row of the input example is one golden example, so a mismatch names the
row. Arrays are stored with ``np.savez`` and read back with
``allow_pickle=False``: strings become fixed-width unicode (``U``) arrays, and
missing values in string columns are kept by a boolean mask next to them, so
no object array (which would need pickle) is ever written. Arrays are stored
under positional keys (``a0``, ``a1``...) and their real names, kinds and
pandas dtypes live in the package manifest, so any column name round-trips.

Tolerances are per output: floats compare with ``rtol``/``atol`` (defaults by
precision: float64 1e-5/1e-6, float32 1e-4/1e-5 because float32 kernels
reorder sums differently across thread counts, float16 1e-2/1e-3); integers,
booleans and strings compare exactly; NaN equals NaN.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from shipyard.errors import InvalidArgumentError, ModelIntegrityError

__all__ = [
    "compare",
    "default_tolerance",
    "input_arrays",
    "output_arrays",
    "read_arrays",
    "rebuild_input",
    "save_npz",
    "write_arrays",
]

_TOLERANCE = {"float64": (1e-5, 1e-6), "float32": (1e-4, 1e-5), "float16": (1e-2, 1e-3)}


def _missing(value: object) -> bool:
    return (
        value is None
        or (isinstance(value, float) and value != value)
        or type(value).__name__ in ("NAType", "NaTType")
    )


def _plain(values: Any) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any] | None]:
    """An array np.load can read without pickle, and a mask of missing strings."""
    arr = np.asarray(values)
    if arr.dtype.kind != "O":
        return arr, None
    flat = arr.ravel()
    missing = np.array([_missing(v) for v in flat], dtype=bool)
    present = [v for v, m in zip(flat, missing, strict=True) if not m]
    if present and all(isinstance(v, str) for v in present):
        text = np.array(["" if m else v for v, m in zip(flat, missing, strict=True)], dtype=str)
        return text.reshape(arr.shape), (missing.reshape(arr.shape) if missing.any() else None)
    try:
        if missing.any():
            numbers = np.array([np.nan if m else v for v, m in zip(flat, missing, strict=True)])
        else:
            numbers = np.asarray(flat.tolist())
        if numbers.dtype.kind in "biuf":
            return numbers.astype(np.float64 if missing.any() else numbers.dtype).reshape(
                arr.shape
            ), None
    except (TypeError, ValueError):
        pass
    raise InvalidArgumentError(
        "cannot store the example: it holds Python objects that are neither strings nor "
        f"numbers ({sorted({type(v).__name__ for v in flat[:100]})}); convert them first"
    )


def _named(
    arrays: Mapping[str, Any],
) -> tuple[dict[str, np.ndarray[Any, Any]], list[dict[str, Any]]]:
    stored: dict[str, np.ndarray[Any, Any]] = {}
    entries = []
    for i, (name, values) in enumerate(arrays.items()):
        arr, mask = _plain(values)
        stored[f"a{i}"] = arr
        entry: dict[str, Any] = {"name": name, "key": f"a{i}"}
        if mask is not None:
            stored[f"m{i}"] = mask
            entry["mask"] = f"m{i}"
        entries.append(entry)
    return stored, entries


def input_arrays(raw: Any, kind: str) -> tuple[dict[str, np.ndarray[Any, Any]], dict[str, Any]]:
    """The raw input example as storable arrays, and the note that rebuilds it."""
    note: dict[str, Any] = {"kind": kind}
    if kind == "dataframe":
        from shipyard.models._signature import _as_frame

        frame = _as_frame(raw)
        columns = {
            str(c): frame[c].to_numpy()
            if isinstance(frame[c].dtype, np.dtype)
            else frame[c].to_numpy(dtype=object)
            for c in frame.columns
        }
        stored, entries = _named(columns)
        for entry, c in zip(entries, frame.columns, strict=True):
            entry["pandas_dtype"] = str(frame[c].dtype)
        note["arrays"] = entries
        return stored, note
    if kind == "dict":
        stored, entries = _named({str(k): v for k, v in raw.items()})
    else:
        stored, entries = _named({"input": raw})
    note["arrays"] = entries
    return stored, note


def rebuild_input(stored: Mapping[str, np.ndarray[Any, Any]], note: Mapping[str, Any]) -> Any:
    """The raw example, of the kind it was given in."""
    values: dict[str, Any] = {}
    for entry in note["arrays"]:
        arr = stored[entry["key"]]
        if arr.dtype.kind in "US" or "mask" in entry:
            obj = arr.astype(object)
            if "mask" in entry:
                obj[stored[entry["mask"]]] = None
            arr = obj
        values[entry["name"]] = arr
    if note["kind"] == "dataframe":
        import pandas as pd

        frame = pd.DataFrame(values)
        for entry in note["arrays"]:
            dtype = entry.get("pandas_dtype")
            if dtype and str(frame[entry["name"]].dtype) != dtype:
                # a dtype this pandas does not know: keep the stored values
                with contextlib.suppress(TypeError, ValueError):
                    frame[entry["name"]] = frame[entry["name"]].astype(dtype)
        return frame
    if note["kind"] == "dict":
        return values
    return values["input"]


def output_arrays(out: Any) -> tuple[dict[str, np.ndarray[Any, Any]], str]:
    """A model's output as named arrays, and its kind."""
    if isinstance(out, np.ndarray):
        return {"output": out}, "ndarray"
    from shipyard.models._signature import _is_frame, _is_series

    if _is_frame(out):
        return {str(c): np.asarray(out[c].to_numpy()) for c in out.columns}, "dataframe"
    if isinstance(out, Mapping):
        return {str(k): np.asarray(v) for k, v in out.items()}, "dict"
    if _is_series(out):
        return {"output": np.asarray(out.to_numpy())}, "ndarray"
    return {"output": np.asarray(out)}, "ndarray"


def save_npz(path: Path, stored: Mapping[str, np.ndarray[Any, Any]]) -> None:
    """Write arrays (already plain: no object dtype) to an npz file ``np.load`` reads.

    Unlike ``np.savez`` the zip entries carry a fixed timestamp, so the same
    arrays always give the same bytes and the same blob (``np.savez`` stamps
    the current time, which would make every package's examples a new blob).
    """
    import io
    import zipfile

    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as archive:
        for key, arr in stored.items():
            buffer = io.BytesIO()
            np.lib.format.write_array(buffer, np.asarray(arr), allow_pickle=False)
            info = zipfile.ZipInfo(f"{key}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            archive.writestr(info, buffer.getvalue())


def write_arrays(path: Path, arrays: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Store named arrays in ``path`` (npz, no pickle); return the entries naming them."""
    stored, entries = _named(arrays)
    save_npz(path, stored)
    return entries


def read_arrays(path: Path) -> dict[str, np.ndarray[Any, Any]]:
    """The arrays of an npz file, refusing anything that would need pickle."""
    with np.load(path, allow_pickle=False) as data:
        return {k: data[k] for k in data.files}


def named_outputs(
    stored: Mapping[str, np.ndarray[Any, Any]], entries: list[dict[str, Any]]
) -> dict[str, np.ndarray[Any, Any]]:
    return {
        e["name"]: rebuild_input(stored, {"kind": "dict", "arrays": [e]})[e["name"]]
        for e in entries
    }


def default_tolerance(arr: np.ndarray[Any, Any]) -> dict[str, float] | None:
    """``{"rtol", "atol"}`` for float outputs by precision; None (exact) otherwise."""
    if arr.dtype.kind not in "fc":
        return None
    rtol, atol = _TOLERANCE.get(arr.dtype.name, _TOLERANCE["float32"])
    return {"rtol": rtol, "atol": atol}


def compare(
    expected: Mapping[str, np.ndarray[Any, Any]],
    actual: Mapping[str, np.ndarray[Any, Any]],
    tolerance: Mapping[str, Mapping[str, float] | None],
    where: str,
) -> None:
    """Raise ModelIntegrityError naming the first golden example (row) whose output
    differs beyond its tolerance, with the largest absolute and relative difference."""
    missing = sorted(set(expected) - set(actual))
    if missing:
        raise ModelIntegrityError(
            f"{where}: replaying the golden examples gave no output {missing} (got "
            f"{sorted(actual)}); the loaded model is not the one that was logged"
        )
    for name, want in expected.items():
        got = np.asarray(actual[name])
        if got.shape != want.shape:
            raise ModelIntegrityError(
                f"{where}: golden examples: output {name!r} has shape {got.shape} at replay, "
                f"but {want.shape} was recorded at log time"
            )
        tol = tolerance.get(name)
        bad = _bad_rows(want, got, tol)
        if not bad.any():
            continue
        row = int(np.flatnonzero(bad)[0])
        detail = _difference(want[row], got[row], tol)
        raise ModelIntegrityError(
            f"{where}: golden example {row} does not reproduce: output {name!r} {detail} "
            f"({int(bad.sum())} of {len(bad)} examples differ). The loaded model predicts "
            "differently from the one that was logged: compare the installed library versions "
            "with the package's requirements, or pass verify_examples=False to load it anyway"
        )


def _bad_rows(
    want: np.ndarray[Any, Any], got: np.ndarray[Any, Any], tol: Mapping[str, float] | None
) -> np.ndarray[Any, Any]:
    if want.ndim == 0:
        want, got = want.reshape(1), got.reshape(1)
    if tol is not None and want.dtype.kind in "fciub" and got.dtype.kind in "fciub":
        w, g = want.astype(np.float64), got.astype(np.float64)
        close = np.isclose(g, w, rtol=tol["rtol"], atol=tol["atol"], equal_nan=True)
    elif (want.dtype.kind in "OUS") != (got.dtype.kind in "OUS"):
        close = np.zeros(want.shape, dtype=bool)  # text against numbers: all differ
    else:
        text = want.dtype.kind in "OUS"
        close = np.asarray(want.astype(object) == got.astype(object) if text else want == got)
        if want.dtype.kind == "f" and got.dtype.kind == "f":
            close = close | (np.isnan(want) & np.isnan(got))
    rows = np.asarray(close).reshape(len(want), -1)
    bad: np.ndarray[Any, Any] = ~np.asarray(rows.all(axis=1))
    return bad


def _difference(want: Any, got: Any, tol: Mapping[str, float] | None) -> str:
    w, g = np.asarray(want), np.asarray(got)
    if tol is None or w.dtype.kind not in "fciub" or g.dtype.kind not in "fciub":
        return f"is {_short(g)}, but {_short(w)} was recorded (compared exactly)"
    diff = np.abs(g.astype(np.float64) - w.astype(np.float64))
    rel = diff / np.maximum(np.abs(w.astype(np.float64)), np.finfo(np.float64).tiny)
    return (
        f"differs from the recorded value by up to {float(np.nanmax(diff)):.3g} (absolute) and "
        f"{float(np.nanmax(rel)):.3g} (relative); tolerance rtol={tol['rtol']:g}, "
        f"atol={tol['atol']:g}"
    )


def _short(value: np.ndarray[Any, Any]) -> str:
    text = np.array2string(value, threshold=8, edgeitems=3) if value.ndim else repr(value.item())
    return text if len(text) <= 120 else text[:117] + "..."
