"""Optional system metrics: CPU, memory and (when ``nvidia-smi`` exists) GPU,
sampled on a thread and logged as ``system/*`` metrics of the run."""

from __future__ import annotations

import shutil
import subprocess
import threading
from typing import Any


class SystemMetrics:
    def __init__(self, writer: Any, interval: float = 10.0) -> None:
        self._writer = writer
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._loop, name="shipyard-system-metrics", daemon=True
        )
        self._gpu = shutil.which("nvidia-smi") is not None

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2.0)

    def sample(self) -> dict[str, float]:
        import psutil

        out: dict[str, float] = {
            "system/cpu_percent": float(psutil.cpu_percent(interval=None)),
            "system/memory_percent": float(psutil.virtual_memory().percent),
        }
        proc = psutil.Process()
        out["system/process_rss_mb"] = proc.memory_info().rss / 2**20
        if self._gpu:
            out.update(_gpu_sample())
        return out

    def _loop(self) -> None:
        step = 0
        while not self._stop.wait(self._interval):
            try:
                self._writer.log_metrics(self.sample(), step=step)
            except Exception:  # sampling must never disturb the run
                continue
            step += 1


def _gpu_sample() -> dict[str, float]:
    try:
        out = subprocess.run(
            [
                "nvidia-smi",
                "--query-gpu=utilization.gpu,memory.used",
                "--format=csv,noheader,nounits",
            ],
            capture_output=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return {}
    metrics: dict[str, float] = {}
    for i, line in enumerate(out.stdout.decode().splitlines()):
        parts = [p.strip() for p in line.split(",")]
        if len(parts) == 2:
            try:
                metrics[f"system/gpu{i}_util_percent"] = float(parts[0])
                metrics[f"system/gpu{i}_memory_mb"] = float(parts[1])
            except ValueError:
                continue
    return metrics
