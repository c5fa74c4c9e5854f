"""Training profiles: what the model's inputs and predictions looked like at log time.

``log_model(..., profile_data=X_train)`` stores a small summary of the data in
the package manifest (``"profile"``), so a server can compare the traffic it
sees against it (input drift) without the training data at hand. The input
example is profiled when no ``profile_data`` is given (a few rows make a weak
baseline: the profile says which it was under ``source``).

What is profiled, per *feature*:

* a DataFrame column; a named tensor of shape ``(N,)`` or ``(N, 1)``; each
  column ``name[i]`` of an ``(N, k)`` tensor with ``k <= 256`` (an unnamed
  tensor is called ``x``). Wider or higher-rank tensors (images, embeddings
  of thousands of values) are listed under ``skipped`` instead;
* **numeric** features (floats, datetimes, integers with many values): the
  interior edges of 10 quantile bins -- the values found at the 10th, 20th ...
  90th percentile positions, deduplicated, so a discrete feature gets one bin
  per frequent value rather than edges falling between its values -- the
  proportion of rows in each bin and in a last *missing* (NaN) bucket, and
  count, min, max, mean, std and the 5/25/50/75/95th percentiles. A value
  ``v`` falls in bin ``i`` when ``edges[i-1] <= v < edges[i]`` (the first bin,
  below the first edge, is empty when that edge is the minimum: values below
  anything seen in training land there);
* **categorical** features: strings, booleans, and integer features with at
  most :data:`MAX_CATEGORIES` (20) distinct values in the profile sample
  (codes, flags, small counts: their values are labels more than magnitudes,
  and quantile bins would merge them). The 20 most frequent categories with
  their proportions, then an *other* bucket (the rest, and any value unseen
  at log time) and a *missing* bucket.

The model's predictions on the profile sample are profiled the same way
(``outputs``): a classifier's labels as categories, a regressor's values as
numbers, each column of ``predict_proba`` as its own feature.

Cost: at most :data:`MAX_PROFILE_ROWS` rows are read, a deterministic random
sample (seeded, so logging the same data twice gives the same profile); each
numeric column is sorted once and everything else is read off the sorted
values, so a 100,000 x 20 float frame profiles in a few tens of milliseconds.
The predictions are made on at most :data:`MAX_OUTPUT_ROWS` of those rows (and
on fewer, down to :data:`MIN_OUTPUT_ROWS`, when the rows are large: about
:data:`OUTPUT_INPUT_BYTES` of input in all, so an image model predicts on a few
hundred images, not 20,000), in batches of :data:`OUTPUT_BATCH_ROWS`.

Drift is scored with the population stability index, :func:`psi`: the sum over
buckets of ``(actual - expected) * ln(actual / expected)`` of the proportions.
The usual reading, which :func:`drift_status` applies: below
:data:`PSI_MODERATE` (0.1) stable, up to :data:`PSI_SIGNIFICANT` (0.25)
moderate drift, above it significant drift. Unlike a Kolmogorov-Smirnov test
it does not tend to "significant" as the sample grows: it measures how far the
distributions are apart, not how sure we are that they differ. On few rows it
is noisy (about ``buckets / rows`` even with no drift), hence
:data:`MIN_STATUS_ROWS`.
"""

from __future__ import annotations

import itertools
import math
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from shipyard._util import FrozenDict
from shipyard.errors import InvalidArgumentError
from shipyard.validation import describe

__all__ = [
    "MAX_CATEGORIES",
    "MAX_OUTPUT_ROWS",
    "MAX_PROFILE_ROWS",
    "MAX_TENSOR_COLUMNS",
    "MIN_OUTPUT_ROWS",
    "MIN_STATUS_ROWS",
    "OUTPUT_INPUT_BYTES",
    "PSI_EPSILON",
    "PSI_MODERATE",
    "PSI_SIGNIFICANT",
    "FeatureProfile",
    "Profile",
    "bin_counts",
    "bucket_indices",
    "build_profile",
    "drift_status",
    "feature_columns",
    "output_columns",
    "profile_of",
    "psi",
]

