"""Checkpoints: training state in the blob store, listed and pruned per run.

A checkpoint is a directory artifact of its run at ``checkpoints/step-<step>``
holding the state files of :mod:`._codec` (weights and optimizer tensors in
safetensors, the rest in JSON; no pickle) and ``meta.json`` (step, epoch,
metrics, time). Content addressing means an unchanged tensor costs nothing
the second time, and a checkpoint is published only once all its files are in
the store: a process killed while saving leaves the previous checkpoint as the
latest.

Retention keeps the newest ``keep_last`` and the ``keep_best`` best by one
metric; the others' records are dropped from the run (their blobs stay until
a garbage collection finds nothing naming them).
"""

from __future__ import annotations

import json
import math
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from shipyard.errors import CorruptBlobError, InvalidArgumentError, NotFoundError, StoreError
from shipyard.train._codec import read_state, write_state

if TYPE_CHECKING:
    from shipyard.tracking import TrackingClient
    from shipyard.types import Artifact

__all__ = ["PREFIX", "CheckpointInfo", "Checkpoints"]

PREFIX = "checkpoints"
_FORMAT = 1


@dataclass(frozen=True, slots=True)
class CheckpointInfo:
    """One stored checkpoint of a run."""

    run_id: str
    path: str
    step: int
    epoch: int | None
    metrics: Mapping[str, float] = field(default_factory=dict)
    created_at: float = 0.0
    size: int = 0
    digest: str = ""

    @property
    def uri(self) -> str:
        return f"runs:/{self.run_id}/{self.path}"


def _path(step: int) -> str:
    return f"{PREFIX}/step-{step:010d}"


