"""The final model of a Trial, logged as a model package (torch flavor).

The package can be rebuilt two ways: with the Trial's own ``build_model`` (the
factory, for fine-tuning; needs the Trial's module importable where it is
loaded) and, when there is an input example, as a code-free exported program
(for serving). A Trial defined in the script being run (``__main__``) gets only
the second.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from shipyard.errors import InvalidArgumentError, ShipyardError

if TYPE_CHECKING:
    from shipyard.train._core import TrainContext
    from shipyard.train._trial import Trial

__all__ = ["log_trial_model"]

logger = logging.getLogger("shipyard.train")

_EXAMPLE_ROWS = 5


def _numpy(value: Any) -> Any:
    import torch

    if isinstance(value, torch.Tensor):
        return value[:_EXAMPLE_ROWS].detach().cpu().numpy()
    if isinstance(value, Mapping):
        return {k: _numpy(v) for k, v in value.items()}
    return None


def _example(trial: Trial, batch: Any) -> Any:
    given = trial.input_example()
    if given is not None:
        return given
    if isinstance(batch, (list, tuple)) and batch:
        batch = batch[0]  # (x, y): the inputs
    example = _numpy(batch)
    if isinstance(example, Mapping) and any(v is None for v in example.values()):
        return None
    return example


#: Rows of a TensorDataset's inputs profiled for drift monitoring.
_PROFILE_ROWS = 100_000


def _profile_data(trial: Trial, dataset: Any) -> Any:
    """The trial's profile data, else the inputs of a TensorDataset (first tensor),
    else None (the package profiles its input example)."""
    given = trial.profile_data()
    if given is not None:
        return given
    import torch

    # a TensorDataset, or the loop's batched view of one (both hold .tensors)
    tensors = getattr(dataset, "tensors", None)
    if isinstance(tensors, tuple) and tensors and isinstance(tensors[0], torch.Tensor):
        inputs = tensors[0]
        if inputs.ndim <= 2:
            return inputs[:_PROFILE_ROWS].detach().cpu().numpy()
    return None


def log_trial_model(
    trial: Trial, model: Any, batch: Any, name: str, ctx: TrainContext, dataset: Any = None
) -> str | None:
    """Log ``model`` as artifact ``name`` of the context's run; returns its URI,
    or None when it could not be logged (the reason is logged and tagged: the
    training itself succeeded and its checkpoints are stored)."""
    from shipyard.models import log_model
    from shipyard.models._refs import reference_of

    assert ctx.run is not None
    options: dict[str, Any] = {}
    try:
        ref = reference_of(type(trial), "trial")
        options = {
            "factory": "shipyard.train._factory:trial_model",
            "hparams": {"trial": ref, "hparams": trial.hparams},
        }
    except InvalidArgumentError:
        pass  # a Trial in __main__: the exported program only
    example = _example(trial, batch)
    if not options and example is None:
        reason = (
            f"{type(trial).__name__} is defined in the script being run and gives no input "
            "example; define input_example() or move the Trial into a module"
        )
        logger.warning("final model not logged: %s", reason)
        ctx.run.set_tag("shipyard.model_error", reason[:500])
        return None
    model = model.to("cpu").eval()
    try:
        # the package records the run's metrics and code version: let them land first
        ctx.run.flush(timeout=10.0)
        ctx.run.code_recorded.wait(timeout=10.0)
        info = log_model(
            model,
            name,
            input_example=example,
            profile_data=_profile_data(trial, dataset),
            run_id=ctx.run.id,
            **options,
        )
    except ShipyardError as e:
        logger.error("final model not logged: %s", e)
        ctx.run.set_tag("shipyard.model_error", str(e)[:500])
        return None
    uri: str = info.uri
    return uri
