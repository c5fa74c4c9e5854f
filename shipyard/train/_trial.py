"""The Trial API: the standard shape of training code.

Subclass :class:`Trial` and fill in how to build the model, the optimizer and
the data, one training step and one evaluation step; :func:`shipyard.train.fit`
(or ``shipyard train trial.py:MyTrial``) does the rest -- device placement,
mixed precision, gradient accumulation and clipping, validation, logging,
checkpoints with exact resume, early stopping, distributed data parallelism,
and logging the final model as a package.

    class PricingTrial(shipyard.Trial):
        default_hparams = {"lr": 1e-3, "hidden": 64, "batch_size": 32, "epochs": 5}

        def build_model(self):
            return MLP(self.hparams["hidden"])

        def build_optimizer(self, model):
            return torch.optim.AdamW(model.parameters(), lr=self.hparams["lr"])

        def build_training_data(self):
            return TensorDataset(X_train, y_train)

        def build_validation_data(self):
            return TensorDataset(X_val, y_val)

        def train_step(self, model, batch):
            x, y = batch
            return F.mse_loss(model(x), y)

        def evaluate(self, model, batch):
            x, y = batch
            return {"val_loss": F.mse_loss(model(x), y)}

Constructors only store: the harness makes the Trial with its hparams, then
calls, on the process that trains and with the run active, in this order:
``build_training_data``, ``build_validation_data``, ``build_model``,
``build_optimizer``. Data comes first so that preprocessing fitted on the
training data (normalisation statistics, a vocabulary) can be kept on
``self`` and built into the model -- which then ships inside the package.
``build_model`` is also what rebuilds the logged model for fine-tuning, without
any data: it must work when the ``build_*_data`` methods were not called (the
weights, buffers included, are loaded over what it builds).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

__all__ = ["Trial"]


class Trial:
    """Base class of a training definition (see the module docstring)."""

    #: Defaults for the hyperparameters; the hparams file, ``SHIPYARD_HPARAMS``
    #: and ``--set`` win over them. Keys the harness reads: ``seed``,
    #: ``batch_size``, ``epochs``.
    default_hparams: ClassVar[Mapping[str, Any]] = {}

    def __init__(self, hparams: Mapping[str, Any]) -> None:
        self.hparams: dict[str, Any] = dict(hparams)

    # -- required -----------------------------------------------------------------

    def build_model(self) -> Any:
        """Return the ``torch.nn.Module`` to train, built from ``self.hparams``
        (on CPU: the harness moves it to the device)."""
        raise NotImplementedError(f"{type(self).__name__} must define build_model(self)")

    def build_optimizer(self, model: Any) -> Any:
        """Return an optimizer for ``model``'s parameters, or ``(optimizer,
        scheduler)``; the scheduler steps after every optimizer step."""
        raise NotImplementedError(f"{type(self).__name__} must define build_optimizer(self, model)")

    def build_training_data(self) -> Any:
        """Return a ``torch.utils.data.Dataset`` (batched with
        ``hparams["batch_size"]``) or a ``DataLoader`` (its settings are kept;
        the harness supplies the sampler so it can resume mid-epoch)."""
        raise NotImplementedError(f"{type(self).__name__} must define build_training_data(self)")

    def train_step(self, model: Any, batch: Any) -> Any:
        """Compute the loss of one batch (already on the device). Return the loss
        tensor, or a dict with ``"loss"`` and other values to log. Do not call
        ``backward`` or step the optimizer: the harness does (with accumulation,
        scaling and clipping)."""
        raise NotImplementedError(
            f"{type(self).__name__} must define train_step(self, model, batch)"
        )

    # -- optional -----------------------------------------------------------------

    def build_validation_data(self) -> Any:
        """A Dataset or DataLoader for validation, or None (the default: no
        validation)."""
        return None

    def evaluate(self, model: Any, batch: Any) -> Mapping[str, Any]:
        """Metrics of one validation batch (numbers or 0-d tensors); the harness
        averages them over the batches, weighted by batch size, and over ranks."""
        raise NotImplementedError(
            f"{type(self).__name__} returns validation data, so it must define "
            "evaluate(self, model, batch) -> {'val_loss': ...}"
        )

    def profile_data(self) -> Any:
        """Raw training inputs (NumPy array or dict of arrays) profiled into the final
        model package, the reference that serving measures input drift against
        (at most 100,000 rows are used). None (the default): the training data's
        inputs when it is a ``TensorDataset``, else the input example."""
        return None

    def input_example(self) -> Any:
        """A small raw input (NumPy array or dict of arrays) for the final model
        package: its signature, its golden examples, its exported program. None
        (the default): the first training batch's inputs are used when the batch
        is ``(x, y)`` or ``x``."""
        return None
