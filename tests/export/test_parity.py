"""Parity reports between a native model and its ONNX export, and the generated batch."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest

from shipyard.errors import InvalidArgumentError
from shipyard.export._parity import ParityReport, check_parity, generated_batch


def frame() -> Any:
    """A small frame: float, int, bool, text, categorical and datetime columns."""
    import pandas as pd

    return pd.DataFrame(
        {
            "price": [10.0, 12.5, 20.0, 15.0],
            "qty": np.array([1, 5, 3, 2], dtype=np.int32),
            "promo": [True, False, True, True],
            "city": ["paris", "lyon", "paris", "nice"],
            "tier": pd.Categorical(["a", "b", "a", "a"], categories=["a", "b", "c"]),
            "day": pd.to_datetime(["2026-01-01", "2026-01-03", "2026-01-02", "2026-01-05"]),
        }
    )


def test_generated_frame_keeps_columns_dtypes_and_widened_ranges() -> None:
    """Numbers fall in [min, max] widened by 10%; ints stay ints; categories are the example's."""
    example = frame()
    batch = generated_batch(example, rows=500, seed=1)
    assert list(batch.columns) == list(example.columns)
    assert dict(batch.dtypes) == dict(example.dtypes)
    assert len(batch) == 500
    assert batch["price"].between(10.0 - 1.0, 20.0 + 1.0).all()
    assert batch["price"].max() > 20.0 or batch["price"].min() < 10.0  # the margin is used
    assert batch["qty"].between(1, 5).all()  # 1 - 0.4 and 5 + 0.4 round inside
    assert set(batch["city"]) == {"paris", "lyon", "nice"}
    assert set(batch["tier"]) <= {"a", "b"}  # seen values only, not the unused category
    assert set(batch["promo"]) == {True, False}
    day = batch["day"]
    assert (day >= example["day"].min() - np.timedelta64(1, "D")).all()


def test_generated_batch_is_deterministic_for_a_seed() -> None:
    """The same seed gives the same batch; another seed another one."""
    import pandas as pd

    example = frame()
    pd.testing.assert_frame_equal(generated_batch(example, 50, 7), generated_batch(example, 50, 7))
    assert not generated_batch(example, 50, 7).equals(generated_batch(example, 50, 8))


def test_generated_array_and_dict_are_per_feature() -> None:
    """A 2-D array draws each feature from its own range; a dict keeps its keys and shapes."""
    x = np.array([[0.0, 100.0], [1.0, 200.0]])
    batch = generated_batch(x, rows=300)
    assert batch.shape == (300, 2)
    assert batch.dtype == x.dtype
    assert batch[:, 0].min() >= -0.1
    assert batch[:, 0].max() <= 1.1
    assert batch[:, 1].min() >= 90.0
    assert batch[:, 1].max() <= 210.0
    as_dict = generated_batch({"a": np.array([1, 2, 3]), "b": np.array([["x"], ["y"], ["y"]])}, 20)
    assert as_dict["a"].shape == (20,)
    assert as_dict["a"].dtype == np.int64
    assert as_dict["b"].shape == (20, 1)
    assert set(as_dict["b"].ravel()) <= {"x", "y"}


def test_generated_batch_refuses_empty_examples() -> None:
    """An example with no rows or a 1-D array cannot describe a batch."""
    with pytest.raises(InvalidArgumentError, match="at least one row"):
        generated_batch(np.zeros((0, 3)))
    with pytest.raises(InvalidArgumentError, match="rank >= 2"):
        generated_batch(np.zeros(3))


def linear(x: Any) -> dict[str, Any]:
    """A deterministic 'model': one float output and one label per row."""
    x = np.asarray(x, dtype=np.float64)
    score = x @ np.array([0.5, -2.0, 1.0])
    return {"predict": (score > 0).astype(np.int64), "predict_proba": score}


X = np.random.default_rng(0).normal(size=(20, 3))


def test_identical_sides_pass_with_zero_error() -> None:
    """Equal outputs pass; errors are zero and the golden and generated rows are counted."""
    report = check_parity(linear, linear, [X[:10], X[10:]], generated_rows=30)
    assert report.passed
    assert (report.max_abs, report.max_rel, report.over_tolerance) == (0.0, 0.0, 0)
    assert report.rows == 50
    assert report.input_sets == (("example[0]", 10), ("example[1]", 10), ("generated", 30))
    assert report.summary().startswith("parity passed on 50 rows")


def test_float_drift_over_tolerance_fails_and_names_the_worst_value() -> None:
    """A drift beyond rtol/atol fails; worst names the input set, row, output and both values."""

    def drifted(x: Any) -> dict[str, Any]:
        out = linear(x)
        proba = out["predict_proba"].copy()
        proba[3] += 1e-2
        return {"predict": out["predict"], "predict_proba": proba}

    report = check_parity(linear, drifted, [X], generated_rows=0)
    assert not report.passed
    assert report.over_tolerance == 1
    assert report.label_mismatches == 0
    assert report.max_abs == pytest.approx(1e-2)
    worst = report.worst
    assert worst is not None
    assert (worst.input_set, worst.row, worst.output) == ("example[0]", 3, "predict_proba")
    assert worst.onnx == pytest.approx(worst.native + 1e-2)
    assert "FAILED" in report.summary()
    assert "example[0] row 3 predict_proba" in report.summary()


def test_tolerance_follows_isclose() -> None:
    """|a - b| <= atol + rtol * |b| passes, just beyond fails."""
    native = np.array([100.0, 0.0])
    inside = native + np.array([100.0 * 1e-4 + 1e-5 - 1e-9, 1e-5 - 1e-9])
    outside = native + np.array([0.0, 2e-5])
    assert check_parity(lambda x: native, lambda x: inside, [X], generated_rows=0).passed
    report = check_parity(lambda x: native, lambda x: outside, [X], generated_rows=0)
    assert report.over_tolerance == 1
    assert report.max_rel is not None
    assert report.max_rel > 1e100


