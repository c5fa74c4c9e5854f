"""Checkpoint state as files, without pickle.

A state is a nested structure of dicts, lists, tuples, numbers, strings, bools,
None, bytes, NumPy arrays and torch tensors -- what ``model.state_dict()``,
``optimizer.state_dict()``, RNG states and a trainer's counters are made of.
It is written as:

* ``state.json``: the structure, with every array, tensor and bytes value
  replaced by a reference (``{"$t": "3"}``); dicts with non-string keys (an
  optimizer's ``{0: {...}}``) and tuples keep their type;
* ``tensors.safetensors`` (torch tensors) and ``arrays.safetensors`` (NumPy
  arrays), each tensor under its reference;
* ``bytes/<n>``: raw bytes values (an XGBoost model's ``save_raw()``).

Loading parses JSON and safetensors only: nothing in a checkpoint can run code,
which is stronger than ``torch.load(weights_only=True)`` and works without
torch installed (a Core API loop over scikit-learn or XGBoost). Anything else
in a state is refused when saving, with the path of the offending value.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from shipyard.errors import InvalidArgumentError, StoreError

__all__ = ["STATE_FILES", "read_state", "write_state"]

STATE_FILES = ("state.json", "tensors.safetensors", "arrays.safetensors")

_TENSOR, _ARRAY, _BYTES, _TUPLE, _DICT, _FLOAT = "$t", "$a", "$b", "$tuple", "$dict", "$f"


class _Writer:
    def __init__(self) -> None:
        self.tensors: dict[str, Any] = {}
        self.arrays: dict[str, Any] = {}
        self.blobs: list[bytes] = []

    def encode(self, value: Any, path: str) -> Any:
        if value is None or isinstance(value, (bool, int, str)):
            return value
        if isinstance(value, float):
            # JSON has no NaN or infinities; keep them exact through repr
            return value if value == value and abs(value) != float("inf") else {_FLOAT: repr(value)}
        if isinstance(value, (bytes, bytearray, memoryview)):
            self.blobs.append(bytes(value))
            return {_BYTES: str(len(self.blobs) - 1)}
        if isinstance(value, Mapping):
            if all(isinstance(k, str) and not k.startswith("$") for k in value):
                return {k: self.encode(v, f"{path}.{k}") for k, v in value.items()}
            items = []
            for k, v in value.items():
                if not isinstance(k, (str, int, bool)) and k is not None:
                    raise InvalidArgumentError(
                        f"checkpoint state {path}: dict keys must be strings or ints, got "
                        f"{type(k).__name__} {k!r}"
                    )
                items.append([k, self.encode(v, f"{path}[{k!r}]")])
            return {_DICT: items}
        if isinstance(value, (list, tuple)):
            out = [self.encode(v, f"{path}[{i}]") for i, v in enumerate(value)]
            return {_TUPLE: out} if isinstance(value, tuple) else out
        kind = type(value).__module__.split(".")[0]
        if kind == "torch" and type(value).__name__ in ("Tensor", "Parameter"):
            ref = str(len(self.tensors))
            # safetensors wants dense, contiguous, unshared CPU tensors
            self.tensors[ref] = value.detach().to("cpu").contiguous().clone()
            return {_TENSOR: ref}
        if kind == "numpy":
            import numpy as np

            if isinstance(value, np.ndarray):
                if value.dtype == object:
                    raise InvalidArgumentError(
                        f"checkpoint state {path}: object arrays cannot be stored without "
                        "pickle; convert to a numeric array"
                    )
                ref = str(len(self.arrays))
                self.arrays[ref] = np.ascontiguousarray(value)
                return {_ARRAY: ref}
            if isinstance(value, np.generic):
                return self.encode(value.item(), path)
        raise InvalidArgumentError(
            f"checkpoint state {path}: cannot store {type(value).__module__}."
            f"{type(value).__name__} without pickle; expected dicts, lists, numbers, "
            "strings, bytes, NumPy arrays or torch tensors (store an object's state_dict())"
        )


def write_state(state: Mapping[str, Any], directory: Path) -> list[str]:
    """Write ``state`` into ``directory``; returns the file names written."""
    if not isinstance(state, Mapping):
        raise InvalidArgumentError(
            f"checkpoint state must be a mapping (a dict of what to save), got "
            f"{type(state).__name__}"
        )
    w = _Writer()
    tree = w.encode(state, "state")
    names = ["state.json"]
    (directory / "state.json").write_text(json.dumps(tree, separators=(",", ":")))
    if w.tensors:
        from safetensors.torch import save_file as save_torch

        save_torch(w.tensors, str(directory / "tensors.safetensors"))
        names.append("tensors.safetensors")
    if w.arrays:
        from safetensors.numpy import save_file as save_numpy

        save_numpy(w.arrays, str(directory / "arrays.safetensors"))
        names.append("arrays.safetensors")
    if w.blobs:
        (directory / "bytes").mkdir()
        for i, data in enumerate(w.blobs):
            (directory / "bytes" / str(i)).write_bytes(data)
            names.append(f"bytes/{i}")
    return names


def read_state(directory: Path, *, map_location: str | None = None) -> dict[str, Any]:
    """Read a state written by :func:`write_state` (tensors to ``map_location``,
    default CPU)."""
    try:
        tree = json.loads((directory / "state.json").read_text())
    except (OSError, ValueError) as e:
        raise StoreError(f"checkpoint state in {directory} is unreadable: {e}") from e
    tensors: dict[str, Any] = {}
    arrays: dict[str, Any] = {}
    if (directory / "tensors.safetensors").exists():
        from safetensors.torch import load_file as load_torch

        tensors = load_torch(str(directory / "tensors.safetensors"), device=map_location or "cpu")
    if (directory / "arrays.safetensors").exists():
        from safetensors.numpy import load_file as load_numpy

        arrays = load_numpy(str(directory / "arrays.safetensors"))

    def decode(node: Any) -> Any:
        if isinstance(node, list):
            return [decode(v) for v in node]
        if not isinstance(node, dict):
            return node
        if len(node) == 1:
            ((key, ref),) = node.items()
            if key == _TENSOR:
                return tensors[ref]
            if key == _ARRAY:
                return arrays[ref]
            if key == _BYTES:
                return (directory / "bytes" / ref).read_bytes()
            if key == _TUPLE:
                return tuple(decode(v) for v in ref)
            if key == _DICT:
                return {k: decode(v) for k, v in ref}
            if key == _FLOAT:
                return float(ref)
        return {k: decode(v) for k, v in node.items()}

    try:
        out = decode(tree)
    except (KeyError, OSError, TypeError, ValueError) as e:
        raise StoreError(
            f"checkpoint state in {directory} refers to data that is missing: {e}"
        ) from e
    if not isinstance(out, dict):
        raise StoreError(f"checkpoint state in {directory} is not a mapping")
    return out
