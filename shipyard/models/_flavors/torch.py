"""PyTorch flavor: weights in safetensors plus the factory that builds the module
(for fine-tuning), and a code-free ``torch.export`` program where the module
exports.

Save:

* with ``factory="pkg.module:build"`` (a class or function of your project,
  or the object itself) and JSON ``hparams``: the ``state_dict`` goes to
  ``weights.safetensors`` (``safetensors.torch.save_model``, which handles
  tied weights); loading imports the factory, calls ``factory(**hparams)``,
  loads the weights strictly, and gives you the ``nn.Module`` back
  (``LoadedModel.raw``) to fine-tune. Importing the factory runs your own
  project's code, which is expected; the reference is checked first (see
  :mod:`.._refs`);
* with an input example (and ``export=True``, the default): the module, in
  eval mode, is exported with ``torch.export.export`` with a dynamic batch
  dimension and saved as ``program.pt2``. The program is loaded back at once
  and must match the module's outputs on the example and on its first row
  alone (the batch really is dynamic); otherwise it is dropped and the reason
  recorded as ``export_error``. So is a program the archive checks of
  :mod:`._pt2` would refuse (custom ops, tensor subclasses): a package whose
  code-free path needs ``allow_pickle`` is not one to ship.

Without a factory and without a program there is nothing that can be loaded,
so ``log_model`` refuses and says what to pass.

Load: by factory when there is one and it imports (``code_free=False``, or
None = automatic); else -- ``code_free=True``, or automatically when the factory
cannot be imported here -- the exported program, after the archive checks of
:mod:`._pt2` (``torch.export.load`` itself can unpickle and ``eval``).
Inputs are NumPy arrays (a dict of them becomes keyword arguments of
``forward``); floating inputs are converted to the module's dtype; outputs come
back as NumPy (float32 for half types). ``device="cuda"`` needs CUDA to be
available (an error otherwise, never a silent CPU fallback).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from shipyard.errors import InvalidArgumentError, NotFoundError, UntrustedModelError
from shipyard.models._flavors._base import (
    Flavor,
    LoadContext,
    Predictor,
    SaveContext,
    missing_library,
)
from shipyard.models._refs import reference_of, resolve_reference
from shipyard.validation import describe

__all__ = ["TorchFlavor"]

logger = logging.getLogger("shipyard.models")


def _torch() -> Any:
    try:
        import torch
    except ImportError as e:
        raise missing_library("PyTorch", "torch", "torch") from e
    return torch


def _float_dtype(module: Any) -> str:
    for tensor in (*module.parameters(), *module.buffers()):
        if tensor.is_floating_point():
            return str(tensor.dtype).removeprefix("torch.")
    return "float32"


def _device(torch: Any, name: str) -> Any:
    if name == "cuda" and not torch.cuda.is_available():
        raise InvalidArgumentError(
            "device='cuda' was asked for, but torch sees no CUDA device here; load with "
            "device='cpu' or install a CUDA build of torch"
        )
    return torch.device(name)


def _inputs(torch: Any, x: Any, dtype: str, device: Any) -> tuple[tuple[Any, ...], dict[str, Any]]:
    def tensor(value: Any) -> Any:
        arr = np.ascontiguousarray(value)
        t = torch.from_numpy(arr)
        if t.is_floating_point():
            t = t.to(getattr(torch, dtype))
        return t.to(device)

    if isinstance(x, Mapping):
        return (), {str(k): tensor(v) for k, v in x.items()}
    return (tensor(x),), {}


def _numpy(torch: Any, out: Any) -> Any:
    if isinstance(out, torch.Tensor):
        t = out.detach().cpu()
        if t.dtype in (torch.float16, torch.bfloat16):
            t = t.float()
        return t.numpy()
    if isinstance(out, Mapping):
        return {str(k): _numpy(torch, v) for k, v in out.items()}
    if isinstance(out, list | tuple):
        return {f"output_{i}": _numpy(torch, v) for i, v in enumerate(out)}
    return np.asarray(out)


def _predictor(torch: Any, module: Any, dtype: str, device: Any) -> Predictor:
    def predict(x: Any) -> Any:
        args, kwargs = _inputs(torch, x, dtype, device)
        with torch.inference_mode():
            return _numpy(torch, module(*args, **kwargs))

    return Predictor(raw=module, predict=predict)


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    a, b = np.asarray(a), np.asarray(b)
    return a.shape == b.shape and bool(np.allclose(a, b, rtol=1e-4, atol=1e-5, equal_nan=True))


class TorchFlavor(Flavor):
    name = "torch"
    options = frozenset({"factory", "hparams", "export"})

    def detect(self, model: object) -> bool:
        import sys

        torch = sys.modules.get("torch")
        return torch is not None and isinstance(model, torch.nn.Module)

    def save(
        self, model: Any, directory: Path, ctx: SaveContext
    ) -> tuple[dict[str, Any], list[str]]:
        torch = _torch()
        factory = ctx.options.get("factory")
        hparams = dict(ctx.options.get("hparams") or {})
        try:
            json.dumps(hparams, allow_nan=False)
        except (TypeError, ValueError) as e:
            raise InvalidArgumentError(
                f"invalid hparams: expected JSON values (numbers, strings, lists...), {e}"
            ) from None
        ref = None if factory is None else reference_of(factory, "factory")
        if hparams and ref is None:
            raise InvalidArgumentError("hparams= needs factory=: they are the factory's arguments")
        directory.mkdir(parents=True, exist_ok=True)
        dtype = _float_dtype(model)
        config: dict[str, Any] = {
            "factory": ref,
            "hparams": hparams,
            "weights": None,
            "program": None,
            "export_error": None,
            "dtype": dtype,
        }
        dists = ["torch", "numpy"]
        if ref is not None:
            try:
                from safetensors.torch import save_model
            except ImportError as e:
                raise missing_library("PyTorch", "safetensors", "torch") from e
            save_model(model, str(directory / "weights.safetensors"))
            config["weights"] = "weights.safetensors"
            dists.append("safetensors")
        if not ctx.options.get("export", True):
            config["export_error"] = "export=False was passed"
        elif ctx.example is None:
            config["export_error"] = "no input example to export with"
        else:
            config["export_error"] = self._export(torch, model, ctx.example, dtype, directory)
            if config["export_error"] is None:
                config["program"] = "program.pt2"
        if ref is None and config["program"] is None:
            raise InvalidArgumentError(
                f"cannot log {type(model).__name__}: pass factory='pkg.module:build' (it builds "
                "the module from hparams=..., and the weights are loaded into it), or an "
                "input_example the module exports with torch.export for a code-free package "
                f"(export: {config['export_error']})"
            )
        return config, dists

    @staticmethod
    def _export(torch: Any, model: Any, example: Any, dtype: str, directory: Path) -> str | None:
        """Export and save the program; the reason it could not be, or None."""
        was_training = model.training
        model.eval()
        try:
            device = next((p.device for p in model.parameters()), torch.device("cpu"))
            args, kwargs = _inputs(torch, example, dtype, device)
            batch = torch.export.Dim.DYNAMIC
            shapes: Any = (
                {k: {0: batch} for k in kwargs} if kwargs else tuple({0: batch} for _ in args)
            )
            program = torch.export.export(model, args, kwargs, dynamic_shapes=shapes)
            path = directory / "program.pt2"
            torch.export.save(program, str(path))
            from shipyard.models._flavors._pt2 import check_archive

            problems = check_archive(path)
            if problems:  # it could only be loaded with allow_pickle: not worth keeping
                path.unlink()
                return f"the program could not be loaded safely: {problems[0]}"
            loaded = torch.export.load(str(path)).module()  # our own file, just checked
            with torch.inference_mode():
                for n in (None, 1):
                    a = tuple(t[:n] for t in args)
                    kw = {k: t[:n] for k, t in kwargs.items()}
                    if not _same(_numpy(torch, loaded(*a, **kw)), _numpy(torch, model(*a, **kw))):
                        path.unlink()
                        return "the exported program's outputs differ from the module's"
            return None
        except Exception as e:  # export fails in many ways; the reason is recorded
            first = str(e).strip().splitlines()[0] if str(e).strip() else ""
            return f"{type(e).__name__}: {first[:300]}"
        finally:
            model.train(was_training)

    def wrap(self, model: Any, config: Mapping[str, Any]) -> Predictor:
        torch = _torch()
        device = next((p.device for p in model.parameters()), torch.device("cpu"))
        inner = _predictor(torch, model, str(config["dtype"]), device).predict

        def predict(x: Any) -> Any:  # in eval mode, then as the user left it
            was_training = model.training
            model.eval()
            try:
                return inner(x)
            finally:
                model.train(was_training)

        return Predictor(raw=model, predict=predict)

    def load(self, directory: Path, config: Mapping[str, Any], ctx: LoadContext) -> Predictor:
        torch = _torch()
        device = _device(torch, ctx.device)
        dtype = str(config.get("dtype", "float32"))
        ref, program = config.get("factory"), config.get("program")
        if ctx.code_free is not True and ref:
            try:
                module = self._build(torch, str(ref), config, directory)
            except NotFoundError:
                if ctx.code_free is False or not program:
                    raise
                logger.warning(
                    "model package %s: factory %s cannot be imported here; using its exported "
                    "program instead (code-free, not fine-tunable)",
                    ctx.where,
                    ref,
                )
            else:
                return _predictor(torch, module.to(device).eval(), dtype, device)
        if not program:
            raise InvalidArgumentError(
                f"model package {ctx.where} has no exported program (at log time: "
                f"{config.get('export_error')}); load it with its factory (code_free=False)"
                + ("" if ref else ", which it does not have either")
            )
        return self._load_program(torch, directory / str(program), ctx, dtype, device)

    @staticmethod
    def _build(torch: Any, ref: str, config: Mapping[str, Any], directory: Path) -> Any:
        from safetensors.torch import load_model

        factory = resolve_reference(
            ref, "factory", allow_class=lambda c: issubclass(c, torch.nn.Module)
        )
        module = factory(**dict(config.get("hparams") or {}))
        if not isinstance(module, torch.nn.Module):
            raise InvalidArgumentError(
                f"factory {ref} returned {describe(module)}, not a torch.nn.Module"
            )
        load_model(module, str(directory / str(config["weights"])), strict=True)
        return module

    @staticmethod
    def _load_program(
        torch: Any, path: Path, ctx: LoadContext, dtype: str, device: Any
    ) -> Predictor:
        from shipyard.models._flavors._pt2 import check_archive

        problems = check_archive(path)
        if problems and not ctx.allow_pickle:
            raise UntrustedModelError(
                f"model package {ctx.where}: its exported program cannot be loaded safely: "
                f"{'; '.join(problems[:5])}. torch.export.load would unpickle or evaluate it; "
                "load with the factory instead (code_free=False), or pass allow_pickle=True "
                "if you trust this package"
            )
        program = torch.export.load(str(path))
        if device.type != "cpu":
            from torch.export.passes import move_to_device_pass

            program = move_to_device_pass(program, device)
        return _predictor(torch, program.module(), dtype, device)
