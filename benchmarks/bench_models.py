"""Models: log + register a small sklearn pipeline, load it, and predict per row.

* **log + register** -- in a fresh interpreter that has already imported shipyard,
  scikit-learn and pandas and fitted the pipeline (what a training script has done
  by then): ``log_model`` (skops save, golden examples, verification replay,
  blob store) plus ``register_model``, first call and the median of the next ones.
  Target (issue): <= 0.5 s. Peer, when an MLflow environment is found
  (``SHIPYARD_BENCH_MLFLOW`` = its python, else ``.bench-venv-mlflow/bin/python``;
  ``make bench-mlflow-env`` makes one): ``mlflow.sklearn.log_model`` with
  ``registered_model_name`` on a SQLite backend, the same pipeline and example.
* **load** -- ``load_model("models:/bench/1")`` with the golden examples replayed,
  first call in a fresh interpreter, and warm.
* **predict per row** -- batch of 1, median of ``calls`` calls, for the sklearn
  pipeline (a ColumnTransformer with scaling and one-hot, then a ridge) and a small
  MLP (16 -> 64 -> 64 -> 1): the native flavor against its ONNX export on ONNX
  Runtime, both through ``LoadedModel.predict`` (signature checks included), and
  the bare library calls as floors.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import ROOT, Figure, fresh_env, median, temp_dir

NAME = "models"
TARGET_LOG_REGISTER_S = 0.5

_SETUP = """
import json, os, sys, time
import numpy as np, pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import Ridge
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
rng = np.random.default_rng(0)
n = 2000
frame = pd.DataFrame({"distance": rng.gamma(2.0, 3.0, n), "minutes": rng.uniform(5, 60, n),
                      "period": rng.choice(["rush", "off-peak"], n)})
price = 2 + 1.2 * frame.distance + 0.3 * frame.minutes + rng.normal(0, 1, n)
features = ColumnTransformer([("num", StandardScaler(), ["distance", "minutes"]),
                              ("cat", OneHotEncoder(handle_unknown="ignore"), ["period"])])
pipe = Pipeline([("features", features), ("model", Ridge())]).fit(frame, price)
example = frame[:5]
REPS = int(sys.argv[1])
"""

_SHIPYARD = """
import shipyard
from shipyard.registry import register_model
times = []
with shipyard.start_run(experiment="bench"):
    for i in range(REPS):
        t0 = time.perf_counter()
        info = shipyard.log_model(pipe, f"model{i}", input_example=example)
        register_model(info.uri, "bench")
        times.append(time.perf_counter() - t0)
t0 = time.perf_counter()
shipyard.load_model("models:/bench/1")
first_load = time.perf_counter() - t0
loads = []
for _ in range(REPS):
    t0 = time.perf_counter()
    shipyard.load_model("models:/bench/1")
    loads.append(time.perf_counter() - t0)
print(json.dumps({"log": times, "first_load": first_load, "loads": loads}))
"""

_MLFLOW = """
import logging, warnings
warnings.filterwarnings("ignore")
logging.disable(logging.WARNING)
import mlflow, mlflow.sklearn
mlflow.set_tracking_uri("sqlite:///" + os.path.join(os.getcwd(), "mlflow.db"))
mlflow.set_experiment("bench")
times = []
with mlflow.start_run():
    for i in range(REPS):
        t0 = time.perf_counter()
        mlflow.sklearn.log_model(pipe, name=f"model{i}", input_example=example,
                                 registered_model_name="bench")
        times.append(time.perf_counter() - t0)
