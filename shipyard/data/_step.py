"""Cached preprocessing steps: run a function once per (code, inputs, params).

    @shipyard.data.step("rides-clean", inputs=["rides@latest"], params={"min_fare": 2.5})
    def clean(out_dir: Path, rides: Path, *, min_fare: float) -> None:
        ...  # write files into out_dir

    result = clean()                  # runs, or returns the cached output
    result.path, result.version, result.cached

The output is versioned as dataset ``<step name>``. The cache key hashes the
step name, the function's source (its bytecode when the source is not
available), the content digests of the input versions the refs resolve to now,
and the canonical JSON of the params. Only the decorated function's own code is
hashed: a change in a helper it calls does not invalidate the cache (bump a
param such as ``"v": 2`` for that).
"""

from __future__ import annotations

import ast
import functools
import inspect
import json
import shutil
import tempfile
import textwrap
import types
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shipyard import context
from shipyard.errors import InvalidArgumentError, NotFoundError
from shipyard.validation import check_name, describe

if TYPE_CHECKING:
    from shipyard.data._client import DataClient
    from shipyard.types import DatasetVersion

__all__ = ["Step", "StepResult", "code_fingerprint", "step", "step_key"]

STEP_KEY_FORMAT = "shipyard.step/1"
#: The role under which a step's inputs are recorded on the active run.
INPUT_ROLE = "step-input"

StepFn = Callable[..., None]


@dataclass(frozen=True, slots=True)
class StepResult:
    version: DatasetVersion  # the step's output, dataset ``<step name>``
    cached: bool  # True when the function did not run
    path: Path  # a read-only local copy of the output
    key: str  # the cache key


def code_fingerprint(fn: Callable[..., Any]) -> str:
    """The text that stands for ``fn``'s code in a cache key.

    The source without decorator lines (so the ``@step(...)`` arguments, hashed
    separately, do not count twice); if the source cannot be read (a REPL, a
    zip import), the bytecode, constants and names, recursively.
    """
    fn = inspect.unwrap(fn)
    try:
        source = textwrap.dedent(inspect.getsource(fn))
    except (OSError, TypeError):
        code = getattr(fn, "__code__", None)
        if not isinstance(code, types.CodeType):
            raise InvalidArgumentError(
                f"invalid step function: expected a Python function, got {describe(fn)}"
            ) from None
        return "bytecode:" + _code_text(code)
    try:
        node = ast.parse(source).body[0]
    except (SyntaxError, IndexError):  # a lambda in the middle of an expression
        return source
    if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.decorator_list:
        return "\n".join(source.splitlines()[node.lineno - 1 :])
    return source


def _code_text(code: types.CodeType) -> str:
    consts = [_const_text(c) for c in code.co_consts]
    return json.dumps([code.co_code.hex(), consts, list(code.co_names), list(code.co_varnames)])


def _const_text(const: object) -> str:
    if isinstance(const, types.CodeType):
        return _code_text(const)
    if isinstance(const, frozenset):  # repr order follows string hashing, random per process
        return repr(sorted(_const_text(c) for c in const))
    return repr(const)


def canonical_params(params: Mapping[str, Any]) -> str:
    """Params as canonical JSON (sorted keys, no spaces).

    Raises:
        InvalidArgumentError: a value is not JSON (str, number, bool, None, list, dict).
    """
    try:
        return json.dumps(
            dict(params), sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
        )
    except (TypeError, ValueError) as e:
        raise InvalidArgumentError(
            f"invalid step params: expected JSON values (str, number, bool, None, list, dict "
            f"with str keys), got {describe(dict(params))} ({e}); pass files as inputs"
        ) from e


def step_key(
    name: str,
    fn: Callable[..., Any],
    input_digests: Sequence[str] = (),
    params: Mapping[str, Any] | None = None,
) -> str:
    """The cache key of running step ``name`` as ``fn`` on inputs with these manifest
    digests (in order) and ``params``: a BLAKE3 hex digest."""
    from shipyard.blobs import hash_bytes

    doc = {
        "format": STEP_KEY_FORMAT,
        "name": name,
        "code": code_fingerprint(fn),
        "inputs": list(input_digests),
        "params": json.loads(canonical_params(params or {})),
    }
    return hash_bytes(json.dumps(doc, sort_keys=True, separators=(",", ":")).encode())


