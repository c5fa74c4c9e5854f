"""The MLflow side of the serving benchmark; runs in MLflow's own environment.

    .bench-venv-mlflow/bin/python mlflow_side.py --out DIR [--onnx FILE --example JSON]

Fits the same sklearn pipeline on the same rows (``serve_data.py``, same seed) and
saves it with ``mlflow.sklearn.save_model`` to ``DIR/sklearn``; with
``--onnx``, saves that ONNX graph (Shipyard's export of the MLP, the same
bytes Shipyard serves) with ``mlflow.onnx.save_model`` to ``DIR/onnx``, when
``onnx`` and ``onnxruntime`` are importable here. Prints one JSON object: the
paths (null when not saved, with the reason), versions, and the pipeline's
predictions on the request rows, so the caller can check both sides serve
the same model.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import serve_data as data


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True)
    p.add_argument("--onnx", default=None, help="an .onnx file to save as an MLflow model")
    p.add_argument("--example", default=None, help="JSON rows: the ONNX model's input example")
    p.add_argument("--rows", type=int, default=64)
    args = p.parse_args(argv)
    warnings.filterwarnings("ignore")
    logging.disable(logging.WARNING)
    import mlflow
    import mlflow.sklearn
    import numpy as np
    import sklearn

    out = Path(args.out)
    pipe, frame = data.sklearn_pipeline()
    mlflow.sklearn.save_model(pipe, str(out / "sklearn"), input_example=frame[:5])
    x, _ = data.features(args.rows, seed=1)
    result: dict[str, object] = {
        "mlflow": mlflow.__version__,
        "sklearn_version": sklearn.__version__,
        "sklearn": str(out / "sklearn"),
        "expected": [float(v) for v in pipe.predict(data.frame(x))],
        "onnx": None,
        "onnx_note": "no ONNX file given",
    }
    if args.onnx:
        try:
            import mlflow.onnx
            import onnx
            import onnxruntime  # noqa: F401 - mlflow.onnx serves through it
        except ImportError as e:
            result["onnx_note"] = (
                f"not measured: {e.name} is not installed in MLflow's environment "
                f"({sys.prefix}/bin/pip install onnx onnxruntime)"
            )
        else:
            example = np.asarray(json.loads(args.example), dtype=np.float32)
            mlflow.onnx.save_model(onnx.load(args.onnx), str(out / "onnx"), input_example=example)
            result["onnx"] = str(out / "onnx")
            result["onnx_note"] = ""
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
