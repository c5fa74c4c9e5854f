"""Frozen entities shared by every layer.

Stores take and return these, never ORM rows. They are immutable: mappings are
:class:`~shipyard._util.FrozenDict`, sequences are tuples, and metric columns
are read-only NumPy arrays. Times are float seconds since the epoch.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, Literal, TypeVar

from shipyard._util import FrozenDict

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

__all__ = [
    "AliasEvent",
    "Artifact",
    "Dataset",
    "DatasetVersion",
    "Experiment",
    "Lifecycle",
    "MetricSeries",
    "MetricSummary",
    "ModelExport",
    "ModelVersion",
    "Page",
    "ParamValue",
    "Project",
    "RegisteredModel",
    "Run",
    "RunInput",
    "RunStatus",
]

T = TypeVar("T")

#: A parameter keeps its JSON type, so ``params.lr < 0.1`` compares numbers.
ParamValue = str | int | float | bool | None


class RunStatus(enum.StrEnum):
    """Where a run is in its life. ``FINISHED``, ``FAILED`` and ``KILLED`` are final."""

    SCHEDULED = "SCHEDULED"
    RUNNING = "RUNNING"
    FINISHED = "FINISHED"
    FAILED = "FAILED"
    KILLED = "KILLED"

    @property
    def is_terminal(self) -> bool:
        return self in (RunStatus.FINISHED, RunStatus.FAILED, RunStatus.KILLED)


class Lifecycle(enum.StrEnum):
    """Soft deletion: deleted things are hidden from listings but kept."""

    ACTIVE = "active"
    DELETED = "deleted"


@dataclass(frozen=True, slots=True)
class Project:
    """A namespace for experiments, datasets and models; the unit of access control."""

    id: str
    name: str
    description: str = ""
    created_at: float = 0.0


@dataclass(frozen=True, slots=True)
class Experiment:
    """A group of runs: one study, or the trials of one hyperparameter search."""

    id: str
    project_id: str
    name: str
    description: str = ""
    tags: FrozenDict[str, str] = field(default_factory=FrozenDict)
    lifecycle: Lifecycle = Lifecycle.ACTIVE
    created_at: float = 0.0


@dataclass(frozen=True, slots=True)
class MetricSummary:
    """What search needs of a metric without reading its points.

    ``last`` is the value at the highest step (the latest logged wins a tie); NaN
    when that value is NaN. ``min`` and ``max`` ignore NaN and are NaN only when
    every point is NaN.
    """

    key: str
    last: float
    last_step: int
    last_time: float
    min: float
    max: float
    count: int


@dataclass(frozen=True, slots=True)
class Run:
    """One execution of training code, with everything logged to it."""

    id: str
    experiment_id: str
    name: str
    status: RunStatus
    start_time: float
    end_time: float | None = None
    user: str = ""
    lifecycle: Lifecycle = Lifecycle.ACTIVE
    parent_run_id: str | None = None
    params: FrozenDict[str, ParamValue] = field(default_factory=FrozenDict)
    tags: FrozenDict[str, str] = field(default_factory=FrozenDict)
    summaries: FrozenDict[str, MetricSummary] = field(default_factory=FrozenDict)
    #: git commit, branch, dirty flag, diff blob, untracked files, entry point, argv.
    code: FrozenDict[str, Any] = field(default_factory=FrozenDict)
    #: Python, packages, host, CPU, GPU.
    environment: FrozenDict[str, Any] = field(default_factory=FrozenDict)
    #: ``host/pid/process-start-time`` of the process that owns a running run.
    process: str | None = None
    heartbeat_time: float | None = None

    @property
    def metrics(self) -> dict[str, float]:
        """The last value of each metric, as MLflow's ``run.data.metrics``."""
        return {k: s.last for k, s in self.summaries.items()}

    @property
    def duration(self) -> float | None:
        return None if self.end_time is None else self.end_time - self.start_time


@dataclass(frozen=True, slots=True, eq=False)
class MetricSeries:
    """Points of one metric as columns: steps (int64), values (float64), timestamps
    (float64 seconds, kept to the millisecond by stores). The unit of ingestion
    and of history reads.

    ``total`` is the number of stored points the series stands for; it is larger
    than ``len(self)`` when the series was downsampled.
    """

    key: str
    steps: npt.NDArray[np.int64]
    values: npt.NDArray[np.float64]
    timestamps: npt.NDArray[np.float64]
    total: int = -1

    def __post_init__(self) -> None:
        if self.total < 0:
            object.__setattr__(self, "total", len(self.steps))

    def __len__(self) -> int:
        return len(self.steps)

    @property
    def downsampled(self) -> bool:
        return self.total > len(self.steps)

    def points(self) -> list[tuple[int, float, float]]:
        """``(step, value, timestamp)`` tuples, for small series and tests."""
        return list(
            zip(self.steps.tolist(), self.values.tolist(), self.timestamps.tolist(), strict=True)
        )

    def __repr__(self) -> str:
        return f"MetricSeries(key={self.key!r}, points={len(self)}, total={self.total})"


