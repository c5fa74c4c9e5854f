"""Lightning integration: track a ``LightningModule`` trained by Lightning's own Trainer.

* :class:`ShipyardLogger` -- a Lightning logger: hyperparameters become the
  run's params, logged values its metrics, and the run ends with the fit
  (FINISHED, FAILED, or KILLED on Ctrl+C);
* :class:`ShipyardCheckpoint` -- a checkpoint callback that stores Lightning's
  full checkpoint (weights, optimizers, schedulers, loop and callback state) in
  the run through :class:`~shipyard.train.Checkpoints`, with retention;
* :func:`resume_path` -- write a stored checkpoint as a ``.ckpt`` file to pass
  as ``trainer.fit(..., ckpt_path=...)``.

Usage::

    import lightning.pytorch as pl
    from shipyard.train.lightning import ShipyardCheckpoint, ShipyardLogger, resume_path

    trainer = pl.Trainer(
        max_epochs=10,
        logger=ShipyardLogger(experiment="rides"),
        callbacks=[ShipyardCheckpoint(keep_last=2, keep_best=1, monitor="val_loss")],
    )
    trainer.fit(model, train_loader, val_loader)

    # later, or after a crash: continue the same run from its latest checkpoint
    run_id = trainer.logger.version
    trainer = pl.Trainer(
        max_epochs=20, logger=ShipyardLogger(run_id=run_id), callbacks=[ShipyardCheckpoint()]
    )
    trainer.fit(model, train_loader, val_loader, ckpt_path=resume_path(run_id, "ckpt"))

The logger uses the active run when there is one (``with shipyard.start_run():``
around the fit) and leaves it open; otherwise it starts a run and ends it when
the fit ends. A store that fails while logging costs a warning in the log,
never the training.

Checkpoints are stored without pickle (see :mod:`shipyard.train._codec`), so a
value that is not a dict, list, tuple, number, string, bytes, NumPy array or
tensor is dropped: objects in ``hyper_parameters``, say. The dropped paths are
listed in the checkpoint under ``"shipyard_dropped"`` and logged once. Weights,
optimizer, scheduler and loop state are plain data and survive intact.

Works with the ``lightning`` package (``lightning.pytorch``), not the older
``pytorch_lightning`` namespace. This is the only module that imports Lightning.
"""

from __future__ import annotations

import json
import logging
import numbers
import os
import sys
from argparse import Namespace
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Literal

import numpy as np

try:
    import lightning.pytorch as pl
    import torch
    from lightning.fabric.loggers.logger import rank_zero_experiment
    from lightning.pytorch.callbacks import Checkpoint
    from lightning.pytorch.loggers import Logger
    from lightning.pytorch.trainer.states import TrainerFn
    from lightning.pytorch.utilities import rank_zero_only
except ImportError as e:  # pragma: no cover - depends on the environment
    raise ModuleNotFoundError(
        f"shipyard.train.lightning needs Lightning, which is not installed ({e}): "
        "pip install 'shipyard[lightning]'"
    ) from e

from shipyard.errors import ConflictError, InvalidArgumentError, NotFoundError, StateError
from shipyard.tracking import ActiveRun, TrackingClient, active_run, get_client, start_run
from shipyard.train._checkpoint import CheckpointInfo, Checkpoints
from shipyard.types import RunStatus
from shipyard.validation import check_key, check_param_value, check_value

__all__ = ["DROPPED_KEY", "ShipyardCheckpoint", "ShipyardLogger", "resume_path"]

logger = logging.getLogger("shipyard.train")

#: The key of a stored checkpoint that lists the values dropped as unstorable.
DROPPED_KEY = "shipyard_dropped"


# -- the logger -------------------------------------------------------------------


def _run_status(status: str) -> RunStatus:
    """Lightning's finalize status as a run status. Lightning says "failed" for
    Ctrl+C too, while the KeyboardInterrupt is being handled: that is KILLED."""
    s = status.lower()
    if s in ("success", "finished"):
        return RunStatus.FINISHED
    if s == "failed":
        return (
            RunStatus.KILLED
            if isinstance(sys.exc_info()[1], KeyboardInterrupt)
            else RunStatus.FAILED
        )
    if s in ("killed", "interrupted", "aborted"):
        return RunStatus.KILLED
    if s.upper() in RunStatus._value2member_map_ and RunStatus(s.upper()).is_terminal:
        return RunStatus(s.upper())
    logger.warning("ShipyardLogger: unknown Lightning status %r, ending the run as FAILED", status)
    return RunStatus.FAILED


