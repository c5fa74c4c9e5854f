"""Small Trials the training tests run (a module, so packages can name them)."""

from __future__ import annotations

import os
import signal
from typing import Any

import torch
from torch import nn
from torch.utils.data import TensorDataset

import shipyard


def toy_data(n: int = 96, seed: int = 0) -> TensorDataset:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 4, generator=g)
    y = x @ torch.tensor([[1.0], [-2.0], [0.5], [3.0]]) + 0.1 * torch.randn(n, 1, generator=g)
    return TensorDataset(x, y)


class Regression(shipyard.Trial):
    """A small MLP with dropout (so the RNG matters) on a linear target."""

    default_hparams = {"lr": 0.05, "hidden": 8, "batch_size": 16, "epochs": 3, "seed": 7}

    def build_model(self) -> nn.Module:
        h = self.hparams["hidden"]
        return nn.Sequential(nn.Linear(4, h), nn.ReLU(), nn.Dropout(0.1), nn.Linear(h, 1))

    def build_optimizer(self, model: nn.Module) -> Any:
        opt = torch.optim.Adam(model.parameters(), lr=self.hparams["lr"])
        return opt, torch.optim.lr_scheduler.StepLR(opt, step_size=5, gamma=0.9)

    def build_training_data(self) -> TensorDataset:
        return toy_data(96)

    def build_validation_data(self) -> TensorDataset:
        return toy_data(32, seed=1)

    def train_step(self, model: nn.Module, batch: Any) -> Any:
        x, y = batch
        step = int(os.environ.get("KILL_AT_BATCH", "0"))
        if step:
            self.seen = getattr(self, "seen", 0) + 1
            if self.seen == step:
                os.kill(os.getpid(), signal.SIGKILL)
        return nn.functional.mse_loss(model(x), y)

    def evaluate(self, model: nn.Module, batch: Any) -> dict[str, Any]:
        x, y = batch
        return {"val_loss": nn.functional.mse_loss(model(x), y)}
