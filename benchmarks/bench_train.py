"""Training harness: ``shipyard.train.fit`` against a raw PyTorch loop doing the same work.

Same work on both sides: the same MLP, initialised after the same
``seed_everything(seed)`` (a new seed for each pair of runs: repeating one would
repeat fit's checkpoints, which its content-addressed blob store does not write
twice); the same optimizer (SGD with momentum); the same batches in the same
order (the raw loop's ``RandomSampler`` generator is reseeded each epoch as
fit's sampler seeds its own); and the same final weights, checked with
``torch.equal`` on every tensor of the state dicts after every pair of runs (a
difference fails the figures). Tracking is on on both sides, at the same
cadence, into a fresh run per call (SQLite store under a temporary
``SHIPYARD_HOME``):

* every 10 steps ``{"loss", "lr"}``; after each epoch a validation pass over 2
  held-out batches, logged as ``val_loss`` (fit: ``Trial.evaluate``; raw: the
  same loss under ``no_grad``);
* a checkpoint at each epoch's end, the last 3 kept. fit: weights, optimizer,
  counters and RNG states as safetensors into the blob store, recorded as a run
  artifact (what exact resume needs). Raw: ``torch.save({"model", "optimizer",
  "epoch", "step"})`` to a local file, the oldest beyond 3 deleted.

fit runs with ``log_model=None, progress=False``; packaging the final model is a
one-off cost, measured apart (fit with ``log_model="model"`` against without).

Timed (``time.perf_counter``): the ``fit(...)`` call against the raw loop, each
inside a run started before the clock starts and ended after it stops (run
creation and the final flush are the same on both sides and left out;
``start_run``'s background capture of the code version and the environment is
switched off in the workers: ~0.3 s of CPU per run that would compete with the
loop on a small machine). The two loops alternate (fit, raw, raw, fit, ...) at
three lengths -- 1 epoch of A steps, 1 epoch of B steps, K epochs of a few
steps; all of them reach step 50 or none does, as fit reads the run's control
tag (one store query) at step 50 and then every 5 s -- after an untimed warm-up
on the short ones, in several fresh worker
processes (a process's memory layout alone moves a loop's step time by a few
percent here, either way). The medians over all repetitions of each length's
difference (fit - raw), fitted by least squares with ``fixed + per_step *
steps + per_epoch * epochs``, give the overheads; the same fit on the raw
medians gives the raw loop's cost. The note shows the per-step overhead fitted
on each process alone and on each repetition alone (the noise).

Data: a dataset of whole batches (``batch_size=None``), so a step costs the
model, the optimizer and the harness, not collating samples one by one. CPU
runs use one intra-op thread (these models gain nothing from a second one on a
small machine, and it makes every op wait on a busy core).

* launch-bound: MLP 32-64-64-1, batch 32. Target (the issue): <= 25 µs per
  step over raw on CPU (lighter loops reach about 20 µs; Lightning's default
  Trainer adds about 1.4 ms), <= 75 µs on a GPU (batches moved each step).
  Peer on CPU in the full run: Lightning's ``Trainer`` on the same module and
  data (progress bar and model summary off, ``log_every_n_steps=10``, its
  default CSV logger and epoch-end checkpoint), its per-step cost over raw's.
* compute-bound: MLP 256-512-512-10, batch 256 on CPU (about 8 ms a step);
  on a GPU 1024-2048-2048-2048-10, batch 16384, bf16 autocast on both sides,
  batches on the device. Figure: throughput of fit over raw (raw per-step time
  / fit's); target on a GPU: >= 98%.

On a GPU both sides run with ``torch.use_deterministic_algorithms(True)`` (fit:
``deterministic=True``) so the weights can be compared.

    python benchmarks/bench_train.py [--quick] [--device cpu|cuda]
"""

from __future__ import annotations

import argparse
import gc
import itertools
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import Figure, fresh_env, median, temp_dir

from shipyard.train import Trial

