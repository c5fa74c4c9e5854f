"""Build the serving benchmark's models in ``SHIPYARD_HOME`` and time them in process.

    SHIPYARD_HOME=/tmp/h python models.py --out info.json [--calls 2000] [--cpu 0]

For each model (the sklearn pipeline on ``f0..f15`` and the MLP 16-64-64-1):
log it in a run, register it as version 1, export it to ONNX (parity checked),
point the ungated alias ``staging`` at it, then load ``models:/NAME@staging``
(the native package) and its ONNX export, and time single-row ``predict``
calls: the in-process floor. Writes ``info.json``: model names, the request
bodies of both protocols, the expected predictions of those rows, the
in-process latencies, and where the exported ``.onnx`` file is.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import serve_data as data
from loadgen import percentile

ROWS = 64  # distinct request bodies, cycled by the load generator
SKLEARN_NAME = "bench-serve-sklearn"
MLP_NAME = "bench-serve-mlp"


def _floats(values: Any) -> list[float]:
    return [float(v) for v in values]


def _time(fn: Any, inputs: list[Any], calls: int) -> dict[str, float]:
    for i in range(min(200, calls)):
        fn(inputs[i % len(inputs)])
    times = []
    clock = time.perf_counter_ns
    for i in range(calls):
        x = inputs[i % len(inputs)]
        t0 = clock()
        fn(x)
        times.append(clock() - t0)
    times.sort()
    return {"p50_ms": percentile(times, 50), "p99_ms": percentile(times, 99), "calls": calls}


def _inprocess(built: dict[str, Any], rows: list[Any], arrays: list[Any], calls: int) -> Any:
    """``predict`` on one raw row (a DataFrame / an array) for both packages, and,
    where the package has it, ``predict_arrays`` on one row of checked arrays: the
    path the server takes after decoding and checking a request."""
    out = {kind: _time(built[kind].predict, rows, calls) for kind in ("native", "onnx")}
    for kind in ("native", "onnx"):
        if hasattr(built[kind], "predict_arrays"):
            out[f"{kind}_arrays"] = _time(built[kind].predict_arrays, arrays, calls)
    return out


def _register(model: Any, name: str, example: Any, **options: Any) -> dict[str, Any]:
    import shipyard
    from shipyard.export import export_version
    from shipyard.models import load_package

    with shipyard.start_run(experiment="bench-serve", run_name=name):
        info = shipyard.log_model(model, "model", input_example=example, **options)
    client = shipyard.registry.client()
    mv = client.register(info.uri, name)
    export_version(f"models:/{name}/{mv.version}")
    client.set_alias(name, "staging", mv.version)
    native = shipyard.load_model(f"models:/{name}@staging")
    staged = client.resolve(f"models:/{name}@staging")
    exports = {e.format: e for e in client.store.list_model_exports(staged.model_id, mv.version)}
    onnx = load_package(exports["onnx"].package_digest)
    onnx_files = sorted(str(p) for p in Path(onnx.path).rglob("*.onnx"))
    return {
        "native": native,
        "onnx": onnx,
        "version": mv.version,
        "onnx_file": onnx_files[0] if onnx_files else None,
        "signature": native.signature.to_dict() if native.signature else None,
        "onnx_signature": onnx.signature.to_dict() if onnx.signature else None,
    }


def _sklearn(calls: int) -> dict[str, Any]:
    pipe, frame = data.sklearn_pipeline()
    built = _register(pipe, SKLEARN_NAME, frame[:50])
    x, _ = data.features(ROWS, seed=1)
    rows = [data.frame(x[i : i + 1]) for i in range(ROWS)]
    arrays = [{c: x[i : i + 1, j].copy() for j, c in enumerate(data.COLUMNS)} for i in range(ROWS)]
    expected = _floats(pipe.predict(data.frame(x)))
    invocations = [
        json.dumps({"dataframe_split": {"columns": data.COLUMNS, "data": [_floats(x[i])]}})
        for i in range(ROWS)
    ]
    v2 = [
        json.dumps(
            {
                "inputs": [
                    {"name": c, "shape": [1], "datatype": "FP64", "data": [float(x[i, j])]}
                    for j, c in enumerate(data.COLUMNS)
                ]
            }
        )
        for i in range(ROWS)
    ]
    return {
        "name": SKLEARN_NAME,
        "label": "sklearn Pipeline(StandardScaler, Ridge), 16 float features",
        "invocations": {"method": "POST", "path": "/invocations", "bodies": invocations},
        "v2": {"method": "POST", "path": f"/v2/models/{SKLEARN_NAME}/infer", "bodies": v2},
        "expected": expected,
        "inprocess": _inprocess(built, rows, arrays, calls),
        **{k: built[k] for k in ("version", "onnx_file", "signature", "onnx_signature")},
    }


def _mlp(calls: int) -> dict[str, Any]:
    import numpy as np
    import torch

    module = data.mlp()
    x, _ = data.features(2000)
    x = ((x - x.mean(axis=0)) / x.std(axis=0)).astype(np.float32)
    # With its factory: the export to ONNX converts the module (a package holding only
    # the torch.export program cannot be converted), and --native rebuilds it.
    built = _register(module, MLP_NAME, x[:50], factory="serve_data:mlp")
    rows_x = x[-ROWS:]
    rows = [rows_x[i : i + 1] for i in range(ROWS)]
    with torch.inference_mode():
        expected = _floats(module(torch.from_numpy(rows_x)).numpy().ravel())
    invocations = [json.dumps({"inputs": [_floats(rows_x[i])]}) for i in range(ROWS)]
    v2 = [
        json.dumps(
            {
                "inputs": [
                    {
                        "name": "input",
                        "shape": [1, data.N_FEATURES],
                        "datatype": "FP32",
                        "data": _floats(rows_x[i]),
                    }
                ]
            }
        )
        for i in range(ROWS)
    ]
    return {
        "name": MLP_NAME,
        "label": "torch MLP 16-64-64-1",
        "invocations": {"method": "POST", "path": "/invocations", "bodies": invocations},
        "v2": {"method": "POST", "path": f"/v2/models/{MLP_NAME}/infer", "bodies": v2},
        "expected": expected,
        "mlflow_example": [_floats(r) for r in x[:5]],
        "inprocess": _inprocess(built, rows, [{"input": r} for r in rows], calls),
        **{k: built[k] for k in ("version", "onnx_file", "signature", "onnx_signature")},
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True)
    p.add_argument("--calls", type=int, default=2000)
    p.add_argument("--cpu", type=int, default=None, help="pin to this CPU (as the server is)")
    args = p.parse_args(argv)
    if "SHIPYARD_HOME" not in os.environ:
        p.error("set SHIPYARD_HOME to a scratch folder: the models are registered there")
    if args.cpu is not None:
        os.sched_setaffinity(0, {args.cpu})
    info = {"sklearn": _sklearn(args.calls), "mlp": _mlp(args.calls)}
    Path(args.out).write_text(json.dumps(info))
    return 0


if __name__ == "__main__":
    sys.exit(main())
