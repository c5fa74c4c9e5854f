"""Signatures: inferred from raw examples, enforced on every predict with errors
that name the problem."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from shipyard.errors import InvalidArgumentError
from shipyard.models import ColSpec, Schema, Signature, TensorSpec, infer_signature
from shipyard.models._signature import enforce, enforce_arrays, infer_schema


def test_dataframe_example_gives_named_typed_columns(frame: Any) -> None:
    """A DataFrame becomes columns with the vocabulary's dtypes (strings as 'string')."""
    schema = infer_schema(frame)
    assert schema.kind == "dataframe"
    assert schema.specs == (
        ColSpec("distance", "float64"),
        ColSpec("passengers", "int64"),
        ColSpec("zone", "string"),
    )


def test_dict_and_array_examples_give_tensors_with_a_free_batch() -> None:
    """A dict gives named tensors, an array one tensor; the first dimension is -1."""
    named = infer_schema({"x": np.zeros((5, 3), np.float32), "ids": np.arange(5)})
    assert named.kind == "dict"
    assert named.specs == (TensorSpec("x", "float32", (-1, 3)), TensorSpec("ids", "int64", (-1,)))
    single = infer_schema(np.zeros((5, 2, 2)))
    assert single == Schema("ndarray", (TensorSpec(None, "float64", (-1, 2, 2)),))


def test_extension_and_object_dtypes_map_to_the_vocabulary() -> None:
    """Nullable ints, categories and object strings map; mixed objects are refused."""
    frame = pd.DataFrame(
        {
            "n": pd.array([1, None, 3], dtype="Int64"),
            "c": pd.Categorical(["a", "b", "a"]),
            "s": np.array(["x", None, "z"], dtype=object),
        }
    )
    assert [s.dtype for s in infer_schema(frame).specs] == ["int64", "string", "string"]
    with pytest.raises(InvalidArgumentError, match=r"column 'bad'.*cannot describe"):
        infer_schema(pd.DataFrame({"bad": [object(), 1, "a"]}))


def test_signature_round_trips_through_json() -> None:
    """to_dict/from_dict are inverse, and a bad dtype is refused naming it."""
    sig = infer_signature(
        pd.DataFrame({"a": [1.0], "b": ["x"]}), np.array([[0.1, 0.9]], np.float32)
    )
    assert Signature.from_dict(sig.to_dict()) == sig
    with pytest.raises(InvalidArgumentError, match=r"invalid dtype 'float128' for 'a'"):
        Signature.from_dict(
            {"inputs": {"kind": "dataframe", "specs": [{"name": "a", "dtype": "float128"}]}}
        )


class TestEnforceColumns:
    """Columnar input: any table-like form in, a DataFrame in schema order out."""

    schema = Schema(
        "dataframe",
        (ColSpec("distance", "float64"), ColSpec("passengers", "int64"), ColSpec("zone", "string")),
    )

    def test_accepts_frames_dicts_rows_and_arrays(self) -> None:
        """A DataFrame, a dict of columns or of scalars, row dicts and a 2-D list all work."""
        row = {"distance": 1.5, "passengers": 2, "zone": "north"}
        forms = [
            pd.DataFrame([row]),
            {k: [v] for k, v in row.items()},
            row,
            [row],
            [[1.5, 2, "north"]],
        ]
        for form in forms:
            out = enforce(self.schema, form)
            assert list(out.columns) == ["distance", "passengers", "zone"]
            assert out.iloc[0].tolist() == [1.5, 2, "north"]

    def test_safe_casts_pass_and_extra_columns_are_dropped(self) -> None:
        """int -> float and int32 -> int64 pass; columns the model never saw are dropped."""
        frame = pd.DataFrame(
            {
                "distance": np.array([1, 2], np.int32),
                "passengers": np.array([1, 2], np.int32),
                "zone": ["a", "b"],
                "request_id": ["r1", "r2"],
            }
        )
        out = enforce(self.schema, frame)
        assert list(out.columns) == ["distance", "passengers", "zone"]
        assert out["distance"].dtype == np.float64
        assert out["passengers"].dtype == np.int64

    def test_missing_column_is_named_with_what_was_expected(self) -> None:
        """The error names the missing column, the expected columns and what came."""
        with pytest.raises(InvalidArgumentError) as err:
            enforce(self.schema, {"distance": [1.0], "zone": ["a"]})
        text = str(err.value)
        assert "missing column(s) ['passengers']" in text
        assert "passengers: int64" in text
        assert "got columns ['distance', 'zone']" in text

    @pytest.mark.parametrize(
        ("column", "value", "message"),
        [
            ("passengers", 1.5, r"input column 'passengers': expected dtype int64, got float64"),
            ("distance", "far", r"input column 'distance': expected dtype float64, got object"),
            ("zone", 3, r"input column 'zone': expected dtype string, got int64"),
        ],
    )
    def test_unsafe_casts_are_refused(self, column: str, value: Any, message: str) -> None:
        """float -> int, text -> number and number -> text are refused, naming the column."""
        row = {"distance": 1.5, "passengers": 2, "zone": "north", column: value}
        with pytest.raises(InvalidArgumentError, match=message):
            enforce(self.schema, pd.DataFrame([row]))


