"""Model packages: a model with its preprocessing, signature, golden examples,
requirements and lineage, stored content-addressed and loaded safely.

    import shipyard

    with shipyard.start_run(experiment="rides-pricing"):
        ...
        info = shipyard.log_model(pipeline, "model", input_example=X[:5],
                                  contract={"latency_p99_ms": 100})

    model = shipyard.load_model(info.uri)          # 'runs:/<run>/model'
    model.predict(frame)                           # raw DataFrame, dict, NumPy...

Flavors: scikit-learn (skops, trusted types only), XGBoost (native UBJSON),
PyTorch (safetensors + factory, and a code-free ``torch.export`` program),
ONNX (onnxruntime) and Python functions (by importable reference, or by pickle
only when both the writer and the reader opt in). The package layout is in
:mod:`shipyard.models._package`; each flavor's module says what it stores.

Module functions use one :class:`ModelClient` built from the environment (the
same store and blob store as tracking).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping, Sequence
from typing import Any

from shipyard.models._client import ModelClient, ModelInfo
from shipyard.models._contract import Contract, MetricThreshold
from shipyard.models._flavors import FLAVOR_NAMES
from shipyard.models._loaded import LoadedModel
from shipyard.models._profile import (
    PSI_MODERATE,
    PSI_SIGNIFICANT,
    FeatureProfile,
    Profile,
    bin_counts,
    bucket_indices,
    drift_status,
    feature_columns,
    output_columns,
    profile_of,
    psi,
)
from shipyard.models._resolve import resolve_models_uri
from shipyard.models._signature import (
    ColSpec,
    ColumnMatrix,
    Schema,
    Signature,
    TensorSpec,
    enforce_arrays,
    infer_signature,
)

__all__ = [
    "FLAVOR_NAMES",
    "PSI_MODERATE",
    "PSI_SIGNIFICANT",
    "ColSpec",
    "ColumnMatrix",
    "Contract",
    "FeatureProfile",
    "LoadedModel",
    "MetricThreshold",
    "ModelClient",
    "ModelInfo",
    "Profile",
    "Schema",
    "Signature",
    "TensorSpec",
    "bin_counts",
    "bucket_indices",
    "client",
    "drift_status",
    "enforce_arrays",
    "feature_columns",
    "infer_signature",
    "load_model",
    "load_package",
    "log_model",
    "output_columns",
    "profile_of",
    "psi",
    "resolve_models_uri",
    "save_package",
]

_lock = threading.Lock()
_client: ModelClient | None = None
_client_key: tuple[str, str] | None = None


def client() -> ModelClient:
    """The client the module functions use (rebuilt if the tracking URI or the
    blob store changed)."""
    global _client, _client_key
    from shipyard import context
    from shipyard.config import settings

    with _lock:
        key = (context.tracking_uri(), settings().blob_uri)
        if _client is None or _client_key != key:
            _client, _client_key = ModelClient(*key), key
        return _client


def log_model(
    model: Any,
    name: str,
    *,
    signature: Signature | Mapping[str, Any] | None = None,
    input_example: Any = None,
    profile_data: Any = None,
    requirements: Sequence[str] | str | os.PathLike[str] | None = None,
    contract: Mapping[str, Any] | Contract | None = None,
    flavor: str | None = None,
    run_id: str | None = None,
    allow_pickle: bool = False,
    tolerance: Mapping[str, float] | None = None,
    verify: bool = True,
    **options: Any,
) -> ModelInfo:
    """Store ``model`` as a package, linked to the active run as artifact ``name``.

    Args:
        model: a fitted scikit-learn estimator or Pipeline, an XGBoost Booster or
            sklearn wrapper, a ``torch.nn.Module``, an ``onnx.ModelProto`` or a
            path to a ``.onnx`` file, or any object with ``predict`` (see
            ``python_model`` and ``allow_pickle``); None with ``python_model``.
        name: the artifact path (``"model"`` -> ``runs:/<run>/model``).
        signature: input/output schemas; inferred from ``input_example`` (and
            the model's output on it) when not given.
        input_example: raw input (DataFrame, dict of arrays, NumPy); its first
            100 rows become golden examples replayed on every load.
        profile_data: raw training input (same forms as ``input_example``) whose
            distribution, and the model's predictions on it, are stored in the
            package as its training profile, the baseline of drift monitoring
            (``shipyard.models.profile_of``). At most 100,000 rows are read (a
            seeded sample); without it the input example is profiled.
        requirements: extra requirement specifiers or a requirements file; the
            flavor's own libraries are pinned to the installed versions.
        contract: the production contract (:class:`Contract` keys).
        flavor: force a flavor (``sklearn``, ``xgboost``, ``torch``, ``onnx``,
            ``pyfunc``) instead of detecting it from the type.
        run_id: log to this run instead of the active one.
        allow_pickle: let the pyfunc flavor pickle an object (loading it will
            need ``allow_pickle=True`` too).
        tolerance: ``{"rtol": ..., "atol": ...}`` for float golden outputs
            (default by precision, see :mod:`shipyard.models._examples`).
        verify: load the package back once and replay the examples before
            storing it (default; a few ms for a small pipeline).
        **options: flavor options: torch ``factory``, ``hparams``, ``export``;
            pyfunc ``python_model``, ``artifacts``.

    The lineage copies the run's metrics and code version as the store has
    them: ``shipyard.log_model`` first flushes the active run's buffered
    metrics and waits for its code capture; this function does not (it cannot
    reach the tracking buffers), so call ``shipyard.flush()`` first if you use
    it directly right after logging metrics.

    Returns:
        ModelInfo with the ``runs:/`` URI, digest, flavor, signature,
        requirements and size.

    Raises:
        StateError: there is no active run and no ``run_id``.
        InvalidArgumentError: the model, example, contract or an option is not
            usable; the message says which and what is expected.
        ModelIntegrityError: the saved package does not reproduce the model.
    """
    return client().log_model(
        model,
        name,
        signature=signature,
        input_example=input_example,
        profile_data=profile_data,
        requirements=requirements,
        contract=contract,
        flavor=flavor,
        run_id=run_id,
        allow_pickle=allow_pickle,
        tolerance=tolerance,
        verify=verify,
        **options,
    )


def load_model(
    uri: str | os.PathLike[str],
    *,
    allow_pickle: bool = False,
    trust_types: Sequence[str] = (),
    device: str = "cpu",
    code_free: bool | None = None,
    threads: int | None = None,
    verify_examples: bool = True,
) -> LoadedModel:
    """Load a model package; ``.predict(raw_input)`` applies its preprocessing.

    Args:
        uri: ``runs:/<run-id>/<name>``, ``models:/<name>/<version>``,
            ``models:/<name>@<alias>``, a package digest, or a local folder.
        allow_pickle: allow unpickling (pyfunc packages logged with pickle; torch
            programs holding pickled payloads). Only for packages you trust.
        trust_types: scikit-learn packages: types outside the safe list that you
            trust (the error listing them tells you what to pass).
        device: ``"cpu"`` or ``"cuda"`` (torch and ONNX).
        code_free: torch: True loads the exported program without importing the
            factory, False requires the factory, None (default) prefers the
            factory and falls back to the program when it cannot be imported.
        threads: ONNX Runtime's intra-op threads, with spinning off (for servers,
            whose own threads share the cores); None keeps its default.
        verify_examples: replay the golden examples (default). Pass False where
            load latency matters more; call ``verify_examples()`` later.

    Raises:
        NotFoundError: no such run, model or package.
        ModelIntegrityError: a file does not match its digest (tampered or
            corrupted), or the model does not reproduce its golden examples.
        UntrustedModelError: loading would run code you have not opted in to.
    """
    return client().load_model(
        uri,
        allow_pickle=allow_pickle,
        trust_types=trust_types,
        device=device,
        code_free=code_free,
        threads=threads,
        verify_examples=verify_examples,
    )


def save_package(model: Any, path: str | os.PathLike[str], **kwargs: Any) -> dict[str, Any]:
    """Write a package to a new folder without a run (no lineage); return its
    manifest. Takes :func:`log_model`'s keyword arguments except ``run_id``."""
    return ModelClient.save_package(model, path, **kwargs)


def load_package(path_or_digest: str | os.PathLike[str], **kwargs: Any) -> LoadedModel:
    """Load a package from a local folder or from the blob store by digest. Takes
    :func:`load_model`'s keyword arguments. A folder is read as it is (its
    files are not checked against a digest: it is yours); a digest is verified."""
    return client().load_model(path_or_digest, **kwargs)
