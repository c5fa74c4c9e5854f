"""The inference server: ``shipyard serve models:/NAME@ALIAS``.

Serves registered model versions over HTTP with the Open Inference Protocol
v2 (what KServe and Triton speak; ``tritonclient`` works against it) and
MLflow's ``/invocations`` payloads, so existing clients can switch:

    shipyard serve models:/rides-pricing@production --port 8080
    curl -s localhost:8080/invocations -H 'content-type: application/json' \\
        -d '{"dataframe_records": [{"distance_km": 3.2, "hour": 18}]}'

What it does besides answering (each in its module):

* runs the package's preprocessing with the model -- on ONNX Runtime when the
  version has an ONNX export, the native flavor otherwise -- after replaying
  its golden examples; checks every request against the signature
  (:mod:`._model`, :mod:`._codec`);
* swaps versions live when the alias moves in the registry (:mod:`._model`);
* micro-batches concurrent requests when configured (:mod:`._batch`);
* publishes Prometheus metrics and input drift against the training profile
  (:mod:`._metrics`), and logs sampled predictions for ``shipyard monitor``.

The app is raw ASGI on uvicorn (:mod:`._app`, :mod:`._server`); several models
come from a YAML config (:mod:`._config`).
"""

from __future__ import annotations

from shipyard.serve._config import (
    BatchingConfig,
    ModelConfig,
    ServeConfig,
    load_config,
    parse_config,
)

__all__ = [
    "BatchingConfig",
    "ModelConfig",
    "ServeApp",
    "ServeConfig",
    "load_config",
    "parse_config",
    "serve",
]


def __getattr__(name: str) -> object:
    # the app and the runner import orjson, prometheus_client and the model layer
    if name == "ServeApp":
        from shipyard.serve._app import ServeApp

        return ServeApp
    if name == "serve":
        from shipyard.serve._server import serve

        return serve
    raise AttributeError(name)
