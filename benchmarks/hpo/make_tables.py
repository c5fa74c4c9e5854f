"""Generate the replayed learning-curve tables of the search benchmark (run once; output committed).

    .venv/bin/python benchmarks/hpo/make_tables.py [--only digits] [--out benchmarks/hpo/tables]

Each table is real training: every configuration of a discrete space, trained
with AdamW for ``EPOCHS`` epochs, its validation loss recorded after every
epoch. One file per task, ``tables/<task>.npz`` (compressed):

* ``values``  float32 (n_configs, EPOCHS): validation loss after epoch 1..EPOCHS
  (lower is better; a diverged run, NaN or above ``cap``, is recorded as ``cap``);
* ``seconds`` float32 (n_configs,): measured seconds of one epoch (training pass
  plus the validation pass) of that configuration's model and batch size,
  trained alone by a plain PyTorch loop, one thread (the least of
  ``TIMING_ROUNDS`` epochs timed round-robin over the groups). Learning rate,
  weight decay and dropout do not change the cost, so configurations that share
  (width, depth, batch_size) share one measurement;
* ``param_<name>`` the grid of each parameter; configuration ``i`` is row
  ``numpy.unravel_index(i, shape)`` of the grids in ``PARAM_ORDER`` (C order);
* ``meta`` a JSON string: task, metric, cap, seed, epochs, library versions,
  the machine and the generation time.

The tasks are small on purpose (they must train in minutes) and hard on
purpose (so that searchers separate): few training samples, label noise or
irrelevant features, so that large learning rates win early and overfit late
(curves cross), regularisation only pays off late, and a wide spread of final
values. All configurations of one (width, depth, batch_size) group are trained
together as one batched network (``torch.bmm``), each with its own
initialisation, learning rate, weight decay and dropout, on the same batch order:
that is what keeps generation to a few minutes.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

EPOCHS = 27
SEED = 20240611
TIMING_ROUNDS = 7
OUT_DIR = Path(__file__).resolve().parent / "tables"

# The space, the same for every task. Learning-rate-like grids are log-spaced.
PARAMS: dict[str, tuple[float, ...]] = {
    "lr": (1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1),
    "width": (16, 64, 256),
    "depth": (1, 2, 3),
    "batch_size": (32, 128),
    "dropout": (0.0, 0.25, 0.5),
    "weight_decay": (0.0, 0.1),
}
PARAM_ORDER = tuple(PARAMS)
GROUP_KEYS = ("width", "depth", "batch_size")  # one batched network each


@dataclass(frozen=True)
class Task:
    """A dataset split and its loss: what one table is about."""

    name: str
    description: str
    metric: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    n_out: int  # classes, or 1 for regression
    cap: float  # the recorded value of a diverged run (and the ceiling of all values)


def _standardize(xtr: np.ndarray, xva: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mu, sd = xtr.mean(0), xtr.std(0) + 1e-8
    return (xtr - mu) / sd, (xva - mu) / sd


def task_digits(seed: int) -> Task:
    """8x8 digits: 600 training images with 25% of their labels replaced at random."""
    from sklearn.datasets import load_digits

    rng = np.random.default_rng(seed)
    x, y = load_digits(return_X_y=True)
    perm = rng.permutation(len(x))
    x, y = x[perm] / 16.0, y[perm]
    n_tr = 600
    y_tr = y[:n_tr].copy()
    noisy = rng.random(n_tr) < 0.25
    y_tr[noisy] = rng.integers(0, 10, noisy.sum())
    return Task(
        "digits",
        "load_digits, 600 train (25% random labels) / 1197 clean val, 10 classes",
        "val_loss",
        x[:n_tr],
        y_tr,
        x[n_tr:],
        y[n_tr:],
        10,
        cap=3.0 * math.log(10),
    )


def task_classif(seed: int) -> Task:
    """Synthetic 4-class problem: 8 informative of 24 features, 10% flipped labels."""
    from sklearn.datasets import make_classification

    x, y = make_classification(
        n_samples=3000,
        n_features=24,
        n_informative=8,
        n_redundant=4,
        n_classes=4,
        n_clusters_per_class=2,
        class_sep=0.9,
        flip_y=0.1,
        random_state=seed % (2**31),
    )
    n_tr = 1000
    xtr, xva = _standardize(x[:n_tr], x[n_tr:])
    return Task(
        "classif",
        "make_classification 24 features (8 informative), 4 classes, flip_y=0.1; 1000/2000",
        "val_loss",
        xtr,
        y[:n_tr],
        xva,
        y[n_tr:],
        4,
        cap=3.0 * math.log(4),
    )


def task_friedman(seed: int) -> Task:
    """Friedman #1 regression, 10 features (5 irrelevant), noise sd 1; standardized MSE."""
    from sklearn.datasets import make_friedman1

    x, y = make_friedman1(n_samples=2000, n_features=10, noise=1.0, random_state=seed % (2**31))
    n_tr = 500
    xtr, xva = _standardize(x[:n_tr], x[n_tr:])
    mu, sd = y[:n_tr].mean(), y[:n_tr].std()
    return Task(
        "friedman",
        "make_friedman1 10 features, noise=1.0, 500/1500, MSE of standardized y",
        "val_mse",
        xtr,
        (y[:n_tr] - mu) / sd,
        xva,
        (y[n_tr:] - mu) / sd,
        1,
        cap=3.0,
    )


