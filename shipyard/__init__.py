"""Shipyard: take machine-learning models from prototype to production.

``import shipyard`` stays light (no SQLAlchemy, NumPy, torch...): backends load
when first used.

    import shipyard

    with shipyard.start_run(experiment="rides-pricing") as run:
        shipyard.log_params({"alpha": 0.1})
        for epoch in range(10):
            shipyard.log_metric("val_rmse", rmse, step=epoch)
"""

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

__version__ = "0.1.0"

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
    "__version__",
    "active_run",
    "data",
    "end_run",
    "errors",
    "flush",
    "get_client",
    "get_metric_history",
    "get_run",
    "get_tracking_uri",
    "log_artifact",
    "log_artifacts",
    "log_metric",
    "log_metrics",
    "log_param",
    "log_params",
    "search_runs",
    "set_experiment",
    "set_tag",
    "set_tags",
    "set_tracking_uri",
    "start_run",
    "types",
]
