"""Training: the Trial API, the Core API, checkpoints, distributed launch.

* :class:`Trial` + :func:`fit` -- the standard shape of training code, with
  the loop (devices, mixed precision, accumulation, validation, checkpoints,
  early stopping, DDP, the final model package) done for you;
* :func:`init` -- the Core API for any loop: hparams, ``report``,
  ``checkpoint`` / ``latest_checkpoint``, ``should_stop`` / ``should_preempt``;
* :class:`Checkpoints` -- a run's checkpoints: save, list, load, retention;
* :func:`reproduce` -- re-run a recorded training from its code, data and
  hparams, and compare the metrics;
* :mod:`shipyard.train.lightning` -- a logger and checkpoint callback for
  Lightning's own Trainer (imported explicitly).

Importing this package loads no torch; :func:`fit` does.
"""

from __future__ import annotations

from shipyard.train._checkpoint import CheckpointInfo, Checkpoints
from shipyard.train._core import TrainContext, init
from shipyard.train._fit import FitResult, fit
from shipyard.train._hparams import load_hparams
from shipyard.train._reproduce import MetricComparison, ReproduceReport, reproduce
from shipyard.train._trial import Trial

__all__ = [
    "CheckpointInfo",
    "Checkpoints",
    "FitResult",
    "MetricComparison",
    "ReproduceReport",
    "TrainContext",
    "Trial",
    "fit",
    "init",
    "load_hparams",
    "reproduce",
]