def test_labels_compare_exactly_with_a_mismatch_rate() -> None:
    """Integer and string labels must be equal; mismatches are counted with a rate."""
    native = np.array(["a", "b", "c", "d"])
    onnx = np.array(["a", "x", "c", "y"], dtype=object)
    report = check_parity(lambda x: native, lambda x: onnx, [X], generated_rows=0)
    assert not report.passed
    assert (report.label_mismatches, report.label_count) == (2, 4)
    assert report.label_mismatch_rate == 0.5
    assert report.max_abs is None
    assert report.over_tolerance == 0
    assert report.worst is not None
    assert (report.worst.row, report.worst.native) == (1, "b")


def test_column_vector_matches_flat_output() -> None:
    """An [N, 1] ONNX output is compared value by value with a native [N]."""
    native = np.arange(5.0)
    report = check_parity(lambda x: native, lambda x: native[:, None], [X], generated_rows=0)
    assert report.passed


def test_shape_mismatch_fails_every_value() -> None:
    """Outputs of different sizes cannot be compared: all values count as wrong."""
    report = check_parity(lambda x: np.zeros((4, 2)), lambda x: np.zeros(4), [X], generated_rows=0)
    assert not report.passed
    assert report.over_tolerance == 8
    assert report.worst is not None
    assert "shapes differ" in report.worst.describe()


def test_only_common_roles_are_compared() -> None:
    """A role on one side only is skipped; no role in common is an error."""

    def predict_only(x: Any) -> dict[str, Any]:
        return {"predict": linear(x)["predict"]}

    report = check_parity(linear, predict_only, [X], generated_rows=0)
    assert report.outputs == ("predict",)
    with pytest.raises(InvalidArgumentError, match="at least one role in common"):
        check_parity(linear, lambda x: {"transform": x}, [X], generated_rows=0)


def test_to_dict_is_json_safe_with_nan_outputs() -> None:
    """NaN and infinite errors become null; the report round-trips through strict JSON."""
    native = np.array([1.0, np.nan, 3.0])
    onnx = np.array([1.0, 2.0, np.nan])
    report = check_parity(lambda x: native, lambda x: onnx, [X], generated_rows=0)
    assert report.over_tolerance == 2
    assert not report.passed
    data = json.loads(json.dumps(report.to_dict(), allow_nan=False))
    assert data["max_abs"] is None
    assert data["passed"] is False
    assert data["worst"]["native"] is None or isinstance(data["worst"]["native"], float)


def test_passed_is_derived_from_the_counts() -> None:
    """passed holds exactly when nothing is over tolerance and no label differs."""
    report = ParityReport(
        rows=1,
        max_abs=0.0,
        max_rel=0.0,
        over_tolerance=0,
        label_mismatches=1,
        label_count=1,
        rtol=1e-4,
        atol=1e-5,
        worst=None,
        outputs=("predict",),
        input_sets=(("example[0]", 1),),
    )
    assert not report.passed
    assert report.to_dict()["passed"] is False


def test_invalid_arguments() -> None:
    """No examples or negative tolerances are refused."""
    with pytest.raises(InvalidArgumentError, match="at least one input batch"):
        check_parity(linear, linear, [])
    with pytest.raises(InvalidArgumentError, match=">= 0"):
        check_parity(linear, linear, [X], rtol=-1.0)


def test_perturbed_onnx_model_is_caught() -> None:
    """Scaling one weight of the exported graph by 1% is reported as a failure."""
    import onnx
    from sklearn.linear_model import LogisticRegression

    from shipyard.export._convert import OnnxModel, to_onnx
    from shipyard.export._parity import native_predictor

    rng = np.random.default_rng(4)
    x = rng.normal(size=(200, 3))
    model = LogisticRegression().fit(x, (x[:, 0] - x[:, 1] > 0).astype(int))
    proto = onnx.load_from_string(to_onnx(model, x[:5], flavor="sklearn").data)
    node = next(n for n in proto.graph.node if n.op_type == "LinearClassifier")
    weights = next(a for a in node.attribute if a.name == "coefficients")
    weights.floats[:] = [w * 1.01 for w in weights.floats]
    perturbed = OnnxModel.from_bytes(proto.SerializeToString())
    report = check_parity(native_predictor(model, flavor="sklearn"), perturbed.runner().run, [x])
    assert not report.passed
    assert report.over_tolerance > 0
    assert report.worst is not None
    assert report.worst.output == "predict_proba"
    assert report.worst.input_set in ("example[0]", "generated")
    assert report.worst.abs_error is not None
    assert report.worst.abs_error > 1e-4


def test_a_different_model_fails_parity() -> None:
    """The ONNX export of another model does not pass for this one."""
    from sklearn.linear_model import Ridge

    from shipyard.export._convert import to_onnx
    from shipyard.export._parity import native_predictor

    rng = np.random.default_rng(5)
    x = rng.normal(size=(100, 2))
    model = Ridge(alpha=1.0).fit(x, x[:, 0])
    other = Ridge(alpha=50.0).fit(x, x[:, 0])
    onnx_model = to_onnx(other, x[:5], flavor="sklearn")
    report = check_parity(native_predictor(model, flavor="sklearn"), onnx_model.runner().run, [x])
    assert not report.passed
    assert report.worst is not None
    assert report.worst.describe().startswith(f"{report.worst.input_set} row {report.worst.row}")
