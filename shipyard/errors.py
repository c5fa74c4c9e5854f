"""The exception tree. Every user-facing failure is a :class:`ShipyardError`.

A message says what failed, what was expected, what was received and what to
do. Leaves mix in the matching builtin so ``except LookupError`` and
``except ValueError`` keep working for code that does not know Shipyard.

Only the HTTP layer maps these to status codes (one table, in the server).
"""

from __future__ import annotations

__all__ = [
    "ConflictError",
    "CorruptBlobError",
    "InvalidArgumentError",
    "ModelIntegrityError",
    "NotFoundError",
    "ShipyardError",
    "StateError",
    "StoreError",
    "UntrustedModelError",
]


class ShipyardError(Exception):
    """Root of every error Shipyard raises on purpose."""


class NotFoundError(ShipyardError, LookupError):
    """A named thing (run, experiment, blob, ...) does not exist."""


class InvalidArgumentError(ShipyardError, ValueError):
    """The caller passed a value of the wrong type, shape or form."""


class ConflictError(ShipyardError):
    """The request contradicts what is stored (a duplicate name, a param re-logged
    with another value)."""


class StateError(ShipyardError):
    """The target is in a state that does not allow the operation (a finished run
    being logged to, a deleted experiment)."""


class StoreError(ShipyardError):
    """The storage backend failed (database unreachable, disk full). Chained with
    ``from`` the original exception."""


class CorruptBlobError(StoreError):
    """A blob's content no longer matches its digest."""

    def __init__(self, digest: str, location: str, actual: str) -> None:
        self.digest = digest
        self.location = location
        self.actual = actual
        super().__init__(
            f"blob {digest} at {location} is corrupted: its content hashes to {actual}. "
            "Restore it from a remote or backup, or remove it so it can be written again."
        )


class ModelIntegrityError(ShipyardError):
    """A model package is not what was logged: a file no longer matches its digest,
    or the loaded model does not reproduce the golden examples recorded with it."""


class UntrustedModelError(ShipyardError):
    """Loading a model package would run code the user has not opted in to: pickled
    objects, types outside the safe list, or an exported program with unpickled
    payloads. The message names what and the argument that allows it."""
