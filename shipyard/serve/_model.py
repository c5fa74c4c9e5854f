"""A served model: the version it answers with, and the hot swap to the next.

A :class:`ServedModel` holds one :class:`Version` at a time behind a plain
attribute. A request reads that attribute once and keeps the object to the
end, so a swap -- one assignment, atomic in Python -- never changes the model
under a request in flight: those finish on the old version, new ones get the
new. The old version is dropped when its last request lets go of it.

Loading a version (at start, or after its alias moved) happens in a
background thread: resolve the URI in the registry, pick the ONNX export when
the version has one (unless ``native``), load the package -- its files
checked against their digests, its golden examples replayed -- and only then
swap. A version that fails any step is logged and counted
(``shipyard_model_load_failures_total``) and the previous one keeps serving;
at start (the server opens its port once every model's first load has been
tried), a model that failed stays not ready -- ``/v2/health/ready`` answers 503
-- until a version loads.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from shipyard.errors import (
    CorruptBlobError,
    InvalidArgumentError,
    ModelIntegrityError,
    ShipyardError,
    UntrustedModelError,
)
from shipyard.models import LoadedModel, enforce_arrays, load_package
from shipyard.serve._batch import Batcher
from shipyard.serve._codec import oip_datatype
from shipyard.serve._config import ModelConfig
from shipyard.serve._metrics import ServerMetrics
from shipyard.uris import parse_models_uri

__all__ = ["ServedModel", "Version"]

log = logging.getLogger("shipyard.serve")
#: Load failures that the same version will fail again: not retried until the alias
#: moves (others -- the store or a disk briefly away -- are retried at the next poll).
_FOR_GOOD = (ModelIntegrityError, UntrustedModelError, InvalidArgumentError, CorruptBlobError)
Arrays = dict[str, np.ndarray[Any, Any]]
Inputs = Mapping[str, np.ndarray[Any, Any]]


@dataclass
class Version:
    """One loaded model version, ready to answer."""

    number: int
    model: LoadedModel
    how: str
    kind: str
    names: list[str]
    metadata: dict[str, Any]
    drift: Any = None
    batcher: Batcher | None = None
    rows_counter: Any = None
    label: str = field(init=False)
    #: every input is a column of one numeric dtype: tables travel as one matrix
    matrix: bool = field(init=False)

    def __post_init__(self) -> None:
        self.label = str(self.number)
        sig = self.model.signature
        uniform = None if sig is None else sig.inputs.uniform_dtype
        self.matrix = self.kind == "dataframe" and uniform not in (None, "string", "datetime64")

    def check(self, arrays: Mapping[str, np.ndarray[Any, Any]]) -> Inputs:
        """The inputs checked and cast per the signature (InvalidArgumentError if not)."""
        sig = self.model.signature
        if sig is None:
            return dict(arrays)
        return enforce_arrays(sig.inputs, arrays)

    def predict(self, arrays: Inputs) -> Arrays:
        return self.model.predict_arrays(arrays)


def _threads() -> int:
    """The cores this process may use, shared among the server's workers."""
    import os

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    workers = int(os.environ.get("SHIPYARD_SERVE_WORKERS", "1"))
    return max(1, (cores or 1) // max(1, workers))


def rows_of(arrays: Mapping[str, np.ndarray[Any, Any]]) -> int:
    for arr in arrays.values():
        return int(arr.shape[0]) if arr.ndim else 1
    return 0


def _tensor_meta(spec: Any, kind: str) -> dict[str, Any]:
    if kind == "dataframe":
        return {"name": spec.name, "datatype": oip_datatype(spec.dtype), "shape": [-1]}
    return {
        "name": spec.name or "input",
        "datatype": oip_datatype(spec.dtype),
        "shape": list(spec.shape),
    }


def metadata_of(name: str, number: int, model: LoadedModel, how: str, uri: str) -> dict[str, Any]:
    """The OIP v2 model metadata document."""
    sig = model.signature
    inputs = [] if sig is None else [_tensor_meta(s, sig.inputs.kind) for s in sig.inputs.specs]
    outputs = []
    if sig is not None and sig.outputs is not None:
        outputs = [_tensor_meta(s, sig.outputs.kind) for s in sig.outputs.specs]
        if sig.outputs.kind == "ndarray":
            outputs[0]["name"] = "output"
    return {
        "name": name,
        "versions": [str(number)],
        "platform": "onnxruntime_onnx" if model.flavor == "onnx" else f"shipyard_{model.flavor}",
        "inputs": inputs,
        "outputs": outputs,
        "parameters": {"shipyard": {"uri": uri, "runtime": how}},
    }


class ServedModel:
    """One model the server answers for, under ``name`` (URL path segment)."""

    def __init__(
        self,
        config: ModelConfig,
        metrics: ServerMetrics,
        *,
        registry: Any = None,
        tracking: Any = None,
    ) -> None:
        from shipyard import registry as registry_module

        self.config = config
        self.uri = config.uri
        self.ref = parse_models_uri(config.uri, bare=True)
        self.name = config.name or self.ref.name
        self.metrics = metrics
        self.registry = registry or registry_module.client()
        self._tracking = tracking
        self.current: Version | None = None
        self.error: str | None = None
        self.log: Any = None
        self._lock = threading.Lock()
        self._loading: int | None = None

    @property
    def ready(self) -> bool:
        return self.current is not None

    # -- loading ------------------------------------------------------------------

    def stop(self) -> None:
        current = self.current
        if current is not None and current.batcher is not None:
            current.batcher.close()
        if self.log is not None:
            self.log.close()

    def refresh(self) -> bool:
        """Load the version the URI names now, if it is not the one serving; True if
        a new version was swapped in."""
        with self._lock:
            try:
                mv = self.registry.resolve(self.uri)
            except Exception as e:  # the store is down or the alias was deleted
                self._fail(None, f"cannot resolve {self.uri}: {e}")
                return False
            if self.current is not None and self.current.number == mv.version:
                return False
            if self._loading == mv.version:
                return False  # this version failed before; wait for the alias to move
            self._loading = mv.version
            started = time.perf_counter()
            try:
                version = self._load(mv)
            except Exception as e:
                if not isinstance(e, _FOR_GOOD):
                    self._loading = None  # perhaps transient (the store, a disk): retry
                self._fail(mv.version, f"cannot load {self.name} version {mv.version}: {e}")
                return False
            old = self.current
            self.current = version
            self._loading = None
            self.error = None
            m = self.metrics
            m.loaded_version.labels(self.name).set(mv.version)
            m.ready.labels(self.name).set(1)
            if old is not None:
                m.swaps.labels(self.name).inc()
                log.info(
                    "%s: swapped version %s -> %s (%s, loaded in %.2fs)",
                    self.name,
                    old.number,
                    mv.version,
                    version.how,
                    time.perf_counter() - started,
                )
                # the old version's batcher is not closed: requests that already hold
                # the old version may still submit; its thread ends with the object
            else:
                log.info(
                    "%s: serving version %s (%s, loaded in %.2fs)",
                    self.name,
                    mv.version,
                    version.how,
                    time.perf_counter() - started,
                )
            return True

    def _fail(self, version: int | None, message: str) -> None:
        self.error = message
        self.metrics.load_failures.labels(self.name, str(version or "")).inc()
        if self.current is None:
            self.metrics.ready.labels(self.name).set(0)
            log.error("%s: not ready: %s", self.name, message)
        else:
            log.error("%s: %s; version %s keeps serving", self.name, message, self.current.number)

    def _load(self, mv: Any) -> Version:
        cfg = self.config
        digest, how = mv.package_digest, "native"
        if not cfg.native:
            exports = {
                e.format: e for e in self.registry.store.list_model_exports(mv.model_id, mv.version)
            }
            if "onnx" in exports:
                digest, how = exports["onnx"].package_digest, "onnx export"
        model = load_package(
            digest, device=cfg.device, verify_examples=True, threads=cfg.threads or _threads()
        )
        how = (
            f"{how} ({model.flavor} on {cfg.device})"
            if how == "native"
            else f"{how} on onnxruntime ({cfg.device})"
        )
        sig = model.signature
        version = Version(
            number=mv.version,
            model=model,
            how=how,
            kind="ndarray" if sig is None else sig.inputs.kind,
            names=[] if sig is None else sig.inputs.names,
            metadata=metadata_of(
                self.name, mv.version, model, how, f"models:/{self.ref.name}/{mv.version}"
            ),
        )
        version.drift = self._drift(mv, model)
        version.rows_counter = self.metrics.rows.labels(self.name, version.label)
        if cfg.batching is not None:
            name = self.name
            version.batcher = Batcher(
                version.predict,
                max_batch_size=cfg.batching.max_batch_size,
                max_wait_s=cfg.batching.max_wait_ms / 1000,
                on_batch=lambda n: self.metrics.batch_size.labels(name).observe(n),
            )
        if cfg.log_sample_rate > 0 and self.log is None:
            self.log = self._prediction_log()
        return version

    def _drift(self, mv: Any, model: LoadedModel) -> Any:
        """A drift window against the training profile of the version's own package
        (an ONNX export is a package of its own, profiled only on its examples)."""
        if self.config.drift_window <= 0:
            return None
        from shipyard.models import profile_of
        from shipyard.monitor import DriftWindow

        manifest = model.manifest
        if mv.package_digest != model.digest:
            manifest = self.registry.read_manifest(mv.package_digest)
        profile = profile_of(manifest)
        if profile is None:
            return None
        return DriftWindow(profile, window_rows=self.config.drift_window)

    def _prediction_log(self) -> Any:
        from shipyard.monitor import PredictionLog
        from shipyard.tracking import TrackingClient

        tracking = self._tracking or TrackingClient()
        return PredictionLog(
            tracking, self.ref.name, self.uri, sample_rate=self.config.log_sample_rate
        )

    # -- answering --------------------------------------------------------------------

    def observe(self, version: Version, inputs: Inputs, outputs: Arrays, rows: int) -> None:
        """Feed the drift window and the prediction log (both cheap appends)."""
        if version.drift is not None:
            version.drift.add(inputs)
            version.drift.add_outputs(outputs)
        if self.log is not None:
            self.log.record(version.number, inputs, outputs, rows)
        version.rows_counter.inc(rows)

    def drift_rows(self) -> list[tuple[str, str, str, str, float, int]]:
        version = self.current
        if version is None or version.drift is None:
            return []
        window = version.drift
        try:
            scores = window.scores()
            outs = window.output_scores()
        except ShipyardError as e:  # never break a scrape over drift
            log.error("%s: drift scores failed: %s", self.name, e)
            return []
        count = int(window.rows)
        rows = [(self.name, version.label, "input", k, v, count) for k, v in scores.items()]
        rows += [(self.name, version.label, "output", k, v, count) for k, v in outs.items()]
        return rows
