"""Python-function flavor: anything else with ``predict`` (or callable).

Two ways to store it:

* **By reference** (the default, no pickle): ``python_model="pkg.module:Name"``
  names a class or factory of your project; loading imports it and calls it --
  with ``artifacts={name: local path}`` when the package carries artifacts
  (files or folders copied into ``model/artifacts/``), else with no argument
  -- and uses the result's ``predict`` (or the result itself if callable).
  The reference is checked before it is called (see :mod:`.._refs`).
* **By pickle**, only with ``log_model(..., allow_pickle=True)``. Such a package
  is marked as holding pickled code, and loading it needs
  ``load_model(..., allow_pickle=True)`` as well: unpickling runs whatever
  code the pickle names, so both the author and the reader must opt in.
"""

from __future__ import annotations

import pickle
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from shipyard.errors import InvalidArgumentError, UntrustedModelError
from shipyard.models._flavors._base import Flavor, LoadContext, Predictor, SaveContext
from shipyard.models._refs import reference_of, resolve_reference
from shipyard.validation import check_key, describe

__all__ = ["PyfuncFlavor"]


def _predictor(obj: Any, what: str) -> Predictor:
    predict = getattr(obj, "predict", None)
    if predict is None and callable(obj):
        predict = obj
    if predict is None:
        raise InvalidArgumentError(
            f"{what} has no predict method and is not callable: expected an object with "
            "predict(inputs)"
        )
    return Predictor(raw=obj, predict=predict, predict_proba=getattr(obj, "predict_proba", None))


class PyfuncFlavor(Flavor):
    name = "pyfunc"
    options = frozenset({"python_model", "artifacts"})

    def detect(self, model: object) -> bool:
        return model is not None and (hasattr(model, "predict") or callable(model))

    def save(
        self, model: Any, directory: Path, ctx: SaveContext
    ) -> tuple[dict[str, Any], list[str]]:
        directory.mkdir(parents=True, exist_ok=True)
        ref = ctx.options.get("python_model")
        artifacts = ctx.options.get("artifacts") or {}
        if ref is not None:
            copied = self._copy_artifacts(artifacts, directory)
            config = {
                "loader": "reference",
                "python_model": reference_of(ref, "python_model"),
                "artifacts": copied,
            }
            return config, ["numpy"]
        if artifacts:
            raise InvalidArgumentError(
                "artifacts= needs python_model=: the artifacts are passed to the class or "
                "factory it names when the model is loaded"
            )
        if not ctx.allow_pickle:
            raise InvalidArgumentError(
                f"cannot log {describe(model)}: it has no built-in flavor, so it would have "
                "to be pickled, and loading a pickle runs arbitrary code. Pass "
                "python_model='pkg.module:Class' (rebuilt by importing it, no pickle), or "
                "allow_pickle=True to store it with pickle (loading will need "
                "allow_pickle=True too)"
            )
        path = directory / "model.pkl"
        try:
            with open(path, "wb") as f:
                pickle.dump(model, f, protocol=5)
        except (pickle.PicklingError, AttributeError, TypeError) as e:
            raise InvalidArgumentError(
                f"cannot pickle {describe(model)}: {e}; pickle stores classes and functions "
                "by name, so define the model as a class in a module (not a lambda or a "
                "local function)"
            ) from e
        cls = type(model)
        config = {
            "loader": "pickle",
            "file": path.name,
            "class": f"{cls.__module__}.{cls.__qualname__}",
        }
        return config, ["numpy"]

    @staticmethod
    def _copy_artifacts(artifacts: Any, directory: Path) -> dict[str, str]:
        if not isinstance(artifacts, Mapping):
            raise InvalidArgumentError(
                f"invalid artifacts: expected a mapping of name to local path, got "
                f"{describe(artifacts)}"
            )
        copied = {}
        for name, source in artifacts.items():
            if "/" in check_key(name, "artifact name"):
                raise InvalidArgumentError(f"invalid artifact name {name!r}: no '/' allowed")
            src = Path(source)
            dest = directory / "artifacts" / name
            dest.parent.mkdir(parents=True, exist_ok=True)
            if src.is_dir():
                shutil.copytree(src, dest)
            elif src.is_file():
                shutil.copyfile(src, dest)
            else:
                raise InvalidArgumentError(
                    f"invalid artifact {name!r}: {str(src)!r} is not a file or folder"
                )
            copied[name] = f"artifacts/{name}"
        return copied

    def wrap(self, model: Any, config: Mapping[str, Any]) -> Predictor:
        return _predictor(model, f"model {describe(model)}")

    def uses_pickle(self, config: Mapping[str, Any]) -> bool:
        return config.get("loader") == "pickle"

    def load(self, directory: Path, config: Mapping[str, Any], ctx: LoadContext) -> Predictor:
        if config.get("loader") == "pickle":
            if not ctx.allow_pickle:
                raise UntrustedModelError(
                    f"model package {ctx.where} contains pickled Python code (a "
                    f"{config.get('class')}); unpickling runs whatever code the pickle names. "
                    "If you trust whoever logged it, load it with allow_pickle=True"
                )
            with open(directory / str(config["file"]), "rb") as f:
                return _predictor(pickle.load(f), f"the unpickled {config.get('class')}")
        if config.get("loader") != "reference":
            raise InvalidArgumentError(
                f"model package {ctx.where}: unknown pyfunc loader {config.get('loader')!r}"
            )
        ref = str(config["python_model"])
        factory = resolve_reference(ref, "python_model")
        paths = {}
        for name, rel in dict(config.get("artifacts") or {}).items():
            parts = str(rel).split("/")
            if parts[0] != "artifacts" or any(p in ("", ".", "..") for p in parts):
                raise InvalidArgumentError(
                    f"model package {ctx.where}: artifact {name!r} points outside the package "
                    f"({rel!r}); the package is damaged or crafted"
                )
            paths[str(name)] = str(directory / str(rel))
        obj = factory(artifacts=paths) if paths else factory()
        return _predictor(obj, f"the object built by {ref}")