class Checkpoints:
    """Save, list, load and prune the checkpoints of one run.

    Args:
        client: the tracking client whose store and blobs hold the run.
        run_id: the run.
        keep_last: how many of the newest to keep (None: all).
        keep_best: how many of the best by ``monitor`` to keep besides.
        monitor: the metric that ranks checkpoints for ``keep_best``.
        mode: ``"min"`` or ``"max"``: which way is better for ``monitor``.
    """

    def __init__(
        self,
        client: TrackingClient,
        run_id: str,
        *,
        keep_last: int | None = 3,
        keep_best: int = 0,
        monitor: str | None = None,
        mode: Literal["min", "max"] = "min",
    ) -> None:
        if keep_last is not None and (isinstance(keep_last, bool) or keep_last < 1):
            raise InvalidArgumentError(
                f"keep_last: expected an integer >= 1 or None (keep all), got {keep_last!r}"
            )
        if isinstance(keep_best, bool) or keep_best < 0:
            raise InvalidArgumentError(f"keep_best: expected an integer >= 0, got {keep_best!r}")
        if keep_best and not monitor:
            raise InvalidArgumentError(
                "keep_best needs monitor=: the metric that says which checkpoints are best"
            )
        if mode not in ("min", "max"):
            raise InvalidArgumentError(f"mode: expected 'min' or 'max', got {mode!r}")
        self.client = client
        self.run_id = run_id
        self.keep_last = keep_last
        self.keep_best = keep_best
        self.monitor = monitor
        self.mode = mode
        self._known: dict[str, CheckpointInfo] | None = None

    # -- writing ------------------------------------------------------------------

    def save(
        self,
        state: Mapping[str, Any],
        *,
        step: int,
        epoch: int | None = None,
        metrics: Mapping[str, float] | None = None,
    ) -> CheckpointInfo:
        """Store ``state`` as the checkpoint of ``step`` (replacing one of the same
        step), then apply retention."""
        if isinstance(step, bool) or not isinstance(step, int) or step < 0:
            raise InvalidArgumentError(f"checkpoint step: expected an integer >= 0, got {step!r}")
        clean = {k: float(v) for k, v in (metrics or {}).items()}
        meta: dict[str, Any] = {
            "format": _FORMAT,
            "step": step,
            "epoch": epoch,
            "metrics": {k: (v if math.isfinite(v) else repr(v)) for k, v in clean.items()},
            "created_at": time.time(),
        }
        with tempfile.TemporaryDirectory(prefix="shipyard-ckpt-") as tmp:
            root = Path(tmp)
            write_state(state, root)
            (root / "meta.json").write_text(json.dumps(meta))
            (artifact,) = self.client.log_artifacts(self.run_id, root, _path(step))
        info = CheckpointInfo(
            self.run_id, artifact.path, step, epoch, clean, meta["created_at"], artifact.size,
            artifact.digest,
        )  # fmt: skip
        known = self._load_known()
        known[info.path] = info
        self._retain(known)
        return info

    def _retain(self, known: dict[str, CheckpointInfo]) -> None:
        infos = sorted(known.values(), key=lambda i: i.step)
        keep = {i.path for i in infos[-self.keep_last :]} if self.keep_last else set(known)
        if self.keep_best and self.monitor:
            sign = 1.0 if self.mode == "min" else -1.0
            scored = [i for i in infos if self._score(i) is not None]
            scored.sort(key=lambda i: (sign * (self._score(i) or 0.0), -i.step))
            keep.update(i.path for i in scored[: self.keep_best])
        drop = [p for p in known if p not in keep]
        if drop:
            self.client.store.delete_artifacts(self.run_id, drop)
            for p in drop:
                del known[p]

    def _score(self, info: CheckpointInfo) -> float | None:
        value = info.metrics.get(self.monitor or "")
        return value if value is not None and math.isfinite(value) else None

    # -- reading ------------------------------------------------------------------

    def _load_known(self) -> dict[str, CheckpointInfo]:
        if self._known is None:
            self._known = {i.path: i for i in self.list()}
        return self._known

    def list(self) -> list[CheckpointInfo]:
        """The run's checkpoints, oldest step first."""
        out = []
        for a in self.client.store.list_artifacts(self.run_id):
            if a.kind == "dir" and a.path.startswith(PREFIX + "/step-"):
                out.append(self._info(a))
        out.sort(key=lambda i: i.step)
        return out

    def _info(self, artifact: Artifact) -> CheckpointInfo:
        blobs = self.client.blobs
        try:
            manifest = blobs.read_manifest(artifact.digest)
            entry = next(e for e in manifest.entries if e.path == "meta.json")
            meta = json.loads(blobs.get_bytes(entry.digest))
        except (StopIteration, ValueError, NotFoundError, CorruptBlobError) as e:
            raise StoreError(
                f"checkpoint {artifact.path} of run {self.run_id} has no readable meta.json "
                f"({e}); delete it with the run's artifacts or restore the blob store"
            ) from e
        metrics = {k: float(v) for k, v in (meta.get("metrics") or {}).items()}
        return CheckpointInfo(
            self.run_id, artifact.path, int(meta["step"]), meta.get("epoch"), metrics,
            float(meta.get("created_at", artifact.created_at)), artifact.size, artifact.digest,
        )  # fmt: skip

    def latest(self) -> CheckpointInfo | None:
        """The checkpoint of the highest step, or None."""
        infos = self.list()
        return infos[-1] if infos else None

    def best(self) -> CheckpointInfo | None:
        """The best checkpoint by ``monitor``, or None when none has it."""
        sign = 1.0 if self.mode == "min" else -1.0
        scored = [(sign * s, -i.step, i) for i in self.list() if (s := self._score(i)) is not None]
        return min(scored, key=lambda t: (t[0], t[1]))[2] if scored else None

    def load(
        self, info: CheckpointInfo | None = None, *, map_location: str | None = None
    ) -> dict[str, Any]:
        """The state of ``info`` (default the latest). NotFoundError when the run has
        no checkpoint."""
        if info is None:
            info = self.latest()
            if info is None:
                raise NotFoundError(f"run {self.run_id} has no checkpoint")
        with tempfile.TemporaryDirectory(prefix="shipyard-ckpt-") as tmp:
            root = Path(tmp)
            self.client.blobs.get_tree(info.digest, root)
            return read_state(root, map_location=map_location)
