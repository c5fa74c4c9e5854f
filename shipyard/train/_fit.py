"""``fit``: run a :class:`~shipyard.train.Trial` with everything else automatic.

Checks the arguments, resolves hyperparameters, device and process group,
opens the run (:func:`~shipyard.train.init`) and hands over to the loop
(:mod:`._loop`). A run continued through ``SHIPYARD_RUN_ID`` resumes from its
latest checkpoint.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from shipyard.errors import InvalidArgumentError
from shipyard.train import _dist
from shipyard.train._core import TRIAL_TAG, TrainContext, init
from shipyard.train._hparams import load_hparams
from shipyard.train._loop import Loop
from shipyard.train._rng import seed_everything
from shipyard.train._trial import Trial

__all__ = ["FitResult", "fit"]

logger = logging.getLogger("shipyard.train")

_PRECISIONS = {"32": None, "fp32": None, "bf16": "bfloat16", "16": "float16", "fp16": "float16"}


@dataclass(frozen=True, slots=True)
class FitResult:
    """What :func:`fit` did."""

    run_id: str | None
    step: int
    epoch: int
    metrics: Mapping[str, float] = field(default_factory=dict)
    model_uri: str | None = None
    stopped_early: bool = False
    preempted: bool = False


def _check_positive(name: str, value: Any, *, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidArgumentError(f"{name}: expected an integer >= 1, got {value!r}")


def _resolve_device(device: str | None) -> Any:
    import torch

    if device in (None, "auto"):
        if torch.cuda.is_available():
            return torch.device("cuda", _dist.local_rank() if _dist.world_size() > 1 else 0)
        return torch.device("cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise InvalidArgumentError(
            f"device {device!r}: CUDA is not available on this machine; use device='cpu'"
        )
    return dev


def _setup_distributed(device_name: str | None) -> None:
    if _dist.world_size() <= 1:
        return
    import torch
    import torch.distributed as dist

    if not dist.is_initialized():
        cuda = torch.cuda.is_available() and device_name != "cpu"
        if cuda:
            torch.cuda.set_device(_dist.local_rank())
        dist.init_process_group(backend="nccl" if cuda else "gloo")


@contextlib.contextmanager
def _restoring_determinism(torch: Any, was: bool) -> Iterator[None]:
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(was)


def _record_trial(ctx: TrainContext, trial: type[Trial], flags: Mapping[str, Any]) -> None:
    """Tag the run with the Trial's file and class and the loop's options, so
    ``shipyard reproduce`` can re-run this Trial alone."""
    file = getattr(sys.modules.get(trial.__module__), "__file__", None)
    if ctx.run is None or not file or "<locals>" in trial.__qualname__:
        return
    options: list[str] = []
    for flag, value in flags.items():
        if value is True:
            options.append(flag)
        elif value is not None and value is not False:
            options += [flag, str(value)]
    text = json.dumps(
        {"class": trial.__qualname__, "module": trial.__module__,
         "file": os.path.abspath(file), "options": options}
    )  # fmt: skip
    try:
        ctx.run.set_tag(TRIAL_TAG, text)
    except Exception as e:  # a record for later; never a reason to fail training
        logger.warning("could not record how to reproduce this Trial: %s", e)


def fit(
    trial: type[Trial],
    hparams: Mapping[str, Any] | None = None,
    *,
    hparams_file: str | os.PathLike[str] | None = None,
    experiment: str | None = None,
    run_name: str | None = None,
    max_epochs: int | None = None,
    max_steps: int | None = None,
    device: str | None = None,
    precision: Literal["32", "bf16", "16", "fp16", "fp32"] = "32",
    accumulate: int = 1,
    clip_grad_norm: float | None = None,
    log_every: int = 10,
    val_every: int | None = None,
    checkpoint_every: int | None = None,
    keep_last: int | None = 3,
    keep_best: int = 0,
    monitor: str | None = None,
    mode: Literal["min", "max"] = "min",
    patience: int | None = None,
    init_from: str | None = None,
    deterministic: bool = False,
    progress: bool | None = None,
    log_model: str | None = "model",
) -> FitResult:
    """Train ``trial`` and return what happened.

    Args:
        trial: a :class:`~shipyard.train.Trial` subclass.
        hparams: values over ``trial.default_hparams`` (under the file,
            ``SHIPYARD_HPARAMS`` and nothing else; see :func:`load_hparams`).
        max_epochs: default ``hparams["epochs"]``, else 1.
        max_steps: stop after this many optimizer steps.
        device: ``"cpu"``, ``"cuda"``, ``"cuda:1"``; default CUDA when there is one.
        precision: ``"32"``, ``"bf16"`` (autocast) or ``"16"`` (autocast with a
            gradient scaler).
        accumulate: batches per optimizer step.
        clip_grad_norm: clip the gradients' global norm to this.
        log_every: log the training loss every this many steps (reading a loss
            synchronises a GPU: not every step).
        val_every: validate every this many steps; default at each epoch's end.
        checkpoint_every: also checkpoint every this many steps (mid-epoch);
            a checkpoint is always written at each epoch's end and at the end.
        keep_last, keep_best, monitor, mode: checkpoint retention; ``monitor``
            with ``patience`` is early stopping (``patience`` validations
            without improvement).
        init_from: warm-start weights: a checkpoint (``runs:/RUN`` or
            ``runs:/RUN/checkpoints/step-...``), a model (``models:/name@alias``,
            ``runs:/RUN/model``) or a ``.safetensors`` file.
        deterministic: ``torch.use_deterministic_algorithms(True)`` (and cuDNN
            settings), for bit-identical runs.
        progress: a progress bar; default when stderr is a terminal.
        log_model: artifact name of the final model package (None: do not log).

    A run whose ``SHIPYARD_RUN_ID`` names a run with checkpoints continues from
    the latest one.
    """
    import torch

    if not (isinstance(trial, type) and issubclass(trial, Trial)):
        raise InvalidArgumentError(
            f"fit: expected a shipyard.Trial subclass, got {trial!r}; define "
            "'class MyTrial(shipyard.Trial)' with build_model, build_optimizer, "
            "build_training_data and train_step"
        )
    if precision not in _PRECISIONS:
        raise InvalidArgumentError(
            f"precision: expected one of {sorted(_PRECISIONS)}, got {precision!r}"
        )
    for name, value in (("accumulate", accumulate), ("log_every", log_every)):
        _check_positive(name, value)
    for name, optional in (
        ("max_steps", max_steps), ("val_every", val_every),
        ("checkpoint_every", checkpoint_every), ("patience", patience),
    ):  # fmt: skip
        _check_positive(name, optional, allow_none=True)
    if patience is not None and monitor is None:
        raise InvalidArgumentError("patience needs monitor=: the metric early stopping watches")
    values = load_hparams({**trial.default_hparams, **dict(hparams or {})}, file=hparams_file)
    epochs: int = max_epochs if max_epochs is not None else int(values.get("epochs", 1))
    _check_positive("max_epochs", epochs)
    seed = int(values.get("seed", 0))
    _setup_distributed(device)
    dev = _resolve_device(device)
    was_deterministic = torch.are_deterministic_algorithms_enabled()
    if deterministic:
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.benchmark = False
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    seed_everything(seed)

    ctx = init(
        values, experiment=experiment, run_name=run_name,
        keep_last=keep_last, keep_best=keep_best, monitor=monitor, mode=mode,
    )  # fmt: skip
    flags = {
        "--max-epochs": epochs, "--max-steps": max_steps, "--precision": precision,
        "--accumulate": accumulate, "--clip-grad-norm": clip_grad_norm,
        "--log-every": log_every, "--val-every": val_every,
        "--checkpoint-every": checkpoint_every, "--keep-last": keep_last,
        "--keep-best": keep_best, "--monitor": monitor, "--mode": mode,
        "--patience": patience, "--init-from": init_from,
        "--deterministic": deterministic, "--no-model": log_model is None,
    }  # fmt: skip
    with ctx, _restoring_determinism(torch, was_deterministic):
        _record_trial(ctx, trial, flags)
        loop = Loop(
            trial(ctx.hparams), ctx, dev,
            epochs=epochs, max_steps=max_steps, precision=_PRECISIONS[precision],
            accumulate=accumulate, clip=clip_grad_norm, log_every=log_every,
            val_every=val_every, checkpoint_every=checkpoint_every, monitor=monitor,
            mode=mode, patience=patience, seed=seed, progress=progress,
        )  # fmt: skip
        loop.build(init_from)
        loop.run()
        model_uri = loop.log_final_model(log_model) if log_model else None
        return FitResult(
            ctx.run_id, loop.n.step, loop.n.epoch, dict(loop.last_metrics), model_uri,
            loop.stopped_early, loop.preempted,
        )  # fmt: skip
