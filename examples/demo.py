"""The Shipyard demo: train a small real model with tracking on the embedded store.

A generated ride-pricing dataset (distance, duration, hour, surge -> price) is
fit by linear regression with gradient descent, for a few learning rates and
L2 strengths. Every run records its hyperparameters, per-epoch train and
validation RMSE, the fitted weights as an artifact, its code version and its
environment. Then the best run is found with the search grammar.

The data is versioned first (``shipyard.data.add``) and every run reads it
through ``shipyard.data.use``, so the lineage of ``rides@1`` lists the runs.

Then the path to production: a PyTorch model written with the Trial API
(``examples/rides_trial.py``: its standardisation fitted on the training split
and built into the module) comes out of a small hyperparameter search --
adaptive ASHA over learning rate and width, trials as processes paused at
rungs and promoted from their checkpoints, each checked against the production
contract (its p99 latency measured). Checkpoints, validation, the final model
package: all automatic. The best is registered under a production contract (p99 latency
100 ms at batch size 1, served as ONNX, validation RMSE at most 3), exported to
ONNX with a parity check, and promoted to ``production`` through the gates; a
weaker challenger (a scikit-learn pipeline on distance alone) is then refused
because it is worse than the current holder.

Last, the promoted model is served (``shipyard serve models:/rides-pricing@production``,
a real server process on 127.0.0.1): requests through MLflow's ``/invocations``
and the Open Inference Protocol v2, latency measured, Prometheus metrics and
the input drift gauges read back, and the sampled prediction log summarised
by ``shipyard monitor``.

Run with ``make demo``; look at the runs with the commands it prints.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

import shipyard

HERE = Path(__file__).resolve().parent
EXPERIMENT = "demo-rides-pricing"
MODEL = "rides-pricing"
CONTRACT = {
    "latency_p99_ms": 100,
    "batch_size": 1,
    "format": "onnx",
    "min_metrics": {"val_rmse": {"max": 3.0}},
}


def make_rides(n: int = 20_000, seed: int = 7) -> tuple[np.ndarray, np.ndarray]:
    """Synthetic rides: price = base + per-km + per-minute, higher at rush hour and surge."""
    rng = np.random.default_rng(seed)
    distance = rng.gamma(2.0, 3.0, n)
    duration = distance * rng.uniform(1.5, 4.0, n) + rng.normal(0, 2, n).clip(-3, None)
    hour = rng.integers(0, 24, n)
    rush = ((hour >= 7) & (hour <= 9)) | ((hour >= 16) & (hour <= 19))
    surge = rng.choice([1.0, 1.0, 1.0, 1.3, 1.8], n)
    price = (2.5 + 1.2 * distance + 0.3 * duration + 2.0 * rush) * surge + rng.normal(0, 1.0, n)
    features = np.column_stack([distance, duration, rush.astype(float), surge])
    return features, price


def standardize(train: np.ndarray, other: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mean, std = train.mean(axis=0), train.std(axis=0) + 1e-9
    return (train - mean) / std, (other - mean) / std


def version_dataset() -> str:
    """Write the generated rides as CSV and version it: rides@1 (unchanged on reruns)."""
    features, price = make_rides()
    folder = Path(shipyard.get_client().settings.home) / "demo-data"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "rides.csv"
    header = "distance,duration,rush,surge,price"
    np.savetxt(path, np.column_stack([features, price]), delimiter=",", header=header, fmt="%.6g")
    added = shipyard.data.add(path, name="rides", message="generated rides")
    return f"rides@{added.version.version}"


def load_rides(ref: str) -> tuple[np.ndarray, ...]:
    """Read the versioned CSV through data.use, so the run records which version it read."""
    path = shipyard.data.use(ref, role="train")
    table = np.loadtxt(path, delimiter=",", skiprows=1)
    features, price = table[:, :4], table[:, 4]
    split = int(0.8 * len(price))
    x_train, x_val = standardize(features[:split], features[split:])
    return x_train, price[:split], x_val, price[split:]


def train_one(lr: float, l2: float, epochs: int, ref: str) -> str:
    with shipyard.start_run(experiment=EXPERIMENT, run_name=f"lr={lr} l2={l2}") as run:
        x_train, y_train, x_val, y_val = load_rides(ref)
        shipyard.log_params({"lr": lr, "l2": l2, "epochs": epochs, "model": "linear", "batch": 256})
        rng = np.random.default_rng(0)
        w = np.zeros(x_train.shape[1])
        b = 0.0
        step = 0
        for epoch in range(epochs):
            order = rng.permutation(len(x_train))
            for start in range(0, len(order), 256):
                idx = order[start : start + 256]
                err = x_train[idx] @ w + b - y_train[idx]
                w -= lr * (x_train[idx].T @ err / len(idx) + l2 * w)
                b -= lr * float(err.mean())
                shipyard.log_metric("train/batch_mse", float((err**2).mean()), step=step)
                step += 1
            train_rmse = float(np.sqrt(((x_train @ w + b - y_train) ** 2).mean()))
            val_rmse = float(np.sqrt(((x_val @ w + b - y_val) ** 2).mean()))
            shipyard.log_metrics({"train_rmse": train_rmse, "val_rmse": val_rmse}, step=epoch)
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "weights.json"
            path.write_text(json.dumps({"w": w.tolist(), "b": b}))
            shipyard.log_artifact(path, artifact_path="model")
        shipyard.set_tag("shipyard.demo", "true")
        return run.id


def rides_frame(ref: str) -> tuple[Any, Any, Any, Any]:
    """The versioned rides as a DataFrame with a categorical column, split 80/20."""
    import pandas as pd

    path = shipyard.data.use(ref, role="train")
    table = pd.read_csv(path)
    table.columns = [c.lstrip("# ") for c in table.columns]
    frame = pd.DataFrame(
        {
            "distance": table["distance"],
            "duration": table["duration"],
            "period": np.where(table["rush"] > 0.5, "rush", "off-peak"),
            "surge": table["surge"],
        }
    )
    split = int(0.8 * len(frame))
    price = table["price"]
    return frame[:split], price[:split], frame[split:], price[split:]


def train_pipeline(ref: str, features: list[str], run_name: str) -> str:
    """Fit scaling + one-hot + ridge on ``features``, log it with the contract; register it."""
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import Ridge
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    with shipyard.start_run(experiment=EXPERIMENT, run_name=run_name):
        x_train, y_train, x_val, y_val = rides_frame(ref)
        numeric = [f for f in features if f != "period"]
        steps = [("num", StandardScaler(), numeric)]
        if "period" in features:
            steps.append(("cat", OneHotEncoder(handle_unknown="ignore"), ["period"]))
        pipeline = Pipeline([("features", ColumnTransformer(steps)), ("model", Ridge(1.0))])
        pipeline.fit(x_train, y_train)
        val_rmse = float(np.sqrt(((pipeline.predict(x_val) - y_val) ** 2).mean()))
        shipyard.log_params({"model": "ridge-pipeline", "features": ",".join(features)})
        shipyard.log_metric("val_rmse", val_rmse)
        info = shipyard.log_model(pipeline, "model", input_example=x_train[:5], contract=CONTRACT)
    version = shipyard.register_model(info.uri, MODEL).version
    print(f"  {run_name:<22} val_rmse={val_rmse:.3f} -> registered models:/{MODEL}/{version}")
    return f"{version}"


def train_trials(ref: str) -> tuple[int, float]:
    """Search RidesTrial's learning rate and width with adaptive ASHA (trials are
    processes, paused at rungs and promoted from their checkpoints); register the
    best trial's package."""
    from shipyard.models import Contract
    from shipyard.search import parse_config, run_experiment

    config = parse_config({
        "name": EXPERIMENT, "trial": "rides_trial.py:RidesTrial", "workdir": str(HERE),
        "hparams": {"data": ref},
        "space": {"lr": {"type": "float", "low": 0.002, "high": 0.05, "log": True},
                  "hidden": {"type": "categorical", "choices": [16, 32, 64]}},
        "metric": "val_rmse", "mode": "min",
        "resource": {"hparam": "epochs", "max": 4, "min": 1},
        "searcher": {"name": "asha", "max_trials": 6, "divisor": 2, "mode": "aggressive"},
        "max_concurrent": 2, "contract": dict(CONTRACT),
    })  # fmt: skip
    exp_id, state = run_experiment(config)
    for t in sorted(state.trials.values(), key=lambda t: (-t.resource, t.values["val_rmse"])):
        p99 = shipyard.get_run(t.run_id).metrics.get("contract.latency_p99_ms")
        timing = f", p99 {p99:.2f} ms" if p99 is not None else ""
        print(f"  trial {t.trial_id} lr={t.config['lr']:.4f} hidden={t.config['hidden']:<3} "
              f"{t.state:<9} after {t.resource:g} epochs: val_rmse={t.values['val_rmse']:.3f}"
              f"{timing}")  # fmt: skip
    best = state.trials[state.best]  # type: ignore[index]
    print(f"  search {exp_id[-12:]}: best trial {best.trial_id} "
          f"(.venv/bin/shipyard experiment show {exp_id[-12:]})")  # fmt: skip
    version = shipyard.register_model(f"runs:/{best.run_id}/model", MODEL).version
    registry = shipyard.registry.client()
    Contract.from_dict(CONTRACT)  # checks the terms
    registry.set_contract(MODEL, dict(CONTRACT))
    print(f"  best registered as models:/{MODEL}/{version} under the production contract")
    return version, best.values["val_rmse"]


