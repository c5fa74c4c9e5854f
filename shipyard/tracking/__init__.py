"""Experiment tracking: runs, params, metrics, tags, artifacts."""

from shipyard.tracking._client import TrackingClient
from shipyard.tracking._fluent import (
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
from shipyard.tracking._run import ActiveRun

__all__ = [
    "ActiveRun",
    "TrackingClient",
    "active_run",
    "end_run",
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
]
