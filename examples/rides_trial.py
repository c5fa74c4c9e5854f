"""The demo's model, written with the Trial API: a small MLP that prices rides.

Its preprocessing lives inside the module (standardisation statistics are
buffers fitted on the training split), so the logged package -- and its ONNX
export -- take raw features: distance, duration, rush (0/1), surge.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import shipyard


class PriceNet(nn.Module):
    """Standardise raw features, then a two-layer MLP."""

    def __init__(self, hidden: int = 32) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(4))
        self.register_buffer("std", torch.ones(4))
        self.net = nn.Sequential(nn.Linear(4, hidden), nn.ReLU(), nn.Linear(hidden, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net((x - self.mean) / self.std)


class RidesTrial(shipyard.Trial):
    """Price rides from distance, duration, rush hour and surge."""

    default_hparams = {"data": "rides@latest", "lr": 0.01, "hidden": 32, "batch_size": 256,
                       "epochs": 6, "seed": 0}  # fmt: skip

    def build_training_data(self) -> TensorDataset:
        # data.use records the dataset version as an input of the run
        table = np.loadtxt(shipyard.data.use(self.hparams["data"]), delimiter=",", skiprows=1)
        x, y = table[:, :4].astype(np.float32), table[:, 4:5].astype(np.float32)
        split = int(0.8 * len(y))
        self.train_x, self.val = x[:split], (x[split:], y[split:])
        return TensorDataset(torch.from_numpy(x[:split]), torch.from_numpy(y[:split]))

    def build_validation_data(self) -> DataLoader:
        val = TensorDataset(*(torch.from_numpy(a) for a in self.val))
        return DataLoader(val, batch_size=len(val))  # one batch: the RMSE is exact

    def build_model(self) -> nn.Module:
        model = PriceNet(self.hparams["hidden"])
        if hasattr(self, "train_x"):  # training: fit the preprocessing on the train split
            model.mean.copy_(torch.from_numpy(self.train_x.mean(axis=0)))
            model.std.copy_(torch.from_numpy(self.train_x.std(axis=0) + 1e-6))
        return model

    def build_optimizer(self, model: nn.Module) -> Any:
        return torch.optim.Adam(model.parameters(), lr=self.hparams["lr"])

    def train_step(self, model: nn.Module, batch: Any) -> torch.Tensor:
        x, y = batch
        return nn.functional.mse_loss(model(x), y)

    def evaluate(self, model: nn.Module, batch: Any) -> dict[str, Any]:
        x, y = batch
        return {"val_rmse": torch.sqrt(nn.functional.mse_loss(model(x), y))}
