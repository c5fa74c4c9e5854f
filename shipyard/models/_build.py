"""Writing a package: flavor files, signature, golden examples, the training
profile (:mod:`._profile`), requirements and the manifest, then loading it back
once to prove it reproduces the model.

That last step (``verify=True``, the default) loads the package from its
folder exactly as ``load_model`` will and replays the golden examples, so a
model that does not survive saving -- a factory that cannot be imported, a
lossy conversion, a type skops cannot rebuild -- fails when it is logged, with
the training run still at hand, rather than at deploy time. For a small
scikit-learn pipeline it costs a few milliseconds.
"""

from __future__ import annotations

import contextlib
import os
import platform
import time
from collections.abc import Mapping, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

from shipyard.errors import InvalidArgumentError, ModelIntegrityError
from shipyard.models._contract import Contract
from shipyard.models._examples import (
    default_tolerance,
    input_arrays,
    output_arrays,
    save_npz,
    write_arrays,
)
from shipyard.models._flavors import Flavor, LoadContext, SaveContext, select_flavor
from shipyard.models._loaded import format_output, open_package
from shipyard.models._package import FORMAT, write_manifest
from shipyard.models._profile import build_profile
from shipyard.models._requirements import merge_requirements, pinned
from shipyard.models._signature import (
    Signature,
    enforce,
    infer_schema,
    input_kind,
)
from shipyard.validation import describe

__all__ = ["MAX_EXAMPLES", "build_package"]

#: Golden examples kept from the input example (the signature sees all of it).
MAX_EXAMPLES = 100


def _shipyard_version() -> str:
    try:
        return metadata.version("shipyard")
    except metadata.PackageNotFoundError:
        return "unknown"


def _head(example: Any) -> Any:
    """The first MAX_EXAMPLES rows of an example, in its own type."""
    if hasattr(example, "iloc"):
        return example.iloc[:MAX_EXAMPLES]
    if isinstance(example, Mapping):
        return {
            k: v if isinstance(v, str) or not hasattr(v, "__getitem__") else v[:MAX_EXAMPLES]
            for k, v in example.items()
        }
    if isinstance(example, list | tuple):
        return example[:MAX_EXAMPLES]
    return example[:MAX_EXAMPLES] if getattr(example, "ndim", 0) else example


def _signature(value: Any) -> Signature | None:
    if value is None or isinstance(value, Signature):
        return value
    if isinstance(value, Mapping):
        return Signature.from_dict(value)
    raise InvalidArgumentError(
        f"invalid signature: expected a shipyard.models.Signature or a dict, got {describe(value)}"
    )


def _tolerance(
    arrays: Mapping[str, Any], override: Mapping[str, float] | None
) -> dict[str, dict[str, float] | None]:
    out = {}
    for name, arr in arrays.items():
        tol = default_tolerance(arr)
        if tol is not None and override is not None:
            unknown = set(override) - {"rtol", "atol"}
            if unknown:
                raise InvalidArgumentError(
                    f"invalid tolerance: expected keys 'rtol' and 'atol', got {sorted(override)}"
                )
            tol = {**tol, **{k: float(v) for k, v in override.items()}}
        out[name] = tol
    return out


def _flavor(model: Any, name: str | None, options: Mapping[str, Any]) -> Flavor:
    if model is None and "python_model" in options and name in (None, "pyfunc"):
        name = "pyfunc"
    elif model is None:
        raise InvalidArgumentError(
            "cannot log None: pass the model (or python_model='pkg.module:Class' for a "
            "Python-function model)"
        )
    flavor = select_flavor(model, name)
    unknown = sorted(set(options) - flavor.options)
    if unknown:
        raise InvalidArgumentError(
            f"unknown option(s) {unknown} for the {flavor.name} flavor: it accepts "
            f"{sorted(flavor.options) or 'none'} (plus log_model's own arguments)"
        )
    return flavor


