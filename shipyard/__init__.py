"""Shipyard: take machine-learning models from prototype to production.

``import shipyard`` stays light (no SQLAlchemy, NumPy, torch...): backends load
when first used.

    import shipyard

    with shipyard.start_run(experiment="rides-pricing") as run:
        shipyard.log_params({"alpha": 0.1})
        for epoch in range(10):
            shipyard.log_metric("val_rmse", rmse, step=epoch)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from shipyard import data, errors, types
from shipyard.errors import (
    ConflictError,
    CorruptBlobError,
    InvalidArgumentError,
    NotFoundError,
    ShipyardError,
    StateError,
    StoreError,
)
from shipyard.tracking import (
    ActiveRun,
    TrackingClient,
    active_run,
    end_run,
    flush,
    get_client,
    get_metric_history,
    get_run,
    get_tracking_uri,
    log_artifact,
    log_artifacts,
    log_metric,
    log_metrics,
    log_param,
    log_params,
    search_runs,
    set_experiment,
    set_tag,
    set_tags,
    set_tracking_uri,
    start_run,
)
from shipyard.types import RunStatus

if TYPE_CHECKING:
    from typing import Any

    from shipyard import export, models, registry, train
    from shipyard.models import load_model, log_model
    from shipyard.registry import register_model
    from shipyard.train import Trial

__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    """``log_model``, ``load_model``, ``register_model``, ``Trial`` and the
    ``models``, ``registry``, ``export`` and ``train`` packages load on first use,
    so ``import shipyard`` stays light."""
    if name in ("models", "registry", "export", "train"):
        import importlib

        module = importlib.import_module(f"shipyard.{name}")
        globals()[name] = module
        return module
    if name == "Trial":
        from shipyard.train import Trial

        globals()[name] = Trial
        return Trial
    if name == "register_model":
        from shipyard.registry import register_model

        globals()[name] = register_model
        return register_model
    if name == "load_model":
        from shipyard.models import load_model

        globals()[name] = load_model
        return load_model
    if name == "log_model":
        import functools

        from shipyard.models import log_model as _log_model

        @functools.wraps(_log_model)
        def log_model(*args: Any, **kwargs: Any) -> Any:
            # The package records the run's metrics and code version: first let
            # the buffered metrics reach the store and the code version be stored
            # (shipyard.models cannot reach into tracking; this facade can).
            # Bounded waits: a dead store must not hang log_model.
            run = active_run()
            if run is not None:
                run.flush(timeout=10.0)
                run.code_recorded.wait(timeout=10.0)  # not the environment: it comes later
            return _log_model(*args, **kwargs)

        globals()[name] = log_model
        return log_model
    raise AttributeError(f"module 'shipyard' has no attribute {name!r}")


__all__ = [
    "ActiveRun",
    "ConflictError",
    "CorruptBlobError",
    "InvalidArgumentError",
    "NotFoundError",
    "RunStatus",
    "ShipyardError",
    "StateError",
    "StoreError",
    "TrackingClient",
    "Trial",
    "__version__",
    "active_run",
    "data",
    "end_run",
    "errors",
    "export",
    "flush",
    "get_client",
    "get_metric_history",
    "get_run",
    "get_tracking_uri",
    "load_model",
    "log_artifact",
    "log_artifacts",
    "log_metric",
    "log_metrics",
    "log_model",
    "log_param",
    "log_params",
    "models",
    "register_model",
    "registry",
    "search_runs",
    "set_experiment",
    "set_tag",
    "set_tags",
    "set_tracking_uri",
    "start_run",
    "train",
    "types",
]
