"""The benchmark's data and models, built the same way in every environment.

Imported by the Shipyard side (``models.py``, ``.venv``) and by the MLflow side
(``mlflow_side.py``, ``.bench-venv-mlflow``): NumPy's PCG64 stream is stable
across NumPy versions, so both fit the same pipeline on the same rows.
"""

from __future__ import annotations

from typing import Any

N_FEATURES = 16
COLUMNS = [f"f{i}" for i in range(N_FEATURES)]
SEED = 0


def features(n: int = 2000, seed: int = SEED) -> tuple[Any, Any]:
    """``(X, y)``: ``n`` rows of 16 float64 features with different scales, and a
    noisy linear target."""
    import numpy as np

    rng = np.random.default_rng(seed)
    scale = rng.uniform(0.1, 50.0, N_FEATURES)
    x = rng.normal(size=(n, N_FEATURES)) * scale + rng.uniform(-10, 10, N_FEATURES)
    y = x @ rng.normal(size=N_FEATURES) / scale.mean() + rng.normal(0, 0.1, n)
    return x, y


def frame(x: Any) -> Any:
    """``x`` as a DataFrame with the columns ``f0..f15``."""
    import pandas as pd

    return pd.DataFrame(x, columns=COLUMNS)


def sklearn_pipeline() -> tuple[Any, Any]:
    """``(fitted Pipeline(StandardScaler, Ridge), DataFrame X)``."""
    from sklearn.linear_model import Ridge
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    x, y = features()
    data = frame(x)
    pipe = Pipeline([("scale", StandardScaler()), ("model", Ridge(alpha=1.0))]).fit(data, y)
    return pipe, data


def mlp() -> Any:
    """The MLP 16 -> 64 -> 64 -> 1 (seeded initial weights, eval mode)."""
    import torch

    torch.manual_seed(SEED)
    return torch.nn.Sequential(
        torch.nn.Linear(N_FEATURES, 64), torch.nn.ReLU(), torch.nn.Linear(64, 64),
        torch.nn.ReLU(), torch.nn.Linear(64, 1),
    ).eval()  # fmt: skip