TASKS: dict[str, Callable[[int], Task]] = {
    "digits": task_digits,
    "classif": task_classif,
    "friedman": task_friedman,
}


def _loss_fn(task: Task) -> Callable[[Any, Any], Any]:
    import torch.nn.functional as F  # noqa: N812

    if task.n_out == 1:
        return lambda out, y: F.mse_loss(out.squeeze(-1), y, reduction="none").mean(-1)
    return lambda out, y: (
        F.cross_entropy(out.reshape(-1, task.n_out), y.repeat(out.shape[0]), reduction="none")
        .view(out.shape[0], -1)
        .mean(-1)
    )


def train_group(
    task: Task, width: int, depth: int, batch_size: int, hp: list[dict[str, float]], seed: int
) -> np.ndarray:
    """Train len(hp) MLPs at once (one per dict of lr, dropout, weight_decay).

    Returns:
        The validation loss of each model after each epoch, (len(hp), EPOCHS).
    """
    import torch

    g = torch.Generator().manual_seed(seed)
    m = len(hp)
    xtr = torch.tensor(task.x_train, dtype=torch.float32)
    xva = torch.tensor(task.x_val, dtype=torch.float32)
    target_dtype = torch.float32 if task.n_out == 1 else torch.long
    ytr = torch.tensor(task.y_train, dtype=target_dtype)
    yva = torch.tensor(task.y_val, dtype=target_dtype)
    dims = [xtr.shape[1]] + [width] * depth + [task.n_out]
    params = []
    for fan_in, fan_out in itertools.pairwise(dims):
        bound = 1.0 / math.sqrt(fan_in)  # nn.Linear's default initialisation
        params.append((torch.rand(m, fan_in, fan_out, generator=g) * 2 - 1) * bound)
        params.append((torch.rand(m, 1, fan_out, generator=g) * 2 - 1) * bound)
    for p in params:
        p.requires_grad_()
    exp_avg = [torch.zeros_like(p) for p in params]
    exp_sq = [torch.zeros_like(p) for p in params]
    lr = torch.tensor([h["lr"] for h in hp]).view(m, 1, 1)
    wd = torch.tensor([h["weight_decay"] for h in hp]).view(m, 1, 1)
    keep = 1.0 - torch.tensor([h["dropout"] for h in hp]).view(m, 1, 1)
    loss_fn = _loss_fn(task)
    beta1, beta2, eps = 0.9, 0.999, 1e-8

    def forward(x: Any, train: bool) -> Any:
        h = x.unsqueeze(0).expand(m, -1, -1)
        for i in range(0, len(params), 2):
            h = torch.baddbmm(params[i + 1], h, params[i])
            if i + 2 < len(params):
                h = torch.relu(h)
                if train:
                    mask = torch.rand(h.shape, generator=g) < keep
                    h = h * mask / keep
        return h

    out = np.empty((m, EPOCHS), dtype=np.float64)
    n = len(xtr)
    step = 0
    for epoch in range(EPOCHS):
        perm = torch.randperm(n, generator=g)
        for s in range(0, n, batch_size):
            idx = perm[s : s + batch_size]
            losses = loss_fn(forward(xtr[idx], True), ytr[idx])
            # models are independent: the sum's gradient is each model's own
            losses = torch.nan_to_num(losses, nan=0.0, posinf=0.0)
            grads = torch.autograd.grad(losses.sum(), params)
            step += 1
            with torch.no_grad():
                c1, c2 = 1 - beta1**step, 1 - beta2**step
                for p, grad, a, b in zip(params, grads, exp_avg, exp_sq, strict=True):
                    p.mul_(1 - lr * wd)  # AdamW: decoupled weight decay
                    a.mul_(beta1).add_(grad, alpha=1 - beta1)
                    b.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
                    p.sub_(lr * (a / c1) / ((b / c2).sqrt() + eps))
        with torch.no_grad():
            val = loss_fn(forward(xva, False), yva).numpy()
        out[:, epoch] = val
    out = np.nan_to_num(out, nan=task.cap, posinf=task.cap)
    return np.minimum(out, task.cap)


