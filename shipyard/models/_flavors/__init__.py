"""Flavors, chosen by the model's type or by name; each module is imported only
when its flavor is used (so ``import shipyard.models`` loads no ML library)."""

from __future__ import annotations

import importlib

from shipyard.errors import InvalidArgumentError
from shipyard.models._flavors._base import Flavor, LoadContext, Predictor, SaveContext
from shipyard.validation import describe

__all__ = [
    "FLAVOR_NAMES",
    "Flavor",
    "LoadContext",
    "Predictor",
    "SaveContext",
    "get_flavor",
    "select_flavor",
]

#: Detection order: XGBoost's sklearn wrappers are sklearn estimators too, so
#: XGBoost is asked first; pyfunc takes anything with ``predict`` last.
_MODULES = {
    "xgboost": ("shipyard.models._flavors.xgboost", "XGBoostFlavor"),
    "sklearn": ("shipyard.models._flavors.sklearn", "SklearnFlavor"),
    "torch": ("shipyard.models._flavors.torch", "TorchFlavor"),
    "onnx": ("shipyard.models._flavors.onnx", "OnnxFlavor"),
    "pyfunc": ("shipyard.models._flavors.pyfunc", "PyfuncFlavor"),
}
FLAVOR_NAMES = tuple(_MODULES)
_cache: dict[str, Flavor] = {}


def get_flavor(name: str) -> Flavor:
    """The flavor called ``name``.

    Raises:
        InvalidArgumentError: no such flavor (the message lists them).
    """
    flavor = _cache.get(name)
    if flavor is None:
        if name not in _MODULES:
            raise InvalidArgumentError(
                f"unknown model flavor {describe(name)}: expected one of {list(FLAVOR_NAMES)}"
            )
        module, cls = _MODULES[name]
        flavor = _cache[name] = getattr(importlib.import_module(module), cls)()
    return flavor


def select_flavor(model: object, name: str | None = None) -> Flavor:
    """The flavor named, else the first that recognizes the model's type."""
    if name is not None:
        return get_flavor(name)
    for candidate in FLAVOR_NAMES:
        flavor = get_flavor(candidate)
        if flavor.detect(model):
            return flavor
    raise InvalidArgumentError(
        f"cannot log {describe(model)}: it is not a scikit-learn estimator, XGBoost model, "
        "torch.nn.Module or ONNX model, and has no predict method and is not callable; "
        "wrap it in a class with predict(inputs) and pass python_model='pkg.module:Class'"
    )