NAME = "train"
TARGET_STEP_US = {"cpu": 25.0, "cuda": 75.0}  # overhead per step, launch-bound
TARGET_THROUGHPUT_PCT = 98.0  # compute-bound, GPU, bf16
SEED = 0  # Lightning's; each fit/raw pair has a seed of its own (see _seeds)
LOG_EVERY = 10
KEEP_LAST = 3
LR = 0.01
MOMENTUM = 0.9
VAL_BATCHES = 2
DISTINCT_BATCHES = 8  # a dataset of N batches repeats these
LIGHTNING_LENGTHS = ((1, 100), (1, 600))
MIN_SHOWN_US = 0.1  # a per-step overhead fitted below this is shown as this


@dataclass(frozen=True)
class Regime:
    """One comparison: a model, a data shape and the lengths it runs at."""

    name: str  # "launch-bound" / "compute-bound"
    device: str
    precision: str  # fit's precision: "32" or "bf16"
    dims: tuple[int, ...]  # the MLP's layer widths
    batch: int
    data_on_device: bool  # False: batches live on the CPU and are moved each step
    lengths: tuple[tuple[int, int], ...]  # (epochs, steps per epoch)
    reps: int  # per worker process

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Regime:
        lengths = tuple((int(e), int(s)) for e, s in d["lengths"])
        return cls(**{**d, "dims": tuple(d["dims"]), "lengths": lengths})

    @property
    def label(self) -> str:
        return f"{self.name} {self.device}" + (" bf16" if self.precision == "bf16" else "")

    def hparams(self, steps_per_epoch: int, seed: int = SEED) -> dict[str, Any]:
        return {
            "seed": seed,
            "lr": LR,
            "momentum": MOMENTUM,
            "batch_size": self.batch,
            "steps_per_epoch": steps_per_epoch,
            "dims": "-".join(map(str, self.dims)),
            "data_device": self.device if self.data_on_device else "cpu",
        }


def regimes(quick: bool, devices: list[str]) -> list[Regime]:
    """The regimes of a run on ``devices`` ("cpu", "cuda"). Every length of a regime
    reaches step 50 (fit's first control-tag query), or none does."""
    out = []
    dims: tuple[int, ...]
    for dev in devices:
        launch = ((1, 50), (1, 800), (5, 10)) if quick else ((1, 100), (1, 2000), (10, 10))
        out.append(Regime("launch-bound", dev, "32", (32, 64, 64, 1), 32, False, launch, 2))
        if dev == "cpu":
            dims, batch, precision = (256, 512, 512, 10), 256, "32"
            compute = ((1, 4), (1, 16), (3, 2)) if quick else ((1, 8), (1, 40), (4, 2))
        else:
            dims, batch, precision = (1024, 2048, 2048, 2048, 10), 16384, "bf16"
            compute = ((1, 10), (1, 40), (3, 4)) if quick else ((1, 50), (1, 200), (5, 10))
        out.append(Regime("compute-bound", dev, precision, dims, batch, True, compute, 2))
    return out


# -- the model, the data and the Trial (shared by both sides) -------------------------


def make_model(dims: str) -> Any:
    import torch

    widths = [int(w) for w in dims.split("-")]
    layers: list[Any] = []
    for a, b in itertools.pairwise(widths):
        layers += [torch.nn.Linear(a, b), torch.nn.ReLU()]
    return torch.nn.Sequential(*layers[:-1])


def make_optimizer(hp: dict[str, Any], params: Any) -> Any:
    import torch

    return torch.optim.SGD(params, lr=hp["lr"], momentum=hp["momentum"])


class _Batches:
    """A dataset whose items are whole batches (``DataLoader(batch_size=None)``):
    the step costs model and optimizer, not collating samples one by one."""

    def __init__(self, xs: list[Any], ys: list[Any], n: int) -> None:
        self.xs, self.ys, self.n = xs, ys, n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> tuple[Any, Any]:
        k = i % len(self.xs)
        return self.xs[k], self.ys[k]


_DATA: dict[tuple[Any, ...], Any] = {}


