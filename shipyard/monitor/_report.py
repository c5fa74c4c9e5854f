"""``monitor_report``: drift and prediction distributions of a served model version
over a time window, from its sampled prediction logs.

The version's profile comes from the registered version's own package (an
ONNX export is a separate package; the profile that counts is the one logged
with the model). The rows come from the ``predictions/*.jsonl`` artifacts of
the serving runs tagged with the model's name (:mod:`._log`): runs that
started after the window or ended before it are not opened, and neither are
files that cannot hold a row of the window (a file starts after the window's
end, or the next file of its run starts before the window's start).
"""

from __future__ import annotations

import json
import math
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from shipyard.errors import InvalidArgumentError, NotFoundError
from shipyard.models import (
    FeatureProfile,
    Profile,
    bin_counts,
    drift_status,
    feature_columns,
    output_columns,
    profile_of,
    psi,
)
from shipyard.monitor._log import (
    MODEL_TAG,
    PREDICTIONS_DIR,
    SERVING_EXPERIMENT,
    parse_file_name,
)
from shipyard.validation import describe

if TYPE_CHECKING:
    from shipyard.registry import RegistryClient
    from shipyard.types import Run

__all__ = ["FeatureDrift", "MonitorReport", "OutputSummary", "monitor_report"]

_PERCENTILES = {"p5": 5, "p25": 25, "p50": 50, "p75": 75, "p95": 95}
#: Categories listed per categorical output.
_TOP = 10


@dataclass(frozen=True, slots=True)
class FeatureDrift:
    """One input feature over the window: its PSI against the training profile."""

    name: str
    kind: str
    psi: float
    status: str
    rows: int
    missing: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "psi": None if math.isnan(self.psi) else self.psi,
            "status": self.status,
            "rows": self.rows,
            "missing": self.missing,
        }


@dataclass(frozen=True, slots=True)
class OutputSummary:
    """One output over the window next to its training profile.

    ``serving`` and ``training`` hold, for a numeric output, ``p5`` ... ``p95`` and
    ``mean``; for a categorical one, ``frequencies`` (value -> share of rows).
    ``psi``/``status`` are None when the profile has no such output."""

    name: str
    kind: str
    rows: int
    serving: dict[str, Any]
    training: dict[str, Any] = field(default_factory=dict)
    psi: float | None = None
    status: str | None = None

    def to_dict(self) -> dict[str, Any]:
        score = None if self.psi is None or math.isnan(self.psi) else self.psi
        return {
            "name": self.name,
            "kind": self.kind,
            "rows": self.rows,
            "psi": score,
            "status": self.status,
            "serving": self.serving,
            "training": self.training,
        }


@dataclass(frozen=True, slots=True)
class MonitorReport:
    """What ``shipyard monitor`` prints.

    Attributes:
        uri: the URI asked about (``models:/rides@production``).
        model, version: the model and the version reported on.
        current_version: the version the URI resolves to now.
        window_seconds, start, end: the window (Unix seconds).
        rows: sampled rows of ``version`` in the window.
        first, last: the times of the first and last of them.
        versions: rows in the window per version served (all versions).
        runs, files: serving runs and prediction files read.
        profile_source, profile_rows: what the training profile was built from.
        features: per input feature PSI, in the profile's order.
        outputs: per output distribution, serving next to training.
        notes: what a reader should know (no profile, a weak profile...).
    """

    uri: str
    model: str
    version: int
    current_version: int
    window_seconds: float
    start: float
    end: float
    rows: int
    first: float | None
    last: float | None
    versions: dict[int, int]
    runs: int
    files: int
    profile_source: str | None
    profile_rows: int
    features: tuple[FeatureDrift, ...] = ()
    outputs: tuple[OutputSummary, ...] = ()
    notes: tuple[str, ...] = ()

    @property
    def drifted(self) -> list[str]:
        """Features whose PSI says significant drift."""
        return [f.name for f in self.features if f.status == "drift"]

    def to_dict(self) -> dict[str, Any]:
        return {
            "uri": self.uri,
            "model": self.model,
            "version": self.version,
            "current_version": self.current_version,
            "window_seconds": self.window_seconds,
            "start": self.start,
            "end": self.end,
            "rows": self.rows,
            "first": self.first,
            "last": self.last,
            "versions": {str(v): n for v, n in sorted(self.versions.items())},
            "runs": self.runs,
            "files": self.files,
            "profile": {"source": self.profile_source, "rows": self.profile_rows},
            "features": [f.to_dict() for f in self.features],
            "drifted": self.drifted,
            "outputs": [o.to_dict() for o in self.outputs],
            "notes": list(self.notes),
        }


