"""Importable references ``"pkg.module:attr"``: how a package names code without
pickling it.

A torch package names its model factory and a Python-function package its
model class this way; loading imports the module *from the environment* (the
user's own project, installed or on ``sys.path``) and calls the attribute. That
is running the user's code, which is what they asked for, but a package is data
that anyone with write access to a store could craft, so a reference is
checked before it is called (defence in depth, not a sandbox; load packages
from stores you trust):

* it must be ``module:qualname`` with identifier parts only;
* the module may not be in the standard library (``subprocess:getoutput`` with
  crafted hparams would run a command) nor in a library known to load pickles
  or fetch code from files (``torch:load``, ``pandas:read_pickle``...); a class
  from them is allowed where the caller says so (``torch.nn:Linear`` for a
  torch factory is a module constructor, not a loader);
* the attribute must be a class or a plain function.
"""

from __future__ import annotations

import importlib
import inspect
import re
import sys
from collections.abc import Callable
from typing import Any

from shipyard.errors import InvalidArgumentError, NotFoundError, UntrustedModelError
from shipyard.validation import describe

__all__ = ["reference_of", "resolve_reference"]

#: Shipyard's own factories a package may name. The Trial factory imports only
#: a ``shipyard.Trial`` subclass (checked) and calls its ``build_model``.
_SHIPYARD_FACTORIES = frozenset({"shipyard.train._factory:trial_model"})

_REF_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*:[A-Za-z_][A-Za-z0-9_.]*")
#: Libraries whose functions read pickles, run code or fetch it: never a factory.
_LOADER_LIBRARIES = frozenset(
    {
        "cloudpickle",
        "dill",
        "joblib",
        "numpy",
        "pandas",
        "scipy",
        "shipyard",
        "skops",
        "sklearn",
        "torch",
        "xgboost",
        "onnx",
        "onnxruntime",
        "safetensors",
        "yaml",
    }
)


def reference_of(obj: Any, what: str) -> str:
    """``module:qualname`` of a class or function that can be imported elsewhere.

    Raises:
        InvalidArgumentError: it is defined in ``__main__`` or inside a function,
            where another process cannot import it.
    """
    if isinstance(obj, str):
        check_reference(obj, what)
        return obj
    module = getattr(obj, "__module__", None)
    qualname = getattr(obj, "__qualname__", None)
    if not (inspect.isclass(obj) or inspect.isfunction(obj)) or not module or not qualname:
        raise InvalidArgumentError(
            f"invalid {what}: expected a class, a function or a 'pkg.module:name' string, got "
            f"{describe(obj)}"
        )
    if module == "__main__" or "<locals>" in qualname:
        where = "the script being run (__main__)" if module == "__main__" else "a function"
        raise InvalidArgumentError(
            f"invalid {what}: {qualname} is defined in {where}, which cannot be imported when "
            "the model is loaded elsewhere; move it into a module of your project and pass it "
            "(or 'pkg.module:name')"
        )
    return f"{module}:{qualname}"


def check_reference(ref: object, what: str) -> str:
    if not isinstance(ref, str) or _REF_RE.fullmatch(ref) is None:
        raise InvalidArgumentError(
            f"invalid {what} {describe(ref)}: expected 'pkg.module:name', e.g. "
            "'rides.model:build_model'"
        )
    return ref


def resolve_reference(
    ref: str, what: str, *, allow_class: Callable[[type], bool] | None = None
) -> Any:
    """Import and return the class or function ``ref`` names, after the checks above.

    ``allow_class`` admits a class from a refused library (e.g. any
    ``torch.nn.Module`` subclass for a torch factory).

    Raises:
        UntrustedModelError: the reference names something a package may not call.
        NotFoundError: the module or attribute cannot be imported here (ImportError
            is chained, so a caller can fall back, e.g. to a code-free program).
    """
    check_reference(ref, what)
    module_name, _, qualname = ref.partition(":")
    top = module_name.split(".")[0]
    if top in sys.stdlib_module_names or top == "builtins":
        raise UntrustedModelError(
            f"refusing {what} {ref!r}: it names the standard library, which a model package "
            "may not call; packages name code of your own project"
        )
    try:
        module = importlib.import_module(module_name)
        obj: Any = module
        for part in qualname.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as e:
        raise NotFoundError(
            f"cannot import {what} {ref!r}: {e}; install or put on sys.path the project that "
            "defines it"
        ) from e
    if (
        top in _LOADER_LIBRARIES
        and ref not in _SHIPYARD_FACTORIES
        and not (inspect.isclass(obj) and allow_class is not None and allow_class(obj))
    ):
        raise UntrustedModelError(
            f"refusing {what} {ref!r}: {top} is a library whose functions load files or "
            "pickles, so a package may not name it; name a class or function of your own project"
        )
    if not (inspect.isclass(obj) or inspect.isfunction(obj)):
        raise UntrustedModelError(
            f"refusing {what} {ref!r}: expected a class or a plain function, got {describe(obj)}"
        )
    return obj