#: Rows read to build a profile (a seeded random sample of larger data).
MAX_PROFILE_ROWS = 100_000
#: Rows of that sample the model predicts on for the output profile.
MAX_OUTPUT_ROWS = 20_000
#: Rows predicted on at least, whatever their size.
MIN_OUTPUT_ROWS = 500
#: Input bytes predicted on at most (beyond MIN_OUTPUT_ROWS rows).
OUTPUT_INPUT_BYTES = 64 * 2**20
#: Rows per predict call while profiling outputs (bounds memory for large models).
OUTPUT_BATCH_ROWS = 5_000
#: Widest ``(N, k)`` tensor split into per-column features.
MAX_TENSOR_COLUMNS = 256
#: Categories kept per categorical feature; also the most distinct values an
#: integer feature may have to be treated as categorical.
MAX_CATEGORIES = 20
#: Quantile bins of a numeric feature (fewer when values repeat).
NUMERIC_BINS = 10
#: Floor for a bucket's proportion in :func:`psi`, so an empty bucket gives a
#: large but finite term instead of infinity.
PSI_EPSILON = 1e-4
#: PSI at or above this: moderate drift (below: stable).
PSI_MODERATE = 0.1
#: PSI above this: significant drift.
PSI_SIGNIFICANT = 0.25
#: Below this many rows a PSI says little (its noise is about buckets / rows).
MIN_STATUS_ROWS = 100
PROFILE_FORMAT = 1

_DECILES = np.linspace(0.1, 0.9, NUMERIC_BINS - 1)
_PERCENTILES = {"p5": 0.05, "p25": 0.25, "p50": 0.5, "p75": 0.75, "p95": 0.95}
_SEED = 20240501

Kind = Literal["numeric", "categorical"]
Category = str | int | float | bool
Status = Literal["stable", "moderate", "drift", "few rows"]


def _number(value: Any) -> float | None:
    """A float for JSON: None for NaN and infinities."""
    if value is None:
        return None
    v = float(value)
    return v if math.isfinite(v) else None


