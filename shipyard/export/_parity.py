"""Parity between a native model and its ONNX export, measured and reported.

Converters do not promise equal outputs: a float32 random forest in skl2onnx
puts some rows off by more than 1e-4, float64 pipelines run in float32, and an
unsupported option can change a result silently. :func:`check_parity` runs both
sides on the golden examples and on a batch generated from them
(:func:`generated_batch`), and returns a :class:`ParityReport` with the largest
absolute and relative errors, how many values are over tolerance, how many
labels differ, and where the worst one is. It never raises on a failed check:
the caller decides what failing means.

Float outputs compare with ``numpy.isclose`` semantics, the native value being
the reference: ``|onnx - native| <= atol + rtol * |native|``. Anything else
(integer or string labels, booleans) must be equal.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from shipyard.errors import InvalidArgumentError

__all__ = ["ParityElement", "ParityReport", "check_parity", "generated_batch", "native_predictor"]

Array = np.ndarray[Any, Any]
Predict = Callable[[Any], "Array | Mapping[str, Array]"]
_TINY = np.finfo(np.float64).tiny  # the relative error's floor under |native|


@dataclass(frozen=True, slots=True)
class ParityElement:
    """One compared value: the input set (``example[0]``, ``generated``), the row,
    the output role and the index within the row, both values and the errors.
    ``note`` explains a comparison that could not be made element by element."""

    input_set: str
    row: int
    output: str
    index: tuple[int, ...]
    native: Any
    onnx: Any
    abs_error: float | None
    rel_error: float | None
    note: str = ""

    def describe(self) -> str:
        where = f"{self.input_set} row {self.row} {self.output}"
        where += f"[{', '.join(map(str, self.index))}]" if self.index else ""
        if self.note:
            return f"{where}: {self.note}"
        errors = ""
        if self.abs_error is not None:
            errors = f" (abs {self.abs_error:.3g}, rel {_fmt(self.rel_error)})"
        return f"{where}: native {self.native!r}, onnx {self.onnx!r}{errors}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "input_set": self.input_set,
            "row": self.row,
            "output": self.output,
            "index": list(self.index),
            "native": _json(self.native),
            "onnx": _json(self.onnx),
            "abs_error": _json(self.abs_error),
            "rel_error": _json(self.rel_error),
            "note": self.note,
        }


@dataclass(frozen=True, slots=True)
class ParityReport:
    """The outcome of :func:`check_parity`.

    ``rows`` counts the input rows run on each side (golden and generated);
    ``max_abs``/``max_rel`` cover float outputs (``None`` when none was compared;
    infinite where a NaN met a number, ``null`` in :meth:`to_dict`);
    ``over_tolerance`` counts float values outside tolerance and
    ``label_mismatches`` exact-compared values that differ, out of
    ``label_count``. ``passed`` is true exactly when both counts are zero.
    ``worst`` is an output shape mismatch if any, else the first label mismatch,
    else the float value furthest outside (or, when passing, nearest to) its
    tolerance. ``outputs`` lists the roles compared, ``input_sets`` each set's
    name and rows.
    """

    rows: int
    max_abs: float | None
    max_rel: float | None
    over_tolerance: int
    label_mismatches: int
    label_count: int
    rtol: float
    atol: float
    worst: ParityElement | None
    outputs: tuple[str, ...]
    input_sets: tuple[tuple[str, int], ...]

    @property
    def passed(self) -> bool:
        return self.over_tolerance == 0 and self.label_mismatches == 0

    @property
    def label_mismatch_rate(self) -> float:
        return self.label_mismatches / self.label_count if self.label_count else 0.0

    def summary(self) -> str:
        """One line: verdict, sizes, errors and, on failure, the worst element."""
        text = (
            f"parity {'passed' if self.passed else 'FAILED'} on {self.rows} rows "
            f"({', '.join(self.outputs)}): max abs {_fmt(self.max_abs)}, "
            f"max rel {_fmt(self.max_rel)}, {self.over_tolerance} over tolerance "
            f"(rtol={self.rtol:g}, atol={self.atol:g}), {self.label_mismatches} label "
            f"mismatches"
        )
        if not self.passed and self.worst is not None:
            text += f"; worst: {self.worst.describe()}"
        return text

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe: non-finite numbers become ``None``."""
        return {
            "passed": self.passed,
            "rows": self.rows,
            "max_abs": _json(self.max_abs),
            "max_rel": _json(self.max_rel),
            "over_tolerance": self.over_tolerance,
            "label_mismatches": self.label_mismatches,
            "label_mismatch_rate": self.label_mismatch_rate,
            "label_count": self.label_count,
            "rtol": self.rtol,
            "atol": self.atol,
            "worst": None if self.worst is None else self.worst.to_dict(),
            "outputs": list(self.outputs),
            "input_sets": [{"name": n, "rows": r} for n, r in self.input_sets],
        }


