"""Reference semantics of the search grammar in Python: what a filter means for
one run (:func:`evaluate`, three-valued like SQL) and how runs sort
(:func:`sort_runs`). The in-memory store uses them directly; the SQL compiler
in ``_sql/_search.py`` must agree (a differential test checks it).
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Sequence

from shipyard.store._filter import (
    ATTRIBUTES,
    LIKE_OPS,
    Compare,
    Expr,
    Field,
    In,
    IsNull,
    Not,
    Or,
    OrderKey,
    Value,
)
from shipyard.types import ParamValue, Run, is_number

__all__ = ["ascii_lower", "evaluate", "like_regex", "param_columns", "param_text", "sort_runs"]


def param_text(value: ParamValue) -> str:
    """A param's text form: what string literals and LIKE compare against."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    return repr(value) if isinstance(value, float) else str(value)


def param_columns(value: ParamValue) -> tuple[str, str, float | None]:
    """``(value_type, value_text, value_num)`` as the SQL store must write a param."""
    vtype = {bool: "bool", str: "str", int: "int", float: "float"}.get(type(value), "null")
    num = _to_float(value) if is_number(value) else None
    return vtype, param_text(value), None if num is None or math.isnan(num) else num


def _to_float(value: object) -> float:
    try:
        return float(value)  # type: ignore[arg-type]
    except OverflowError:  # an int beyond double range, as a database rounds it
        return math.copysign(math.inf, value)  # type: ignore[arg-type]


_MISSING = object()


def _raw(field: Field, run: Run) -> object:
    """The field's value, or ``_MISSING`` when the run lacks it."""
    if field.kind == "metric":
        summary = run.summaries.get(field.key)
        return _MISSING if summary is None else getattr(summary, field.agg)
    if field.kind == "param":
        return run.params.get(field.key, _MISSING)
    if field.kind == "tag":
        return run.tags.get(field.key, _MISSING)
    value = getattr(run, ATTRIBUTES[field.key])
    return _MISSING if value is None else str(value) if field.key == "status" else value


def _operand(field: Field, run: Run, literal: Value) -> float | str | None:
    """The run's side of a comparison with ``literal`` (``None`` is UNKNOWN)."""
    raw = _raw(field, run)
    if raw is _MISSING:
        return None
    if field.kind != "param":
        if isinstance(raw, int | float):
            num = float(raw)
            return None if math.isnan(num) else num
        return raw if isinstance(raw, str) else None
    value: ParamValue = raw  # type: ignore[assignment]
    if isinstance(literal, bool):
        return param_text(value) if isinstance(value, bool) else None
    if isinstance(literal, str):
        return param_text(value)
    if not is_number(value):
        return None
    num = _to_float(value)
    return None if math.isnan(num) else num


@functools.lru_cache(maxsize=256)
def like_regex(pattern: str, fold: bool) -> re.Pattern[str]:
    """LIKE ``pattern`` (``%``, ``_``, ``\\`` escape) as a regex for ``fullmatch``."""
    out, chars = [], iter(ascii_lower(pattern) if fold else pattern)
    for c in chars:
        if c == "\\":
            out.append(re.escape(next(chars, "")))
        else:
            out.append(".*" if c == "%" else "." if c == "_" else re.escape(c))
    return re.compile("".join(out), re.DOTALL)


def ascii_lower(text: str) -> str:
    """Lower-case ASCII letters only, as SQLite's LIKE does."""
    return text.translate(_ASCII_LOWER)


_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def _compare(left: float | str, op: str, right: Value) -> bool:
    if op in LIKE_OPS:
        fold = "ILIKE" in op
        hit = like_regex(str(right), fold).fullmatch(ascii_lower(str(left)) if fold else str(left))
        return (hit is not None) != op.startswith("NOT")
    if isinstance(right, bool):
        right = param_text(right)
    if op == "=":
        return left == right
    if op == "!=":
        return left != right
    return {"<": left < right, "<=": left <= right, ">": left > right, ">=": left >= right}[op]  # type: ignore[operator]


def evaluate(expr: Expr, run: Run) -> bool | None:
    """The filter's value on one run: True, False or None (UNKNOWN, which does not match)."""
    if isinstance(expr, Compare):
        left = _operand(expr.field, run, expr.value)
        if left is None or (isinstance(expr.value, float) and math.isnan(expr.value)):
            return None
        return _compare(left, expr.op, expr.value)
    if isinstance(expr, In):
        hits = [evaluate(Compare(expr.field, "=", v), run) for v in expr.values]
        found = True if True in hits else None if None in hits else False
        return None if found is None else found != expr.negated
    if isinstance(expr, IsNull):
        return (_raw(expr.field, run) is _MISSING) != expr.negated
    if isinstance(expr, Not):
        inner = evaluate(expr.item, run)
        return None if inner is None else not inner
    results = [evaluate(item, run) for item in expr.items]
    decisive = isinstance(expr, Or)  # True decides an OR, False an AND
    if decisive in results:
        return decisive
    return None if None in results else not decisive


def _sort_value(field: Field, run: Run) -> tuple[int, float, str] | float | str | None:
    raw = _raw(field, run)
    if raw is _MISSING:
        return None
    if field.kind == "param":
        value: ParamValue = raw  # type: ignore[assignment]
        num = _to_float(value) if is_number(value) else math.nan
        return (1, 0.0, param_text(value)) if math.isnan(num) else (0, num, param_text(value))
    if isinstance(raw, int | float):
        return None if math.isnan(raw) else float(raw)
    return raw  # type: ignore[return-value]


def sort_runs(runs: Sequence[Run], order: Sequence[OrderKey]) -> list[Run]:
    """Runs in ``order``: missing values last either way, ties by run id descending."""
    out = sorted(runs, key=lambda r: r.id, reverse=True)
    for key in reversed(order):  # stable sorts, least significant key first
        values = {id(r): _sort_value(key.field, r) for r in out}
        present = [r for r in out if values[id(r)] is not None]
        present.sort(key=lambda r: values[id(r)], reverse=key.descending)  # type: ignore[arg-type,return-value]
        out = present + [r for r in out if values[id(r)] is None]
    return out