def ship(ref: str) -> str:
    """Train with the Trial API, export, gate and promote; then see a challenger refused."""
    from shipyard.export import GateFailedError, export_version, promote

    print("\nTo production (contract: p99 <= 100 ms at batch 1, ONNX, val_rmse <= 3):")
    t0 = time.perf_counter()
    version, _ = train_trials(ref)
    exported = export_version(f"models:/{MODEL}/{version}")
    print(f"  export to ONNX ({exported.converter}): {exported.parity.summary()}")
    result = promote(MODEL, version, "production", reason="demo release")
    for gate in result.report.gates:
        print(f"  gate {gate.name:<9} {'pass' if gate.passed else 'FAIL'}  {gate.detail}")
    print(f"  promoted: models:/{MODEL}@production -> version {version}")
    weak = int(train_pipeline(ref, ["distance"], "challenger (distance)"))
    try:
        promote(MODEL, weak, "production")
    except GateFailedError as refused:
        print(f"  challenger refused: {refused.report.summary()}")
    holder = shipyard.load_model(f"models:/{MODEL}@production", verify_examples=True)
    first = np.array([[8.0, 20.0, 1.0, 1.0]], dtype=np.float32)  # 8 km, 20 min, rush hour
    price = float(np.asarray(holder.predict(first)).ravel()[0])
    print(f"  serving models:/{MODEL}@production: 8 km, 20 min at rush hour costs {price:.2f}")
    print(f"  ({time.perf_counter() - t0:.1f}s for train, log, register, export, gates)")
    return shipyard.registry.client().resolve(f"models:/{MODEL}/{version}").run_id or ""