def check_parity(
    native_predict: Predict,
    onnx_predict: Predict,
    examples: Sequence[Any],
    *,
    rtol: float = 1e-4,
    atol: float = 1e-5,
    generated_rows: int = 256,
    seed: int = 0,
) -> ParityReport:
    """Compare ``native_predict`` with ``onnx_predict`` on ``examples`` and on a
    generated batch.

    Args:
        native_predict: raw input -> an array, or a dict of arrays by role
            (``predict``, ``predict_proba``); the reference.
        onnx_predict: the same for the ONNX model (e.g. ``OnnxRunner.run``).
        examples: golden inputs, each a batch (DataFrame, dict of columns, array).
        rtol, atol: the float tolerance, as in ``numpy.isclose``.
        generated_rows: rows of :func:`generated_batch` over all examples; 0 for none.
        seed: the generated batch's seed.

    Returns:
        The :class:`ParityReport`; exceptions from either predict propagate.

    Raises:
        InvalidArgumentError: no examples, a negative tolerance, or the two sides
            share no output role.
    """
    if not examples:
        raise InvalidArgumentError("examples: expected at least one input batch, got none")
    if rtol < 0 or atol < 0 or generated_rows < 0:
        raise InvalidArgumentError(
            f"rtol, atol, generated_rows: expected values >= 0, got {rtol}, {atol}, "
            f"{generated_rows}"
        )
    sets = [(f"example[{i}]", x) for i, x in enumerate(examples)]
    if generated_rows:
        sets.append(("generated", generated_batch(_concat(examples), generated_rows, seed)))
    acc = _Accumulator(rtol, atol)
    for name, inputs in sets:
        native, onnx = _by_role(native_predict(inputs)), _by_role(onnx_predict(inputs))
        roles = [r for r in native if r in onnx]
        if not roles:
            raise InvalidArgumentError(
                f"outputs: the native side gives {sorted(native)} and the ONNX side "
                f"{sorted(onnx)}; expected at least one role in common"
            )
        acc.input_sets.append((name, len(native[roles[0]])))
        for role in roles:
            acc.outputs.setdefault(role, None)
            acc.compare(name, role, native[role], onnx[role])
    return acc.report()