class Step:
    """A function wrapped by :func:`step`; calling it returns a :class:`StepResult`."""

    def __init__(
        self,
        fn: StepFn,
        name: str,
        inputs: Sequence[str],
        params: Mapping[str, Any] | None,
        client: DataClient | None,
    ) -> None:
        self.fn = fn
        self.name = name
        self.inputs = tuple(inputs)
        self.params = dict(params or {})
        self._client = client
        functools.update_wrapper(self, fn)

    @property
    def client(self) -> DataClient:
        if self._client is not None:
            return self._client
        from shipyard.data import client

        return client()

    def _resolve(self) -> list[DatasetVersion]:
        return [self.client.resolve(ref) for ref in self.inputs]

    def key(self, **params: Any) -> str:
        """The cache key a call with these params would use now."""
        versions = self._resolve()
        return step_key(self.name, self.fn, [v.digest for v in versions], self._merged(params))

    def _merged(self, params: Mapping[str, Any]) -> dict[str, Any]:
        return {**self.params, **params}

    def __call__(self, **params: Any) -> StepResult:
        """Return the cached output for the current inputs, code and params (call-time
        params override the decorator's), or run the function and version its output.

        Raises:
            NotFoundError: an input ref names no dataset version.
            Whatever the function raises: then no version and no cache entry are made.
        """
        client, merged = self.client, self._merged(params)
        versions = self._resolve()
        key = step_key(self.name, self.fn, [v.digest for v in versions], merged)
        run_id = context.active_run_id()
        if run_id is not None and versions:
            client.store.log_inputs(run_id, [(v.id, INPUT_ROLE) for v in versions])
        hit = self._cached(client, key)
        if hit is not None:
            return hit
        paths = [_local_path(client, v) for v in versions]
        scratch = client.home / "tmp"
        scratch.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=f"step-{key[:12]}-", dir=scratch))
        try:
            out_dir = work / "out"
            out_dir.mkdir()
            self.fn(out_dir, *paths, **merged)
            inputs_meta = [
                {"ref": ref, "version_id": v.id, "digest": v.digest}
                for ref, v in zip(self.inputs, versions, strict=True)
            ]
            added = client.add(
                out_dir,
                name=self.name,
                message=f"step {self.name}",
                run_id=run_id,
                metadata={"step": self.name, "key": key, "inputs": inputs_meta, "params": merged},
                source="",  # a scratch folder: nothing for `data status` to watch
            )
        finally:
            shutil.rmtree(work, ignore_errors=True)
        client.store.put_step_result(key, added.version.id)
        return StepResult(added.version, False, client.materialize(added.version), key)

    def _cached(self, client: DataClient, key: str) -> StepResult | None:
        """The stored result for ``key``, or None if there is none or its version or
        blobs are gone (then the step runs again)."""
        version_id = client.store.get_step_result(key)
        if version_id is None:
            return None
        try:
            version = client.store.get_dataset_version_by_id(version_id)
            return StepResult(version, True, client.materialize(version), key)
        except NotFoundError:
            return None


def _local_path(client: DataClient, version: DatasetVersion) -> Path:
    """The materialized version: its file for a single-file dataset, else its folder."""
    path = client.materialize(version)
    if version.metadata.get("kind") == "file":
        return path / client.manifest(version).entries[0].path
    return path


def step(
    name: str,
    *,
    inputs: Sequence[str] = (),
    params: Mapping[str, Any] | None = None,
    client: DataClient | None = None,
) -> Callable[[StepFn], Step]:
    """Decorate ``fn(out_dir, *input_paths, **params)`` as a cached preprocessing step.

    Args:
        name: The step, and the dataset its output is versioned as.
        inputs: Dataset refs (``"rides@latest"``), resolved at each call; their
            local paths are passed to ``fn`` after ``out_dir``, in this order.
        params: Keyword arguments for ``fn``; JSON values only (they are hashed).
        client: The data client (default: the module-level one).

    Returns:
        A decorator turning ``fn`` into a :class:`Step`.
    """
    check_name(name, "step name")
    if isinstance(inputs, str):
        raise InvalidArgumentError(
            f"invalid step inputs: expected a list of dataset refs, got the string {inputs!r}; "
            f"write inputs=[{inputs!r}]"
        )
    canonical_params(params or {})

    def decorate(fn: StepFn) -> Step:
        if not callable(fn):
            raise InvalidArgumentError(f"invalid step function: expected a callable, got {fn!r}")
        return Step(fn, name, inputs, params, client)

    return decorate
