"""Helpers for the CLI tests: a SHIPYARD_HOME filled through the Python API, and a
runner that starts the real ``shipyard`` console script on it."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shipyard import TrackingClient
from shipyard.store import series
from shipyard.types import Lifecycle, RunStatus

_SCRIPT = Path(sys.executable).with_name("shipyard")
#: The installed console script, else the module (same code path after start-up).
SHIPYARD = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "shipyard.cli"]

DIFF = (
    "diff --git a/train.py b/train.py\n--- a/train.py\n+++ b/train.py\n"
    "@@ -1 +1 @@\n-lr = 1\n+lr = 2\n"
)
CODE = {
    "entry_point": "/src/train.py",
    "argv": ["train.py", "--fast"],
    "git_root": "/src",
    "git_commit": "0123456789abcdef0123456789abcdef01234567",
    "git_branch": "main",
    "git_dirty": True,
    "git_diff": DIFF,
    "git_diff_bytes": len(DIFF),
    "git_untracked": ["notes.txt", "scratch.py"],
    "git_untracked_count": 2,
}
ENVIRONMENT = {
    "python": "3.11.7",
    "python_implementation": "CPython",
    "host": "trainbox",
    "platform": "Linux-6.1-x86_64",
    "cpu": "AMD EPYC",
    "cpu_count": 16,
    "memory_bytes": 64 * 2**30,
    "gpus": [{"name": "NVIDIA H100", "memory": "80 GiB", "driver": "550"}] * 2,
    "packages": {"numpy": "2.0.0", "torch": "2.4.0", "shipyard": "0.1.0"},
}


@dataclass
class Result:
    """What one ``shipyard`` process did."""

    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


@dataclass
class Home:
    """A SHIPYARD_HOME with known experiments and runs, and a way to run the CLI on it."""

    path: Path
    runs: dict[str, str] = field(default_factory=dict)  # run name -> id
    experiments: dict[str, str] = field(default_factory=dict)  # name -> id

    def env(self, **extra: str) -> dict[str, str]:
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith("SHIPYARD_") and k not in ("COLUMNS", "LINES")
        }
        env.update({"SHIPYARD_HOME": str(self.path), "COLUMNS": "200", "NO_COLOR": "1"})
        env.update(extra)
        return env

    def __call__(self, *args: str, **env: str) -> Result:
        proc = subprocess.run(
            [*SHIPYARD, *args],
            env=self.env(**env),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        return Result(proc.returncode, proc.stdout, proc.stderr)


def populate(home: Home, scratch: Path) -> None:
    client = TrackingClient(f"sqlite:///{home.path / 'shipyard.db'}", str(home.path / "blobs"))
    store = client.store
    try:
        pricing = client.create_experiment("rides-pricing", description="price per ride")
        other = client.create_experiment("other")
        client.create_experiment("empty-exp")
        old = client.create_experiment("old")
        store.update_experiment(old.id, lifecycle=Lifecycle.DELETED)
        home.experiments.update({"rides-pricing": pricing.id, "other": other.id, "old": old.id})

        def run(experiment: str, name: str, status: RunStatus = RunStatus.FINISHED) -> str:
            r = store.create_run(experiment, name=name, user="ada")
            home.runs[name] = r.id
            return r.id

        base = run(pricing.id, "baseline")
        store.log_batch(
            base,
            params={"alpha": 0.1, "optimizer": "adam", "layers": 3, "use_bn": True},
            tags={"team": "pricing"},
            metrics=[
                series("val_rmse", list(range(10)), [3.0 - 0.1 * s for s in range(10)], [1e9] * 10),
                series("weird", [0], [math.nan], [1e9]),
                series("spike", [0, 1], [1.0, math.inf], [1e9, 1e9]),
            ],
        )
        store.update_run(base, code=CODE, environment=ENVIRONMENT)
        (scratch / "model.txt").write_text("weights")
        (scratch / "plots").mkdir()
        (scratch / "plots" / "roc.png").write_bytes(b"png" * 100)
        client.log_artifact(base, scratch / "model.txt")
        client.log_artifact(base, scratch / "plots")
        client.set_terminated(
            base, RunStatus.FINISHED, end_time=store.get_run(base).start_time + 63
        )

        wide = run(pricing.id, "wide")
        store.log_batch(
            wide,
            params={"alpha": 0.5, "optimizer": "sgd", "layers": 3},
            metrics=[series("val_rmse", [0, 1], [3.5, 3.2], [1e9, 1e9])],
        )
        client.set_terminated(wide, RunStatus.FAILED)

        lonely = run(other.id, "lonely")
        steps = list(range(2500))
        store.log_batch(
            lonely,
            metrics=[series("lr", steps, [1.0 / (s + 1) for s in steps], [1e9] * 2500)],
        )
        client.set_terminated(lonely)
        for _ in range(2):
            client.set_terminated(run(other.id, "dup"))
        gone = run(other.id, "gone")
        client.set_terminated(gone)
        client.delete_run(gone)
    finally:
        store.close()
