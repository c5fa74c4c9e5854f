"""The search driver live: its own overhead per trial, and a real search under a
wall-clock budget.

* **Overhead per trial.** N trials of ``hpo_live/noop.py`` (a Core API script
  that reports once) through ``run_experiment`` with 2 slots, against the floor:
  the same N ``shipyard train noop.py`` commands run by a bare pool of 2
  subprocesses (each continuing a run made beforehand, as trials do). The
  difference per trial is what the scheduler adds in wall time (best of two
  interleaved rounds each); the driver's own CPU time per trial is measured
  with ``time.process_time`` around the experiment (all its threads).
* **Live search.** ``hpo_live/digits_trial.py`` (an MLP on scikit-learn's
  digits, Trial API, 1 thread per trial) searched over learning rate, width
  and weight decay for a fixed wall-clock budget on this machine's 2 cores:
  adaptive ASHA against random search, same budget, same slots. Figures: the
  best validation error each found, and how many epochs of training each ran.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from _common import Figure, fresh_env, temp_dir

NAME = "experiment"
HERE = Path(__file__).resolve().parent / "hpo_live"
OVERHEAD_TARGET_MS = 100.0  # driver CPU per trial


def _config(**over: Any) -> Any:
    from shipyard.search import parse_config

    base: dict[str, Any] = {
        "name": "bench", "trial": "noop.py", "workdir": str(HERE),
        "space": {"x": {"type": "float", "low": -1.0, "high": 1.0}},
        "metric": "val_loss", "searcher": {"name": "random", "max_trials": 8},
        "max_concurrent": 2, "retries": 0,
    }  # fmt: skip
    base.update(over)
    return parse_config(base)


def _bare(n: int, env: dict[str, str]) -> float:
    """N `shipyard train noop.py` commands, 2 at a time, no driver: each continues
    a run made beforehand (as the driver's trials do), so the work per trial is the same."""
    from shipyard.tracking import TrackingClient
    from shipyard.types import RunStatus

    client = TrackingClient()
    exp = client.get_or_create_experiment("bare")
    runs = [client.store.create_run(exp.id, status=RunStatus.SCHEDULED).id for _ in range(n)]
    cmd = [sys.executable, "-m", "shipyard.cli", "train", "noop.py"]

    def one(i: int) -> None:
        e = dict(env, SHIPYARD_HPARAMS=f'{{"x": {i / n}}}', SHIPYARD_RUN_ID=runs[i])
        subprocess.run(cmd, cwd=HERE, env=e, capture_output=True, check=False)

    t0 = time.perf_counter()
    with ThreadPoolExecutor(2) as pool:
        list(pool.map(one, range(n)))
    took = time.perf_counter() - t0
    done = sum(client.get_run(r).status is RunStatus.FINISHED for r in runs)
    if done != n:
        raise RuntimeError(f"bare pool: {done} of {n} runs finished")
    return took


def _overhead(quick: bool) -> list[Figure]:
    from shipyard.search import run_experiment
    from shipyard.tracking import TrackingClient

    n = 6 if quick else 16
    with temp_dir("experiment") as tmp:
        env = fresh_env(tmp / "home")
        saved = dict(os.environ)
        os.environ.clear()
        os.environ.update(env)
        try:
            bares, walls, cpus = [], [], []
            for _ in range(2):  # interleaved, the best of each: the machine's load drifts
                bares.append(_bare(n, env))
                client = TrackingClient()
                cpu0, t0 = time.process_time(), time.perf_counter()
                _, state = run_experiment(
                    _config(searcher={"name": "random", "max_trials": n}), client=client
                )
                walls.append(time.perf_counter() - t0)
                cpus.append(time.process_time() - cpu0)
        finally:
            os.environ.clear()
            os.environ.update(saved)
    bare, wall, cpu = min(bares), min(walls), min(cpus)
    done = sum(t.state == "completed" for t in state.trials.values())
    error = "" if done == n else f"{done} of {n} trials completed"
    return [
        Figure(NAME, f"driver CPU per trial ({n} trials, 2 slots)", cpu / n * 1000, "ms",
               target=OVERHEAD_TARGET_MS, error=error,
               note="searcher, store writes, state snapshots, process launch"),
        Figure(NAME, "wall per trial through the driver", wall / n * 1000, "ms",
               peer="bare subprocess pool", peer_value=bare / n * 1000, error=error,
               note=f"+{(wall - bare) / n * 1000:.0f} ms per trial over the floor"),
    ]  # fmt: skip


def _live(searcher: dict[str, Any], budget: float, home: Path) -> tuple[float, float, int]:
    from shipyard.search import run_experiment
    from shipyard.tracking import TrackingClient

    cfg = _config(
        name=f"live-{searcher['name']}", trial="digits_trial.py:DigitsTrial",
        space={"lr": {"type": "float", "low": 1e-3, "high": 1.0, "log": True},
               "hidden": {"type": "int", "low": 8, "high": 256, "log": True},
               "weight_decay": {"type": "float", "low": 1e-6, "high": 1e-1, "log": True}},
        metric="val_error", resource={"hparam": "epochs", "max": 27, "min": 1},
        searcher=searcher, time_budget=budget, train_args=["--no-model"],
    )  # fmt: skip
    env = fresh_env(home)
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)
    try:
        client = TrackingClient()
        _, state = run_experiment(cfg, client=client)
    finally:
        os.environ.clear()
        os.environ.update(saved)
    best = min(
        (t.values["val_error"] for t in state.trials.values() if "val_error" in t.values),
        default=float("nan"),
    )
    epochs = sum(t.resource for t in state.trials.values())
    return best, epochs, len(state.trials)


def run(quick: bool = False) -> list[Figure]:
    figures = _overhead(quick)
    budget = 40.0 if quick else 120.0
    with temp_dir("live") as tmp:
        asha = _live({"name": "asha", "max_trials": 500, "mode": "standard"}, budget, tmp / "a")
        rand = _live({"name": "random", "max_trials": 500}, budget, tmp / "r")
    figures.append(
        Figure(
            NAME,
            f"live: best val error in {budget:.0f} s, ASHA",
            asha[0] * 100,
            "%",
            peer="random search, same budget",
            peer_value=rand[0] * 100,
            note=f"ASHA {asha[2]} trials / {asha[1]:.0f} epochs; "
            f"random {rand[2]} trials / {rand[1]:.0f} epochs",
        )
    )
    return figures


if __name__ == "__main__":
    for f in run("--quick" in sys.argv):
        print(f.line())
