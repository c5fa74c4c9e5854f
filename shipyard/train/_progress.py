"""The training progress bar: rich, redrawn at most ten times a second, so the
per-step cost is one clock read."""

from __future__ import annotations

import time
from collections.abc import Mapping
from types import TracebackType
from typing import Any

__all__ = ["LoopProgress"]


class LoopProgress:
    """A bar over optimizer steps showing epoch and the latest metrics; does
    nothing when disabled (not a terminal, not rank 0, ``progress=False``)."""

    def __init__(self, enabled: bool, total_steps: int | None) -> None:
        self.enabled = enabled
        self.total = total_steps
        self._progress: Any = None
        self._task: Any = None
        self._next = 0.0

    def __enter__(self) -> LoopProgress:
        if self.enabled:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            self._progress = Progress(
                TextColumn("[bold]epoch {task.fields[epoch]}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
                TextColumn("{task.fields[metrics]}"),
                console=Console(stderr=True),
                auto_refresh=False,
            )
            self._progress.start()
            self._task = self._progress.add_task("train", total=self.total, epoch=0, metrics="")
        return self

    def advance(self, step: int, epoch: int, metrics: Mapping[str, float]) -> None:
        now = time.monotonic()
        if now < self._next or self._progress is None:
            return
        self._next = now + 0.1
        shown = "  ".join(f"{k}={v:.4g}" for k, v in list(metrics.items())[:4])
        self._progress.update(self._task, completed=step, epoch=epoch, metrics=shown)
        self._progress.refresh()

    def final(self, step: int, epoch: int, metrics: Mapping[str, float]) -> None:
        """Draw the last state (advance skips draws within 0.1 s of the previous)."""
        self._next = 0.0
        self.advance(step, epoch, metrics)

    def __exit__(
        self, tp: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._progress is not None:
            self._progress.stop()