@dataclass(frozen=True, slots=True)
class Artifact:
    """A file or directory logged to a run, by content digest.

    A directory's digest names a manifest blob listing its files.
    """

    path: str
    digest: str
    size: int
    kind: Literal["file", "dir"] = "file"
    created_at: float = 0.0


@dataclass(frozen=True, slots=True)
class Dataset:
    """A named, versioned collection of files (one Parquet file or a folder of
    100,000 images)."""

    id: str
    project_id: str
    name: str
    description: str = ""
    created_at: float = 0.0


@dataclass(frozen=True, slots=True)
class DatasetVersion:
    """One immutable state of a dataset, named by the digest of its manifest.

    ``version`` counts from 1 within the dataset. ``source`` is the local path it
    was added from (what ``shipyard data status`` compares against); ``run_id``
    the run that produced it, if any; ``metadata`` free-form JSON (e.g. where an
    imported DVC dataset came from).
    """

    id: str
    dataset_id: str
    version: int
    digest: str
    num_files: int
    size: int
    message: str = ""
    source: str = ""
    run_id: str | None = None
    metadata: FrozenDict[str, Any] = field(default_factory=FrozenDict)
    created_at: float = 0.0


@dataclass(frozen=True, slots=True)
class RunInput:
    """A dataset version a run read, and in which role (train, validation...)."""

    run_id: str
    dataset_version_id: str
    role: str
    created_at: float = 0.0


@dataclass(frozen=True, slots=True)
class RegisteredModel:
    """A named model in the registry; its versions are immutable packages.

    ``contract`` is the production contract every version is gated against on
    promotion (merged over the one a package declares at log time).
    """

    id: str
    project_id: str
    name: str
    description: str = ""
    tags: FrozenDict[str, str] = field(default_factory=FrozenDict)
    contract: FrozenDict[str, Any] = field(default_factory=FrozenDict)
    created_at: float = 0.0
    updated_at: float = 0.0


@dataclass(frozen=True, slots=True)
class ModelVersion:
    """One immutable version of a registered model: a model package (named by the
    digest of its tree) and the run that made it.

    ``source`` is where it was registered from (``runs:/<run>/<path>``);
    ``metadata`` what the package manifest said (flavor, signature, contract...),
    copied so listing versions needs no blob reads.
    """

    id: str
    model_id: str
    version: int
    package_digest: str
    run_id: str | None = None
    source: str = ""
    description: str = ""
    tags: FrozenDict[str, str] = field(default_factory=FrozenDict)
    metadata: FrozenDict[str, Any] = field(default_factory=FrozenDict)
    created_by: str = ""
    created_at: float = 0.0


@dataclass(frozen=True, slots=True)
class ModelExport:
    """A version exported to another format (``onnx``), with its parity report."""

    model_version_id: str
    format: str
    package_digest: str
    report: FrozenDict[str, Any] = field(default_factory=FrozenDict)
    created_at: float = 0.0


@dataclass(frozen=True, slots=True)
class AliasEvent:
    """One attempt to move (or remove) an alias, kept whatever its outcome.

    ``outcome`` is ``moved``, ``forced`` (gates failed or skipped; ``reason`` says
    why it was done anyway), ``refused`` (a gate failed; ``report`` holds the
    gates), ``conflict`` (the alias had moved since the caller looked), or
    ``removed``. Versions are numbers; ``None`` means no holder.
    """

    id: int
    model_id: str
    alias: str
    from_version: int | None
    to_version: int | None
    outcome: str
    actor: str = ""
    reason: str = ""
    report: FrozenDict[str, Any] = field(default_factory=FrozenDict)
    created_at: float = 0.0


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """One page of results; pass ``next_page_token`` back to get the next."""

    items: tuple[T, ...]
    next_page_token: str | None = None

    def __iter__(self) -> Any:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)


def is_number(value: object) -> bool:
    """True for int and float params (bool is not a number here)."""
    return isinstance(value, int | float) and not isinstance(value, bool)


def same_param(a: ParamValue, b: ParamValue) -> bool:
    """Param equality that treats NaN as equal to NaN and keeps 1 != True."""
    if type(a) is not type(b) and not (is_number(a) and is_number(b)):
        return False
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return a == b