@dataclass(frozen=True, slots=True)
class FeatureProfile:
    """The distribution of one feature (or one output) in the profile sample.

    Attributes:
        name: ``distance``, ``pixels[3]``, ``x[0]``, ``output``.
        kind: ``numeric`` or ``categorical``.
        source: the input (column or tensor) it is read from.
        index: the column of an ``(N, k)`` tensor, or None.
        proportions: one per bucket, the missing bucket last; they sum to 1.
        count: rows profiled (missing ones included).
        missing: rows with no value (NaN, None, NaT).
        edges: numeric: the interior bin edges, increasing.
        categories: categorical: the kept categories; the buckets are these,
            then *other*, then *missing*.
        stats: numeric: ``min``, ``max``, ``mean``, ``std`` and percentiles
            ``p5`` ... ``p95`` (None where there is no finite value).
    """

    name: str
    kind: Kind
    source: str
    index: int | None
    proportions: tuple[float, ...]
    count: int
    missing: int
    edges: tuple[float, ...] = ()
    categories: tuple[Category, ...] = ()
    stats: FrozenDict[str, float | None] = field(default_factory=FrozenDict)
    _lookup: dict[Any, int] = field(init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        if self.kind not in ("numeric", "categorical"):
            raise InvalidArgumentError(
                f"invalid profile of feature {self.name!r}: expected kind 'numeric' or "
                f"'categorical', got {describe(self.kind)}"
            )
        want = len(self.edges) + 2 if self.kind == "numeric" else len(self.categories) + 2
        if len(self.proportions) != want:
            raise InvalidArgumentError(
                f"invalid profile of feature {self.name!r}: expected {want} proportions "
                f"(one per bucket, missing last), got {len(self.proportions)}"
            )
        lookup: dict[Any, int] = {}
        for i, c in enumerate(self.categories):
            lookup.setdefault(c, i)
            lookup.setdefault(str(c), i)  # object arrays are matched by their text
        object.__setattr__(self, "_lookup", lookup)

    @property
    def buckets(self) -> list[str]:
        """A label per bucket: ``< 1.5``, ``[1.5, 3)``, ``>= 3``, ``north``, ``(other)``,
        ``(missing)``."""
        if self.kind == "categorical":
            return [str(c) for c in self.categories] + ["(other)", "(missing)"]
        e = [f"{v:.4g}" for v in self.edges]
        if not e:
            return ["(all)", "(missing)"]
        inner = [f"[{a}, {b})" for a, b in itertools.pairwise(e)]
        return [f"< {e[0]}", *inner, f">= {e[-1]}", "(missing)"]

    def to_dict(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "name": self.name,
            "kind": self.kind,
            "source": self.source,
            "index": self.index,
            "count": self.count,
            "missing": self.missing,
            "proportions": list(self.proportions),
        }
        if self.kind == "numeric":
            doc["edges"] = list(self.edges)
            doc.update({k: _number(v) for k, v in self.stats.items()})
        else:
            doc["categories"] = list(self.categories)
        return doc

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> FeatureProfile:
        if not isinstance(doc, Mapping):
            raise InvalidArgumentError(
                f"invalid feature profile: expected a dict, got {describe(doc)}"
            )
        try:
            kind = doc["kind"]
            stats = {k: _number(doc.get(k)) for k in ("min", "max", "mean", "std", *_PERCENTILES)}
            index = doc.get("index")
            return cls(
                name=str(doc["name"]),
                kind=kind,
                source=str(doc.get("source", doc["name"])),
                index=None if index is None else int(index),
                proportions=tuple(float(p) for p in doc["proportions"]),
                count=int(doc["count"]),
                missing=int(doc.get("missing", 0)),
                edges=tuple(float(e) for e in doc.get("edges") or ()),
                categories=tuple(doc.get("categories") or ()),
                stats=FrozenDict(stats if kind == "numeric" else {}),
            )
        except (KeyError, TypeError, ValueError) as e:
            raise InvalidArgumentError(
                f"invalid feature profile {describe(doc.get('name'))}: {e!r}; expected the "
                "keys name, kind, proportions and count (written by shipyard.log_model)"
            ) from None


@dataclass(frozen=True, slots=True)
class Profile:
    """A package's training profile (the manifest's ``"profile"`` entry).

    Attributes:
        rows: rows profiled (at most :data:`MAX_PROFILE_ROWS`).
        source: ``profile_data`` or ``input_example``.
        kind: the input schema's kind (``dataframe``, ``dict``, ``ndarray``).
        features: one per input feature.
        outputs: one per output feature (empty when predicting failed: see notes).
        skipped: inputs and outputs not profiled, with their shape and why.
        notes: what a reader should know (a weak source, a failed predict).
        sampled_from: rows in the data given.
    """

    rows: int
    source: str
    kind: str
    features: tuple[FeatureProfile, ...]
    outputs: tuple[FeatureProfile, ...] = ()
    skipped: tuple[Mapping[str, Any], ...] = ()
    notes: tuple[str, ...] = ()
    sampled_from: int = 0

    def feature(self, name: str) -> FeatureProfile:
        """The input feature ``name`` (KeyError naming the features there are)."""
        for f in self.features:
            if f.name == name:
                return f
        raise KeyError(f"no feature {name!r} in the profile; it has {self.names}")

    @property
    def names(self) -> list[str]:
        return [f.name for f in self.features]

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": PROFILE_FORMAT,
            "rows": self.rows,
            "sampled_from": self.sampled_from,
            "source": self.source,
            "kind": self.kind,
            "features": [f.to_dict() for f in self.features],
            "outputs": [f.to_dict() for f in self.outputs],
            "skipped": [dict(s) for s in self.skipped],
            "notes": list(self.notes),
        }

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> Profile:
        if not isinstance(doc, Mapping) or not isinstance(doc.get("features"), list):
            raise InvalidArgumentError(
                f"invalid profile: expected {{'rows', 'source', 'features': [...], ...}}, got "
                f"{describe(doc)}"
            )
        return cls(
            rows=int(doc.get("rows", 0)),
            source=str(doc.get("source", "")),
            kind=str(doc.get("kind", "")),
            features=tuple(FeatureProfile.from_dict(f) for f in doc["features"]),
            outputs=tuple(FeatureProfile.from_dict(f) for f in doc.get("outputs") or ()),
            skipped=tuple(dict(s) for s in doc.get("skipped") or ()),
            notes=tuple(str(n) for n in doc.get("notes") or ()),
            sampled_from=int(doc.get("sampled_from", doc.get("rows", 0))),
        )