def make_data(hp: dict[str, Any], split: str) -> Any:
    """The training or validation DataLoader of ``hp`` (its batches built once)."""
    import torch
    from torch.utils.data import DataLoader

    widths = [int(w) for w in hp["dims"].split("-")]
    batch, dev = int(hp["batch_size"]), hp["data_device"]
    n = int(hp["steps_per_epoch"]) if split == "train" else VAL_BATCHES
    key = (split, hp["dims"], batch, n, dev)
    if key not in _DATA:
        g = torch.Generator().manual_seed(1 if split == "train" else 2)
        k = min(n, DISTINCT_BATCHES)
        xs = [torch.randn(batch, widths[0], generator=g).to(dev) for _ in range(k)]
        ys = [torch.randn(batch, widths[-1], generator=g).to(dev) for _ in range(k)]
        _DATA[key] = _Batches(xs, ys, n)
    # the training loader's sampler is fit's (or, raw, a seeded RandomSampler)
    return DataLoader(_DATA[key], batch_size=None, generator=torch.Generator())


_BUILT: dict[str, Any] = {}  # the model fit built last (its final weights are compared)


class BenchTrial(Trial):
    """The benchmark's Trial: the MLP and data described by its hparams."""

    def build_model(self) -> Any:
        model = make_model(self.hparams["dims"])
        _BUILT["model"] = model
        return model

    def build_optimizer(self, model: Any) -> Any:
        return make_optimizer(self.hparams, model.parameters())

    def build_training_data(self) -> Any:
        return make_data(self.hparams, "train")

    def build_validation_data(self) -> Any:
        return make_data(self.hparams, "val")

    def train_step(self, model: Any, batch: Any) -> Any:
        from torch import nn

        x, y = batch
        return nn.functional.mse_loss(model(x), y)

    def evaluate(self, model: Any, batch: Any) -> dict[str, Any]:
        from torch import nn

        x, y = batch
        return {"val_loss": nn.functional.mse_loss(model(x), y)}


# -- the two loops ------------------------------------------------------------------


def run_fit(reg: Regime, epochs: int, hp: dict[str, Any], log_model: str | None = None) -> Any:
    """``fit`` on the benchmark's Trial; returns the model it trained."""
    from shipyard.train import fit

    fit(
        BenchTrial, hp, max_epochs=epochs, device=reg.device, precision=reg.precision,  # type: ignore[arg-type]
        log_every=LOG_EVERY, keep_last=KEEP_LAST, progress=False, log_model=log_model,
        deterministic=reg.device != "cpu",
    )  # fmt: skip
    return _BUILT.pop("model")


def run_raw(reg: Regime, epochs: int, hp: dict[str, Any], ckpt_dir: Path) -> Any:
    """What fit does, written out as a plain PyTorch loop."""
    import contextlib

    import torch
    from torch.nn.functional import mse_loss
    from torch.utils.data import DataLoader, RandomSampler

    import shipyard
    from shipyard.train._rng import seed_everything

    dev = torch.device(reg.device)
    if dev.type != "cpu":
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.benchmark = False
    seed = hp["seed"]
    seed_everything(seed)
    shipyard.log_params(hp)
    model = make_model(hp["dims"]).to(dev)
    optimizer = make_optimizer(hp, model.parameters())
    train, val = make_data(hp, "train"), make_data(hp, "val")
    order = torch.Generator()
    loader = DataLoader(
        train.dataset,
        batch_size=None,
        sampler=RandomSampler(train.dataset, generator=order),
        generator=torch.Generator().manual_seed(seed),
    )
    autocast = torch.autocast(dev.type, dtype=torch.bfloat16) if reg.precision == "bf16" else None
    on_cpu = dev.type == "cpu"
    saved: list[Path] = []
    loss: Any = None
    step = 0
    for epoch in range(epochs):
        order.manual_seed((seed * 1_000_003 + epoch) % (2**63 - 1))
        model.train()
        for x, y in loader:
            if not on_cpu:
                x, y = x.to(dev, non_blocking=True), y.to(dev, non_blocking=True)
            if autocast is None:
                loss = mse_loss(model(x), y)
            else:
                with autocast:
                    loss = mse_loss(model(x), y)
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            if step % LOG_EVERY == 0:
                lr = optimizer.param_groups[0]["lr"]
                shipyard.log_metrics({"loss": float(loss.detach()), "lr": float(lr)}, step=step)
        model.eval()
        total, count = 0.0, 0
        with torch.no_grad(), autocast or contextlib.nullcontext():
            for x, y in val:
                if not on_cpu:
                    x, y = x.to(dev, non_blocking=True), y.to(dev, non_blocking=True)
                total += float(mse_loss(model(x), y)) * len(x)
                count += len(x)
        model.train()
        shipyard.log_metrics({"val_loss": total / count}, step=step)
        path = ckpt_dir / f"step-{step:010d}.pt"
        state = {"model": model.state_dict(), "optimizer": optimizer.state_dict()}
        torch.save({**state, "epoch": epoch + 1, "step": step}, path)
        saved.append(path)
        while len(saved) > KEEP_LAST:
            saved.pop(0).unlink()
    return model