class EpochTimer:
    """One model of a (width, depth, batch_size) group in a plain PyTorch loop
    (nn.Sequential, torch.optim.AdamW): :meth:`epoch` times one epoch of it,
    training pass plus validation pass."""

    def __init__(self, task: Task, width: int, depth: int, batch_size: int, seed: int) -> None:
        import torch
        from torch import nn

        torch.manual_seed(seed)
        dims = [task.x_train.shape[1]] + [width] * depth + [task.n_out]
        layers: list[nn.Module] = []
        for fan_in, fan_out in itertools.pairwise(dims):
            layers += [nn.Linear(fan_in, fan_out), nn.ReLU(), nn.Dropout(0.25)]
        self.model = nn.Sequential(*layers[:-2])
        self.opt = torch.optim.AdamW(self.model.parameters(), lr=1e-3, weight_decay=0.1)
        self.batch_size = batch_size
        self.xtr = torch.tensor(task.x_train, dtype=torch.float32)
        self.xva = torch.tensor(task.x_val, dtype=torch.float32)
        if task.n_out == 1:
            self.ytr = torch.tensor(task.y_train, dtype=torch.float32)
            self.yva = torch.tensor(task.y_val, dtype=torch.float32)
            self.loss_fn: Callable[[Any, Any], Any] = lambda o, t: nn.functional.mse_loss(
                o.squeeze(-1), t
            )
        else:
            self.ytr, self.yva = torch.tensor(task.y_train), torch.tensor(task.y_val)
            self.loss_fn = nn.functional.cross_entropy

    def epoch(self) -> float:
        import torch

        t0 = time.perf_counter()
        self.model.train()
        perm = torch.randperm(len(self.xtr))
        for s in range(0, len(self.xtr), self.batch_size):
            idx = perm[s : s + self.batch_size]
            self.opt.zero_grad()
            self.loss_fn(self.model(self.xtr[idx]), self.ytr[idx]).backward()
            self.opt.step()
        self.model.eval()
        with torch.no_grad():
            float(self.loss_fn(self.model(self.xva), self.yva))
        return time.perf_counter() - t0