# -- reading the logs -------------------------------------------------------------------


@dataclass
class _Read:
    runs: int = 0
    files: int = 0
    rows: list[dict[str, Any]] = field(default_factory=list)


def _serving_runs(client: RegistryClient, model: str, start: float, end: float) -> list[Run]:
    store = client.store
    try:
        project = store.get_project_by_name(client.project)
        experiment = store.get_experiment_by_name(project.id, SERVING_EXPERIMENT)
    except NotFoundError:
        return []
    query = f"tags.`{MODEL_TAG}` = '{model}' and start_time <= {end!r}"
    return [
        run
        for run in store.iter_runs([experiment.id], query)
        if run.end_time is None or run.end_time >= start
    ]


def _read_logs(client: RegistryClient, model: str, start: float, end: float) -> _Read:
    read = _Read()
    for run in _serving_runs(client, model, start, end):
        files = []
        for artifact in client.store.list_artifacts(run.id):
            parsed = parse_file_name(artifact.path)
            inside = artifact.path.startswith(f"{PREDICTIONS_DIR}/")
            if artifact.kind == "file" and inside and parsed is not None:
                files.append((parsed, artifact.digest))
        files.sort()
        if files:
            read.runs += 1
        for i, ((first, _), digest) in enumerate(files):
            # a file's rows are all older than the next file's first row, and than the run's end
            after = files[i + 1][0][0] if i + 1 < len(files) else run.end_time
            if first > end or (after is not None and after < start):
                continue
            read.files += 1
            for line in client.blobs.get_bytes(digest).splitlines():
                if not line.strip():
                    continue
                row = json.loads(line)
                ts = row.get("ts")
                if isinstance(ts, int | float) and start <= ts <= end:
                    read.rows.append(row)
    return read


def _array(values: list[Any]) -> np.ndarray[Any, Any]:
    """Logged values (None for missing) as an array: float64 when they are numbers
    (or lists of numbers), else objects (strings and booleans keep their type)."""
    types = {type(v) for v in values}
    if types <= {int, float, type(None), list}:
        try:
            return np.array(values, dtype=np.float64)
        except (TypeError, ValueError):
            pass
    try:
        return np.array(values, dtype=object)
    except ValueError:  # ragged lists
        out = np.empty(len(values), dtype=object)
        out[:] = values
        return out


def _arrays(rows: list[dict[str, Any]], part: str) -> dict[str, np.ndarray[Any, Any]]:
    keys: dict[str, None] = {}
    for row in rows:
        keys.update(dict.fromkeys(row.get(part) or {}))
    return {k: _array([(row.get(part) or {}).get(k) for row in rows]) for k in keys}


# -- summaries --------------------------------------------------------------------------


def _number(value: Any) -> float | None:
    if value is None:
        return None
    v = float(value)
    return v if math.isfinite(v) else None


def _numeric_summary(values: np.ndarray[Any, Any]) -> dict[str, Any]:
    x = values.astype(np.float64) if values.dtype.kind in "biuf" else _floats(values)
    x = x[np.isfinite(x)]
    if not len(x):
        return dict.fromkeys([*_PERCENTILES, "mean"])
    qs = np.percentile(x, list(_PERCENTILES.values()))
    out: dict[str, Any] = {k: _number(q) for k, q in zip(_PERCENTILES, qs, strict=True)}
    out["mean"] = _number(x.mean())
    return out


def _floats(values: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    out = np.full(len(values), np.nan)
    for i, v in enumerate(values.tolist()):
        if isinstance(v, int | float):
            out[i] = v
    return out


def _frequencies(values: np.ndarray[Any, Any]) -> dict[str, float]:
    counts = Counter(
        "(missing)" if v is None or (isinstance(v, float) and math.isnan(v)) else _label(v)
        for v in values.tolist()
    )
    total = max(len(values), 1)
    top = counts.most_common(_TOP)
    out = {k: n / total for k, n in top}
    rest = total - sum(n for _, n in top)
    if rest and len(values):
        out["(other)"] = rest / total
    return out


def _label(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))  # categories read back from JSON as floats
    return str(value)


def _training(feature: FeatureProfile) -> dict[str, Any]:
    if feature.kind == "numeric":
        return {k: feature.stats.get(k) for k in (*_PERCENTILES, "mean")}
    labels = [*(str(c) for c in feature.categories), "(other)", "(missing)"]
    return {k: p for k, p in zip(labels, feature.proportions, strict=True) if p > 0}