t0 = time.perf_counter()
mlflow.sklearn.load_model("models:/bench/1")
first_load = time.perf_counter() - t0
print(json.dumps({"log": times, "first_load": first_load, "loads": []}))
"""


def _script(python: str, body: str, cwd: Path, reps: int, env: dict[str, str]) -> dict[str, Any]:
    code = textwrap.dedent(_SETUP) + textwrap.dedent(body)
    proc = subprocess.run(
        [python, "-c", code, str(reps)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr.strip().splitlines()[-1] if proc.stderr else "failed")
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def _mlflow_python() -> str | None:
    found = os.environ.get("SHIPYARD_BENCH_MLFLOW") or str(
        ROOT / ".bench-venv-mlflow" / "bin" / "python"
    )
    return found if Path(found).exists() else None


def _log_figures(quick: bool) -> list[Figure]:
    reps = 3 if quick else 8
    with temp_dir("models") as tmp:
        env = fresh_env(tmp / "home")
        ours = _script(sys.executable, _SHIPYARD, tmp, reps, env)
        peer, peer_note = None, "no MLflow environment (make bench-mlflow-env)"
        mlflow_py = _mlflow_python()
        if mlflow_py:
            (tmp / "mlflow").mkdir()
            try:
                peer = _script(mlflow_py, _MLFLOW, tmp / "mlflow", max(2, reps // 4), env)
                peer_note = "MLflow: mlflow.sklearn.log_model + registered_model_name, SQLite"
            except Exception as e:
                peer_note = f"MLflow failed: {e}"
    first, warm = ours["log"][0], median(ours["log"][1:])
    figures = [
        Figure(
            NAME,
            "log + register sklearn pipeline, first call",
            first,
            "s",
            target=TARGET_LOG_REGISTER_S,
            peer="MLflow first call" if peer else None,
            peer_value=peer["log"][0] if peer else None,
            note=peer_note,
        ),
        Figure(
            NAME,
            "log + register sklearn pipeline, warm",
            warm,
            "s",
            target=TARGET_LOG_REGISTER_S,
            peer="MLflow warm" if peer and len(peer["log"]) > 1 else None,
            peer_value=median(peer["log"][1:]) if peer and len(peer["log"]) > 1 else None,
            samples=ours["log"][1:],
        ),
        Figure(
            NAME,
            "load_model models:/ (examples replayed), first",
            ours["first_load"] * 1000,
            "ms",
            peer="MLflow load first" if peer else None,
            peer_value=peer["first_load"] * 1000 if peer else None,
        ),
        Figure(
            NAME,
            "load_model models:/ (examples replayed), warm",
            median(ours["loads"]) * 1000,
            "ms",
            samples=ours["loads"],
        ),
    ]
    return figures


def _per_row(fn: Any, row: Any, calls: int) -> float:
    import time

    for _ in range(20):
        fn(row)
    times = []
    for _ in range(calls):
        t0 = time.perf_counter()
        fn(row)
        times.append(time.perf_counter() - t0)
    return median(times) * 1e6


def _latency_figures(quick: bool) -> list[Figure]:
    import numpy as np
    import pandas as pd
    import torch
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import Ridge
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    import shipyard
    from shipyard.export import to_onnx
    from shipyard.models import load_package, save_package

    calls = 300 if quick else 2000
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {
            "distance": rng.gamma(2.0, 3.0, 500),
            "minutes": rng.uniform(5, 60, 500),
            "period": rng.choice(["rush", "off-peak"], 500),
        }
    )
    features = ColumnTransformer(
        [
            ("num", StandardScaler(), ["distance", "minutes"]),
            ("cat", OneHotEncoder(handle_unknown="ignore"), ["period"]),
        ]
    )
    price = frame.distance * 1.2 + frame.minutes * 0.3
    pipe = Pipeline([("features", features), ("model", Ridge())]).fit(frame, price)
    torch.manual_seed(0)
    mlp = torch.nn.Sequential(
        torch.nn.Linear(16, 64), torch.nn.ReLU(), torch.nn.Linear(64, 64), torch.nn.ReLU(),
        torch.nn.Linear(64, 1),
    ).eval()  # fmt: skip
    x = rng.normal(size=(8, 16)).astype(np.float32)
    figures = []
    with temp_dir("models-latency") as tmp:
        cases = [
            ("sklearn pipeline", pipe, frame[:5], "sklearn", frame[:1], {}),
            ("MLP 16-64-64-1", mlp, x, "torch", x[:1], {"factory": "bench_models:make_mlp"}),
        ]
        for label, model, example, flavor, row, options in cases:
            native = save_package(model, tmp / f"{flavor}-native", input_example=example, **options)
            del native
            onnx_model = to_onnx(model, example, flavor=flavor)
            import onnx

            proto = onnx.load_from_string(onnx_model.data)
            save_package(proto, tmp / f"{flavor}-onnx", flavor="onnx", input_example=example)
            ours_native = load_package(str(tmp / f"{flavor}-native"))
            ours_onnx = load_package(str(tmp / f"{flavor}-onnx"))
            runner = onnx_model.runner()
            if flavor == "sklearn":
                bare = pipe.predict
                bare_label = "bare sklearn predict"
            else:
                tensor = torch.from_numpy(row)

                def bare(_: Any, t: Any = tensor) -> Any:
                    with torch.inference_mode():
                        return mlp(t)

                bare_label = "bare torch forward"
            n_us = _per_row(ours_native.predict, row, calls)
            o_us = _per_row(ours_onnx.predict, row, calls)
            figures += [
                Figure(
                    NAME,
                    f"{label}: predict 1 row, ONNX Runtime",
                    o_us,
                    "µs",
                    peer=f"native {flavor}",
                    peer_value=n_us,
                ),
                Figure(NAME, f"{label}: predict 1 row, native {flavor}", n_us, "µs"),
                Figure(NAME, f"{label}: floor, {bare_label}", _per_row(bare, row, calls), "µs"),
                Figure(
                    NAME,
                    f"{label}: floor, bare onnxruntime run",
                    _per_row(runner.run, row, calls),
                    "µs",
                ),
            ]
    del shipyard
    return figures


def make_mlp() -> Any:
    """The MLP's factory (the torch flavor stores weights plus this reference)."""
    import torch

    return torch.nn.Sequential(
        torch.nn.Linear(16, 64), torch.nn.ReLU(), torch.nn.Linear(64, 64), torch.nn.ReLU(),
        torch.nn.Linear(64, 1),
    )  # fmt: skip


def run(quick: bool = False) -> list[Figure]:
    figures = _log_figures(quick)
    figures += _latency_figures(quick)
    return figures
