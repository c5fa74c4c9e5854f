"""scikit-learn flavor: the fitted estimator -- usually a Pipeline holding its own
preprocessing -- saved with skops, never pickle.

Save: ``skops.io.dump`` to ``model.skops``; the types skops does not trust by
default (``get_untrusted_types``) are recorded for the reader's information.

Load: the untrusted types are computed again from the file (the manifest's
list is not trusted: a package is data anyone could craft). A type passes if
it is a *class* under ``sklearn.``, ``numpy.`` or ``scipy.`` (skops rebuilds
objects with ``__new__`` and ``__setstate__``, which for those classes only
sets attributes) or a plain container from ``builtins``/``collections``.
Functions are never auto-trusted, even from NumPy (``numpy.load`` would be a
callable an estimator could be made to call). Anything else -- your own
transformer class, a function in a ``FunctionTransformer`` -- needs
``load_model(..., trust_types=[...])``, and the error names the types.

Import cost: ``import skops.io`` runs ``sklearn.utils.all_estimators()``, whose
package walk imports ``sklearn.externals.array_api_compat.torch`` and so torch
itself (about 1 s). :func:`import_skops` hides that shim module for the
duration of the import when torch is not already loaded (the walk skips a
package that fails to import, and the shim is under ``externals``, which
``all_estimators`` ignores anyway), so the first sklearn log costs ~0.4 s of
imports instead of ~1.5 s. The shim imports normally afterwards.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from shipyard.errors import UntrustedModelError
from shipyard.models._flavors._base import (
    Flavor,
    LoadContext,
    Predictor,
    SaveContext,
    missing_library,
)
from shipyard.models._signature import loaded_pandas

__all__ = ["SklearnFlavor", "import_skops", "is_safe_type"]

_SAFE_PREFIXES = ("sklearn.", "numpy.", "scipy.")
_SAFE_NAMES = frozenset(
    {
        "builtins.bytearray",
        "builtins.bytes",
        "builtins.complex",
        "builtins.frozenset",
        "builtins.slice",
        "collections.Counter",
        "collections.OrderedDict",
        "collections.defaultdict",
        "collections.deque",
    }
)
#: array-api shims whose import pulls a heavy library in, by the library's name.
_SHIMS = {
    "torch": "sklearn.externals.array_api_compat.torch",
    "cupy": "sklearn.externals.array_api_compat.cupy",
}


def _loaded_estimators() -> list[tuple[str, type]]:
    """``sklearn.utils.all_estimators()`` restricted to the modules already imported:
    the same kind of list without importing every module of scikit-learn."""
    from sklearn.base import BaseEstimator

    found: dict[str, type] = {}
    for name, module in list(sys.modules.items()):
        if not name.startswith("sklearn.") or module is None or ".tests" in name:
            continue
        for attr, obj in list(vars(module).items()):
            if (
                isinstance(obj, type)
                and not attr.startswith("_")
                and issubclass(obj, BaseEstimator)
                and obj.__module__.startswith("sklearn.")
            ):
                found[f"{obj.__module__}.{obj.__qualname__}"] = obj
    return sorted((t.__name__, t) for t in found.values())


def import_skops() -> Any:
    """``skops.io``, imported fast (see the module docstring).

    Importing ``skops.io`` lists every scikit-learn estimator for its default
    trusted types, which imports every module of scikit-learn (1.3-3 s here, the
    bulk of a first ``log_model``) and, through scikit-learn's array-API shims,
    torch. Shipyard passes its own trusted list on every load (:func:`is_safe_type`),
    so while skops is imported the listing is limited to the estimator modules
    already loaded and the shims are hidden. A caller that later uses
    ``skops.io.load`` with skops' defaults directly in the same process gets a
    shorter default list (stricter, never looser).
    """
    loaded = sys.modules.get("skops.io")
    if loaded is not None:
        return loaded
    hidden = [
        shim for lib, shim in _SHIMS.items() if lib not in sys.modules and shim not in sys.modules
    ]
    for shim in hidden:
        sys.modules[shim] = None  # type: ignore[assignment]  # makes its import fail fast
    patched: list[Any] = []
    try:
        import sklearn.utils
        import sklearn.utils.discovery

        original = sklearn.utils.discovery.all_estimators
        patched = [sklearn.utils, sklearn.utils.discovery]
        for module in patched:
            module.all_estimators = _loaded_estimators
        import skops.io
    except ImportError as e:
        raise missing_library("scikit-learn", "skops", "sklearn") from e
    finally:
        for module in patched:
            module.all_estimators = original
        for shim in hidden:
            if shim in sys.modules and sys.modules[shim] is None:
                del sys.modules[shim]
    return skops.io


def is_safe_type(name: str) -> bool:
    """Whether skops may rebuild objects of this type without the user's say-so."""
    if name in _SAFE_NAMES:
        return True
    if not name.startswith(_SAFE_PREFIXES):
        return False
    module_name, _, attr = name.rpartition(".")
    try:
        obj = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError):
        return False
    return isinstance(obj, type)