def build_package(
    model: Any,
    directory: Path,
    *,
    flavor: str | None = None,
    signature: Signature | Mapping[str, Any] | None = None,
    input_example: Any = None,
    profile_data: Any = None,
    requirements: Sequence[str] | str | os.PathLike[str] | None = None,
    contract: Mapping[str, Any] | Contract | None = None,
    allow_pickle: bool = False,
    tolerance: Mapping[str, float] | None = None,
    lineage: Mapping[str, Any] | None = None,
    verify: bool = True,
    options: Mapping[str, Any] | None = None,
    where: str = "(being logged)",
) -> dict[str, Any]:
    """Write a package for ``model`` into the empty folder ``directory``; return
    its manifest. See :func:`shipyard.models.log_model` for the arguments."""
    options = dict(options or {})
    chosen = _flavor(model, flavor, options)
    checked_contract = None if contract is None else Contract.from_dict(contract)
    sig = _signature(signature)
    example = enforced = None
    if input_example is not None:
        inferred = infer_schema(input_example)
        if sig is None:
            sig = Signature(inferred)
        example = _head(input_example)
        enforced = enforce(sig.inputs, example)
    model_dir = directory / "model"
    save_ctx = SaveContext(example=enforced, options=options, allow_pickle=allow_pickle)
    config, dists = chosen.save(model, model_dir, save_ctx)
    if sig is None:
        sig = chosen.native_signature(config)
    examples = None
    predictors: list[Any] = []

    def predictor() -> Any:
        if not predictors:
            if model is not None:
                predictors.append(chosen.wrap(model, config))
            else:  # built from a reference: the loaded object is the model
                predictors.append(chosen.load(model_dir, config, LoadContext(where, allow_pickle)))
        return predictors[0]

    if enforced is not None and sig is not None:
        out = predictor().predict(enforced)
        if sig.outputs is None:
            # an output a schema cannot describe keeps no output schema; its arrays
            # are still recorded and compared
            with contextlib.suppress(InvalidArgumentError):
                sig = Signature(sig.inputs, infer_schema(out))
        out = format_output(out, sig.outputs)
        outputs, output_kind = output_arrays(out)
        (directory / "examples").mkdir(parents=True, exist_ok=True)
        stored, note = input_arrays(example, input_kind(example))
        save_npz(directory / "examples" / "inputs.npz", stored)
        examples = {
            "rows": len(next(iter(outputs.values()))) if outputs else 0,
            "input": note,
            "outputs": write_arrays(directory / "examples" / "outputs.npz", outputs),
            "output_kind": output_kind,
            "tolerance": _tolerance(outputs, tolerance),
            "files": {"inputs": "examples/inputs.npz", "outputs": "examples/outputs.npz"},
        }
        if sig.inputs.kind == "dataframe" or input_kind(example) == "dataframe":
            dists.append("pandas")
    profile = None
    data, source = profile_data, "profile_data"
    if data is None:
        data, source = input_example, "input_example"
    if data is not None:
        profiled = sig if sig is not None else Signature(infer_schema(data))

        def predict(batch: Any) -> dict[str, Any]:
            # named as LoadedModel.predict_arrays names them (what a server sees)
            return output_arrays(predictor().predict(batch))[0]

        try:
            profile = build_profile(data, profiled, source=source, predict=predict).to_dict()
        except InvalidArgumentError:
            if source == "profile_data":
                raise
            # an example whose rows past the golden ones do not fit the signature logged
            # before profiles existed: it keeps doing so, without a profile
            profile = None
    manifest = {
        "format": FORMAT,
        "flavor": {"name": chosen.name, "config": config},
        "signature": None if sig is None else sig.to_dict(),
        "examples": examples,
        "profile": profile,
        "requirements": merge_requirements(pinned(dict.fromkeys(dists)), requirements),
        "python": platform.python_version(),
        "pickle": chosen.uses_pickle(config),
        "contract": None if checked_contract is None else checked_contract.to_dict(),
        "lineage": dict(lineage or {}),
        "created_at": time.time(),
        "shipyard_version": _shipyard_version(),
    }
    write_manifest(directory, manifest)
    if verify:
        try:
            open_package(
                directory,
                where,
                allow_pickle=allow_pickle,
                trust_types=tuple(config.get("untrusted_types") or ()),
            )
        except ModelIntegrityError as e:
            raise ModelIntegrityError(
                f"cannot log the model: loaded back from its package, it does not predict what "
                f"the model in memory does, so it would not survive a deploy. {e}"
            ) from e
    return manifest