def _sync(device: str) -> None:
    if device != "cpu":
        import torch

        torch.cuda.synchronize()


def _timed(
    reg: Regime, side: str, epochs: int, spe: int, seed: int, tmp: Path
) -> tuple[float, Any]:
    """Seconds of one call of ``side`` (in a fresh run), and its final weights."""
    import shipyard

    hp = reg.hparams(spe, seed)
    ckpt_dir = Path(tempfile.mkdtemp(dir=tmp, prefix="raw-"))
    gc.collect()
    run = shipyard.start_run(experiment="bench-train")
    try:
        _sync(reg.device)
        t0 = time.perf_counter()
        if side == "raw":
            model = run_raw(reg, epochs, hp, ckpt_dir)
        else:
            model = run_fit(reg, epochs, hp, log_model="model" if side == "fit+model" else None)
        _sync(reg.device)
        elapsed = time.perf_counter() - t0
    finally:
        run.end()
    state = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
    return elapsed, state


def _differs(a: dict[str, Any], b: dict[str, Any]) -> str:
    """Empty when the two state dicts are equal tensor for tensor, else what differs."""
    import torch

    if a.keys() != b.keys():
        return f"different keys: {sorted(a)} vs {sorted(b)}"
    for k in a:
        if not torch.equal(a[k], b[k]):
            diff = float((a[k].double() - b[k].double()).abs().max())
            return f"{k} differs (max |diff| {diff:.3g})"
    return ""


def _seeds() -> Iterator[int]:
    """A new seed for each pair of runs: the same seed twice would give the same
    checkpoints, which the content-addressed blob store would not write again."""
    base = int.from_bytes(os.urandom(4), "little")
    return itertools.count(base * 1000)


def measure(reg: Regime, tmp: Path, tag: str) -> dict[str, Any]:
    """Interleaved fit/raw runs of ``reg`` at each length: seconds per repetition."""
    started = time.perf_counter()
    seeds = _seeds()
    times: dict[str, list[list[float]]] = {"fit": [], "raw": []}
    mismatch, checked = "", 0
    for rep in range(reg.reps + 1):  # repetition 0 warms up, on the short lengths only
        row: dict[str, list[float]] = {"fit": [], "raw": []}
        for i, (epochs, spe) in enumerate(reg.lengths):
            if rep == 0 and i == 1:
                continue
            order = ("fit", "raw") if (rep + i) % 2 == 0 else ("raw", "fit")
            weights, seed = {}, next(seeds)
            for side in order:
                elapsed, weights[side] = _timed(reg, side, epochs, spe, seed, tmp)
                row[side].append(elapsed)
            checked += 1
            mismatch = mismatch or _differs(weights["fit"], weights["raw"])
        if rep:
            times["fit"].append(row["fit"])
            times["raw"].append(row["raw"])
    _progress(f"{tag}{reg.label}: {reg.reps} repetitions, {time.perf_counter() - started:.1f} s")
    return {
        "label": reg.label, "regime": asdict(reg), "times": times, "checked": checked,
        "mismatch": mismatch,
    }  # fmt: skip


