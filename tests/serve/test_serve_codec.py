"""Request and response bodies, and the micro-batcher, in-process."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import numpy as np
import pytest

from shipyard.serve._batch import Batcher
from shipyard.serve._codec import (
    BadRequestError,
    decode_invocations,
    decode_v2,
    encode_invocations,
    encode_v2,
)


def v2(*inputs: dict[str, Any], **extra: Any) -> bytes:
    return json.dumps({"inputs": list(inputs), **extra}).encode()


class TestV2:
    def test_json_inputs_take_flat_or_nested_data(self) -> None:
        body = v2(
            {"name": "x", "shape": [2, 2], "datatype": "FP32", "data": [1, 2, 3, 4]},
            {"name": "y", "shape": [2, 2], "datatype": "INT64", "data": [[1, 2], [3, 4]]},
            {"name": "s", "shape": [2], "datatype": "BYTES", "data": ["a", "b"]},
            {"name": "b", "shape": [2], "datatype": "BOOL", "data": [True, False]},
        )
        inputs, _ = decode_v2(body)
        assert inputs["x"].dtype == np.float32
        assert inputs["x"].shape == (2, 2)
        np.testing.assert_array_equal(inputs["y"], [[1, 2], [3, 4]])
        assert inputs["s"].dtype == object
        assert list(inputs["s"]) == ["a", "b"]
        assert inputs["b"].dtype == np.bool_

    @pytest.mark.parametrize(
        ("entry", "message"),
        [
            ({"name": "x", "shape": [1], "datatype": "INT64", "data": [1.5]}, "cannot hold floats"),
            (
                {"name": "x", "shape": [1], "datatype": "FP32", "data": ["1.5"]},
                "cannot hold strings",
            ),
            ({"name": "x", "shape": [1], "datatype": "FP32", "data": [None]}, "nulls"),
            ({"name": "x", "shape": [3], "datatype": "FP32", "data": [1.0]}, "needs 3"),
            ({"name": "x", "shape": [1], "datatype": "FP8", "data": [1.0]}, "unknown datatype"),
            ({"name": "x", "shape": [-1], "datatype": "FP32", "data": [1.0]}, "integers from 0"),
            ({"name": "x", "shape": [2**62, 0], "datatype": "FP32", "data": []}, "integers from 0"),
            (
                {"name": "x", "shape": [1], "datatype": "FP32", "data": [1.0], "parameters": "x"},
                "'parameters' must be an object",
            ),
            (
                {
                    "name": "x",
                    "shape": [1],
                    "datatype": "FP32",
                    "parameters": {"binary_data_size": True},
                },
                "binary_data_size True",
            ),
            ({"name": "x", "shape": [1], "datatype": "FP32"}, "no 'data'"),
            ({"shape": [1], "datatype": "FP32", "data": [1]}, "'name' must be a str"),
            ({"name": "x", "shape": [1], "datatype": "UINT8", "data": [300]}, "does not fit"),
        ],
    )
    def test_bad_inputs_say_what_was_expected(self, entry: dict[str, Any], message: str) -> None:
        with pytest.raises(BadRequestError, match=message):
            decode_v2(v2(entry))

    def test_not_an_object_and_duplicates(self) -> None:
        with pytest.raises(BadRequestError, match="JSON object"):
            decode_v2(b"[1, 2]")
        with pytest.raises(BadRequestError, match="'inputs' must be a list"):
            decode_v2(b"{}")
        x = {"name": "x", "shape": [1], "datatype": "FP32", "data": [1.0]}
        with pytest.raises(BadRequestError, match="given twice"):
            decode_v2(v2(x, x))

    def test_a_table_sent_column_by_column_decodes_as_one_matrix(self) -> None:
        from shipyard.models import ColumnMatrix

        cols = [
            {"name": n, "shape": [2], "datatype": "FP64", "data": d}
            for n, d in (("b", [1.0, 2.0]), ("a", [3.0, 4.0]), ("c", [5.0, 6.0]))
        ]
        inputs, _ = decode_v2(v2(*cols))
        assert isinstance(inputs, ColumnMatrix)
        assert list(inputs) == ["b", "a", "c"]
        np.testing.assert_array_equal(inputs["a"], [3.0, 4.0])
        np.testing.assert_array_equal(inputs.matrix, [[1.0, 3.0, 5.0], [2.0, 4.0, 6.0]])
        # anything irregular takes the input-by-input path, with its checks
        mixed = [*cols[:2], {"name": "c", "shape": [2], "datatype": "INT64", "data": [1, 2]}]
        inputs, _ = decode_v2(v2(*mixed))
        assert not isinstance(inputs, ColumnMatrix)
        assert inputs["c"].dtype == np.int64
        with pytest.raises(BadRequestError, match="needs 2"):
            decode_v2(v2(*cols[:2], {"name": "c", "shape": [2], "datatype": "FP64", "data": [1.0]}))
        with pytest.raises(BadRequestError, match="cannot hold strings"):
            decode_v2(
                v2(*cols[:2], {"name": "c", "shape": [2], "datatype": "FP64", "data": ["x", "y"]})
            )
        with pytest.raises(BadRequestError, match="given twice"):
            decode_v2(v2(cols[0], cols[0]))

    def test_binary_tensors_round_trip(self) -> None:
        floats = np.arange(6, dtype=np.float32).reshape(2, 3)
        words = ["héllo", "", "x"]
        raw_words = b"".join(len(w.encode()).to_bytes(4, "little") + w.encode() for w in words)
        header = json.dumps(
            {
                "inputs": [
                    {
                        "name": "f",
                        "shape": [2, 3],
                        "datatype": "FP32",
                        "parameters": {"binary_data_size": floats.nbytes},
                    },
                    {
                        "name": "w",
                        "shape": [3],
                        "datatype": "BYTES",
                        "parameters": {"binary_data_size": len(raw_words)},
                    },
                ],
                "outputs": [{"name": "f", "parameters": {"binary_data": True}}, {"name": "w"}],
            }
        ).encode()
        inputs, request = decode_v2(header + floats.tobytes() + raw_words, len(header))
        np.testing.assert_array_equal(inputs["f"], floats)
        assert list(inputs["w"]) == words
        body, head = encode_v2("m", 3, inputs, request)
        assert head is not None
        doc = json.loads(body[:head])
        assert doc["model_version"] == "3"
        f_doc, w_doc = doc["outputs"]
        assert f_doc["parameters"]["binary_data_size"] == floats.nbytes
        np.testing.assert_array_equal(
            np.frombuffer(body[head:], dtype=np.float32).reshape(2, 3), floats
        )
        assert w_doc["data"] == words

    def test_binary_sizes_are_checked(self) -> None:
        header = json.dumps(
            {
                "inputs": [
                    {
                        "name": "f",
                        "shape": [2],
                        "datatype": "FP32",
                        "parameters": {"binary_data_size": 8},
                    }
                ]
            }
        ).encode()
        with pytest.raises(BadRequestError, match="does not fit"):
            decode_v2(header + b"1234", len(header))
        with pytest.raises(BadRequestError, match="binary bytes no input"):
            decode_v2(header + b"12345678extra", len(header))
        with pytest.raises(BadRequestError, match="only"):
            decode_v2(header, len(header) + 10)

    def test_binary_bools_and_datetimes(self) -> None:
        header = json.dumps(
            {"inputs": [{"name": "b", "shape": [3], "datatype": "BOOL",
                         "parameters": {"binary_data_size": 3}}]}
        ).encode()  # fmt: skip
        inputs, _ = decode_v2(header + bytes([0, 1, 7]), len(header))
        assert inputs["b"].tolist() == [False, True, True]
        when = np.array(["2026-11-27T10:00"], dtype="datetime64[m]")
        body, head = encode_v2("m", 1, {"t": when}, {"parameters": {"binary_data_output": True}})
        assert head is not None
        doc = json.loads(body[:head])
        assert doc["outputs"][0]["datatype"] == "BYTES"
        raw = body[head:]
        size = int.from_bytes(raw[:4], "little")
        assert raw[4 : 4 + size].decode() == "2026-11-27T10:00"

    def test_request_parameters_must_be_objects(self) -> None:
        with pytest.raises(BadRequestError, match="'parameters' must be an object"):
            encode_v2("m", 1, {"output": np.ones(1)}, {"parameters": "x"})
        with pytest.raises(BadRequestError, match="'parameters' must be an object"):
            encode_v2(
                "m", 1, {"output": np.ones(1)}, {"outputs": [{"name": "output", "parameters": [1]}]}
            )

    def test_unknown_output_is_refused(self) -> None:
        with pytest.raises(BadRequestError, match="unknown output 'nope'"):
            encode_v2("m", 1, {"output": np.ones(2)}, {"outputs": [{"name": "nope"}]})


class TestInvocations:
    def test_all_four_formats_give_the_same_columns(self) -> None:
        names = ["a", "b"]
        bodies = [
            {"dataframe_split": {"columns": names, "data": [[1.5, "x"], [2.5, "y"]]}},
            {"dataframe_records": [{"a": 1.5, "b": "x"}, {"a": 2.5, "b": "y"}]},
            {"instances": [{"a": 1.5, "b": "x"}, {"a": 2.5, "b": "y"}]},
            {"inputs": {"a": [1.5, 2.5], "b": ["x", "y"]}},
            {"instances": [[1.5, "x"], [2.5, "y"]]},
        ]
        for body in bodies:
            cols = decode_invocations(json.dumps(body).encode(), "dataframe", names)
            np.testing.assert_array_equal(cols["a"], [1.5, 2.5])
            assert list(cols["b"]) == ["x", "y"], body

    def test_mixed_numeric_columns_keep_their_kinds(self) -> None:
        """Ints beside floats: column by column unless the signature has one dtype."""
        from shipyard.models import ColSpec, ColumnMatrix, Schema, enforce_arrays

        body = b'{"dataframe_split": {"columns": ["n", "fare"], "data": [[1, 2.5], [3, 4.0]]}}'
        cols = decode_invocations(body, "dataframe", ["n", "fare"])
        assert not isinstance(cols, ColumnMatrix)
        assert cols["n"].dtype.kind == "i"
        schema = Schema("dataframe", (ColSpec("n", "int64"), ColSpec("fare", "float64")))
        checked = enforce_arrays(schema, cols)
        assert checked["n"].tolist() == [1, 3]
        matrix = decode_invocations(body, "dataframe", ["n", "fare"], matrix=True)
        assert isinstance(matrix, ColumnMatrix)
        empty = decode_invocations(
            b'{"dataframe_split": {"columns": ["n", "fare"], "data": []}}', "dataframe", ["n"]
        )
        assert len(enforce_arrays(schema, empty)["n"]) == 0  # empty: any dtype will do

    def test_numeric_split_and_tensors(self) -> None:
        cols = decode_invocations(
            b'{"dataframe_split": {"columns": ["a", "b"], "data": [[1, 2], [3, 4]]}}',
            "dataframe",
            ["a", "b"],
        )
        np.testing.assert_array_equal(cols["b"], [2, 4])
        tensor = decode_invocations(b'{"inputs": [[1, 2], [3, 4]]}', "ndarray", ["x"])
        assert tensor["input"].shape == (2, 2)
        named = decode_invocations(b'{"inputs": {"x": [[1, 2]]}}', "dict", ["x"])
        assert named["x"].shape == (1, 2)

    @pytest.mark.parametrize(
        ("body", "message"),
        [
            (b"{", "not valid JSON"),
            (b'{"data": []}', "exactly one of"),
            (b'{"inputs": [1], "instances": [1]}', "exactly one of"),
            (b'{"dataframe_split": [1]}', "dataframe_split must be"),
            (b'{"dataframe_split": {"columns": ["a"], "data": [[1, 2], [3]]}}', "row 0"),
            (b'{"dataframe_records": [1]}', "must be an object"),
        ],
    )
    def test_bad_bodies(self, body: bytes, message: str) -> None:
        with pytest.raises(BadRequestError, match=message):
            decode_invocations(body, "dataframe", ["a"])

    def test_predictions(self) -> None:
        assert json.loads(encode_invocations({"output": np.array([1.5, 2.0])})) == {
            "predictions": [1.5, 2.0]
        }
        both = json.loads(encode_invocations({"a": np.array([1, 2]), "b": np.array(["x", "y"])}))
        assert both == {"predictions": [{"a": 1, "b": "x"}, {"a": 2, "b": "y"}]}
        proba = json.loads(encode_invocations({"output": np.array([[0.2, 0.8]])}))
        assert proba == {"predictions": [[0.2, 0.8]]}


class TestBatcher:
    def test_concurrent_requests_share_calls_and_get_their_own_rows(self) -> None:
        calls: list[int] = []

        def run(arrays: dict[str, Any]) -> dict[str, Any]:
            calls.append(len(arrays["x"]))
            return {"y": arrays["x"] * 2, "scalar": np.array(7)}

        async def main() -> list[dict[str, Any]]:
            batcher = Batcher(run, max_batch_size=8, max_wait_s=0.05)
            try:
                jobs = [batcher.submit({"x": np.array([i, i + 0.5])}, 2) for i in range(10)]
                return list(await asyncio.gather(*jobs))
            finally:
                batcher.close()

        results = asyncio.run(main())
        for i, out in enumerate(results):
            np.testing.assert_array_equal(out["y"], [2 * i, 2 * i + 1])
            assert int(out["scalar"]) == 7
        assert sum(calls) == 20
        assert max(calls) <= 8
        assert len(calls) < 10

    def test_a_model_error_reaches_every_request_of_its_batch(self) -> None:
        def run(arrays: dict[str, Any]) -> dict[str, Any]:
            raise RuntimeError("model broke")

        async def main() -> list[Any]:
            batcher = Batcher(run, max_batch_size=4, max_wait_s=0.01)
            try:
                jobs = [batcher.submit({"x": np.ones(1)}, 1) for _ in range(3)]
                return list(await asyncio.gather(*jobs, return_exceptions=True))
            finally:
                batcher.close()

        results = asyncio.run(main())
        assert all(isinstance(r, RuntimeError) for r in results)

    def test_requests_with_different_inputs_run_one_by_one(self) -> None:
        def run(arrays: dict[str, Any]) -> dict[str, Any]:
            return {"keys": np.array([",".join(sorted(arrays))] * len(next(iter(arrays.values()))))}

        async def main() -> list[Any]:
            batcher = Batcher(run, max_batch_size=8, max_wait_s=0.02)
            try:
                jobs = [batcher.submit({k: np.ones(1)}, 1) for k in ("x", "z")]
                return list(await asyncio.wait_for(asyncio.gather(*jobs), 10))
            finally:
                batcher.close()

        a, b = asyncio.run(main())
        assert list(a["keys"]) == ["x"]
        assert list(b["keys"]) == ["z"]

    def test_shapes_that_do_not_stack_run_one_by_one(self) -> None:
        def run(arrays: dict[str, Any]) -> dict[str, Any]:
            return {"n": np.array([arrays["x"].shape[1]] * len(arrays["x"]))}

        async def main() -> list[Any]:
            batcher = Batcher(run, max_batch_size=8, max_wait_s=0.02)
            try:
                jobs = [batcher.submit({"x": np.ones((1, k))}, 1) for k in (2, 3)]
                return list(await asyncio.gather(*jobs))
            finally:
                batcher.close()

        a, b = asyncio.run(main())
        assert list(a["n"]) == [2]
        assert list(b["n"]) == [3]
