"""Torch modules for model tests (a separate module so only torch tests import torch)."""

from __future__ import annotations

from typing import Any

import torch


class TinyNet(torch.nn.Module):
    """Two linear layers; exports with a dynamic batch."""

    def __init__(self, d: int = 4, h: int = 8) -> None:
        super().__init__()
        self.l1 = torch.nn.Linear(d, h)
        self.l2 = torch.nn.Linear(h, 1)
        self.register_buffer("scale", torch.full((d,), 0.5))

    def forward(self, x: Any) -> Any:
        return self.l2(torch.relu(self.l1(x * self.scale)))


class TwoInputs(torch.nn.Module):
    """Takes named tensors (a dict input becomes keyword arguments)."""

    def __init__(self) -> None:
        super().__init__()
        self.a = torch.nn.Linear(3, 2)
        self.b = torch.nn.Linear(2, 2)

    def forward(self, left: Any, right: Any) -> Any:
        return self.a(left) + self.b(right)


class Branchy(torch.nn.Module):
    """Data-dependent control flow: torch.export cannot export it."""

    def __init__(self) -> None:
        super().__init__()
        self.l1 = torch.nn.Linear(4, 1)

    def forward(self, x: Any) -> Any:
        if x.sum() > 0:
            return self.l1(x)
        return -self.l1(x)


def build_tiny(d: int = 4, h: int = 8) -> TinyNet:
    """A factory function (what most projects have)."""
    return TinyNet(d, h)