def profile_of(manifest: Mapping[str, Any]) -> Profile | None:
    """The training profile in a package manifest; None for a package logged without
    one (before profiles existed, or with neither an input example nor profile data).

    Raises:
        InvalidArgumentError: the manifest's profile entry is malformed.
    """
    doc = manifest.get("profile")
    if doc is None:
        return None
    return Profile.from_dict(doc)


# -- PSI --------------------------------------------------------------------------------


def psi(expected_proportions: Sequence[float] | np.ndarray[Any, Any], actual_counts: Any) -> float:
    """The population stability index of ``actual_counts`` against the profile's
    ``expected_proportions`` (same buckets, same order).

    Both sides' proportions are floored at :data:`PSI_EPSILON`, so an empty
    bucket gives a finite term. 0 for identical distributions, growing as they
    move apart; read it with :func:`drift_status`. NaN when there are no rows.

    Raises:
        InvalidArgumentError: the two have different numbers of buckets.
    """
    expected = np.asarray(expected_proportions, dtype=np.float64)
    counts = np.asarray(actual_counts, dtype=np.float64)
    if expected.shape != counts.shape or expected.ndim != 1:
        raise InvalidArgumentError(
            f"cannot compute PSI: expected proportions and actual counts of the same buckets, "
            f"got shapes {expected.shape} and {counts.shape}"
        )
    total = counts.sum()
    if total <= 0:
        return math.nan
    e = np.maximum(expected, PSI_EPSILON)
    a = np.maximum(counts / total, PSI_EPSILON)
    return float(np.sum((a - e) * np.log(a / e)))


def drift_status(score: float, rows: int | None = None) -> Status:
    """``stable`` (PSI < 0.1), ``moderate`` (up to 0.25), ``drift`` (above); ``few rows``
    when fewer than :data:`MIN_STATUS_ROWS` rows were scored (or the score is NaN)."""
    if (rows is not None and rows < MIN_STATUS_ROWS) or math.isnan(score):
        return "few rows"
    if score < PSI_MODERATE:
        return "stable"
    return "moderate" if score <= PSI_SIGNIFICANT else "drift"


# -- bucketing --------------------------------------------------------------------------


def _missing(value: object) -> bool:
    return (
        value is None
        or (isinstance(value, float) and value != value)
        or type(value).__name__ in ("NAType", "NaTType")
    )


