"""An importable factory for the torch export tests (the torch flavor stores a reference)."""

from __future__ import annotations

from typing import Any


def build_mlp(hidden: int = 32) -> Any:
    import torch

    return torch.nn.Sequential(
        torch.nn.Linear(8, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, 1)
    )