class _Accumulator:
    def __init__(self, rtol: float, atol: float) -> None:
        self.rtol, self.atol = rtol, atol
        self.max_abs: float | None = None
        self.max_rel: float | None = None
        self.over = self.mismatches = self.label_count = 0
        self.worst: ParityElement | None = None
        self.worst_score = -math.inf  # error / tolerance of ``worst``; inf for a label
        self.input_sets: list[tuple[str, int]] = []
        self.outputs: dict[str, None] = {}

    def compare(self, name: str, role: str, native_raw: Any, onnx_raw: Any) -> None:
        native, onnx = np.asarray(native_raw), np.asarray(onnx_raw)
        floats = native.dtype.kind in "fc" and onnx.dtype.kind in "fc"
        if native.shape != onnx.shape:
            if native.size != onnx.size:
                self._shape_mismatch(name, role, native, onnx, floats)
                return
            onnx = onnx.reshape(native.shape)  # [N, 1] against [N]: the same values
        if native.size == 0:
            return
        if floats:
            self._floats(name, role, native, onnx)
        else:
            self._labels(name, role, native, onnx)

    def _floats(self, name: str, role: str, native: Array, onnx: Array) -> None:
        a, b = onnx.astype(np.float64), native.astype(np.float64)
        close = np.isclose(a, b, rtol=self.rtol, atol=self.atol, equal_nan=True)
        with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
            diff = np.abs(a - b)
            diff[(a == b) | (np.isnan(a) & np.isnan(b))] = 0.0  # equal infinities, NaN pairs
            diff[np.isnan(diff)] = np.inf  # NaN against a number
            rel = diff / np.maximum(np.abs(b), _TINY)
            rel[diff == 0] = 0.0
            ratio = np.nan_to_num(diff / (self.atol + self.rtol * np.abs(b)), nan=0.0)
        # in [0, 1] when close, above 1 when not: the worst value is a failing one if any
        score = np.where(close, np.minimum(ratio, 1.0), 1.0 + ratio)
        self.over += int(np.count_nonzero(~close))
        self.max_abs = max(self.max_abs or 0.0, float(diff.max()))
        self.max_rel = max(self.max_rel or 0.0, float(rel.max()))
        flat = int(np.argmax(score))
        if float(score.flat[flat]) > self.worst_score or self.worst is None:
            self.worst_score = float(score.flat[flat])
            index = np.unravel_index(flat, native.shape)
            self.worst = ParityElement(
                name,
                int(index[0]) if index else 0,
                role,
                tuple(int(i) for i in index[1:]),
                _scalar(native.flat[flat]),
                _scalar(onnx.flat[flat]),
                float(diff.flat[flat]),
                float(rel.flat[flat]),
            )

    def _labels(self, name: str, role: str, native: Array, onnx: Array) -> None:
        if native.dtype.kind in "biuf" and onnx.dtype.kind in "biuf":
            equal = native == onnx
        else:  # strings or objects: compare as Python values
            equal = native.astype(object) == onnx.astype(object)
        equal = np.asarray(equal, dtype=bool).reshape(native.shape)
        self.label_count += native.size
        wrong = np.flatnonzero(~equal)
        self.mismatches += len(wrong)
        if len(wrong) and self.worst_score < math.inf:
            self.worst_score = math.inf
            index = np.unravel_index(int(wrong[0]), native.shape)
            self.worst = ParityElement(
                name,
                int(index[0]) if index else 0,
                role,
                tuple(int(i) for i in index[1:]),
                _scalar(native.flat[wrong[0]]),
                _scalar(onnx.flat[wrong[0]]),
                None,
                None,
            )

    def _shape_mismatch(
        self, name: str, role: str, native: Array, onnx: Array, floats: bool
    ) -> None:
        # every value counts as wrong: nothing can be compared element by element
        if floats:
            self.over += native.size
        else:
            self.mismatches += native.size
            self.label_count += native.size
        if self.worst is None or not self.worst.note:  # the first mismatch stays
            self.worst_score = math.inf
            note = f"output shapes differ: native {native.shape}, onnx {onnx.shape}"
            self.worst = ParityElement(name, 0, role, (), None, None, None, None, note)

    def report(self) -> ParityReport:
        return ParityReport(
            rows=sum(n for _, n in self.input_sets),
            max_abs=self.max_abs,
            max_rel=self.max_rel,
            over_tolerance=self.over,
            label_mismatches=self.mismatches,
            label_count=self.label_count,
            rtol=self.rtol,
            atol=self.atol,
            worst=self.worst,
            outputs=tuple(self.outputs),
            input_sets=tuple(self.input_sets),
        )


def _by_role(output: Any) -> dict[str, Any]:
    if isinstance(output, Mapping):
        return dict(output)
    return {"predict": output}


# --- the generated batch ----------------------------------------------------------


