"""The flavor interface: how one kind of model is saved into a package and loaded.

Contract (every flavor):

* ``detect(model)`` is cheap and imports nothing heavy: a model can only be a
  torch module if ``torch`` is already in ``sys.modules``.
* ``save(model, directory, ctx)`` writes the flavor's files under ``directory``
  (the package's ``model/`` folder) and returns ``(config, distributions)``:
  a JSON-able dict the loader gets back, and the distributions to pin in the
  requirements. Options the flavor does not know were refused before.
* ``wrap(model, config)`` predicts with the in-memory model, so the golden
  outputs are the model's own, not its saved copy's; ``load(directory, config,
  ctx)`` rebuilds a :class:`Predictor` from the files. Both get input already
  converted by the signature (or raw input when the package has none).
* Loading never unpickles unless ``ctx.allow_pickle``; a flavor that would
  raises :class:`~shipyard.errors.UntrustedModelError` naming the opt-in.
* Heavy libraries are imported inside the methods, never at module level.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from shipyard.errors import InvalidArgumentError

__all__ = ["Flavor", "LoadContext", "Predictor", "SaveContext", "missing_library"]


@dataclass(slots=True)
class Predictor:
    """A loaded model: ``predict`` (and ``predict_proba`` when the model has it)."""

    raw: Any
    predict: Callable[[Any], Any]
    predict_proba: Callable[[Any], Any] | None = None


@dataclass(frozen=True, slots=True)
class SaveContext:
    """What ``save`` gets besides the model: the enforced input example (None when
    there is none), the flavor options and the pickle opt-in."""

    example: Any = None
    options: Mapping[str, Any] = field(default_factory=dict)
    allow_pickle: bool = False


@dataclass(frozen=True, slots=True)
class LoadContext:
    """How to load: opt-ins, device, and ``where`` (the package URI) for messages."""

    where: str
    allow_pickle: bool = False
    trust_types: tuple[str, ...] = ()
    device: str = "cpu"
    code_free: bool | None = None
    #: Intra-op threads for runtimes that have a pool (ONNX Runtime), without
    #: spinning; None: the runtime's default.
    threads: int | None = None


def missing_library(flavor: str, module: str, extra: str) -> InvalidArgumentError:
    """The error for a flavor whose library is not installed."""
    return InvalidArgumentError(
        f"the {flavor} flavor needs {module}, which is not installed: "
        f"pip install 'shipyard[{extra}]'"
    )


class Flavor(abc.ABC):
    """One kind of model (scikit-learn, XGBoost, PyTorch, ONNX, Python function)."""

    #: The name recorded in the manifest and accepted by ``flavor=``.
    name: ClassVar[str]
    #: Keyword options ``log_model`` accepts for this flavor.
    options: ClassVar[frozenset[str]] = frozenset()

    @abc.abstractmethod
    def detect(self, model: object) -> bool:
        """Whether ``model`` is of this flavor (cheap; imports nothing heavy)."""

    @abc.abstractmethod
    def save(
        self, model: Any, directory: Path, ctx: SaveContext
    ) -> tuple[dict[str, Any], list[str]]:
        """Write the model's files; return ``(config, distributions)``."""

    @abc.abstractmethod
    def wrap(self, model: Any, config: Mapping[str, Any]) -> Predictor:
        """A predictor over the in-memory model (for the golden outputs)."""

    @abc.abstractmethod
    def load(self, directory: Path, config: Mapping[str, Any], ctx: LoadContext) -> Predictor:
        """Rebuild the model from its files."""

    def uses_pickle(self, config: Mapping[str, Any]) -> bool:
        """Whether loading this package unpickles (only pyfunc's opt-in does)."""
        return False

    def native_signature(self, config: Mapping[str, Any]) -> Any:
        """A signature the model itself declares (an ONNX graph's inputs), or None."""
        return None
