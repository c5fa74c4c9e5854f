"""Hyperparameter spaces: what a searcher may propose.

A :class:`Space` is an ordered tuple of parameters: :class:`Int`,
:class:`Float` and :class:`Categorical`. A parameter with ``when`` is
*conditional*: it exists only when every parent it names is active and holds
one of the listed values (``Float("momentum", 0.0, 0.99, when={"optimizer":
("sgd",)})``). Parents are declared before their children, so walking the
parameters in order always knows whether the next one is active; a config (a
``dict``) holds exactly the active parameters.

Every way of drawing a config goes through :meth:`Space.from_unit`, one
coordinate in ``[0, 1)`` per parameter (inactive ones are drawn and ignored),
so random sampling (i.i.d. uniforms) and quasi-random sampling (a Sobol point)
share one mapping and a sample always consumes the same number of uniforms.

:meth:`Space.key` is the identity of a config: canonical JSON with floats
rounded to 12 significant digits, so ``0.1`` and ``0.1000000000001`` are the
same trial to every searcher.

This module imports nothing heavy: numpy is only needed by the caller that
passes a ``numpy.random.Generator`` to :meth:`Space.sample`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from shipyard.errors import InvalidArgumentError

if TYPE_CHECKING:
    import numpy as np

__all__ = ["Categorical", "Float", "Int", "Param", "Space"]

#: Significant digits kept when floats are compared for identity (:meth:`Space.key`).
KEY_DIGITS = 12
#: What ``coerce`` returns for a value the parameter cannot take (None is a valid choice).
_MISSING: Any = object()
#: Just below 1: a unit coordinate of exactly 1.0 is clipped to this.
_BELOW_ONE = 1.0 - 2.0**-53


def _describe(value: object) -> str:
    return f"{value!r} ({type(value).__name__})"


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_real(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _scalar(value: Any) -> Any:
    """numpy scalars become Python scalars; anything else is returned as is."""
    item = getattr(value, "item", None)
    if callable(item) and type(value).__module__ == "numpy":
        return item()
    return value


def _check_when(name: str, when: Mapping[str, Any] | None) -> dict[str, tuple[Any, ...]] | None:
    if when is None:
        return None
    if not isinstance(when, Mapping) or not when:
        raise InvalidArgumentError(
            f"parameter {name!r}: `when` must map parent parameter names to the values that "
            f"activate it, e.g. {{'optimizer': ('sgd',)}}; got {_describe(when)}"
        )
    out: dict[str, tuple[Any, ...]] = {}
    for parent, values in when.items():
        if isinstance(values, str) or not isinstance(values, Sequence) or not values:
            raise InvalidArgumentError(
                f"parameter {name!r}: when[{parent!r}] must be a non-empty tuple of the "
                f"parent's values; got {_describe(values)}"
            )
        out[str(parent)] = tuple(_scalar(v) for v in values)
    return out


def _check_name(name: object) -> None:
    if not isinstance(name, str) or not name:
        raise InvalidArgumentError(
            f"a parameter name must be a non-empty string; got {_describe(name)}"
        )


@dataclass(frozen=True)
class Int:
    """An integer in ``[low, high]`` on the grid ``low, low + step, ...``.

    With ``log=True`` values are drawn log-uniformly (``low`` must be >= 1 and
    ``step`` 1). The values run up to the last grid point not above ``high``.
    """

    name: str
    low: int
    high: int
    log: bool = field(default=False, kw_only=True)
    step: int = field(default=1, kw_only=True)
    when: Mapping[str, tuple[Any, ...]] | None = field(default=None, kw_only=True, hash=False)

    def __post_init__(self) -> None:
        _check_name(self.name)
        where = f"int parameter {self.name!r}"
        for bound in ("low", "high"):
            value = _scalar(getattr(self, bound))
            if not _is_int(value):
                raise InvalidArgumentError(
                    f"{where}: {bound} must be an integer; got {_describe(value)}"
                )
            object.__setattr__(self, bound, value)
        if not self.low < self.high:
            raise InvalidArgumentError(
                f"{where}: expected low < high; got low={self.low}, high={self.high}"
            )
        if not _is_int(self.step) or self.step <= 0:
            raise InvalidArgumentError(
                f"{where}: step must be a positive integer; got {_describe(self.step)}"
            )
        if self.log and self.low <= 0:
            raise InvalidArgumentError(f"{where}: log=True needs low > 0; got low={self.low}")
        if self.log and self.step != 1:
            raise InvalidArgumentError(
                f"{where}: log=True needs step=1 (a log scale has no even step); "
                f"got step={self.step}"
            )
        object.__setattr__(self, "when", _check_when(self.name, self.when))

    @property
    def n_values(self) -> int:
        """How many values the parameter can take."""
        return (self.high - self.low) // self.step + 1

    @property
    def top(self) -> int:
        """The largest value on the step grid (``high`` when the step divides evenly)."""
        return self.low + (self.n_values - 1) * self.step

    def from_unit(self, u: float) -> int:
        if self.log:
            lo, hi = math.log(self.low - 0.5), math.log(self.high + 0.5)
            return min(self.high, max(self.low, round(math.exp(lo + u * (hi - lo)))))
        return self.low + min(int(u * self.n_values), self.n_values - 1) * self.step

    def coerce(self, value: Any) -> Any:
        """The value as an int when the parameter can take it, else ``_MISSING``."""
        value = _scalar(value)
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if not _is_int(value) or not self.low <= value <= self.high:
            return _MISSING
        return int(value) if (value - self.low) % self.step == 0 else _MISSING

    def expected(self) -> str:
        step = f" in steps of {self.step}" if self.step != 1 else ""
        return f"an integer in [{self.low}, {self.high}]{step}"


@dataclass(frozen=True)
class Float:
    """A real number in ``[low, high]``, uniform or (``log=True``) log-uniform."""

    name: str
    low: float
    high: float
    log: bool = field(default=False, kw_only=True)
    when: Mapping[str, tuple[Any, ...]] | None = field(default=None, kw_only=True, hash=False)

    def __post_init__(self) -> None:
        _check_name(self.name)
        where = f"float parameter {self.name!r}"
        for bound in ("low", "high"):
            value = _scalar(getattr(self, bound))
            if not _is_real(value) or not math.isfinite(value):
                raise InvalidArgumentError(
                    f"{where}: {bound} must be a finite number; got {_describe(value)}"
                )
            object.__setattr__(self, bound, float(value))
        if not self.low < self.high:
            raise InvalidArgumentError(
                f"{where}: expected low < high; got low={self.low:g}, high={self.high:g}"
            )
        if self.log and self.low <= 0:
            raise InvalidArgumentError(f"{where}: log=True needs low > 0; got low={self.low:g}")
        object.__setattr__(self, "when", _check_when(self.name, self.when))

    def from_unit(self, u: float) -> float:
        if self.log:
            lo, hi = math.log(self.low), math.log(self.high)
            return min(self.high, max(self.low, math.exp(lo + u * (hi - lo))))
        return min(self.high, self.low + u * (self.high - self.low))

    def coerce(self, value: Any) -> Any:
        """The value as a float when the parameter can take it, else ``_MISSING``."""
        value = _scalar(value)
        if not _is_real(value) or not self.low <= value <= self.high:
            return _MISSING  # NaN fails the comparison too
        return float(value)

    def expected(self) -> str:
        return f"a number in [{self.low:g}, {self.high:g}]"


@dataclass(frozen=True)
class Categorical:
    """One of ``choices``: JSON scalars (str, int, float, bool, None), all distinct.

    ``True`` and ``1`` are different choices here (unlike in Python's ``==``).
    """

    name: str
    choices: tuple[Any, ...]
    when: Mapping[str, tuple[Any, ...]] | None = field(default=None, kw_only=True, hash=False)

    def __post_init__(self) -> None:
        _check_name(self.name)
        where = f"categorical parameter {self.name!r}"
        if isinstance(self.choices, str | bytes) or not isinstance(self.choices, Sequence):
            raise InvalidArgumentError(
                f"{where}: choices must be a tuple of values; got {_describe(self.choices)}"
            )
        choices = tuple(_scalar(c) for c in self.choices)
        if not choices:
            raise InvalidArgumentError(f"{where}: expected at least one choice; got ()")
        seen: set[tuple[str, Any]] = set()
        for c in choices:
            if not (c is None or isinstance(c, str | int | float)):
                raise InvalidArgumentError(
                    f"{where}: choices must be JSON scalars (str, int, float, bool, None); "
                    f"got {_describe(c)}"
                )
            if isinstance(c, float) and not math.isfinite(c):
                raise InvalidArgumentError(f"{where}: choices must be finite; got {c!r}")
            ident = _identity(c)
            if ident in seen:
                raise InvalidArgumentError(f"{where}: choices must be unique; {c!r} repeats")
            seen.add(ident)
        object.__setattr__(self, "choices", choices)
        object.__setattr__(self, "when", _check_when(self.name, self.when))

    def from_unit(self, u: float) -> Any:
        return self.choices[min(int(u * len(self.choices)), len(self.choices) - 1)]

    def coerce(self, value: Any) -> Any:
        """The matching choice, or the sentinel ``_MISSING`` when there is none."""
        ident = _identity(_scalar(value))
        for c in self.choices:
            if _identity(c) == ident:
                return c
        return _MISSING

    def expected(self) -> str:
        return "one of " + ", ".join(repr(c) for c in self.choices)


Param = Int | Float | Categorical


def _identity(value: Any) -> tuple[str, Any]:
    """Equality that keeps bools apart from numbers and treats 1 and 1.0 alike."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return (type(value).__name__, value)
    if isinstance(value, int | float):
        return ("number", float(value) if isinstance(value, float) else value)
    return ("other", repr(value))


def _round(value: float) -> float:
    return float(f"{value:.{KEY_DIGITS}g}") + 0.0  # + 0.0 turns -0.0 into 0.0


class Space:
    """An ordered collection of parameters, some conditional on others.

    Args:
        params: the parameters, parents before their conditional children.

    Raises:
        InvalidArgumentError: a repeated name, a ``when`` naming a parameter that is
            unknown or declared later, or a ``when`` value the parent cannot take.
    """

    def __init__(self, params: Sequence[Param]) -> None:
        params = tuple(params)
        if not params:
            raise InvalidArgumentError("a search space needs at least one parameter; got none")
        by_name: dict[str, Param] = {}
        for p in params:
            if not isinstance(p, Int | Float | Categorical):
                raise InvalidArgumentError(
                    f"a space holds Int, Float and Categorical parameters; got {_describe(p)}"
                )
            if p.name in by_name:
                raise InvalidArgumentError(f"parameter {p.name!r} is declared twice")
            for parent_name, values in (p.when or {}).items():
                parent = by_name.get(parent_name)
                if parent is None:
                    later = any(q.name == parent_name for q in params)
                    raise InvalidArgumentError(
                        f"parameter {p.name!r}: `when` names {parent_name!r}, which "
                        + ("must be declared before it" if later else "is not in the space")
                    )
                for v in values:
                    if parent.coerce(v) is _MISSING:
                        raise InvalidArgumentError(
                            f"parameter {p.name!r}: when[{parent_name!r}] holds {v!r}, but "
                            f"{parent_name!r} takes {parent.expected()}"
                        )
            by_name[p.name] = p
        self.params: tuple[Param, ...] = params
        self._by_name = by_name

    def __len__(self) -> int:
        return len(self.params)

    def __iter__(self) -> Iterator[Param]:
        return iter(self.params)

    def __repr__(self) -> str:
        return f"Space({list(self.params)!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Space) and self.params == other.params

    __hash__ = None  # type: ignore[assignment]

    @property
    def names(self) -> tuple[str, ...]:
        """The parameter names, in order."""
        return tuple(p.name for p in self.params)

    def __getitem__(self, name: str) -> Param:
        try:
            return self._by_name[name]
        except KeyError:
            raise KeyError(
                f"no parameter {name!r} in the space ({', '.join(self.names)})"
            ) from None

    def active(self, name: str, config: Mapping[str, Any]) -> bool:
        """Whether parameter ``name`` exists in a config whose earlier parameters
        are ``config`` (inactive parents are absent from it)."""
        when = self[name].when
        if not when:
            return True
        for parent_name, values in when.items():
            if parent_name not in config:
                return False
            ident = _identity(config[parent_name])
            if all(_identity(v) != ident for v in values):
                return False
        return True

    def from_unit(self, u: Sequence[float]) -> dict[str, Any]:
        """The config at a point of the unit cube, one coordinate per parameter.

        Coordinates are clipped to ``[0, 1)``; a log-scale parameter is uniform in
        log space; an int lands on its step grid. Inactive parameters ignore
        their coordinate and are absent from the result.
        """
        if len(u) != len(self.params):
            raise InvalidArgumentError(
                f"from_unit: expected {len(self.params)} coordinates (one per parameter); "
                f"got {len(u)}"
            )
        config: dict[str, Any] = {}
        for p, x in zip(self.params, u, strict=True):
            if self.active(p.name, config):
                config[p.name] = p.from_unit(min(max(float(x), 0.0), _BELOW_ONE))
        return config

    def sample(self, rng: np.random.Generator) -> dict[str, Any]:
        """A uniform random config (log-uniform on log scales); consumes exactly
        ``len(space)`` uniforms from ``rng``."""
        return self.from_unit([float(x) for x in rng.random(len(self.params))])

    def grid(self, float_points: int = 5) -> list[dict[str, Any]]:
        """Every config of a grid over the space, in a deterministic order.

        A categorical contributes all its choices. An int contributes all its
        values when it has at most ``2 * float_points`` of them, else
        ``float_points`` values evenly spaced (in log space when ``log``) and
        rounded to its step. A float contributes ``float_points`` values evenly
        spaced from ``low`` to ``high`` inclusive (in log space when ``log``; the
        midpoint when ``float_points`` is 1). A conditional parameter is only
        multiplied into configs where it is active.
        """
        if not _is_int(float_points) or float_points < 1:
            raise InvalidArgumentError(
                f"grid: float_points must be a positive integer; got {_describe(float_points)}"
            )
        configs: list[dict[str, Any]] = [{}]
        for p in self.params:
            values = _grid_values(p, float_points)
            grown: list[dict[str, Any]] = []
            for c in configs:
                if self.active(p.name, c):
                    grown.extend({**c, p.name: v} for v in values)
                else:
                    grown.append(c)
            configs = grown
        return configs

    def validate(self, config: Mapping[str, Any]) -> dict[str, Any]:
        """The config restricted to its active parameters, values normalised
        (an int-valued float becomes an int for an Int, numpy scalars Python ones).

        Raises:
            InvalidArgumentError: an unknown parameter name, an active parameter
                missing, or a value the parameter cannot take.
        """
        if not isinstance(config, Mapping):
            raise InvalidArgumentError(f"a config must be a mapping; got {_describe(config)}")
        unknown = [k for k in config if k not in self._by_name]
        if unknown:
            raise InvalidArgumentError(
                f"unknown parameter {unknown[0]!r}; the space has {', '.join(self.names)}"
            )
        out: dict[str, Any] = {}
        for p in self.params:
            if not self.active(p.name, out):
                continue
            if p.name not in config:
                raise InvalidArgumentError(
                    f"parameter {p.name!r} is missing; expected {p.expected()}"
                )
            value = p.coerce(config[p.name])
            if value is _MISSING:
                raise InvalidArgumentError(
                    f"parameter {p.name!r}: expected {p.expected()}; "
                    f"got {_describe(config[p.name])}"
                )
            out[p.name] = value
        return out

    def key(self, config: Mapping[str, Any]) -> str:
        """The identity of a config: canonical JSON of its active parameters, floats
        rounded to 12 significant digits. Equal keys mean the same trial."""
        canon = {
            k: _round(v) if isinstance(v, float) else v for k, v in self.validate(config).items()
        }
        return json.dumps(canon, sort_keys=True, separators=(",", ":"))


def _grid_values(p: Param, points: int) -> list[Any]:
    if isinstance(p, Categorical):
        return list(p.choices)
    if isinstance(p, Int) and p.n_values <= 2 * points:
        return [p.low + i * p.step for i in range(p.n_values)]
    high = p.top if isinstance(p, Int) else p.high
    raw = [_between(p.low, high, f, log=p.log) for f in _fractions(points)]
    if isinstance(p, Float):
        return [min(p.high, max(p.low, x)) for x in raw]
    values = [p.low + round((x - p.low) / p.step) * p.step for x in raw]
    return sorted({min(p.top, max(p.low, v)) for v in values})


def _between(low: float, high: float, f: float, *, log: bool) -> float:
    """The point a fraction ``f`` of the way from low to high, exact at the ends."""
    if f <= 0.0 or f >= 1.0:
        return low if f <= 0.0 else high
    if log:
        return math.exp(math.log(low) + f * (math.log(high) - math.log(low)))
    return low + f * (high - low)


def _fractions(points: int) -> list[float]:
    if points == 1:
        return [0.5]
    return [i / (points - 1) for i in range(points)]