def generated_batch(example: Any, rows: int = 256, seed: int = 0) -> Any:
    """A synthetic batch shaped like ``example``, deterministic for ``seed``.

    Numeric columns (and each feature of a 2-D array) are drawn uniformly from the
    example's ``[min, max]`` widened by 10% of the range on each side, integers
    rounded and kept in their dtype's range; booleans, text and categorical
    columns are drawn from the values the example holds. The result has the
    example's type: a DataFrame (same columns and dtypes), a dict or an array.
    Missing values are not generated.

    Raises:
        InvalidArgumentError: an empty example, or a column with no usable values.
    """
    if rows < 1:
        raise InvalidArgumentError(f"rows: expected a positive integer, got {rows!r}")
    rng = np.random.default_rng(seed)
    pandas = sys.modules.get("pandas")
    if pandas is not None and isinstance(example, pandas.DataFrame):
        data = {c: _generate(example[c], rows, rng, f"column {c!r}") for c in example.columns}
        return pandas.DataFrame(data, columns=example.columns)
    if isinstance(example, Mapping):
        return {k: _generate(v, rows, rng, f"column {k!r}") for k, v in example.items()}
    array = np.asarray(example)
    if array.ndim < 2:
        raise InvalidArgumentError(
            f"example: expected a DataFrame, a dict of columns or an array of rank >= 2, "
            f"got an array of shape {array.shape}"
        )
    return _generate(array, rows, rng, "example")


def _generate(values: Any, rows: int, rng: np.random.Generator, what: str) -> Any:
    """``rows`` new values like ``values`` (a column, Series, or array of features)."""
    dtype = getattr(values, "dtype", None)
    if dtype is None or isinstance(dtype, np.dtype):
        array = values.to_numpy() if hasattr(values, "to_numpy") else np.asarray(values)
        return _generate_array(array, rows, rng, what)
    # a pandas extension dtype: categories, nullable numbers and booleans, strings
    import pandas

    if isinstance(dtype, pandas.CategoricalDtype):
        codes = np.unique(values.cat.codes.to_numpy())
        codes = codes[codes >= 0]
        if not len(codes):
            raise InvalidArgumentError(f"{what}: expected at least one category value, got none")
        return pandas.Categorical.from_codes(rng.choice(codes, size=rows), dtype=dtype)
    if dtype.kind in "iuf":
        array = values.to_numpy(dtype=np.float64, na_value=np.nan)
        out = _generate_array(array, rows, rng, what, integer=dtype.kind in "iu")
    elif dtype.kind in "bO":
        out = _generate_array(values.to_numpy(dtype=object, na_value=None), rows, rng, what)
    else:
        raise InvalidArgumentError(
            f"{what}: expected numbers, booleans, text or categories, got dtype {dtype}"
        )
    return pandas.array(out, dtype=dtype)


def _generate_array(
    array: Array, rows: int, rng: np.random.Generator, what: str, *, integer: bool = False
) -> Array:
    if array.ndim == 0 or len(array) == 0:
        raise InvalidArgumentError(f"{what}: expected at least one row, got shape {array.shape}")
    flat = array.reshape(len(array), -1)
    numeric = flat.dtype.kind in "iufM"
    columns = [
        _numeric(flat[:, j], rows, rng, what, integer)
        if numeric
        else _draw(flat[:, j], rows, rng, what)
        for j in range(flat.shape[1])
    ]
    return np.stack(columns, axis=1).reshape((rows, *array.shape[1:]))


def _numeric(column: Array, rows: int, rng: np.random.Generator, what: str, integer: bool) -> Array:
    dtype = column.dtype
    if dtype.kind == "M":
        present = column[~np.isnat(column)].view(np.int64).astype(np.float64)
    else:
        present = column[~np.isnan(column)] if dtype.kind == "f" else column.astype(np.float64)
    if not len(present):
        raise InvalidArgumentError(f"{what}: expected at least one value, got only missing")
    low, high = float(present.min()), float(present.max())
    margin = 0.1 * (high - low) if high > low else 0.1 * max(abs(low), 1.0)
    drawn = rng.uniform(low - margin, high + margin, size=rows)
    if dtype.kind == "f":
        return np.round(drawn).astype(dtype) if integer else drawn.astype(dtype)
    info = np.iinfo(np.int64 if dtype.kind == "M" else dtype)
    # clip in float64: beyond 2**62 the bounds themselves do not round-trip
    ints = np.clip(np.round(drawn), max(info.min, -(2.0**62)), min(info.max, 2.0**62))
    return ints.astype(np.int64).view(dtype) if dtype.kind == "M" else ints.astype(dtype)


