"""The run-search filter and order grammar, and its reference semantics.

A filter is a boolean expression over a run's metrics, params, tags and
attributes::

    metrics.val_rmse < 3 and params.alpha >= 0.05
    min(metrics.loss) <= 0.1 or tags.team IN ('ranking', 'pricing')
    not params.optimizer LIKE 'ada%' and tags.note IS NULL and status = 'finished'

Fields: ``metrics.KEY`` (the last value; ``min(...)``, ``max(...)``,
``last(...)`` and ``count(...)`` pick another summary), ``params.KEY``,
``tags.KEY``, ``attributes.NAME`` or a bare attribute NAME (see
:data:`ATTRIBUTES`). A KEY is a bare name of letters, digits and ``_ - . / :``
or is quoted with backticks or double quotes (metrics.`val loss`).

Semantics, shared by :func:`shipyard.store._evaluate.evaluate` (the in-memory store) and the SQL
compiler (``_sql/_search.py``), which a differential test keeps in step:

* Three-valued logic as in SQL: a comparison on a missing metric, param or tag,
  on a NaN metric summary or with a ``nan`` literal is UNKNOWN (``None``);
  ``NOT`` UNKNOWN is UNKNOWN; a run matches only when the filter is true.
  ``IS [NOT] NULL`` tests whether the run has the field; it is never UNKNOWN.
* Params keep their JSON type. A number compares numerically with int and
  float params only; a string compares with the param's text form
  (:func:`param_text`); ``true``/``false`` match bool params (= and != only).
  A param of another type than the literal gives UNKNOWN, as if missing.
* ``LIKE`` patterns use ``%`` and ``_`` with ``\\`` as escape character and are
  case-sensitive; ``ILIKE`` folds ASCII letters only (what SQLite can do), so
  ``'É' ILIKE 'é'`` is false on every backend.
* Text compares by code point (``COLLATE "C"`` on PostgreSQL).
* Ordering (:func:`parse_order_by`): missing values (NaN metrics included) sort
  last in both directions; params sort numbers numerically before other
  values, which sort by text form; ties are broken by run id descending.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, TypeAlias

from shipyard.errors import InvalidArgumentError
from shipyard.types import RunStatus

__all__ = [
    "ATTRIBUTES",
    "MAX_FILTER_LENGTH",
    "And",
    "Compare",
    "Expr",
    "Field",
    "In",
    "IsNull",
    "Not",
    "Or",
    "OrderKey",
    "parse_filter",
    "parse_order_by",
]

FieldKind = Literal["metric", "param", "tag", "attr"]
Agg = Literal["last", "min", "max", "count"]
#: A literal: numbers are floats (``inf`` and ``nan`` included).
Value: TypeAlias = float | str | bool

MAX_FILTER_LENGTH = 10_000
#: Attribute name -> ``Run`` field; text attributes except the two times.
ATTRIBUTES = {
    "run_id": "id",
    "run_name": "name",
    "status": "status",
    "start_time": "start_time",
    "end_time": "end_time",
    "user": "user",
    "experiment_id": "experiment_id",
    "parent_run_id": "parent_run_id",
}
NUMERIC_ATTRIBUTES = frozenset({"start_time", "end_time"})
_ATTR_ALIASES = {"id": "run_id", "name": "run_name"}
_PREFIXES: dict[str, FieldKind] = {
    **dict.fromkeys(("metrics", "metric"), "metric"),
    **dict.fromkeys(("params", "param"), "param"),
    **dict.fromkeys(("tags", "tag"), "tag"),
    **dict.fromkeys(("attributes", "attribute", "attr", "run"), "attr"),
}
_AGGS: tuple[Agg, ...] = ("last", "min", "max", "count")
LIKE_OPS = frozenset({"LIKE", "NOT LIKE", "ILIKE", "NOT ILIKE"})
_KEYWORDS = frozenset({"and", "or", "not", "in", "like", "ilike", "is", "null", "true", "false"})
_SPECIAL_NUMBERS = {"inf": math.inf, "infinity": math.inf, "nan": math.nan}
_BARE_KEY = re.compile(r"[\w./:-]+")
_FIELD_HELP = (
    "metrics.KEY, min|max|last|count(metrics.KEY), params.KEY, tags.KEY, "
    "attributes.NAME or an attribute (" + ", ".join(ATTRIBUTES) + ")"
)


@dataclass(frozen=True, slots=True)
class Field:
    kind: FieldKind
    key: str
    agg: Agg = "last"


@dataclass(frozen=True, slots=True)
class Compare:
    field: Field
    op: str  # = != < <= > >= LIKE NOT LIKE ILIKE NOT ILIKE
    value: Value


@dataclass(frozen=True, slots=True)
class In:
    field: Field
    values: tuple[Value, ...]
    negated: bool = False


@dataclass(frozen=True, slots=True)
class IsNull:
    """``IS NULL`` (the run lacks the field), or ``IS NOT NULL`` when negated."""

    field: Field
    negated: bool = False


@dataclass(frozen=True, slots=True)
class And:
    items: tuple[Expr, ...]


@dataclass(frozen=True, slots=True)
class Or:
    items: tuple[Expr, ...]


@dataclass(frozen=True, slots=True)
class Not:
    item: Expr


Expr: TypeAlias = Compare | In | IsNull | And | Or | Not


@dataclass(frozen=True, slots=True)
class OrderKey:
    field: Field
    descending: bool = False


# -- tokenizer ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Tok:
    kind: Literal["num", "word", "op", "punct", "str", "qname", "end"]
    text: str
    pos: int
    end: int
    value: str | float = ""


_TOKEN_RE = re.compile(
    r"(?P<ws>\s+)"
    r"|(?P<num>[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?)(?![\w./:-])"
    r"|(?P<word>[\w./:-]+)"
    r"|(?P<op><=|>=|!=|<>|==|=|<|>)"
    r"|(?P<punct>[(),])"
)


def _tokenize(text: str, label: str) -> list[_Tok]:
    toks: list[_Tok] = []
    i = 0
    while i < len(text):
        c = text[i]
        if c in "'\"`":
            value, end = _read_quoted(text, i, label)
            toks.append(_Tok("qname" if c == "`" else "str", text[i:end], i, end, value))
            i = end
            continue
        m = _TOKEN_RE.match(text, i)
        if m is None:
            raise InvalidArgumentError(
                f"{label} at character {i + 1}: expected a field, operator or value, "
                f"got unexpected character {c!r}"
            )
        kind = m.lastgroup
        if kind == "num":
            toks.append(_Tok("num", m.group(), i, m.end(), float(m.group())))
        elif kind in ("word", "op", "punct"):
            toks.append(_Tok(kind, m.group(), i, m.end()))  # type: ignore[arg-type]
        i = m.end()
    toks.append(_Tok("end", "", len(text), len(text)))
    return toks


def _read_quoted(text: str, start: int, label: str) -> tuple[str, int]:
    """A quoted string or name: the quote doubled or after a backslash stands for itself,
    as does a doubled backslash; any other backslash is kept (LIKE escapes)."""
    q, out, i = text[start], [], start + 1
    while i < len(text):
        c = text[i]
        nxt = text[i + 1] if i + 1 < len(text) else ""
        if c == "\\" and nxt in (q, "\\"):
            out.append(nxt)
            i += 2
        elif c == q and nxt == q:
            out.append(q)
            i += 2
        elif c == q:
            return "".join(out), i + 1
        else:
            out.append(c)
            i += 1
    raise InvalidArgumentError(
        f"{label} at character {start + 1}: expected a closing {q} for the quoted text "
        "opened here, got end of input"
    )


def _describe(tok: _Tok) -> str:
    kinds = {"end": "end of input", "num": f"number {tok.text}", "str": f"string {tok.text}"}
    return kinds.get(tok.kind, repr(tok.text))


def field_name(f: Field) -> str:
    """How a field is written in a filter, for messages."""
    if f.kind == "attr":
        return f.key
    key = f.key if _BARE_KEY.fullmatch(f.key) else "`" + f.key.replace("`", "``") + "`"
    name = {"metric": "metrics.", "param": "params.", "tag": "tags."}[f.kind] + key
    return f"{f.agg}({name})" if f.kind == "metric" and f.agg != "last" else name


# -- parser -------------------------------------------------------------------------


class _Parser:
    def __init__(self, text: str, label: str) -> None:
        self.label = label
        self.toks = _tokenize(text, label)
        self.i = 0

    def peek(self, k: int = 0) -> _Tok:
        return self.toks[min(self.i + k, len(self.toks) - 1)]

    def take(self) -> _Tok:
        tok = self.peek()
        self.i = min(self.i + 1, len(self.toks) - 1)
        return tok

    def error(
        self, tok: _Tok, expected: str, *, after: bool = True, hint: str = ""
    ) -> InvalidArgumentError:
        idx = self.toks.index(tok)
        prev = f" after {self.toks[idx - 1].text!r}" if after and idx > 0 else ""
        return InvalidArgumentError(
            f"{self.label} at character {tok.pos + 1}: expected {expected}{prev}, "
            f"got {_describe(tok)}{hint}"
        )

    def is_word(self, tok: _Tok, *words: str) -> bool:
        return tok.kind == "word" and tok.text.lower() in words

    def expect_punct(self, p: str, expected: str, *, after: bool = True) -> None:
        if self.peek().text != p or self.peek().kind != "punct":
            raise self.error(self.peek(), expected, after=after)
        self.take()

    def or_expr(self) -> Expr:
        items = [self.and_expr()]
        while self.is_word(self.peek(), "or") and self.take():
            items.append(self.and_expr())
        return items[0] if len(items) == 1 else Or(tuple(items))

    def and_expr(self) -> Expr:
        items = [self.not_expr()]
        while self.is_word(self.peek(), "and") and self.take():
            items.append(self.not_expr())
        return items[0] if len(items) == 1 else And(tuple(items))

    def not_expr(self) -> Expr:
        if self.is_word(self.peek(), "not"):
            self.take()
            return Not(self.not_expr())
        tok = self.peek()
        if tok.kind == "punct" and tok.text == "(":
            self.take()
            expr = self.or_expr()
            close = f"')' to close the '(' at character {tok.pos + 1}"
            self.expect_punct(")", close, after=False)
            return expr
        return self.comparison()

    def field(self, *, aggregate: bool = True) -> Field:
        tok = self.peek()
        if tok.kind != "word" or tok.text.lower() in _KEYWORDS:
            raise self.error(tok, f"a field ({_FIELD_HELP})")
        self.take()
        low = tok.text.lower()
        if aggregate and low in _AGGS and self.peek().text == "(":
            self.take()
            inner = self.field(aggregate=False)
            if inner.kind != "metric":
                raise InvalidArgumentError(
                    f"{self.label} at character {tok.pos + 1}: {low}() applies to metrics: "
                    f"expected {low}(metrics.KEY), got {low}({field_name(inner)})"
                )
            self.expect_punct(")", f"')' to close {low}(")
            return Field("metric", inner.key, low)
        prefix, dot, key = tok.text.partition(".")
        if not dot:
            return self.attribute(tok, tok.text)
        kind = _PREFIXES.get(prefix.lower())
        if kind is None:
            raise InvalidArgumentError(
                f"{self.label} at character {tok.pos + 1}: unknown field {tok.text!r}; "
                f"expected {_FIELD_HELP}"
            )
        nxt = self.peek()
        if not key and nxt.kind in ("qname", "str") and nxt.pos == tok.end:
            self.take()
            key = str(nxt.value)
            if not key:
                raise InvalidArgumentError(
                    f"{self.label} at character {nxt.pos + 1}: expected a key inside the "
                    f"quotes after {tok.text!r}, got an empty name"
                )
        elif not key:
            raise self.error(
                nxt,
                f"a key right after {tok.text!r}",
                after=False,
                hint="; quote keys with spaces or other characters: metrics.`val loss`",
            )
        return self.attribute(tok, key) if kind == "attr" else Field(kind, key)

    def attribute(self, tok: _Tok, name: str) -> Field:
        canonical = _ATTR_ALIASES.get(name.lower(), name.lower())
        if canonical not in ATTRIBUTES:
            raise InvalidArgumentError(
                f"{self.label} at character {tok.pos + 1}: unknown field {tok.text!r}; "
                f"expected {_FIELD_HELP}"
            )
        return Field("attr", canonical)

    def comparison(self) -> Expr:
        field = self.field()
        tok = self.take()
        if tok.kind == "op":
            op = {"==": "=", "<>": "!="}.get(tok.text, tok.text)
            return Compare(field, op, self.check(field, op, self.value()))
        if self.is_word(tok, "like", "ilike"):
            op = tok.text.upper()
            return Compare(field, op, self.check(field, op, self.value()))
        if self.is_word(tok, "in"):
            return In(field, self.values(field), False)
        if self.is_word(tok, "not"):
            nxt = self.take()
            if self.is_word(nxt, "in"):
                return In(field, self.values(field), True)
            if self.is_word(nxt, "like", "ilike"):
                op = "NOT " + nxt.text.upper()
                return Compare(field, op, self.check(field, op, self.value()))
            raise self.error(nxt, "IN, LIKE or ILIKE")
        if self.is_word(tok, "is"):
            negated = self.is_word(self.peek(), "not")
            if negated:
                self.take()
            if not self.is_word(self.peek(), "null"):
                raise self.error(self.peek(), "NULL")
            self.take()
            return IsNull(field, negated)
        raise self.error(tok, "an operator (=, !=, <, <=, >, >=, LIKE, ILIKE, IN, IS NULL)")

    def value(self) -> tuple[Value, _Tok]:
        tok = self.peek()
        if tok.kind == "num":
            self.take()
            return float(tok.value), tok
        if tok.kind == "str":
            self.take()
            return str(tok.value), tok
        low = tok.text.lower() if tok.kind == "word" else ""
        if low in ("true", "false"):
            self.take()
            return low == "true", tok
        if low.removeprefix("-") in _SPECIAL_NUMBERS:
            self.take()
            sign = -1.0 if low.startswith("-") else 1.0
            return sign * _SPECIAL_NUMBERS[low.removeprefix("-")], tok
        if low == "null":
            raise InvalidArgumentError(
                f"{self.label} at character {tok.pos + 1}: expected a value, got null; "
                "test for a missing field with IS NULL or IS NOT NULL"
            )
        hint = f"; quote strings: '{tok.text}'" if tok.kind == "word" else ""
        raise self.error(tok, "a value (a number, a quoted string, true or false)", hint=hint)

    def values(self, field: Field) -> tuple[Value, ...]:
        start = self.peek()
        self.expect_punct("(", "'(' to open the list of values")
        out: list[Value] = []
        while True:
            out.append(self.check(field, "IN", self.value()))
            if self.peek().text != ",":
                break
            self.take()
        self.expect_punct(")", "',' or ')' to close the list of values")
        if len(kinds := sorted({_literal_type(v) for v in out})) > 1:
            raise InvalidArgumentError(
                f"{self.label} at character {start.pos + 1}: IN needs values of one type, "
                f"got a mix of {' and '.join(kinds)} values"
            )
        return tuple(out)

    def check(self, field: Field, op: str, lit: tuple[Value, _Tok]) -> Value:
        """The literal for ``field op literal``, or an error naming the mismatch."""
        value, tok = lit
        got, name = _literal_type(value), field_name(field)

        def fail(expected: str) -> InvalidArgumentError:
            return InvalidArgumentError(
                f"{self.label} at character {tok.pos + 1}: expected {expected} after "
                f"'{name} {op}', got {got} {tok.text}"
            )

        numeric = field.kind == "metric" or (
            field.kind == "attr" and field.key in NUMERIC_ATTRIBUTES
        )
        if op in LIKE_OPS:
            if numeric:
                raise InvalidArgumentError(
                    f"{self.label} at character {tok.pos + 1}: {op} matches text, but {name} "
                    "holds numbers; compare it with =, !=, <, <=, >, >= or IN"
                )
            if not isinstance(value, str):
                raise fail("a quoted string pattern")
            if re.search(r"(?<!\\)(?:\\\\)*\\$", value):
                raise fail("a pattern that does not end with a lone escape character '\\'")
            return value
        if numeric and got != "number":
            raise fail("a number")
        if field.kind in ("tag", "attr") and not numeric and got != "string":
            raise fail("a quoted string")
        if field.kind == "param" and got == "boolean" and op not in ("=", "!=", "IN"):
            raise fail("a number or a string (true and false go with = and != only)")
        if field.kind == "attr" and field.key == "status" and isinstance(value, str):
            if value.upper() not in RunStatus.__members__:
                raise fail("a run status (" + ", ".join(RunStatus.__members__) + ")")
            return value.upper()
        return value


def _literal_type(value: Value) -> str:
    if isinstance(value, bool):
        return "boolean"
    return "string" if isinstance(value, str) else "number"


def parse_filter(text: str | None) -> Expr | None:
    """Parse a run filter.

    Args:
        text: the filter, e.g. ``"metrics.loss < 0.1 and params.lr >= 1e-3"``; ``None``
            or blank means every run.

    Returns:
        The expression tree, or ``None`` for no filter.

    Raises:
        InvalidArgumentError: the text is not a valid filter (the message gives the
            character position, what was expected and what was found).
    """
    if text is not None and not isinstance(text, str):
        raise InvalidArgumentError(f"filter must be a string, got {type(text).__name__}")
    if text is None or not text.strip():
        return None
    if len(text) > MAX_FILTER_LENGTH:
        raise InvalidArgumentError(
            f"filter is too long: expected at most {MAX_FILTER_LENGTH} characters, got "
            f"{len(text)}; split the search or use IN lists"
        )
    parser = _Parser(text, "invalid filter")
    expr = parser.or_expr()
    tok = parser.peek()
    if tok.kind == "punct" and tok.text == ")":
        raise InvalidArgumentError(
            f"invalid filter at character {tok.pos + 1}: unbalanced ')': expected AND, OR "
            "or end of input, got ')' with no '(' to close"
        )
    if tok.kind != "end":
        raise parser.error(tok, "AND, OR or end of input")
    return expr


def parse_order_by(items: Sequence[str] | None) -> tuple[OrderKey, ...]:
    """Parse ``order_by`` items such as ``"metrics.rmse"`` or ``"start_time DESC"``.

    Args:
        items: fields, each optionally followed by ASC or DESC (default ASC).
            ``None`` or empty means ``["start_time DESC"]``.

    Returns:
        The order keys, first key first. Callers add the run id tiebreak.

    Raises:
        InvalidArgumentError: an item is not a field with an optional direction.
    """
    if isinstance(items, str) or (items is not None and not isinstance(items, Sequence)):
        raise InvalidArgumentError(
            f"order_by must be a list of strings such as ['metrics.loss DESC'], "
            f"got {type(items).__name__} {items!r}"
        )
    if not items:
        return (OrderKey(Field("attr", "start_time"), True),)
    keys = []
    for item in items:
        if not isinstance(item, str):
            raise InvalidArgumentError(
                f"order_by items must be strings, got {type(item).__name__} {item!r}"
            )
        parser = _Parser(item, f"invalid order_by item {item!r}")
        field = parser.field()
        descending = False
        if parser.is_word(parser.peek(), "asc", "desc"):
            descending = parser.take().text.lower() == "desc"
        if parser.peek().kind != "end":
            raise parser.error(parser.peek(), "ASC, DESC or end of input")
        keys.append(OrderKey(field, descending))
    return tuple(keys)
