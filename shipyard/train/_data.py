"""Data order the harness controls, so a resumed run sees the same batches.

Each epoch's order is a permutation drawn from a generator seeded by
``(seed, epoch)`` alone -- not by the global RNG -- so it can be recomputed
after a restart. A resume skips the samples already consumed in the epoch
and deals the rest over the ranks (``order[rank::world]``), so it also works
with a different number of processes than the run that saved the checkpoint.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from shipyard.errors import InvalidArgumentError

__all__ = [
    "BatchedTensors",
    "ResumableSampler",
    "make_eval_loader",
    "make_loader",
    "shard_indices",
]


def _generator(seed: int, epoch: int) -> Any:
    import torch

    g = torch.Generator()
    g.manual_seed((seed * 1_000_003 + epoch) % (2**63 - 1))
    return g


class ResumableSampler:
    """A sampler over ``n`` items: a seeded shuffle per epoch, a start position
    within it, and this rank's share."""

    def __init__(self, n: int, *, seed: int, shuffle: bool, rank: int = 0, world: int = 1) -> None:
        self.n = n
        self.seed = seed
        self.shuffle = shuffle
        self.rank = rank
        self.world = world
        self.epoch = 0
        self.start = 0

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        """Iterate epoch ``epoch`` from its ``start``-th sample (over all ranks)."""
        self.epoch = epoch
        self.start = min(max(start, 0), self.n)

    def _order(self) -> list[int]:
        if not self.shuffle:
            return list(range(self.n))
        import torch

        return torch.randperm(self.n, generator=_generator(self.seed, self.epoch)).tolist()

    def __iter__(self) -> Iterator[int]:
        rest = self._order()[self.start :]
        if self.world > 1 and rest:
            pad = (-len(rest)) % self.world  # every rank takes the same number of steps
            rest = rest + rest[:pad]
        return iter(rest[self.rank :: self.world])

    def __len__(self) -> int:
        rest = self.n - self.start
        return -(-rest // self.world) if self.world > 1 else rest


class BatchedTensors:
    """A ``TensorDataset`` read a batch at a time: one gather per tensor instead
    of one ``__getitem__`` per row and a stack (the same values, bit for bit;
    for small models this is most of a step's time)."""

    def __init__(self, tensors: tuple[Any, ...]) -> None:
        self.tensors = tensors

    def __len__(self) -> int:
        return len(self.tensors[0])

    def __getitem__(self, indices: list[int]) -> list[Any]:
        import torch

        index = torch.as_tensor(indices)
        return [t[index] for t in self.tensors]


def shard_indices(n: int, rank: int, world: int) -> list[int]:
    """This rank's share of ``n`` evaluation items (no padding: nothing counted twice)."""
    return list(range(rank, n, world))


def make_loader(
    data: Any, *, batch_size: int | None, seed: int, shuffle: bool, rank: int, world: int
) -> tuple[Any, ResumableSampler | None]:
    """A DataLoader over ``data`` (a Dataset, or a DataLoader whose settings are
    kept) driven by a :class:`ResumableSampler`. An iterable-style dataset is
    used as given (no exact mid-epoch resume)."""
    import torch
    from torch.utils.data import (
        BatchSampler,
        DataLoader,
        Dataset,
        IterableDataset,
        TensorDataset,
        default_collate,
    )

    options: dict[str, Any] = {}
    dataset: Any
    if isinstance(data, DataLoader):
        dataset = data.dataset
        batch_size = data.batch_size
        options = {
            "collate_fn": data.collate_fn,
            "num_workers": data.num_workers,
            "pin_memory": data.pin_memory,
            "drop_last": data.drop_last,
            "worker_init_fn": data.worker_init_fn,
            "persistent_workers": data.persistent_workers,
        }
        if data.num_workers:
            options["prefetch_factor"] = data.prefetch_factor
        if isinstance(dataset, IterableDataset):
            return data, None
    elif isinstance(data, Dataset) or hasattr(data, "__getitem__"):
        dataset = data
    else:
        raise InvalidArgumentError(
            f"training data: expected a torch Dataset or DataLoader, got {type(data).__name__}"
        )
    if isinstance(dataset, IterableDataset):
        return DataLoader(dataset, batch_size=batch_size, **options), None
    sampler = ResumableSampler(len(dataset), seed=seed, shuffle=shuffle, rank=rank, world=world)
    generator = torch.Generator()
    generator.manual_seed(seed)  # worker seeds come from here, not the global RNG
    if (
        isinstance(dataset, TensorDataset)
        and options.get("collate_fn", default_collate) is default_collate
        and batch_size is not None
    ):
        options.pop("collate_fn", None)
        batches = BatchSampler(sampler, batch_size, drop_last=options.pop("drop_last", False))
        loader: Any = DataLoader(
            BatchedTensors(dataset.tensors),  # type: ignore[arg-type]
            batch_size=None, sampler=batches, generator=generator, **options,
        )  # fmt: skip
        return loader, sampler
    loader = DataLoader(
        dataset, batch_size=batch_size, sampler=sampler, generator=generator, **options
    )
    return loader, sampler


def make_eval_loader(data: Any, *, batch_size: int, rank: int, world: int) -> Any:
    """A loader over this rank's share of the validation data, in order.

    A DataLoader the Trial built is used as it is on one process (its workers,
    its collate); a TensorDataset is read a batch at a time."""
    import torch
    from torch.utils.data import DataLoader, Subset, TensorDataset, default_collate

    collate: Any = None
    dataset: Any = data
    if isinstance(data, DataLoader):
        if world == 1 and not isinstance(data.dataset, TensorDataset):
            return data
        dataset, collate = data.dataset, data.collate_fn
        batch_size = data.batch_size or batch_size
    indices = shard_indices(len(dataset), rank, world)
    generator = torch.Generator()  # iterating must not draw from the global RNG
    if isinstance(dataset, TensorDataset) and collate in (None, default_collate):
        batches = [indices[i : i + batch_size] for i in range(0, len(indices), batch_size)]
        return DataLoader(
            BatchedTensors(dataset.tensors),  # type: ignore[arg-type]
            batch_size=None, sampler=batches, generator=generator,
        )  # fmt: skip
    if world > 1:
        dataset = Subset(dataset, indices)
    options: dict[str, Any] = {"collate_fn": collate} if collate is not None else {}
    return DataLoader(dataset, batch_size=batch_size, shuffle=False, generator=generator, **options)