def _draw(column: Array, rows: int, rng: np.random.Generator, what: str) -> Array:
    present = [v for v in column.tolist() if v is not None and v == v]
    if not present:
        raise InvalidArgumentError(f"{what}: expected at least one value, got only missing")
    choices = np.array(list(dict.fromkeys(present)), dtype=column.dtype)
    return choices[rng.integers(0, len(choices), size=rows)]


def _concat(examples: Sequence[Any]) -> Any:
    """All ``examples`` as one batch, so generated ranges span them; the first
    example alone when they do not stack."""
    first = examples[0]
    if len(examples) == 1:
        return first
    try:
        pandas = sys.modules.get("pandas")
        if pandas is not None and isinstance(first, pandas.DataFrame):
            return pandas.concat(list(examples), ignore_index=True)
        if isinstance(first, Mapping):
            return {k: np.concatenate([np.asarray(e[k]) for e in examples]) for k in first}
        return np.concatenate([np.asarray(e) for e in examples])
    except (ValueError, KeyError, TypeError):
        return first


# --- native predictions -----------------------------------------------------------


def native_predictor(model: Any, *, flavor: str) -> Callable[[Any], dict[str, Array]]:
    """The native side of :func:`check_parity` for a model :func:`to_onnx` takes:
    raw input -> ``{"predict": ..., "predict_proba": ...}`` (the latter when the
    model has it). Torch modules run in eval mode, without gradients, on a float
    tensor in the dtype of their parameters; dict inputs become a DataFrame for
    scikit-learn and XGBoost, a matrix for torch.

    Raises:
        InvalidArgumentError: unknown ``flavor``.
    """
    if flavor == "torch":
        return _torch_predictor(model)
    if flavor not in ("sklearn", "xgboost"):
        raise InvalidArgumentError(
            f"flavor: expected one of ['sklearn', 'torch', 'xgboost'], got {flavor!r}"
        )

    def predict(inputs: Any) -> dict[str, Array]:
        if isinstance(inputs, Mapping):
            import pandas

            inputs = pandas.DataFrame({k: np.asarray(v).ravel() for k, v in inputs.items()})
        if type(model).__name__ == "Booster":
            import xgboost

            return {"predict": np.asarray(model.predict(xgboost.DMatrix(inputs)))}
        if not hasattr(model, "predict") and hasattr(model, "transform"):
            return {"transform": np.asarray(model.transform(inputs))}
        out = {"predict": np.asarray(model.predict(inputs))}
        if hasattr(model, "predict_proba"):
            out["predict_proba"] = np.asarray(model.predict_proba(inputs))
        return out

    return predict


def _torch_predictor(model: Any) -> Callable[[Any], dict[str, Array]]:
    import torch

    dtype = next((p.dtype for p in model.parameters() if p.is_floating_point()), torch.float32)

    def predict(inputs: Any) -> dict[str, Array]:
        pandas = sys.modules.get("pandas")
        if isinstance(inputs, Mapping) or (
            pandas is not None and isinstance(inputs, pandas.DataFrame)
        ):
            items = inputs.items()
            array = np.column_stack([np.asarray(v).reshape(len(v), -1) for _, v in items])
        else:
            array = np.asarray(inputs)
        training = model.training
        model.eval()
        try:
            with torch.no_grad():
                out = model(torch.from_numpy(np.ascontiguousarray(array)).to(dtype))
        finally:
            model.train(training)
        first = out[0] if isinstance(out, tuple | list) else out
        return {"predict": first.detach().cpu().numpy()}

    return predict


# --- formatting -------------------------------------------------------------------


def _scalar(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def _json(value: Any) -> Any:
    value = _scalar(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, int | float | str | bool) or value is None:
        return value
    return str(value)


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3g}"
