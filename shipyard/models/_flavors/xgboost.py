"""XGBoost flavor: the booster in XGBoost's own UBJSON format, never pickle.

Save: ``save_model("model.ubj")`` -- the format XGBoost promises to read across
versions -- and which class held it: a ``Booster``, or one of the
scikit-learn wrappers (``XGBClassifier``, ``XGBRegressor``...), recorded by
name and rebuilt only from ``xgboost.sklearn``'s own classes.

Load: ``Booster(model_file=...)`` predicts through a ``DMatrix`` (feature names
come from a DataFrame input); a wrapper is instantiated empty and
``load_model`` restores it, so ``predict`` returns class labels and
``predict_proba`` is available, as on the logged object.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from shipyard.errors import UntrustedModelError
from shipyard.models._flavors._base import (
    Flavor,
    LoadContext,
    Predictor,
    SaveContext,
    missing_library,
)

__all__ = ["XGBoostFlavor"]


def _xgboost() -> Any:
    try:
        import xgboost
    except ImportError as e:
        raise missing_library("XGBoost", "xgboost", "xgboost") from e
    return xgboost


def _matrix(xgb: Any, x: Any) -> Any:
    if isinstance(x, Mapping):
        x = next(iter(x.values())) if len(x) == 1 else sys.modules["pandas"].DataFrame(dict(x))
    return xgb.DMatrix(x)


class XGBoostFlavor(Flavor):
    name = "xgboost"

    def detect(self, model: object) -> bool:
        xgb = sys.modules.get("xgboost")
        return xgb is not None and isinstance(model, xgb.Booster | xgb.XGBModel)

    def save(
        self, model: Any, directory: Path, ctx: SaveContext
    ) -> tuple[dict[str, Any], list[str]]:
        xgb = _xgboost()
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / "model.ubj"
        model.save_model(str(path))
        wrapper = None if isinstance(model, xgb.Booster) else type(model).__name__
        config = {"file": path.name, "wrapper": wrapper}
        dists = ["xgboost", "numpy"]
        if wrapper is not None:
            dists.append("scikit-learn")
        return config, dists

    def wrap(self, model: Any, config: Mapping[str, Any]) -> Predictor:
        xgb = _xgboost()
        if isinstance(model, xgb.Booster):
            return Predictor(raw=model, predict=lambda x: model.predict(_matrix(xgb, x)))

        def plain(x: Any) -> Any:
            return next(iter(x.values())) if isinstance(x, Mapping) and len(x) == 1 else x

        proba = getattr(model, "predict_proba", None)
        return Predictor(
            raw=model,
            predict=lambda x: model.predict(plain(x)),
            predict_proba=None if proba is None else (lambda x: proba(plain(x))),
        )

    def load(self, directory: Path, config: Mapping[str, Any], ctx: LoadContext) -> Predictor:
        xgb = _xgboost()
        path = str(directory / str(config["file"]))
        wrapper = config.get("wrapper")
        if wrapper is None:
            return self.wrap(xgb.Booster(model_file=path), config)
        cls = getattr(xgb.sklearn, str(wrapper), None)
        if not (isinstance(cls, type) and issubclass(cls, xgb.XGBModel)):
            raise UntrustedModelError(
                f"model package {ctx.where} names the XGBoost class {wrapper!r}, which is not "
                "one of xgboost.sklearn's model classes; the package is damaged or crafted"
            )
        model = cls()
        model.load_model(path)
        return self.wrap(model, config)