def _qualified(obj: object) -> str:
    cls = type(obj)
    return f"{cls.__module__}.{cls.__qualname__}"


def _adapt(x: Any, feature_names: list[str] | None) -> Any:
    """Give the estimator what it was fitted on: a DataFrame when it knows feature
    names (else sklearn warns or selects the wrong columns), an array when not."""
    pd = loaded_pandas()
    if isinstance(x, Mapping):
        if len(x) == 1:
            x = next(iter(x.values()))
        elif pd is not None:
            x = pd.DataFrame({k: np.asarray(v).ravel() for k, v in x.items()})
    if pd is not None and isinstance(x, pd.DataFrame):
        return x if feature_names else x.to_numpy()
    if (
        feature_names
        and isinstance(x, np.ndarray)
        and x.ndim == 2
        and x.shape[1] == len(feature_names)
    ):
        import pandas

        return pandas.DataFrame(x, columns=feature_names)
    return x


class SklearnFlavor(Flavor):
    name = "sklearn"

    def detect(self, model: object) -> bool:
        base = sys.modules.get("sklearn.base")
        return base is not None and isinstance(model, base.BaseEstimator)

    def save(
        self, model: Any, directory: Path, ctx: SaveContext
    ) -> tuple[dict[str, Any], list[str]]:
        sio = import_skops()
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / "model.skops"
        sio.dump(model, path)
        names = getattr(model, "feature_names_in_", None)
        config = {
            "file": path.name,
            "class": _qualified(model),
            "untrusted_types": list(sio.get_untrusted_types(file=path)),
            "method": "predict" if hasattr(model, "predict") else "transform",
            "predict_proba": hasattr(model, "predict_proba"),
            "feature_names": None if names is None else [str(n) for n in names],
        }
        dists = ["scikit-learn", "skops", "numpy", "scipy"]
        if names is not None:
            dists.append("pandas")
        return config, dists

    def wrap(self, model: Any, config: Mapping[str, Any]) -> Predictor:
        names = config.get("feature_names")
        method = getattr(model, config.get("method", "predict"))
        proba = getattr(model, "predict_proba", None) if config.get("predict_proba") else None
        return Predictor(
            raw=model,
            predict=lambda x: method(_adapt(x, names)),
            predict_proba=None if proba is None else (lambda x: proba(_adapt(x, names))),
        )

    def load(self, directory: Path, config: Mapping[str, Any], ctx: LoadContext) -> Predictor:
        sio = import_skops()
        path = directory / str(config["file"])
        untrusted = list(sio.get_untrusted_types(file=path))
        refused = [t for t in untrusted if t not in ctx.trust_types and not is_safe_type(t)]
        if refused:
            raise UntrustedModelError(
                f"model package {ctx.where} holds objects of types outside the safe list "
                f"(scikit-learn, NumPy and SciPy classes): {refused}. Loading them runs their "
                f"code; if you trust them, load with trust_types={refused!r}"
            )
        model = sio.load(path, trusted=untrusted)
        return self.wrap(model, config)