def _flatten(params: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in params.items():
        key = f"{prefix}{k}"
        if isinstance(v, Namespace):
            v = vars(v)
        if isinstance(v, Mapping):
            out.update(_flatten(v, key + "."))
        else:
            out[key] = v
    return out


def _param(key: str, value: Any) -> Any:
    """A param value, or InvalidArgumentError. Lists and tuples of JSON values are
    kept as their JSON text (``[64, 32]``); other objects are refused."""
    if isinstance(value, list | tuple):
        try:
            value = json.dumps(value, allow_nan=False)
        except (TypeError, ValueError) as e:
            raise InvalidArgumentError(f"param {key!r}: {e}") from e
    return check_param_value(key, value)


class ShipyardLogger(Logger):
    """A Lightning logger that records into a Shipyard run.

    Args:
        experiment: the experiment of a run this logger starts (default: the
            one :func:`shipyard.set_experiment` chose, else ``"default"``).
        run_name: the name of a run this logger starts.
        run_id: log to this run: the active run if it is that one, else the run
            is resumed (``shipyard.start_run(run_id=...)``) and ended with the fit.
        tags: tags of a run this logger starts or resumes.

    Without ``run_id`` the logger uses the active run if there is one (and
    leaves it open: only flushed at the end of each fit), else starts a run,
    which it ends in :meth:`finalize`. A later ``trainer.validate`` or
    ``trainer.test`` with the same logger resumes that run.

    Only global rank zero logs; on other ranks every call is a no-op.
    """

    def __init__(
        self,
        experiment: str | None = None,
        run_name: str | None = None,
        run_id: str | None = None,
        *,
        tags: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__()
        self._experiment_name = experiment
        self._run_name = run_name
        self._run_id = run_id
        self._tags = dict(tags or {})
        self._run: ActiveRun | None = None
        self._owned = False
        self._name: str | None = None
        self._warned: set[tuple[str, str]] = set()

    # -- the run ------------------------------------------------------------------

    @property
    @rank_zero_experiment
    def experiment(self) -> ActiveRun:
        """The :class:`~shipyard.tracking.ActiveRun` logged to (started or resumed on
        first use); on ranks other than zero, a no-op stand-in."""
        if self._run is None or self._run.ended:
            self._run = self._open()
            if self._name is None:
                self._name = self._run.client.store.get_experiment(self._run.experiment_id).name
        return self._run

    def _open(self) -> ActiveRun:
        current = active_run()
        if self._run_id is not None:
            if current is not None and current.id == self._run_id:
                self._owned = False
                return current
            run = start_run(run_id=self._run_id, tags=self._tags or None)
            self._owned = True
            return run
        if current is not None:
            if self._experiment_name or self._run_name:
                logger.warning(
                    "ShipyardLogger: logging to the active run %s; experiment=%r and "
                    "run_name=%r apply only to a run the logger starts",
                    current.id,
                    self._experiment_name,
                    self._run_name,
                )
            run, self._owned = current, False
        else:
            run = start_run(
                experiment=self._experiment_name, run_name=self._run_name, tags=self._tags or None
            )
            self._owned = True
        self._run_id = run.id
        return run

    @property
    def name(self) -> str | None:
        """The run's experiment name (None on ranks other than zero)."""
        if self._name is None and self._run is None:
            _ = self.experiment  # sets it
        return self._name

    @property
    def version(self) -> str | None:
        """The run id (None on ranks other than zero). Known after the fit too,
        without resuming the ended run."""
        if self._run_id is None:
            _ = self.experiment  # sets it
        return self._run_id

    @property
    def save_dir(self) -> str | None:
        """None: everything goes to the tracking store, nothing to a local folder."""
        return None

    # -- logging ------------------------------------------------------------------

    def _safely(self, what: str, fn: Callable[[], object]) -> None:
        # tracking must never cost a training job: a failure is a warning in the log
        try:
            fn()
        except Exception as e:
            logger.warning("ShipyardLogger: could not %s in run %s: %s", what, self._run_id, e)

    def _skip(self, what: str, key: str, error: Exception) -> None:
        if (what, key) not in self._warned:
            self._warned.add((what, key))
            logger.debug("ShipyardLogger: not logging %s %r: %s", what, key, error)

    @rank_zero_only
    def log_hyperparams(
        self, params: dict[str, Any] | Namespace, *args: Any, **kwargs: Any
    ) -> None:
        """Record hyperparameters as params: nested dicts flattened with ``.`` keys;
        values that are not JSON (objects, functions) skipped with a debug log."""
        clean: dict[str, Any] = {}
        for key, value in _flatten(
            vars(params) if isinstance(params, Namespace) else params
        ).items():
            try:
                clean[check_key(key, "param key")] = _param(key, value)
            except InvalidArgumentError as e:
                self._skip("hyperparameter", key, e)

        def log() -> None:
            run = self.experiment
            for key, value in clean.items():  # one by one: a conflict loses only its key
                try:
                    run.log_params({key: value})
                except ConflictError as e:
                    logger.warning("ShipyardLogger: %s", e)

        if clean:
            self._safely("log hyperparameters", log)

    @rank_zero_only
    def log_metrics(self, metrics: Mapping[str, Any], step: int | None = None) -> None:
        """Record metric points at ``step`` (tensors become floats; a key or value
        the store refuses is skipped with a debug log)."""
        clean: dict[str, float] = {}
        for key, value in metrics.items():
            try:
                clean[check_key(key, "metric key")] = check_value(value, key)
            except InvalidArgumentError as e:
                self._skip("metric", key, e)
        if clean:
            self._safely("log metrics", lambda: self.experiment.log_metrics(clean, step))

    @rank_zero_only
    def finalize(self, status: str) -> None:
        """End the run this logger started (FINISHED, FAILED, or KILLED), or flush the
        active run it borrowed."""
        run = self._run
        if run is None or run.ended:
            return
        if self._owned:
            self._run = None
            self._safely("end the run", lambda: run.end(_run_status(status)))
        else:
            self._safely("flush the run", run.flush)


# -- checkpoints ------------------------------------------------------------------

_DROP = object()


def _storable(state: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """``state`` with only what the checkpoint codec stores, and the paths of what
    was dropped. Mappings (AttributeDict, OrderedDict) become dicts; a dropped
    dict entry is left out, a dropped list item becomes None (indexes keep)."""
    dropped: list[str] = []

    def conv(value: Any, path: str) -> Any:
        if value is None or isinstance(value, bool | int | float | str | bytes):
            return value
        if isinstance(value, bytearray | memoryview):
            return bytes(value)
        if isinstance(value, torch.Tensor):
            if value.layout != torch.strided or value.is_meta:
                dropped.append(path)
                return _DROP
            return value.as_subclass(torch.Tensor)  # Parameter or subclass -> plain tensor
        if isinstance(value, np.ndarray):
            if value.dtype == object:
                dropped.append(path)
                return _DROP
            return value
        if isinstance(value, np.generic):
            return conv(value.item(), path)
        if isinstance(value, Namespace):
            value = vars(value)
        if isinstance(value, Mapping):
            out: dict[Any, Any] = {}
            for k, v in value.items():
                sub = f"{path}.{k}" if isinstance(k, str) else f"{path}[{k!r}]"
                if not (k is None or isinstance(k, str | int | bool)):
                    dropped.append(sub)
                    continue
                c = conv(v, sub)
                if c is not _DROP:
                    out[k] = c
            return out
        if isinstance(value, list | tuple):
            items = [conv(v, f"{path}[{i}]") for i, v in enumerate(value)]
            items = [None if v is _DROP else v for v in items]
            return tuple(items) if isinstance(value, tuple) else items
        dropped.append(path)
        return _DROP

    clean = conv(state, "")
    return clean, [p.lstrip(".") for p in dropped]


def _scalars(metrics: Mapping[str, Any]) -> dict[str, float]:
    """The one-number values of ``metrics`` as floats."""
    out: dict[str, float] = {}
    for k, v in metrics.items():
        if isinstance(v, torch.Tensor):
            if v.numel() != 1:
                continue
            v = v.item()
        if isinstance(v, numbers.Real):
            out[str(k)] = float(v)
    return out


class ShipyardCheckpoint(Checkpoint):
    """Store Lightning checkpoints in the run, with retention.

    The run is the one of the Trainer's :class:`ShipyardLogger`, else the active
    run. Each checkpoint is the full dict of ``trainer.save_checkpoint`` stored
    with :class:`~shipyard.train.Checkpoints` at ``step=trainer.global_step``,
    with ``trainer.callback_metrics`` as its metrics. Resume with
    :func:`resume_path`.

    Being a Lightning ``Checkpoint``, it runs after the other callbacks (so their
    saved state is current) and replaces Lightning's default ``ModelCheckpoint``
    (add one yourself to also keep ``.ckpt`` files on disk).

    Args:
        every_n_train_steps: also save every this many optimizer steps (0: never).
        save_on_train_epoch_end: save at the end of every training epoch.
        keep_last: how many of the newest checkpoints to keep (None: all).
        keep_best: how many of the best by ``monitor`` to keep besides.
        monitor: the logged metric that ranks checkpoints for ``keep_best``.
        mode: ``"min"`` or ``"max"``: which way is better for ``monitor``.

    A failure to store a checkpoint is logged as an error; training goes on
    (the next checkpoint may succeed). Sharded states (FSDP's sharded
    ``state_dict_type``, DeepSpeed) are not supported: only rank zero's state
    is stored.
    """

    #: Lightning's ``trainer.test(ckpt_path="best")`` reads this; checkpoints
    #: live in the run, not in a file, so it stays empty (see :func:`resume_path`).
    best_model_path = ""

    def __init__(
        self,
        *,
        every_n_train_steps: int = 0,
        save_on_train_epoch_end: bool = True,
        keep_last: int | None = 3,
        keep_best: int = 0,
        monitor: str | None = None,
        mode: Literal["min", "max"] = "min",
    ) -> None:
        if (
            isinstance(every_n_train_steps, bool)
            or not isinstance(every_n_train_steps, int)
            or every_n_train_steps < 0
        ):
            raise InvalidArgumentError(
                f"every_n_train_steps: expected an integer >= 0, got {every_n_train_steps!r}"
            )
        if not every_n_train_steps and not save_on_train_epoch_end:
            raise InvalidArgumentError(
                "ShipyardCheckpoint would never save: pass every_n_train_steps >= 1 "
                "or save_on_train_epoch_end=True"
            )
        self.every_n_train_steps = every_n_train_steps
        self.save_on_train_epoch_end = save_on_train_epoch_end
        self.keep_last = keep_last
        self.keep_best = keep_best
        self.monitor = monitor
        self.mode = mode
        self.checkpoints: Checkpoints | None = None
        self._last_step_saved: int | None = None
        self._warned: set[str] = set()

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if stage == TrainerFn.FITTING and trainer.is_global_zero:
            self.checkpoints = self._checkpoints_of(self._find_run(trainer))

    def _checkpoints_of(self, run: ActiveRun) -> Checkpoints:
        return Checkpoints(
            run.client,
            run.id,
            keep_last=self.keep_last,
            keep_best=self.keep_best,
            monitor=self.monitor,
            mode=self.mode,
        )

    @staticmethod
    def _find_run(trainer: pl.Trainer) -> ActiveRun:
        for lg in trainer.loggers:
            if isinstance(lg, ShipyardLogger):
                run = lg.experiment
                if isinstance(run, ActiveRun):
                    return run
        run = active_run()
        if run is None:
            raise StateError(
                "ShipyardCheckpoint has no run to store checkpoints in: pass "
                "logger=ShipyardLogger() to the Trainer, or fit inside shipyard.start_run()"
            )
        return run

    def on_train_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
    ) -> None:
        n = self.every_n_train_steps
        if n and trainer.global_step % n == 0:
            # the epoch's last step is saved at epoch end, with the epoch's final state
            last = getattr(trainer.fit_loop.epoch_loop.batch_progress, "is_last_batch", False)
            if not (last and self.save_on_train_epoch_end):
                self._save(trainer)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.save_on_train_epoch_end:
            self._save(trainer)

    def _save(self, trainer: pl.Trainer) -> None:
        if (
            trainer.sanity_checking
            or getattr(trainer, "fast_dev_run", False)  # set in Trainer.__init__, untyped
            or trainer.state.fn != TrainerFn.FITTING
            or self._last_step_saved == trainer.global_step
        ):
            return
        # every rank builds the dict (a strategy may gather state for it); rank 0 stores it.
        # Lightning has no public call for the dict alone: trainer.save_checkpoint uses this.
        state = trainer._checkpoint_connector.dump_checkpoint(weights_only=False)
        if trainer.is_global_zero:
            try:
                self._store(trainer, state)
            except Exception as e:
                logger.error(
                    "ShipyardCheckpoint: could not store the checkpoint of step %d: %s",
                    trainer.global_step,
                    e,
                )
        trainer.strategy.barrier("ShipyardCheckpoint._save")
        self._last_step_saved = trainer.global_step

    def _store(self, trainer: pl.Trainer, state: Mapping[str, Any]) -> CheckpointInfo:
        if self.checkpoints is None:  # saving outside a fit's setup
            self.checkpoints = self._checkpoints_of(self._find_run(trainer))
        clean, dropped = _storable(state)
        if dropped:
            clean[DROPPED_KEY] = dropped
            note = ", ".join(dropped)
            if note not in self._warned:
                self._warned.add(note)
                logger.warning(
                    "ShipyardCheckpoint: not storing %s: only dicts, lists, numbers, strings, "
                    "bytes, arrays and tensors can be stored without pickle",
                    note,
                )
        metrics = _scalars(trainer.callback_metrics)
        if self.monitor and self.monitor not in metrics and "monitor" not in self._warned:
            self._warned.add("monitor")
            logger.warning(
                "ShipyardCheckpoint: monitor=%r is not among the logged metrics (%s); "
                "checkpoints without it do not count for keep_best",
                self.monitor,
                ", ".join(sorted(metrics)) or "none",
            )
        return self.checkpoints.save(
            clean, step=trainer.global_step, epoch=trainer.current_epoch, metrics=metrics
        )


def resume_path(
    run_id: str,
    dest_dir: str | os.PathLike[str],
    *,
    step: int | None = None,
    client: TrackingClient | None = None,
) -> str:
    """Write a stored checkpoint of a run as a Lightning ``.ckpt`` file, to resume
    with ``trainer.fit(model, ..., ckpt_path=resume_path(run_id, "ckpt"))``.

    The file is written here with ``torch.save`` from state decoded without
    pickle, so loading it (Lightning does, with ``torch.load``) is safe. It holds
    only tensors and plain Python values, so ``weights_only=True`` loading works,
    unless the state had NumPy arrays: then pass ``weights_only=False`` to ``fit``.

    Args:
        run_id: the run whose checkpoint to write.
        dest_dir: the folder for the file (created if missing).
        step: the checkpoint of this step (default: the latest).
        client: the tracking client (default: the fluent API's).

    Returns:
        The path of the ``.ckpt`` file.

    Raises:
        NotFoundError: the run has no checkpoint (of ``step``).
    """
    ckpts = Checkpoints(client or get_client(), run_id, keep_last=None)
    infos = ckpts.list()
    if step is None:
        info = infos[-1] if infos else None
    else:
        info = next((i for i in infos if i.step == step), None)
    if info is None:
        have = ", ".join(str(i.step) for i in infos) or "none"
        want = "" if step is None else f" of step {step}"
        raise NotFoundError(f"run {run_id} has no checkpoint{want} (checkpoint steps: {have})")
    state = ckpts.load(info)
    state.pop(DROPPED_KEY, None)
    dest = Path(dest_dir)
    dest.mkdir(parents=True, exist_ok=True)
    path = dest / f"{run_id}-step-{info.step:010d}.ckpt"
    torch.save(state, path)
    return str(path)
