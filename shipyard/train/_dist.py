"""Who this process is in a data-parallel job, and the few collectives the
harness needs. Without ``torch.distributed`` initialised, every function is a
cheap no-op for a single process, so the same code runs standalone.

``torchrun`` sets ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK``; only rank 0 (the
chief) logs and checkpoints.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from typing import Any

__all__ = [
    "all_mean",
    "all_sum",
    "broadcast_flag",
    "is_distributed",
    "local_rank",
    "rank",
    "world_size",
]


def rank() -> int:
    return int(os.environ.get("RANK", "0"))


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0"))


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def is_distributed() -> bool:
    """True when torch.distributed is initialised with more than one process."""
    if "torch" not in sys.modules:
        return False
    import torch.distributed as dist

    return bool(dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1)


def _device() -> Any:
    import torch
    import torch.distributed as dist

    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def all_mean(metrics: Mapping[str, float]) -> dict[str, float]:
    """The mean of each metric over all processes (every rank must call this with
    the same keys, in the same order)."""
    if not is_distributed() or not metrics:
        return {k: float(v) for k, v in metrics.items()}
    import torch
    import torch.distributed as dist

    keys = sorted(metrics)
    values = torch.tensor([float(metrics[k]) for k in keys], dtype=torch.float64, device=_device())
    dist.all_reduce(values, op=dist.ReduceOp.SUM)
    values /= dist.get_world_size()
    return dict(zip(keys, values.tolist(), strict=True))


def all_sum(values: list[float]) -> list[float]:
    """Element-wise sum over all processes."""
    if not is_distributed():
        return list(values)
    import torch
    import torch.distributed as dist

    t = torch.tensor(values, dtype=torch.float64, device=_device())
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return [float(v) for v in t.tolist()]


def broadcast_flag(flag: bool) -> bool:
    """True on every rank when it is True on any rank (a stop decision all obey)."""
    if not is_distributed():
        return flag
    return all_sum([1.0 if flag else 0.0])[0] > 0