def _as_float(values: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """Numbers (and datetimes, as nanoseconds) as float64, missing as NaN."""
    kind = values.dtype.kind
    if kind in "mM":
        nat = np.isnat(values)
        out = values.astype("datetime64[ns]" if kind == "M" else "timedelta64[ns]")
        floats = out.view(np.int64).astype(np.float64)
        floats[nat] = np.nan
        return floats
    if kind == "O" or kind in "US":
        return np.array(
            [np.nan if _missing(v) else _float_or_nan(v) for v in values.ravel()],
            dtype=np.float64,
        )
    return values.astype(np.float64, copy=False)


def _float_or_nan(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _column(values: Any) -> np.ndarray[Any, Any]:
    arr = np.asarray(values)
    if arr.ndim == 0:
        return arr.reshape(1)
    if arr.ndim > 1:
        return arr.reshape(len(arr), -1)[:, 0]
    return arr


def bucket_indices(feature: FeatureProfile, values: Any) -> np.ndarray[Any, Any]:
    """The bucket of each value (int16; the missing bucket is the last): vectorised,
    ``np.searchsorted`` for numeric features and a lookup of the distinct values
    for categorical ones."""
    arr = _column(values)
    if feature.kind == "numeric":
        x = _as_float(arr)
        edges = np.asarray(feature.edges, dtype=np.float64)
        out = np.searchsorted(edges, x, side="right").astype(np.int16)
        out[np.isnan(x)] = len(edges) + 1
        return out
    other, missing = len(feature.categories), len(feature.categories) + 1
    lookup = feature._lookup
    kind = arr.dtype.kind
    if kind == "O":
        listed = arr.tolist()

        def code(v: Any) -> int:
            if _missing(v):
                return missing
            return lookup.get(v if isinstance(v, str | bool | int | float) else str(v), other)

        try:  # one lookup per distinct value (NaN objects match themselves by identity)
            memo = {v: code(v) for v in set(listed)}
            return np.fromiter(map(memo.__getitem__, listed), dtype=np.int16, count=len(listed))
        except TypeError:  # unhashable values
            return np.fromiter(map(code, listed), dtype=np.int16, count=len(listed))
    if kind == "f":
        nan = np.isnan(arr)
        if nan.any():
            out = np.full(len(arr), missing, dtype=np.int16)
            out[~nan] = bucket_indices(feature, arr[~nan])
            return out
    if kind in "mM":
        arr = arr.astype(str)
        kind = "U"
    if kind not in "biufUS":
        raise InvalidArgumentError(
            f"cannot bucket feature {feature.name!r}: got values of dtype {arr.dtype}; expected "
            "numbers, booleans or strings"
        )
    if kind == "S":
        arr = arr.astype(str)
    uniq, inverse = np.unique(arr, return_inverse=True)
    codes = np.fromiter(
        (lookup.get(u, other) for u in uniq.tolist()), dtype=np.int16, count=len(uniq)
    )
    result: np.ndarray[Any, Any] = codes[inverse.reshape(-1)]
    return result


def bin_counts(feature: FeatureProfile, values: Any) -> np.ndarray[Any, Any]:
    """How many of ``values`` fall in each of the feature's buckets (the missing
    bucket last): the ``actual_counts`` of :func:`psi`."""
    size = len(feature.proportions)
    counts: np.ndarray[Any, Any] = np.bincount(bucket_indices(feature, values), minlength=size)
    return counts


# -- naming the columns of inputs and outputs ------------------------------------------


def _columns(
    features: Sequence[FeatureProfile], arrays: Mapping[str, Any]
) -> dict[str, np.ndarray[Any, Any]]:
    sources = {f.source for f in features}
    only = next(iter(arrays.values())) if len(arrays) == 1 and len(sources) == 1 else None
    out: dict[str, np.ndarray[Any, Any]] = {}
    cache: dict[str, np.ndarray[Any, Any]] = {}
    for f in features:
        if f.source not in cache:
            raw = arrays.get(f.source, only)
            if raw is None:
                continue
            arr = np.asarray(raw)
            cache[f.source] = arr.reshape(len(arr), -1) if arr.ndim > 1 else arr
        arr = cache[f.source]
        if arr.ndim == 0:
            out[f.name] = arr.reshape(1)
        elif arr.ndim == 1:
            out[f.name] = arr
        elif f.index is None:
            out[f.name] = arr[:, 0]
        elif f.index < arr.shape[1]:
            out[f.name] = arr[:, f.index]
    return out


def feature_columns(
    profile: Profile, inputs: Mapping[str, np.ndarray[Any, Any]]
) -> dict[str, np.ndarray[Any, Any]]:
    """One 1-D array per profiled feature, from a model's decoded inputs.

    ``inputs`` holds what passed the signature check: for a dataframe signature
    one array per column, for a dict signature one per tensor, for an ndarray
    signature one array (under the tensor's name or ``"input"``; a single array
    is taken whatever its key). ``(N, k)`` tensors are split into their columns.
    Features whose input is absent are left out (nothing raises: this runs
    behind a server's request path).
    """
    return _columns(profile.features, inputs)


def output_columns(
    profile: Profile, outputs: Mapping[str, np.ndarray[Any, Any]]
) -> dict[str, np.ndarray[Any, Any]]:
    """One 1-D array per profiled output, from the model's outputs by name
    (``"output"`` for a single array; a single array is taken whatever its key)."""
    return _columns(profile.outputs, outputs)


# -- building ---------------------------------------------------------------------------


def _quantiles(ordered: np.ndarray[Any, Any], q: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """Linear-interpolation quantiles (NumPy's default) of already sorted values."""
    n = len(ordered)
    pos = q * (n - 1)
    lo = np.floor(pos).astype(np.int64)
    hi = np.minimum(lo + 1, n - 1)
    frac = pos - lo
    low, high = ordered[lo], ordered[hi]
    with np.errstate(invalid="ignore"):
        mixed = low + (high - low) * frac
    result: np.ndarray[Any, Any] = np.where(frac == 0, low, mixed)
    return result


def _proportions(counts: np.ndarray[Any, Any], total: int) -> tuple[float, ...]:
    """Shares of ``total``, to 6 decimals (the manifest stays small and the profile
    read back from it equals the one built)."""
    return tuple(round(p, 6) for p in (counts / max(total, 1)).tolist())


def _numeric(name: str, source: str, index: int | None, x: np.ndarray[Any, Any]) -> FeatureProfile:
    count = len(x)
    nan = np.isnan(x)
    ordered = np.sort(x[~nan])
    n = len(ordered)
    stats: dict[str, float | None] = dict.fromkeys(("min", "max", "mean", "std", *_PERCENTILES))
    edges = np.empty(0)
    if n:
        # edges are data values (the value at each decile's position), so a discrete
        # feature's bins line up with its values instead of falling between them
        at = np.minimum(np.floor(_DECILES * n + 1e-9).astype(np.int64), n - 1)
        edges = np.unique(ordered[at])
        edges = edges[np.isfinite(edges)]
        qs = _quantiles(ordered, np.asarray(list(_PERCENTILES.values())))
        with np.errstate(invalid="ignore", over="ignore"):
            stats.update(
                min=_number(ordered[0]),
                max=_number(ordered[-1]),
                mean=_number(ordered.mean()),
                std=_number(ordered.std()),
            )
        stats.update({k: _number(v) for k, v in zip(_PERCENTILES, qs, strict=True)})
    below = np.searchsorted(ordered, edges, side="left")
    bins = np.diff(np.concatenate([[0], below, [n]]))
    counts = np.concatenate([bins, [count - n]]).astype(np.float64)
    return FeatureProfile(
        name=name,
        kind="numeric",
        source=source,
        index=index,
        proportions=_proportions(counts, count),
        count=count,
        missing=count - n,
        edges=tuple(float(e) for e in edges),
        stats=FrozenDict(stats),
    )


def _plain(value: Any) -> Category:
    item = value.item() if isinstance(value, np.generic) else value
    return item if isinstance(item, str | bool | int | float) else str(item)


def _categorical(
    name: str, source: str, index: int | None, values: np.ndarray[Any, Any]
) -> FeatureProfile:
    count = len(values)
    freq: dict[Category, int] = {}
    if values.dtype.kind == "O":
        for value, n in Counter(values.tolist()).items():
            if not _missing(value):
                key = _plain(value)
                freq[key] = freq.get(key, 0) + n
    elif count:
        uniq, counts = np.unique(values, return_counts=True)
        freq = {_plain(u): int(n) for u, n in zip(uniq.tolist(), counts.tolist(), strict=True)}
    top = sorted(freq, key=lambda k: (-freq[k], str(k)))[:MAX_CATEGORIES]
    present = sum(freq.values())
    kept = [freq[k] for k in top]
    counts = np.asarray([*kept, present - sum(kept), count - present], dtype=np.float64)
    return FeatureProfile(
        name=name,
        kind="categorical",
        source=source,
        index=index,
        proportions=_proportions(counts, count),
        count=count,
        missing=count - present,
        categories=tuple(top),
    )


def _profile_column(
    name: str, source: str, index: int | None, values: np.ndarray[Any, Any]
) -> FeatureProfile | str:
    """A feature's profile, or why it cannot have one."""
    kind = values.dtype.kind
    if kind in "bOUS":
        return _categorical(name, source, index, values)
    if kind in "iu":
        ordered = np.sort(values)
        distinct = 1 + int(np.count_nonzero(ordered[1:] != ordered[:-1])) if len(values) else 0
        if distinct <= MAX_CATEGORIES:
            return _categorical(name, source, index, values)
        return _numeric(name, source, index, values.astype(np.float64))
    if kind in "fmM":
        return _numeric(name, source, index, _as_float(values))
    return f"values of dtype {values.dtype} are neither numbers nor categories"


def _profile_arrays(
    arrays: Mapping[str, Any], of: str, labels: Mapping[str, str] | None = None
) -> tuple[list[FeatureProfile], list[dict[str, Any]]]:
    features: list[FeatureProfile] = []
    skipped: list[dict[str, Any]] = []
    for key, raw in arrays.items():
        arr = np.asarray(raw)
        label = (labels or {}).get(key, key)
        if arr.ndim == 0:
            arr = arr.reshape(1)
        if arr.ndim == 1 or (arr.ndim == 2 and arr.shape[1] == 1):
            found = _profile_column(label, key, None, arr.reshape(len(arr)))
            columns = [found]
        elif arr.ndim == 2 and arr.shape[1] <= MAX_TENSOR_COLUMNS:
            columns = [
                _profile_column(f"{label}[{i}]", key, i, arr[:, i]) for i in range(arr.shape[1])
            ]
        else:
            skipped.append(
                {
                    "name": label,
                    "of": of,
                    "shape": [-1, *arr.shape[1:]],
                    "reason": f"only tensors of shape (N,) or (N, k) with k <= "
                    f"{MAX_TENSOR_COLUMNS} are profiled",
                }
            )
            continue
        for item in columns:
            if isinstance(item, str):
                skipped.append({"name": label, "of": of, "reason": item})
            else:
                features.append(item)
    return features, skipped


def _rows(raw: Any) -> int:
    if hasattr(raw, "iloc") or isinstance(raw, list | tuple):
        return len(raw)
    if isinstance(raw, Mapping):
        for value in raw.values():
            if np.ndim(value) > 0:
                return len(value)
        return 1
    shape = np.shape(raw)
    return int(shape[0]) if shape else 1


def _take(raw: Any, index: np.ndarray[Any, Any]) -> Any:
    """Rows ``index`` of raw or enforced input, in its own type."""
    if hasattr(raw, "iloc"):
        return raw.iloc[index]
    if isinstance(raw, Mapping):
        return {k: v if np.ndim(v) == 0 else np.asarray(v)[index] for k, v in raw.items()}
    if isinstance(raw, list) and raw and isinstance(raw[0], Mapping):
        return [raw[i] for i in index]
    return np.asarray(raw)[index]


def _decoded(enforced: Any, schema: Any) -> dict[str, np.ndarray[Any, Any]]:
    """Enforced input as the named arrays a server hands to :func:`feature_columns`."""
    if schema.kind == "dataframe":
        return {str(c): np.asarray(enforced[c].to_numpy()) for c in enforced.columns}
    if schema.kind == "dict":
        return {str(k): np.asarray(v) for k, v in enforced.items()}
    return {str(schema.specs[0].name or "input"): np.asarray(enforced)}


def build_profile(
    data: Any,
    signature: Any,
    *,
    source: str,
    predict: Callable[[Any], Mapping[str, np.ndarray[Any, Any]]] | None = None,
) -> Profile:
    """Profile raw input ``data`` (and the model's outputs on it) for a package.

    Args:
        data: raw input as ``log_model`` takes it (DataFrame, dict of arrays,
            NumPy array, list of row dicts).
        signature: the package's :class:`~shipyard.models.Signature`; the data
            is checked and converted by its input schema.
        source: ``profile_data`` or ``input_example``.
        predict: enforced input -> named output arrays; None profiles no outputs.

    Raises:
        InvalidArgumentError: the data does not match the input schema.
    """
    from shipyard.models._signature import enforce

    total = _rows(data)
    rng = np.random.default_rng(_SEED)
    sample = data
    if total > MAX_PROFILE_ROWS:
        sample = _take(data, np.sort(rng.choice(total, size=MAX_PROFILE_ROWS, replace=False)))
    try:
        enforced = enforce(signature.inputs, sample)
    except InvalidArgumentError as e:
        raise InvalidArgumentError(
            f"cannot profile the {source.replace('_', ' ')}: it does not match the model's input "
            f"signature ({e}); pass the raw training input the model takes, or "
            f"{source}=None"
        ) from None
    arrays = _decoded(enforced, signature.inputs)
    rows = _rows(next(iter(arrays.values()))) if arrays else 0
    # an unnamed tensor's columns are x[0], x[1]... (its key is "input")
    unnamed = signature.inputs.kind == "ndarray" and signature.inputs.specs[0].name is None
    features, skipped = _profile_arrays(arrays, "inputs", {"input": "x"} if unnamed else None)
    notes: list[str] = []
    if source == "input_example":
        notes.append(
            f"profiled from the input example ({rows} rows): pass profile_data=<training "
            "input> to log_model for a reliable drift baseline"
        )
    outputs: list[FeatureProfile] = []
    if predict is not None and rows:
        row_bytes = sum(a.nbytes for a in arrays.values()) / rows
        budget = max(MIN_OUTPUT_ROWS, int(OUTPUT_INPUT_BYTES / max(row_bytes, 1.0)))
        size = min(rows, MAX_OUTPUT_ROWS, budget)
        take = np.sort(rng.choice(rows, size=size, replace=False))
        try:
            parts = [
                predict(_take(enforced, take[i : i + OUTPUT_BATCH_ROWS]))
                for i in range(0, len(take), OUTPUT_BATCH_ROWS)
            ]
            merged = {
                name: np.concatenate([np.atleast_1d(np.asarray(p[name])) for p in parts])
                for name in parts[0]
            }
        except Exception as e:  # the model's own code: any failure only costs the outputs
            notes.append(
                f"outputs not profiled: predicting on the profile sample failed "
                f"({type(e).__name__}: {e})"
            )
        else:
            outputs, skipped_out = _profile_arrays(merged, "outputs")
            skipped.extend(skipped_out)
    return Profile(
        rows=rows,
        source=source,
        kind=str(signature.inputs.kind),
        features=tuple(features),
        outputs=tuple(outputs),
        skipped=tuple(skipped),
        notes=tuple(notes),
        sampled_from=total,
    )