def _log_model_cost(reg: Regime, tmp: Path, reps: int) -> list[float]:
    """fit with the final model packaged minus fit without (seconds, per pair)."""
    epochs, spe = reg.lengths[0]
    seeds = _seeds()
    out = []
    for rep in range(reps):
        pair = {}
        for side in ("fit", "fit+model") if rep % 2 else ("fit+model", "fit"):
            pair[side] = _timed(reg, side, epochs, spe, next(seeds), tmp)[0]
        out.append(pair["fit+model"] - pair["fit"])
    return out


def _lightning(reg: Regime, tmp: Path, reps: int) -> dict[str, Any]:
    """Lightning's Trainer on the same model and data: seconds per length."""
    try:
        import lightning
    except ImportError:
        return {"error": "lightning is not installed"}
    import logging
    import warnings

    from torch.nn.functional import mse_loss
    from torch.utils.data import DataLoader

    from shipyard.train._rng import seed_everything

    warnings.filterwarnings("ignore")  # its advice on num_workers and the like
    for name in ("lightning", "lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.ERROR)

    class Module(lightning.LightningModule):
        def __init__(self, hp: dict[str, Any]) -> None:
            super().__init__()
            self.hp = hp
            self.model = make_model(hp["dims"])

        def training_step(self, batch: Any, index: int) -> Any:
            x, y = batch
            loss = mse_loss(self.model(x), y)
            self.log("loss", loss)
            return loss

        def validation_step(self, batch: Any, index: int) -> None:
            x, y = batch
            self.log("val_loss", mse_loss(self.model(x), y))

        def configure_optimizers(self) -> Any:
            return make_optimizer(self.hp, self.parameters())

    times: list[list[float]] = []
    for rep in range(reps + 1):  # repetition 0 warms up, on the short length
        row = []
        for epochs, spe in LIGHTNING_LENGTHS[: 1 if rep == 0 else None]:
            hp = reg.hparams(spe)
            seed_everything(SEED)
            module = Module(hp)
            train = DataLoader(make_data(hp, "train").dataset, batch_size=None, shuffle=True)
            trainer = lightning.Trainer(
                max_epochs=epochs, accelerator=reg.device, devices=1,
                default_root_dir=tempfile.mkdtemp(dir=tmp, prefix="lightning-"),
                enable_progress_bar=False, enable_model_summary=False, log_every_n_steps=LOG_EVERY,
                num_sanity_val_steps=0,
            )  # fmt: skip
            gc.collect()
            t0 = time.perf_counter()
            trainer.fit(module, train, make_data(hp, "val"))
            row.append(time.perf_counter() - t0)
        if rep:
            times.append(row)
    return {"times": times}


def _progress(message: str) -> None:
    print(f"    {message}", file=sys.stderr, flush=True)


def _no_capture(client: Any, run_id: str, code_recorded: Any) -> None:
    code_recorded.set()


def worker(args: dict[str, Any]) -> dict[str, Any]:
    """One process's share of the measurements (see the module docstring)."""
    import torch

    from shipyard.tracking import _fluent

    _fluent._capture = _no_capture  # see the module docstring
    torch.set_num_threads(1)  # see the module docstring
    tmp = Path(os.environ["SHIPYARD_HOME"]).parent
    devices = args["devices"]
    if devices == ["auto"]:
        devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    if "cuda" in devices and not torch.cuda.is_available():
        raise RuntimeError("--device cuda: CUDA is not available on this machine")
    results = []
    for reg in regimes(args["quick"], devices):
        res = measure(reg, tmp, args["tag"])
        if args["extras"] and reg.name == "launch-bound" and reg.device == "cpu":
            started = time.perf_counter()
            res["log_model"] = _log_model_cost(reg, tmp, 3)
            if not args["quick"]:
                res["lightning"] = _lightning(reg, tmp, 3)
            took = time.perf_counter() - started
            _progress(f"{args['tag']}{reg.label}: log_model and Lightning, {took:.1f} s")
        results.append(res)
    return {
        "results": results,
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "gpu": torch.cuda.get_device_name() if "cuda" in devices else None,
    }


# -- analysis -----------------------------------------------------------------------


def _solve(lengths: list[tuple[int, int]], values: list[float]) -> tuple[float, float, float]:
    """Least squares of ``fixed + per_step * steps + per_epoch * epochs``."""
    import numpy as np

    a = np.array([[1.0, e * s, e] for e, s in lengths])
    coef = np.linalg.lstsq(a, np.array(values), rcond=None)[0]
    return float(coef[0]), float(coef[1]), float(coef[2])


def _diffs(fit: list[list[float]], raw: list[list[float]]) -> list[list[float]]:
    """fit - raw, repetition by repetition and length by length."""
    return [[f - r for f, r in zip(fr, rr, strict=True)] for fr, rr in zip(fit, raw, strict=True)]


def _medians(rows: list[list[float]]) -> list[float]:
    return [median([r[i] for r in rows]) for i in range(len(rows[0]))]


def figures(parts: list[dict[str, Any]], quick: bool = False) -> list[Figure]:
    """The figures of one regime, from its result in each worker process."""
    reg = Regime.from_json(parts[0]["regime"])
    lengths = list(reg.lengths)
    fit_t = [row for p in parts for row in p["times"]["fit"]]
    raw_t = [row for p in parts for row in p["times"]["raw"]]
    diffs = _diffs(fit_t, raw_t)
    fixed, per_step, per_epoch = _solve(lengths, _medians(diffs))
    r_fixed, r_step, r_epoch = _solve(lengths, _medians(raw_t))
    per_rep = [_solve(lengths, d)[1] * 1e6 for d in diffs]
    per_process = []
    for p in parts:
        d = _diffs(p["times"]["fit"], p["times"]["raw"])
        per_process.append(_solve(lengths, _medians(d))[1] * 1e6)
    checked = sum(p["checked"] for p in parts)
    mismatch = next((p["mismatch"] for p in parts if p["mismatch"]), "")
    error = f"final weights differ from raw: {mismatch}" if mismatch else ""
    launch = reg.name == "launch-bound"
    e_long, s_long = lengths[1]
    end_to_end = 100.0 * median([r[1] for r in raw_t]) / median([f[1] for f in fit_t])
    label = reg.label
    # against a target, a fit below zero is noise around a small overhead: shown as
    # 0.1 µs (a value <= 0 has no ratio), the fit itself noted
    floor = MIN_SHOWN_US if launch and per_step * 1e6 < MIN_SHOWN_US else None
    out = [
        Figure(
            NAME,
            f"{label}: overhead per step",
            floor or per_step * 1e6,
            "µs",
            target=TARGET_STEP_US.get(reg.device) if launch else None,
            note=(
                (f"fitted {per_step * 1e6:.1f} µs (noise), shown as {floor}; " if floor else "")
                + f"raw {r_step * 1e6:.1f} µs/step, fit {(r_step + per_step) * 1e6:.1f}; "
                f"{len(diffs)} reps in {len(parts)} processes, per process "
                + ", ".join(f"{x:.0f}" for x in per_process)
                + f" µs, per rep {min(per_rep):.0f}..{max(per_rep):.0f}; "
                f"weights identical in {0 if error else checked}/{checked} pairs"
                + ("; --quick: too few runs to resolve µs" if quick else "")
            ),
            samples=per_rep,
            error=error,
        ),
        Figure(
            NAME,
            f"{label}: overhead per epoch",
            per_epoch * 1e3,
            "ms",
            note=(
                f"raw {r_epoch * 1e3:.2f} ms/epoch; fit checkpoints to the blob store "
                "(weights, optimizer, RNG, counters), raw torch.save; both validate"
            ),
            error=error,
        ),
        Figure(
            NAME,
            f"{label}: overhead fixed",
            fixed * 1e3,
            "ms",
            note=f"per call, run start/end excluded on both sides; raw {r_fixed * 1e3:.1f} ms",
            error=error,
        ),
        Figure(
            NAME,
            f"{label}: throughput fit/raw",
            100.0 * r_step / (r_step + per_step),
            "%",
            higher_is_better=True,
            target=TARGET_THROUGHPUT_PCT if (not launch and reg.device != "cpu") else None,
            note=(
                f"per-step times (steady state); end to end, {e_long} x {s_long} steps: "
                f"{end_to_end:.1f}%"
            ),
            error=error,
        ),
    ]
    lm = [x for p in parts for x in p.get("log_model", [])]
    if lm:
        out.append(
            Figure(
                NAME,
                f"{label}: final model package, one-off",
                median(lm) * 1e3,
                "ms",
                note="fit(log_model='model') - fit(log_model=None), median of pairs",
                samples=[x * 1e3 for x in lm],
            )
        )
    lit = next((p["lightning"] for p in parts if "lightning" in p), None)
    if lit and "times" in lit:
        (e0, s0), (e1, s1) = LIGHTNING_LENGTHS
        meds = _medians(lit["times"])
        l_step = (meds[1] - meds[0]) / (e1 * s1 - e0 * s0)
        out[0].peer, out[0].peer_value = "Lightning", (l_step - r_step) * 1e6
        out.append(
            Figure(
                NAME,
                f"{label}: Lightning over raw, per step",
                (l_step - r_step) * 1e6,
                "µs",
                note=(
                    f"Trainer {l_step * 1e6:.0f} µs/step (slope over {s0} and {s1} steps, "
                    f"median of {len(lit['times'])}) - raw's; its CSV logger and checkpoint"
                ),
            )
        )
    elif lit:
        out[0].note += f"; no Lightning peer: {lit['error']}"
    return out


# -- entry points -------------------------------------------------------------------


def run(quick: bool = False, device: str | None = None) -> list[Figure]:
    """Measure in fresh interpreters, each with its own SHIPYARD_HOME; ``device``:
    "cpu", "cuda", or None for the CPU plus CUDA when there is one."""
    processes = 1 if quick else 4
    parts: dict[str, list[dict[str, Any]]] = {}
    info: dict[str, Any] = {}
    for p in range(processes):
        with temp_dir("train") as tmp:
            env = fresh_env(tmp / "home")
            env.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # deterministic cuBLAS
            args = {
                "quick": quick, "devices": [device] if device else ["auto"], "extras": p == 0,
                "tag": f"[process {p + 1}/{processes}] ",
            }  # fmt: skip
            proc = subprocess.run(
                [sys.executable, __file__, "--worker", json.dumps(args)],
                cwd=tmp,
                env=env,
                stdout=subprocess.PIPE,
                text=True,
                timeout=900,
                check=False,
            )
        lines = proc.stdout.strip().splitlines()
        if proc.returncode != 0 or not lines:
            raise RuntimeError(f"the training worker failed (exit {proc.returncode}); see above")
        info = json.loads(lines[-1])
        for res in info["results"]:
            parts.setdefault(res["label"], []).append(res)
    print(
        f"    torch {info['torch']}, {info['threads']} intra-op thread(s)"
        + (f", {info['gpu']}" if info["gpu"] else ""),
        flush=True,
    )
    out: list[Figure] = []
    for regime_parts in parts.values():
        out += figures(regime_parts, quick)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="shorter runs, fewer repetitions")
    parser.add_argument("--device", choices=["cpu", "cuda"], help="default: CPU, and CUDA if any")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        import bench_train  # the Trial must be importable by name (the model package)

        print(json.dumps(bench_train.worker(json.loads(args.worker))))
        return 0
    figs = run(quick=args.quick, device=args.device)
    for f in figs:
        print(f.line())
    return 1 if any(f.status == "FAILED" for f in figs) else 0


if __name__ == "__main__":
    sys.exit(main())
