"""Importable helpers for model tests: pipelines, a custom transformer (a type
skops does not trust) and Python-function models named by reference."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler


def _features() -> ColumnTransformer:
    return ColumnTransformer(
        [
            ("num", StandardScaler(), ["distance", "passengers"]),
            ("cat", OneHotEncoder(handle_unknown="ignore"), ["zone"]),
        ]
    )


def make_pipeline(frame: Any, y: Any) -> Pipeline:
    """The classifier of the speed target: scaling + one-hot + logistic regression."""
    return Pipeline([("features", _features()), ("model", LogisticRegression())]).fit(frame, y)


def make_regressor(frame: Any) -> Pipeline:
    """A regression pipeline (float outputs, so golden examples have a tolerance)."""
    y = frame["distance"] * 2.0 + frame["passengers"]
    return Pipeline([("features", _features()), ("model", LinearRegression())]).fit(frame, y)


class AddOne(TransformerMixin, BaseEstimator):
    """A project's own transformer: skops cannot know it is safe."""

    def fit(self, x: Any, y: Any = None) -> AddOne:
        self.n_features_in_ = np.asarray(x).shape[1]
        return self

    def transform(self, x: Any) -> Any:
        return np.asarray(x, dtype=np.float64) + 1.0


class Scaler:
    """A Python-function model rebuilt by reference; its factor is an artifact."""

    def __init__(self, artifacts: dict[str, str] | None = None) -> None:
        self.factor = 2.0
        if artifacts:
            self.factor = float(Path(artifacts["factor"]).read_text())

    def predict(self, x: Any) -> Any:
        return np.asarray(x, dtype=np.float64) * self.factor
