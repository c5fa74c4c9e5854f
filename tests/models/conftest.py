"""Fixtures for model-package tests: small fitted models (the fresh SHIPYARD_HOME is
the suite-wide ``home`` fixture)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest


@pytest.fixture
def frame() -> Any:
    """Six rides: two numeric columns and one categorical."""
    import pandas as pd

    return pd.DataFrame(
        {
            "distance": [1.0, 2.5, 3.0, 4.2, 5.0, 6.1],
            "passengers": [1, 2, 1, 3, 2, 1],
            "zone": ["north", "south", "north", "east", "south", "north"],
        }
    )


@pytest.fixture
def pipeline(frame: Any) -> Any:
    """A StandardScaler + one-hot ColumnTransformer feeding a LogisticRegression."""
    from model_support import make_pipeline

    return make_pipeline(frame, np.array([0, 1, 0, 1, 1, 0]))