class TestEnforceTensors:
    """Tensor input: rank, fixed dimensions and dtype are checked."""

    def test_wrong_shape_is_refused_with_the_expected_shape(self) -> None:
        """A (5, 3) array against (any, 4) names both shapes."""
        schema = Schema("ndarray", (TensorSpec(None, "float32", (-1, 4)),))
        with pytest.raises(InvalidArgumentError, match=r"expected shape \(any, 4\), got \(5, 3\)"):
            enforce(schema, np.zeros((5, 3)))

    def test_lists_and_single_examples_are_accepted(self) -> None:
        """Nested lists become arrays; one example without its batch axis gets one."""
        schema = Schema("ndarray", (TensorSpec(None, "float32", (-1, 2)),))
        assert enforce(schema, [[1, 2], [3, 4]]).dtype == np.float32
        assert enforce(schema, [1.0, 2.0]).shape == (1, 2)

    def test_named_tensors_from_dicts_and_frames(self) -> None:
        """A DataFrame feeds named (N, 1) inputs column by column; a missing key is named."""
        schema = Schema(
            "dict", (TensorSpec("a", "float32", (-1, 1)), TensorSpec("b", "int64", (-1, 1)))
        )
        out = enforce(schema, pd.DataFrame({"a": [1.0, 2.0], "b": [1, 2]}))
        assert out["a"].shape == (2, 1)
        assert out["b"].dtype == np.int64
        with pytest.raises(InvalidArgumentError, match=r"missing \['b'\]"):
            enforce(schema, {"a": np.zeros((2, 1))})

    def test_narrowing_integers_must_fit(self) -> None:
        """int64 -> int32 passes when the values fit and is refused when they do not."""
        schema = Schema("ndarray", (TensorSpec(None, "int32", (-1,)),))
        assert enforce(schema, np.array([1, 2], np.int64)).dtype == np.int32
        with pytest.raises(InvalidArgumentError, match="outside int32's range"):
            enforce(schema, np.array([2**40]))


class TestEnforceArrays:
    """The serving fast path: the same rules as enforce, on one array per input."""

    COLUMNS = Schema("dataframe", (ColSpec("price", "float64"), ColSpec("zone", "string")))

    def test_columns_pass_and_cast(self) -> None:
        out = enforce_arrays(
            self.COLUMNS,
            {"price": np.array([1, 2]), "zone": np.array(["a", "b"]), "extra": np.ones(2)},
        )
        assert out["price"].dtype == np.float64
        assert out["zone"].dtype == object
        assert set(out) == {"price", "zone"}  # extra inputs are dropped

    @pytest.mark.parametrize(
        ("arrays", "message"),
        [
            ({"price": np.array([1.0])}, r"missing column\(s\) \['zone'\]"),
            ({"price": np.array([1.0]), "zone": np.array([2.5])}, "expected dtype string"),
            ({"price": np.array(["x"]), "zone": np.array(["a"])}, "expected dtype float64"),
            ({"price": np.ones(2), "zone": np.array(["a"])}, "different lengths"),
            ({"price": np.ones((1, 2)), "zone": np.array(["a"])}, "one value per row"),
        ],
    )
    def test_columns_refused_with_what_was_expected(
        self, arrays: dict[str, Any], message: str
    ) -> None:
        with pytest.raises(InvalidArgumentError, match=message):
            enforce_arrays(self.COLUMNS, arrays)

    def test_tensors(self) -> None:
        one = Schema("ndarray", (TensorSpec(None, "float32", (-1, 3)),))
        out = enforce_arrays(one, {"whatever": np.ones((2, 3))})
        assert out["input"].dtype == np.float32
        with pytest.raises(InvalidArgumentError, match=r"expected shape \(any, 3\)"):
            enforce_arrays(one, {"x": np.ones((2, 4))})
        with pytest.raises(InvalidArgumentError, match="expected one tensor"):
            enforce_arrays(one, {"a": np.ones((1, 3)), "b": np.ones((1, 3))})
        named = Schema("dict", (TensorSpec("ids", "int64", (-1,)),))
        with pytest.raises(InvalidArgumentError, match="floats are not converted"):
            enforce_arrays(named, {"ids": np.array([1.5])})