def serve_and_ask() -> None:
    """Serve the production model in a real server process and send it requests."""
    import os
    import signal
    import subprocess
    import sys
    import urllib.request

    from shipyard.monitor import monitor_report

    print(f"\nServing models:/{MODEL}@production (shipyard serve, ONNX Runtime):")
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "shipyard.cli",
            "serve",
            f"models:/{MODEL}@production",
            "--port",
            "0",
            "--log-sample-rate",
            "1",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )
    try:
        assert server.stdout is not None
        url = server.stdout.readline().split()[-1]

        def call(path: str, body: Any = None) -> tuple[int, Any]:
            data = None if body is None else json.dumps(body).encode()
            req = urllib.request.Request(
                url + path,
                data=data,
                method="POST" if data else "GET",
                headers={"content-type": "application/json"},
            )
            try:
                with urllib.request.urlopen(req, timeout=30) as resp:
                    return resp.status, resp.read()
            except urllib.error.HTTPError as e:
                return e.code, e.read()
            except urllib.error.URLError:  # not accepting yet: it is loading the model
                return 0, b""

        deadline = time.monotonic() + 120
        while call("/v2/health/ready")[0] != 200:
            if time.monotonic() > deadline or server.poll() is not None:
                raise RuntimeError("the server did not become ready")
            time.sleep(0.2)
        rides, _ = make_rides(400, seed=11)
        _, doc = call("/invocations", {"inputs": [[8.0, 20.0, 1.0, 1.0]]})
        print(f"  POST {url}/invocations  8 km, 20 min, rush hour -> {json.loads(doc)}")
        times = []
        for row in rides:
            body = {
                "inputs": [
                    {
                        "name": "input",
                        "shape": [1, 4],
                        "datatype": "FP32",
                        "data": [float(v) for v in row],
                    }
                ]
            }
            t = time.perf_counter()
            status, _ = call(f"/v2/models/{MODEL}/infer", body)
            times.append(time.perf_counter() - t)
            assert status == 200
        times.sort()
        print(
            f"  {len(times)} OIP v2 requests: p50 {times[len(times) // 2] * 1e3:.2f} ms, "
            f"p99 {times[int(len(times) * 0.99)] * 1e3:.2f} ms (urllib client, a new "
            "connection each)"
        )
        status, doc = call("/invocations", {"inputs": [[8.0, 20.0]]})
        print(f"  a malformed request gets {status}: {json.loads(doc)['message']}")
        metrics = call("/metrics")[1].decode()
        shown = [
            line
            for line in metrics.splitlines()
            if line.startswith(
                ("shipyard_requests_total", "shipyard_input_drift_psi", "shipyard_model_loaded")
            )
        ]
        print("  /metrics (Prometheus):")
        for line in shown[:8]:
            print(f"    {line}")
    finally:
        os.killpg(server.pid, signal.SIGTERM)  # graceful: flushes the prediction log
        server.wait(30)
    report = monitor_report(f"models:/{MODEL}@production", window_seconds=3600)
    scored = [f for f in report.features if f.psi == f.psi]  # NaN: not scored
    worst = max(scored, key=lambda f: f.psi, default=None)
    print(
        f"  shipyard monitor: {report.rows} sampled predictions"
        + (
            f", largest input drift {worst.name} PSI {worst.psi:.3f} ({worst.status})"
            if worst is not None
            else ""
        )
    )
    print(
        f"  .venv/bin/shipyard serve models:/{MODEL}@production --port 8080   # serve it yourself"
    )
    print(f"  .venv/bin/shipyard monitor models:/{MODEL}@production            # drift report")


