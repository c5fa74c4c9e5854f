"""The package's shape: a light import, honest facades, the exception tree."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

import shipyard
from shipyard import errors

HEAVY = ("numpy", "sqlalchemy", "alembic", "fsspec", "blake3", "psutil", "rich", "click", "torch")


def test_import_shipyard_loads_no_heavy_dependency() -> None:
    """`import shipyard` loads none of the heavy libraries (they load when used)."""
    code = f"import sys, shipyard; print([m for m in {HEAVY!r} if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize(
    "name",
    ["shipyard", "shipyard.store", "shipyard.blobs", "shipyard.tracking", "shipyard._util"],
)
def test_all_is_complete(name: str) -> None:
    """Each facade's __all__ names things that exist, once (ruff's RUF022 keeps it sorted)."""
    module = importlib.import_module(name)
    exported = list(module.__all__)
    assert len(exported) == len(set(exported))
    for attr in exported:
        assert hasattr(module, attr), f"{name}.{attr} is in __all__ but missing"


def test_public_callables_of_the_facade_are_exported() -> None:
    """Every public function or class on `shipyard` is listed in __all__."""
    public = {
        n
        for n, v in vars(shipyard).items()
        if not n.startswith("_") and (callable(v) or isinstance(v, type))
    }
    assert public <= set(shipyard.__all__)


def test_error_tree_mixes_in_builtins() -> None:
    """Errors share one root and keep builtin meanings (LookupError, ValueError)."""
    assert issubclass(errors.NotFoundError, LookupError)
    assert issubclass(errors.InvalidArgumentError, ValueError)
    for leaf in (
        errors.NotFoundError,
        errors.InvalidArgumentError,
        errors.ConflictError,
        errors.StateError,
        errors.StoreError,
        errors.CorruptBlobError,
    ):
        assert issubclass(leaf, errors.ShipyardError)
    err = errors.CorruptBlobError("ab" * 32, "/x", "cd" * 32)
    assert "ab" * 32 in str(err)
    assert isinstance(err, errors.StoreError)
