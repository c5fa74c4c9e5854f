"""What an experiment persists: its config, its searcher's state and its trials.

An experiment is a *search run* in the tracking store (run name ``search``,
tag ``shipyard.search=experiment``); its trials are child runs (``parent_run_id``)
tagged ``shipyard.search.trial=N``. The searcher state and the trial table are
one JSON artifact of the search run, ``search/state.json``, rewritten after
every event: a crashed driver resumes from the last event it recorded.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from shipyard.errors import InvalidArgumentError, NotFoundError
from shipyard.search._protocol import Objective
from shipyard.types import Artifact

if TYPE_CHECKING:
    from shipyard.tracking import TrackingClient

__all__ = [
    "STATE_PATH",
    "ExperimentState",
    "TrialRecord",
    "best_trial",
    "pareto_front",
    "read_state",
    "write_state",
]

STATE_PATH = "search/state.json"
SEARCH_TAG = "shipyard.search"
TRIAL_TAG = "shipyard.search.trial"
STATE_VERSION = 1

#: Trial states: running, paused (waiting at an ASHA rung), completed (its full
#: budget or its own early stop), stopped (never promoted), failed.
TRIAL_STATES = ("running", "paused", "completed", "stopped", "failed")


@dataclass
class TrialRecord:
    trial_id: int
    run_id: str
    config: dict[str, Any]
    state: str = "running"
    resource: float = 0.0
    values: dict[str, float] = field(default_factory=dict)
    attempts: int = 0
    #: Rung segments run (a promotion in place continues one process) and the
    #: processes started for them.
    segments: int = 0
    processes: int = 0
    error: str | None = None
    started_at: float = field(default_factory=time.time)
    ended_at: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> TrialRecord:
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})


@dataclass
class ExperimentState:
    """The persisted part of an experiment (see the module docstring)."""

    config: dict[str, Any]
    status: str = "running"  # running | paused | finished | killed | failed
    searcher: dict[str, Any] = field(default_factory=dict)
    trials: dict[int, TrialRecord] = field(default_factory=dict)
    best: int | None = None
    front: list[int] = field(default_factory=list)
    started_at: float = field(default_factory=time.time)
    ended_at: float | None = None
    #: Seconds the driver has run, over all its sessions (for the time budget).
    elapsed: float = 0.0

    def to_json(self) -> bytes:
        body = {
            "version": STATE_VERSION,
            "config": self.config,
            "status": self.status,
            "searcher": self.searcher,
            "trials": {str(k): t.to_dict() for k, t in sorted(self.trials.items())},
            "best": self.best,
            "front": self.front,
            "started_at": self.started_at,
            "ended_at": self.ended_at,
            "elapsed": self.elapsed,
        }
        return json.dumps(body, sort_keys=True, allow_nan=True).encode()

    @classmethod
    def from_json(cls, data: bytes) -> ExperimentState:
        body = json.loads(data)
        if body.get("version") != STATE_VERSION:
            raise InvalidArgumentError(
                f"experiment state version {body.get('version')!r} is not {STATE_VERSION}: "
                "made by another Shipyard version"
            )
        return cls(
            config=body["config"],
            status=body["status"],
            searcher=body["searcher"],
            trials={int(k): TrialRecord.from_dict(v) for k, v in body["trials"].items()},
            best=body.get("best"),
            front=list(body.get("front") or []),
            started_at=body.get("started_at") or time.time(),
            ended_at=body.get("ended_at"),
            elapsed=float(body.get("elapsed") or 0.0),
        )

    def end(self, status: str) -> None:
        """End the experiment for good (``finished`` or ``killed``): trials still
        running or waiting at a rung (never promoted, out of time) are stopped."""
        self.status = status
        for t in self.trials.values():
            if t.state in ("running", "paused"):
                t.state = "stopped"

    def counts(self) -> dict[str, int]:
        out = dict.fromkeys(TRIAL_STATES, 0)
        for t in self.trials.values():
            out[t.state] = out.get(t.state, 0) + 1
        return out


def write_state(client: TrackingClient, run_id: str, state: ExperimentState) -> None:
    data = state.to_json()
    digest = client.blobs.put_bytes(data)
    client.store.log_artifacts(
        run_id, [Artifact(STATE_PATH, digest, len(data), "file", time.time())]
    )


def read_state(client: TrackingClient, run_id: str) -> ExperimentState:
    run = client.get_run(run_id)
    if run.tags.get(SEARCH_TAG) != "experiment":
        raise NotFoundError(
            f"run {run_id} is not a search experiment (no {SEARCH_TAG}=experiment tag); "
            "list experiments with 'shipyard experiment list'"
        )
    for a in client.store.list_artifacts(run_id):
        if a.path == STATE_PATH:
            return ExperimentState.from_json(client.blobs.get_bytes(a.digest))
    raise NotFoundError(f"experiment {run_id} has no {STATE_PATH}: it never started")


# -- results ------------------------------------------------------------------------


def _scored(trials: Sequence[TrialRecord], objectives: Sequence[Objective]) -> list[TrialRecord]:
    """Trials with every objective, at the highest resource any of them reached
    (an ASHA trial stopped at a low rung is not compared with a finished one)."""
    have = [
        t for t in trials
        if t.state != "failed" and all(o.metric in t.values for o in objectives)
    ]  # fmt: skip
    if not have:
        return []
    top = max(t.resource for t in have)
    done = [t for t in have if t.resource >= top or t.state == "completed"]
    return done or have


def best_trial(
    trials: Sequence[TrialRecord], objectives: Sequence[Objective]
) -> TrialRecord | None:
    """The best trial by the first objective, among the most-trained ones."""
    cands = _scored(trials, objectives[:1])
    if not cands:
        return None
    o = objectives[0]
    return min(cands, key=lambda t: (o.sign() * t.values[o.metric], t.trial_id))


def pareto_front(
    trials: Sequence[TrialRecord], objectives: Sequence[Objective]
) -> list[TrialRecord]:
    """Trials no other trial beats on every objective (all objectives, their modes)."""
    cands = _scored(trials, objectives)
    points = [(t, [o.sign() * t.values[o.metric] for o in objectives]) for t in cands]
    front = []
    for t, p in points:
        dominated = any(
            all(a <= b for a, b in zip(q, p, strict=True))
            and any(a < b for a, b in zip(q, p, strict=True))
            for _, q in points
        )
        if not dominated:
            front.append(t)
    return sorted(front, key=lambda t: [o.sign() * t.values[o.metric] for o in objectives])
