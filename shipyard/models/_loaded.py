"""``LoadedModel``: a package turned back into a function from raw input to
prediction, and :func:`open_package`, which builds one from a package folder.

Loading replays the golden examples by default (``verify_examples=True``):
a model that no longer predicts what it predicted when it was logged -- another
library version, a damaged or substituted file -- fails at load, in the
deploy step, instead of serving wrong answers. The replay costs one predict
on at most 100 rows; latency-sensitive callers that reload often may pass
``verify_examples=False`` and call :meth:`LoadedModel.verify_examples` when
convenient.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from shipyard.models._contract import Contract
from shipyard.models._examples import (
    compare,
    named_outputs,
    output_arrays,
    read_arrays,
    rebuild_input,
)
from shipyard.models._flavors import LoadContext, Predictor, get_flavor
from shipyard.models._package import read_manifest
from shipyard.models._signature import (
    ColumnMatrix,
    Schema,
    Signature,
    enforce,
    loaded_pandas,
)

__all__ = ["LoadedModel", "format_output", "open_package"]


def format_output(out: Any, schema: Schema | None) -> Any:
    """A model's raw output in the form its output schema promises: a DataFrame
    for columnar outputs, a dict for named tensors, else one NumPy array."""
    pd = loaded_pandas()
    if pd is not None and isinstance(out, pd.DataFrame):
        return out
    if schema is not None and schema.kind == "dataframe":
        import pandas

        names = schema.names
        if isinstance(out, Mapping):
            return pandas.DataFrame(dict(out))
        arr = np.asarray(out)
        if arr.ndim == 1:
            return pandas.DataFrame({names[0]: arr})
        return pandas.DataFrame(arr, columns=names)
    if isinstance(out, Mapping):
        return {str(k): np.asarray(v) for k, v in out.items()}
    if pd is not None and isinstance(out, pd.Series):
        return out.to_numpy()
    return np.asarray(out)


class LoadedModel:
    """A model package, ready to predict on raw input.

    Attributes:
        uri: where it was loaded from (``runs:/...``, ``models:/...``, a path).
        digest: the package digest (None when loaded from a local folder).
        flavor: ``sklearn``, ``xgboost``, ``torch``, ``onnx`` or ``pyfunc``.
        signature: input and output schemas (None if logged without one).
        manifest: the whole package manifest (lineage, requirements...).
        path: the local folder holding the package files.
        raw: the underlying model (a Pipeline, Booster, ``nn.Module``,
            ``InferenceSession`` or your object), e.g. to fine-tune.
    """

    def __init__(
        self,
        manifest: Mapping[str, Any],
        predictor: Predictor,
        path: Path,
        uri: str,
        digest: str | None = None,
    ) -> None:
        self.manifest = dict(manifest)
        self.uri = uri
        self.digest = digest
        self.path = path
        self.flavor = str(manifest["flavor"]["name"])
        sig = manifest.get("signature")
        self.signature = None if sig is None else Signature.from_dict(sig)
        self._predictor = predictor

    def __repr__(self) -> str:
        return f"LoadedModel(uri={self.uri!r}, flavor={self.flavor!r})"

    @property
    def raw(self) -> Any:
        return self._predictor.raw

    @property
    def requirements(self) -> list[str]:
        return list(self.manifest.get("requirements") or [])

    @property
    def lineage(self) -> dict[str, Any]:
        return dict(self.manifest.get("lineage") or {})

    @property
    def contract(self) -> Contract | None:
        doc = self.manifest.get("contract")
        return None if doc is None else Contract.from_dict(doc)

    def _inputs(self, inputs: Any) -> Any:
        return inputs if self.signature is None else enforce(self.signature.inputs, inputs)

    def predict(self, inputs: Any) -> Any:
        """Predict on raw input: a DataFrame, a dict of arrays (or of scalars, for
        one row), a list of row dicts, or a NumPy array / nested lists.

        Raises:
            InvalidArgumentError: the input does not match the signature (the
                message names the column or tensor, and what was expected).
        """
        out = self._predictor.predict(self._inputs(inputs))
        return format_output(out, None if self.signature is None else self.signature.outputs)

    def predict_arrays(
        self, arrays: Mapping[str, np.ndarray[Any, Any]]
    ) -> dict[str, np.ndarray[Any, Any]]:
        """Predict on inputs already checked by :func:`~shipyard.models._signature.
        enforce_arrays` (one array per column or tensor), and return the outputs as
        named arrays (``output`` for a single unnamed one). The serving fast path:
        no pandas unless the flavor itself needs a DataFrame (scikit-learn, pyfunc).
        """
        sig = self.signature
        x: Any = arrays
        if sig is None or sig.inputs.kind == "ndarray":
            x = next(iter(arrays.values())) if len(arrays) == 1 else dict(arrays)
        elif sig.inputs.kind == "dataframe" and self.flavor != "onnx":
            import pandas as pd

            if isinstance(arrays, ColumnMatrix):
                x = pd.DataFrame(arrays.matrix, columns=arrays.names, copy=False)
            else:
                x = pd.DataFrame(dict(arrays), copy=False)
        return output_arrays(self._predictor.predict(x))[0]

    @property
    def predict_proba(self) -> Any:
        """Class probabilities, for classifiers that have them (AttributeError
        otherwise, so ``hasattr(model, "predict_proba")`` tells)."""
        proba = self._predictor.predict_proba
        if proba is None:
            raise AttributeError(f"this {self.flavor} model has no predict_proba")

        def predict_proba(inputs: Any) -> Any:
            return np.asarray(proba(self._inputs(inputs)))

        return predict_proba

    def golden_input(self) -> Any:
        """The raw input example recorded at log time (each row is a golden example),
        rebuilt as the type it was logged as; None when the package has none."""
        note = self.manifest.get("examples")
        if not note:
            return None
        return rebuild_input(read_arrays(self.path / note["files"]["inputs"]), note["input"])

    def verify_examples(self) -> None:
        """Replay the golden examples recorded at log time.

        Raises:
            ModelIntegrityError: an output differs beyond its recorded tolerance;
                the message names the example, the output and the difference.
        """
        note = self.manifest.get("examples")
        if not note:
            return
        files = note["files"]
        raw = self.golden_input()
        expected = named_outputs(read_arrays(self.path / files["outputs"]), note["outputs"])
        actual, _ = output_arrays(self.predict(raw))
        compare(expected, actual, note.get("tolerance") or {}, f"model package {self.uri}")


def open_package(
    directory: Path,
    uri: str,
    *,
    digest: str | None = None,
    allow_pickle: bool = False,
    trust_types: tuple[str, ...] = (),
    device: str = "cpu",
    code_free: bool | None = None,
    threads: int | None = None,
    verify_examples: bool = True,
) -> LoadedModel:
    """Load the package in ``directory`` (files already verified by the caller)."""
    manifest = read_manifest(directory, uri)
    flavor = get_flavor(str(manifest["flavor"]["name"]))
    ctx = LoadContext(
        where=uri,
        allow_pickle=allow_pickle,
        trust_types=tuple(trust_types),
        device=device,
        code_free=code_free,
        threads=threads,
    )
    predictor = flavor.load(directory / "model", manifest["flavor"]["config"], ctx)
    loaded = LoadedModel(manifest, predictor, directory, uri, digest)
    if verify_examples:
        loaded.verify_examples()
    return loaded
