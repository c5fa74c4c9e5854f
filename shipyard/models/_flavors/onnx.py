"""ONNX flavor: a graph run by onnxruntime -- no Python code of the model at all.

Save: an ``onnx.ModelProto`` (serialized) or a path to an ``.onnx`` file
(copied) becomes ``model.onnx``; the graph's inputs and outputs (names, element
types, shapes) are recorded, and serve as the package's signature when no
input example is given. Graphs over 2 GB (external data files) are not
supported yet.

Load: an ``InferenceSession`` on the CPU provider, or CUDA first when
``device="cuda"`` (an error if onnxruntime has no CUDA provider here, rather
than a silent CPU fallback). Inputs are fed by graph input name: one array for
a one-input graph, a dict by name, or a DataFrame by column, each column
reshaped to ``(N, 1)`` where the graph wants rank 2 (as skl2onnx pipelines
do), and converted to the graph's element type. ``predict`` returns the one
output, or a dict of outputs by name. Outputs must be tensors: an skl2onnx
``ZipMap`` (a list of dicts) is refused at log time -- convert with
``options={id(model): {"zipmap": False}}``.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from shipyard.errors import InvalidArgumentError
from shipyard.models._flavors._base import (
    Flavor,
    LoadContext,
    Predictor,
    SaveContext,
    missing_library,
)
from shipyard.models._signature import ColumnMatrix, loaded_pandas

__all__ = ["OnnxFlavor"]


def _ort() -> Any:
    try:
        import onnxruntime
    except ImportError as e:
        raise missing_library("ONNX", "onnxruntime", "onnx") from e
    return onnxruntime


def _is_onnx_path(model: object) -> bool:
    return isinstance(model, str | os.PathLike) and str(model).lower().endswith(".onnx")


def _specs(values: Any) -> list[dict[str, Any]]:
    import onnx

    out = []
    for v in values:
        t = v.type.tensor_type
        if not v.type.HasField("tensor_type"):
            raise InvalidArgumentError(
                f"ONNX graph input/output {v.name!r} is not a tensor (it is a sequence or "
                "map); only tensor inputs and outputs are supported -- for skl2onnx "
                "classifiers convert with options={id(model): {'zipmap': False}}"
            )
        np_dtype = onnx.helper.tensor_dtype_to_np_dtype(t.elem_type)
        dtype = "string" if np_dtype.kind in "OUS" else np.dtype(np_dtype).name
        shape = [d.dim_value if d.HasField("dim_value") else -1 for d in t.shape.dim]
        out.append({"name": v.name, "dtype": dtype, "shape": shape})
    return out


#: The metadata entry ``shipyard.export`` writes into the graphs it converts: the
#: inputs' specs, with ``columns`` for a matrix input stacked from table columns.
_EXPORT_META = "shipyard.onnx"

#: name, rank, NumPy dtype (None for strings), the table columns stacked into it
_Feed = tuple[str, int, "np.dtype[Any] | None", "tuple[str, ...] | None"]


class _Plan(list[_Feed]):
    """How to feed the graph, worked out once per session rather than per call:
    per input its name, rank, NumPy dtype and, for a matrix stacked from table
    columns, those columns in order. ``names`` and ``uniform`` (the dtype when
    every input is a one-column tensor of the same numeric type) serve the
    column-matrix fast path."""

    def __init__(self, inputs: list[dict[str, Any]]) -> None:
        super().__init__(
            (
                s["name"],
                len(s["shape"]),
                None if s["dtype"] == "string" else np.dtype(s["dtype"]),
                tuple(s["columns"]) if s.get("columns") else None,
            )
            for s in inputs
        )
        self.names = tuple(f[0] for f in self)
        dtypes = {f[2] for f in self}
        one_column = all(f[1] == 2 and f[3] is None for f in self)
        self.uniform: np.dtype[Any] | None = (
            dtypes.pop() if one_column and len(dtypes) == 1 else None
        )


def _matrix_feeds(x: ColumnMatrix, plan: _Plan) -> dict[str, np.ndarray[Any, Any]] | None:
    """A matrix of columns fed with one cast: to a matrix input stacked from those
    columns, or to one-column inputs of one dtype (a view per column). None when
    the graph wants otherwise."""
    if len(plan) == 1 and plan[0][3] is not None and plan[0][2] is not None:
        name, _, dtype, stacked = plan[0]
        assert stacked is not None
        matrix = x.select(stacked)
        return None if matrix is None else {name: np.ascontiguousarray(matrix, dtype=dtype)}
    if plan.uniform is None:
        return None
    matrix = x.select(plan.names)
    if matrix is None:
        return None
    rows, width = matrix.shape
    # column-major, so each column is a contiguous (rows, 1) view; iterating the
    # first axis hands them out without a Python-level slice per column
    views = np.ascontiguousarray(matrix.T, dtype=plan.uniform).reshape(width, rows, 1)
    return dict(zip(plan.names, views, strict=True))


def _stack(x: Mapping[str, Any], columns: tuple[str, ...], dtype: Any) -> np.ndarray[Any, Any]:
    missing = [c for c in columns if c not in x]
    if missing:
        raise InvalidArgumentError(
            f"invalid input: missing column(s) {missing}; the ONNX graph stacks {list(columns)}"
        )
    return np.column_stack([np.asarray(x[c]).reshape(-1) for c in columns]).astype(dtype)


def _feeds(x: Any, plan: _Plan) -> dict[str, np.ndarray[Any, Any]]:
    if isinstance(x, ColumnMatrix):
        fast = _matrix_feeds(x, plan)
        if fast is not None:
            return fast
    if not isinstance(x, Mapping | np.ndarray):
        pd = loaded_pandas()
        if pd is not None and isinstance(x, pd.DataFrame):
            x = {str(c): x[c].to_numpy() for c in x.columns}
    if not isinstance(x, Mapping):
        if len(plan) != 1:
            raise InvalidArgumentError(
                f"invalid input: this ONNX graph has inputs {list(plan.names)}; "
                "pass a dict of arrays by those names"
            )
        x = {plan[0][0]: x}
    feeds = {}
    for name, rank, dtype, columns in plan:
        if columns is not None and name not in x:
            feeds[name] = _stack(x, columns, dtype)
            continue
        if name not in x:
            raise InvalidArgumentError(
                f"invalid input: the ONNX graph needs input {name!r}; got {sorted(x)}"
            )
        arr = np.asarray(x[name])
        if arr.ndim == rank - 1:
            arr = arr.reshape(*arr.shape, 1)
        if dtype is None:
            if arr.dtype.kind != "O":
                arr = arr.astype(str).astype(object)
        elif arr.dtype != dtype:
            arr = arr.astype(dtype)
        feeds[name] = arr
    return feeds


def _stacked_columns(proto: Any) -> dict[str, list[str]]:
    """Graph input -> the table columns ``shipyard.export`` stacked into it."""
    import json

    for prop in proto.metadata_props:
        if prop.key == _EXPORT_META:
            try:
                desc = json.loads(prop.value)
                return {i["name"]: list(i["columns"]) for i in desc["inputs"] if i.get("columns")}
            except (ValueError, KeyError, TypeError):
                return {}
    return {}


class OnnxFlavor(Flavor):
    name = "onnx"

    def detect(self, model: object) -> bool:
        onnx = sys.modules.get("onnx")
        return _is_onnx_path(model) or (onnx is not None and isinstance(model, onnx.ModelProto))

    def save(
        self, model: Any, directory: Path, ctx: SaveContext
    ) -> tuple[dict[str, Any], list[str]]:
        try:
            import onnx
        except ImportError as e:
            raise missing_library("ONNX", "onnx", "onnx") from e
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / "model.onnx"
        if _is_onnx_path(model):
            if not Path(model).is_file():
                raise InvalidArgumentError(f"cannot log ONNX model {str(model)!r}: no such file")
            shutil.copyfile(model, path)
            proto = onnx.load(str(path), load_external_data=False)
        elif isinstance(model, onnx.ModelProto):
            proto = model
            path.write_bytes(model.SerializeToString())
        else:
            raise InvalidArgumentError(
                f"the onnx flavor takes an onnx.ModelProto or a path to a .onnx file, got "
                f"{type(model).__name__}"
            )
        inputs = _specs(proto.graph.input)
        stacked = _stacked_columns(proto)
        for spec in inputs:
            if spec["name"] in stacked:
                spec["columns"] = stacked[spec["name"]]
        config = {
            "file": path.name,
            "inputs": inputs,
            "outputs": _specs(proto.graph.output),
            "opsets": {o.domain or "ai.onnx": o.version for o in proto.opset_import},
        }
        return config, ["onnxruntime", "onnx", "numpy"]

    def wrap(self, model: Any, config: Mapping[str, Any]) -> Predictor:
        data = Path(model).read_bytes() if _is_onnx_path(model) else model.SerializeToString()
        return self._session(data, config, "cpu", None)

    def load(self, directory: Path, config: Mapping[str, Any], ctx: LoadContext) -> Predictor:
        return self._session(str(directory / str(config["file"])), config, ctx.device, ctx.threads)

    def _session(
        self, source: Any, config: Mapping[str, Any], device: str, threads: int | None
    ) -> Predictor:
        ort = _ort()
        providers = ["CPUExecutionProvider"]
        if device == "cuda":
            if "CUDAExecutionProvider" not in ort.get_available_providers():
                raise InvalidArgumentError(
                    "device='cuda' was asked for, but this onnxruntime has no CUDA provider: "
                    "pip install onnxruntime-gpu, or load with device='cpu'"
                )
            providers.insert(0, "CUDAExecutionProvider")
        options = ort.SessionOptions()
        if threads is not None:
            # a server: its own threads share the cores, so ORT's must not spin
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        session = ort.InferenceSession(source, options, providers=providers)
        plan = _Plan(list(config["inputs"]))
        names = [o["name"] for o in config["outputs"]]

        def predict(x: Any) -> Any:
            results = session.run(names, _feeds(x, plan))
            for name, value in zip(names, results, strict=True):
                if not isinstance(value, np.ndarray):
                    raise InvalidArgumentError(
                        f"ONNX output {name!r} is a {type(value).__name__}, not a tensor; "
                        "convert the model so every output is a tensor"
                    )
            return results[0] if len(results) == 1 else dict(zip(names, results, strict=True))

        return Predictor(raw=session, predict=predict)

    def native_signature(self, config: Mapping[str, Any]) -> Any:
        from shipyard.models._signature import Signature

        def schema(specs: list[dict[str, Any]]) -> dict[str, Any]:
            if len(specs) == 1:
                return {"kind": "ndarray", "specs": [{**specs[0], "name": None}]}
            return {"kind": "dict", "specs": specs}

        return Signature.from_dict(
            {"inputs": schema(config["inputs"]), "outputs": schema(config["outputs"])}
        )