def main() -> None:
    print(f"Shipyard {shipyard.__version__}: tracking to {shipyard.get_tracking_uri()}")
    ref = version_dataset()
    print(f"  dataset {ref} versioned (content-addressed; re-running adds no version)")
    t0 = time.perf_counter()
    for lr in (0.003, 0.03, 0.1):
        for l2 in (0.0, 0.01):
            run_id = train_one(lr, l2, epochs=15, ref=ref)
            run = shipyard.get_run(run_id)
            print(f"  run {run.name:<16} val_rmse={run.metrics['val_rmse']:.3f}  ({run_id})")
    best = shipyard.search_runs(
        "params.model = 'linear' and metrics.val_rmse < 10",
        order_by=["metrics.val_rmse"],
        max_results=1,
        experiments=EXPERIMENT,
    ).items[0]
    print(
        f"\n6 runs in {time.perf_counter() - t0:.1f}s. "
        f"Best: {best.name} val_rmse={best.metrics['val_rmse']:.3f}"
    )
    print("\nLook at them:")
    print(f"  .venv/bin/shipyard runs list --experiment {EXPERIMENT} --order-by metrics.val_rmse")
    print(f"  .venv/bin/shipyard runs show {best.id}")
    print(f"  .venv/bin/shipyard runs compare {best.id} <another run id>")
    print(f"  .venv/bin/shipyard runs history {best.id} val_rmse")
    print(f"  .venv/bin/shipyard data lineage {ref}      # every run that trained on it")
    shipped = ship(ref)
    print(f"  .venv/bin/shipyard lineage models:/{MODEL}@production   # run, code, data, metrics")
    print(f"  .venv/bin/shipyard checkpoints list {shipped}  # the Trial's checkpoints")
    print(f"  .venv/bin/shipyard reproduce models:/{MODEL}/1   # re-run, compare (needs git)")
    print(f"  .venv/bin/shipyard models show {MODEL}                   # versions, aliases, audit")
    serve_and_ask()
    lineage = shipyard.data.lineage(ref)
    print(f"\nLineage of {ref}: {len(lineage.runs)} runs read it, e.g. {lineage.runs[-1][0].name}")
    print("  model versions trained on it: " + ", ".join(f"{n}/{v}" for n, v in lineage.models))


if __name__ == "__main__":
    main()
