"""The live search benchmark's task: an MLP on scikit-learn's digits (Trial API).

Small enough that a trial is seconds on one core, hard enough that learning
rate and width matter: too high a learning rate diverges, too low one has not
converged in a few epochs. Validation error is the metric.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.utils.data import TensorDataset

import shipyard

torch.set_num_threads(1)  # two trials share the two cores


def _split(part: str) -> TensorDataset:
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    x = torch.tensor(x / 16.0, dtype=torch.float32)
    y = torch.tensor(y, dtype=torch.long)
    g = torch.Generator().manual_seed(0)
    order = torch.randperm(len(x), generator=g)
    cut = int(0.7 * len(x))
    idx = order[:cut] if part == "train" else order[cut:]
    return TensorDataset(x[idx], y[idx])


class DigitsTrial(shipyard.Trial):
    default_hparams = {"lr": 0.01, "hidden": 64, "weight_decay": 1e-4, "batch_size": 64,
                       "epochs": 27, "seed": 0}  # fmt: skip

    def build_training_data(self) -> TensorDataset:
        return _split("train")

    def build_validation_data(self) -> TensorDataset:
        return _split("val")

    def build_model(self) -> nn.Module:
        h = int(self.hparams["hidden"])
        return nn.Sequential(nn.Linear(64, h), nn.ReLU(), nn.Linear(h, h), nn.ReLU(),
                             nn.Linear(h, 10))  # fmt: skip

    def build_optimizer(self, model: nn.Module) -> Any:
        return torch.optim.SGD(model.parameters(), lr=self.hparams["lr"], momentum=0.9,
                               weight_decay=self.hparams["weight_decay"])  # fmt: skip

    def train_step(self, model: nn.Module, batch: Any) -> Any:
        x, y = batch
        return nn.functional.cross_entropy(model(x), y)

    def evaluate(self, model: nn.Module, batch: Any) -> dict[str, Any]:
        x, y = batch
        logits = model(x)
        err = (logits.argmax(1) != y).float().mean()
        loss = nn.functional.cross_entropy(logits, y)
        return {"val_error": err, "val_loss": torch.nan_to_num(loss, nan=1e6)}