def _features(profile: Profile, arrays: dict[str, np.ndarray[Any, Any]]) -> list[FeatureDrift]:
    columns = feature_columns(profile, arrays)
    out = []
    for f in profile.features:
        values = columns.get(f.name)
        if values is None:
            continue
        counts = bin_counts(f, values)
        n = int(counts.sum())
        score = psi(f.proportions, counts)
        out.append(
            FeatureDrift(
                f.name, f.kind, score, drift_status(score, n), n, float(counts[-1]) / max(n, 1)
            )
        )
    return out


def _outputs(
    profile: Profile | None, arrays: dict[str, np.ndarray[Any, Any]]
) -> list[OutputSummary]:
    if profile is None or not profile.outputs:
        return [
            OutputSummary(
                name,
                "categorical" if values.dtype.kind == "O" else "numeric",
                len(values),
                _frequencies(values) if values.dtype.kind == "O" else _numeric_summary(values),
            )
            for name, values in arrays.items()
            if values.ndim == 1
        ]
    columns = output_columns(profile, arrays)
    out = []
    for f in profile.outputs:
        values = columns.get(f.name)
        if values is None:
            continue
        counts = bin_counts(f, values)
        score = psi(f.proportions, counts)
        serving = _numeric_summary(values) if f.kind == "numeric" else _frequencies(values)
        out.append(
            OutputSummary(
                f.name,
                f.kind,
                len(values),
                serving,
                _training(f),
                score,
                drift_status(score, len(values)),
            )
        )
    return out


def monitor_report(
    uri: str,
    *,
    window_seconds: float = 3600,
    version: int | None = None,
    now: float | None = None,
    client: RegistryClient | None = None,
) -> MonitorReport:
    """Drift and prediction distributions of a registered model version over the last
    ``window_seconds``, from the sampled prediction logs of its serving runs.

    Args:
        uri: ``models:/NAME@ALIAS``, ``models:/NAME/3`` (or ``NAME@ALIAS``, ``NAME/3``).
        window_seconds: how far back from ``now`` to read.
        version: report on this version instead of the one ``uri`` names (the
            rows of other versions are still counted in ``versions``).
        now: the window's end (default: the current time).
        client: the registry client (default: :func:`shipyard.registry.client`).

    Raises:
        NotFoundError: no such model or version.
        InvalidArgumentError: a malformed URI, window or version.
    """
    from shipyard import registry

    if isinstance(window_seconds, bool) or not isinstance(window_seconds, int | float):
        raise InvalidArgumentError(
            f"invalid window {describe(window_seconds)}: expected a positive number of seconds"
        )
    if not (0 < window_seconds < math.inf):
        raise InvalidArgumentError(
            f"invalid window {window_seconds!r}: expected a positive number of seconds"
        )
    if version is not None and (isinstance(version, bool) or not isinstance(version, int)):
        raise InvalidArgumentError(
            f"invalid version {describe(version)}: expected a version number such as 3"
        )
    if isinstance(uri, str) and not uri.startswith("models:/"):
        uri = f"models:/{uri}"
    reg = client if client is not None else registry.client()
    current = reg.resolve(uri)
    model = reg.store.get_registered_model(current.model_id)
    mv = current if version is None else reg.store.get_model_version(model.id, version)
    profile = profile_of(reg.read_manifest(mv.package_digest))
    end = time.time() if now is None else float(now)
    start = end - float(window_seconds)
    read = _read_logs(reg, model.name, start, end)
    versions = Counter(int(r.get("version", -1)) for r in read.rows)
    rows = [r for r in read.rows if r.get("version") == mv.version]
    times = [float(r["ts"]) for r in rows]
    notes: list[str] = []
    features: list[FeatureDrift] = []
    outputs: list[OutputSummary] = []
    if profile is None:
        notes.append(
            f"version {mv.version} has no training profile: log the model with "
            "profile_data=<training input> to get drift scores"
        )
    else:
        notes.extend(profile.notes)
    if rows:
        if profile is not None:
            features = _features(profile, _arrays(rows, "inputs"))
        outputs = _outputs(profile, _arrays(rows, "outputs"))
    return MonitorReport(
        uri=uri,
        model=model.name,
        version=mv.version,
        current_version=current.version,
        window_seconds=float(window_seconds),
        start=start,
        end=end,
        rows=len(rows),
        first=min(times) if times else None,
        last=max(times) if times else None,
        versions=dict(versions),
        runs=read.runs,
        files=read.files,
        profile_source=None if profile is None else profile.source,
        profile_rows=0 if profile is None else profile.rows,
        features=tuple(features),
        outputs=tuple(outputs),
        notes=tuple(notes),
    )
