"""Formatting helpers: numbers, times, sizes, JSON."""

from __future__ import annotations

import json
import math

import pytest

from shipyard.cli._render import fmt_duration, fmt_float, fmt_param, fmt_size, jsonable


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (math.nan, "nan"),
        (math.inf, "inf"),
        (-math.inf, "-inf"),
        (3.0, "3"),
        (0.1, "0.1"),
        (1 / 3, "0.333333"),
        (1e-7, "1e-07"),
        (1e20, "1e+20"),
    ],
)
def test_fmt_float(value: float, text: str) -> None:
    """Floats get six significant digits; non-finite ones read nan, inf, -inf."""
    assert fmt_float(value) == text


@pytest.mark.parametrize(
    ("value", "text"),
    [(None, "null"), (True, "true"), (False, "false"), (3, "3"), (0.1, "0.1"), ("adam", "adam"),
     (math.nan, "nan"), (1 / 3, "0.3333333333333333")],
)  # fmt: skip
def test_fmt_param(value: object, text: str) -> None:
    """Params print as logged, with JSON words for None and booleans."""
    assert fmt_param(value) == text  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(None, "-"), (0.42, "0.42s"), (12.34, "12.3s"), (63, "1m 03s"), (3600 + 300, "1h 05m"),
     (2 * 86400 + 4 * 3600, "2d 04h"), (-1, "0.00s")],
)  # fmt: skip
def test_fmt_duration(seconds: float | None, text: str) -> None:
    """Durations read like 1m 03s."""
    assert fmt_duration(seconds) == text


@pytest.mark.parametrize(
    ("size", "text"), [(0, "0 B"), (1023, "1023 B"), (1536, "1.5 KiB"), (3 * 2**30, "3.0 GiB")]
)
def test_fmt_size(size: int, text: str) -> None:
    """Sizes use binary units."""
    assert fmt_size(size) == text


def test_jsonable_makes_strict_json() -> None:
    """Non-finite floats become strings, nested anywhere, so the output is strict JSON."""
    data = jsonable({"a": [math.nan, 1.5, {"b": -math.inf}], "c": (math.inf,)})
    assert data == {"a": ["nan", 1.5, {"b": "-inf"}], "c": ["inf"]}
    json.dumps(data, allow_nan=False)