def time_groups(task: Task, groups: list[tuple[int, int, int]], seed: int) -> list[float]:
    """Seconds per epoch of each group: the least of ``TIMING_ROUNDS`` epochs, timed
    round-robin over the groups after a warm-up epoch each. On a shared machine other
    work only ever adds time, and round-robin spreads what it adds over all groups."""
    timers = [EpochTimer(task, w, d, b, seed + i) for i, (w, d, b) in enumerate(groups)]
    for t in timers:
        t.epoch()
    best = [math.inf] * len(timers)
    for _ in range(TIMING_ROUNDS):
        for i, t in enumerate(timers):
            best[i] = min(best[i], t.epoch())
    return best


def make_table(name: str, seed: int, out_dir: Path) -> Path:
    import sklearn
    import torch

    torch.set_num_threads(1)
    t_start = time.perf_counter()
    task = TASKS[name](seed)
    grids = [PARAMS[k] for k in PARAM_ORDER]
    shape = tuple(len(g) for g in grids)
    n = int(np.prod(shape))
    values = np.empty((n, EPOCHS), dtype=np.float32)
    seconds = np.empty(n, dtype=np.float32)
    group_axes = [PARAM_ORDER.index(k) for k in GROUP_KEYS]
    groups = [
        (int(w), int(d), int(b)) for w, d, b in itertools.product(*(PARAMS[k] for k in GROUP_KEYS))
    ]
    group_rows: list[list[int]] = []
    for gi, group in enumerate(groups):
        rows = [
            i
            for i, idx in enumerate(np.ndindex(*shape))
            if all(grids[a][idx[a]] == v for a, v in zip(group_axes, group, strict=True))
        ]
        hp = [
            {k: float(grids[a][np.unravel_index(i, shape)[a]]) for a, k in enumerate(PARAM_ORDER)}
            for i in rows
        ]
        width, depth, batch = group
        t0 = time.perf_counter()
        values[rows] = train_group(task, width, depth, batch, hp, seed + 1000 * gi)
        group_rows.append(rows)
        print(
            f"  {name} group {gi + 1:2d} width={width} depth={depth} batch={batch}: "
            f"{len(rows)} configs in {time.perf_counter() - t0:.1f} s",
            flush=True,
        )
    for rows, group, sec in zip(group_rows, groups, time_groups(task, groups, seed), strict=True):
        seconds[rows] = sec
        print(f"  {name} {group}: {sec * 1000:.2f} ms/epoch alone", flush=True)
    meta = {
        "task": task.name,
        "description": task.description,
        "metric": task.metric,
        "mode": "min",
        "cap": task.cap,
        "epochs": EPOCHS,
        "param_order": list(PARAM_ORDER),
        "seed": seed,
        "optimizer": "AdamW (betas 0.9, 0.999), no schedule; nn.Linear init; ReLU; dropout",
        "generator": "benchmarks/hpo/make_tables.py",
        "versions": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "numpy": np.__version__,
            "sklearn": sklearn.__version__,
        },
        "machine": platform.processor() or platform.machine(),
        "threads": torch.get_num_threads(),
        "generated_s": round(time.perf_counter() - t_start, 1),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{name}.npz"
    np.savez_compressed(
        path,
        values=values,
        seconds=seconds,
        meta=np.array(json.dumps(meta)),
        **{f"param_{k}": np.asarray(PARAMS[k], dtype=np.float64) for k in PARAM_ORDER},
    )
    final = values[:, -1]
    print(
        f"{name}: {n} configs x {EPOCHS} epochs in {meta['generated_s']} s -> {path} "
        f"({path.stat().st_size / 1024:.0f} KiB); final {task.metric}: best {final.min():.4f}, "
        f"median {np.median(final):.4f}; best-epoch min {values.min():.4f}",
        flush=True,
    )
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", action="append", choices=sorted(TASKS))
    parser.add_argument("--out", type=Path, default=OUT_DIR)
    parser.add_argument("--seed", type=int, default=SEED)
    args = parser.parse_args(argv)
    for name in args.only or list(TASKS):
        make_table(name, args.seed, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
