"""The Shipyard demo: train a small real model with tracking on the embedded store.

A generated ride-pricing dataset (distance, duration, hour, surge -> price) is
fit by linear regression with gradient descent, for a few learning rates and
L2 strengths. Every run records its hyperparameters, per-epoch train and
validation RMSE, the fitted weights as an artifact, its code version and its
environment. Then the best run is found with the search grammar.

The data is versioned first (``shipyard.data.add``) and every run reads it
through ``shipyard.data.use``, so the lineage of ``rides@1`` lists the runs.

Run with ``make demo``; look at the runs with the commands it prints.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import numpy as np

import shipyard

EXPERIMENT = "demo-rides-pricing"


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
    lineage = shipyard.data.lineage(ref)
    print(f"\nLineage of {ref}: {len(lineage.runs)} runs read it, e.g. {lineage.runs[-1][0].name}")


if __name__ == "__main__":
    main()
