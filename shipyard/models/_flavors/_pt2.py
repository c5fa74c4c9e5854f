"""Checks on a ``torch.export`` archive (``.pt2``) before ``torch.export.load`` reads it.

``torch.export.load`` is *not* safe on untrusted files, and its docstring says
so. Reading torch 2.13's loader (``torch/export/pt2_archive/_package.py`` and
``torch/_export/serde/serialize.py``) we found these ways an archive can run
code:

1. weights and constants flagged ``use_pickle`` (tensor subclasses) are read
   with ``torch.load(weights_only=False)``; ``custom_obj_*`` constants with
   ``torch._C._pickle_load_obj`` and ``opaque_obj_*`` ones with
   ``pickle.loads``; legacy ``.pt`` weight files and the pre-2.8 archive
   layout go through ``torch.load`` too;
2. the sample inputs are read with ``torch.load(weights_only=True)`` but on
   *any* failure retried with ``weights_only=False``;
3. symbolic shape expressions (``expr_str``) are parsed with
   ``sympy.sympify``, which ``eval``s the string;
4. graph nodes call their ``target``, resolved by name under ``torch``,
   ``operator`` and ``math`` -- ``torch.load`` or ``torch.hub.load`` would do;
5. ``guards_code`` holds Python source that the unlifted module ``exec``s
   (shape checks such as ``L['x'].size()[0] == L['y'].size()[0]``);
6. AOTInductor payloads are compiled shared libraries.

So the archive is checked first, and refused unless every one of these is
benign: no pickled payload (1), sample inputs that load with
``weights_only=True`` (then torch's own first try succeeds, so its fallback
never runs) (2), expressions made only of sympy/torch shape functions, symbol
names and numbers (3), targets only ATen/prims/higher-order ops, ``_operator``,
``math`` and ``torch.sym_*`` (4), guards made only of input size/stride
accessors, numbers, comparisons and the same shape functions (5), and no
AOTInductor, ExecuTorch
or MTIA payload (6). Programs torch.export writes for ordinary modules pass;
one with custom ops or tensor subclasses needs ``allow_pickle=True`` (the
blanket "I trust this package" opt-in) or the factory path.
"""

from __future__ import annotations

import io
import json
import re
import zipfile
from pathlib import Path
from typing import Any

__all__ = ["check_archive"]

_META_FILES = frozenset(
    {"archive_format", "archive_version", "byteorder", ".data/version", ".data/serialization_id"}
)
_DATA_DIRS = ("models/", "data/weights/", "data/constants/", "data/sample_inputs/", "extra/")
_TARGET_PREFIXES = (
    "torch.ops.aten.",
    "torch.ops.prims.",
    "torch.ops.higher_order.",
    "_operator.",
    "math.",
)
_SYM_TARGET = re.compile(r"torch\._?sym_[a-z_]+")
_SYMBOL = re.compile(r"[a-z]{1,3}[0-9]+")
_TOKEN = re.compile(
    r"\s*(?:(?P<name>[A-Za-z_][A-Za-z0-9_]*)|(?P<str>'[a-z]{1,3}[0-9]+')"
    r"|(?P<num>[0-9]+(?:\.[0-9]+)?(?:e[+-]?[0-9]+)?)|(?P<op>\*\*|//|==|!=|<=|>=|[-+*/%(),=<>]))"
)
_EXPR_NAMES = frozenset(
    {
        # sympy constructors, relations and logic
        "Symbol", "Integer", "Rational", "Float", "Add", "Mul", "Pow", "Max", "Min", "Abs",
        "Mod", "Eq", "Ne", "Lt", "Le", "Gt", "Ge", "And", "Or", "Not", "Piecewise",
        "floor", "ceiling", "sqrt", "oo", "zoo", "nan", "true", "false", "True", "False",
        # assumption keywords of Symbol(...)
        "positive", "negative", "nonnegative", "nonpositive", "integer", "real", "finite",
        "infinite", "zero", "nonzero", "even", "odd", "rational", "commutative",
        # torch.utils._sympy.functions (the names torch's deserializer provides)
        "BitwiseFn_bitwise_and", "BitwiseFn_bitwise_or", "BitwiseFn_bitwise_xor", "CeilDiv",
        "CeilToInt", "CleanDiv", "FloatPow", "FloatTrueDiv", "FloorDiv", "FloorToInt",
        "Identity", "IntTrueDiv", "IsNonOverlappingAndDenseIndicator", "LShift",
        "ModularIndexing", "OpaqueUnaryFn_acos", "OpaqueUnaryFn_asin", "OpaqueUnaryFn_asinh",
        "OpaqueUnaryFn_atan", "OpaqueUnaryFn_cos", "OpaqueUnaryFn_cosh", "OpaqueUnaryFn_exp",
        "OpaqueUnaryFn_log", "OpaqueUnaryFn_log2", "OpaqueUnaryFn_sin", "OpaqueUnaryFn_sinh",
        "OpaqueUnaryFn_sqrt", "OpaqueUnaryFn_tan", "OpaqueUnaryFn_tanh", "PowByNatural",
        "PythonMod", "RShift", "RoundDecimal", "RoundToInt", "ToFloat", "TruncToFloat",
        "TruncToInt", "Where",
    }
)  # fmt: skip


_GUARD_TOKEN = re.compile(
    r"\s*(?:(?P<acc>L(?:\[(?:'[A-Za-z_][A-Za-z0-9_]*'|[0-9]+)\])+)"
    r"|(?P<meth>\.(?:size|stride|storage_offset|dim)\(\))|(?P<idx>\[[0-9]+\])"
    r"|(?P<math>math\.(?:isnan|inf|floor|ceil|sqrt))|(?P<name>[A-Za-z_][A-Za-z0-9_]*)"
    r"|(?P<num>[0-9]+(?:\.[0-9]+)?(?:e[+-]?[0-9]+)?)|(?P<op>\*\*|//|==|!=|<=|>=|[-+*/%(),<>]))"
)
_GUARD_NAMES = _EXPR_NAMES | {"and", "or", "not", "inf"}


def check_guard(code: str) -> str | None:
    """Why a guard is not a plain check on input sizes (it is ``exec``'d), or None."""
    text = code.strip()
    pos = 0
    while pos < len(text):
        match = _GUARD_TOKEN.match(text, pos)
        if match is None or match.end() == pos:
            return f"unexpected text {text[pos : pos + 20]!r}"
        name = match.group("name")
        if name is not None and name not in _GUARD_NAMES:
            return f"the name {name!r}"
        pos = match.end()
    return None


def check_expression(expr: str) -> str | None:
    """Why a symbolic expression is not safe to ``sympify``, or None."""
    text = expr.strip()
    pos = 0
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None or match.end() == pos:
            return f"unexpected text {text[pos : pos + 20]!r}"
        name = match.group("name")
        if name is not None and name not in _EXPR_NAMES and not _SYMBOL.fullmatch(name):
            return f"the name {name!r}"
        pos = match.end()
    return None


def _check_program(doc: Any, problems: list[str]) -> None:
    if isinstance(doc, dict):
        for key, value in doc.items():
            if key == "expr_str" and isinstance(value, str):
                why = check_expression(value)
                if why is not None:
                    problems.append(f"a shape expression {value[:60]!r} contains {why}")
            elif key == "target" and isinstance(value, str) and "inputs" in doc:
                if not (value.startswith(_TARGET_PREFIXES) or _SYM_TARGET.fullmatch(value)):
                    problems.append(f"the graph calls {value!r}, which is not an ATen/prims op")
            elif key == "guards_code" and isinstance(value, list):
                for guard in value:
                    why = check_guard(guard) if isinstance(guard, str) else "not text"
                    if why is not None:
                        problems.append(f"its guard code {str(guard)[:60]!r} contains {why}")
            else:
                _check_program(value, problems)
    elif isinstance(doc, list):
        for item in doc:
            _check_program(item, problems)


def _check_payloads(config: Any, name: str, constants: bool, problems: list[str]) -> None:
    entries = config.get("config", {}) if isinstance(config, dict) else None
    if not isinstance(entries, dict):
        problems.append(f"{name} is not a payload config")
        return
    for fqn, meta in entries.items():
        if not isinstance(meta, dict) or meta.get("use_pickle") is not False:
            problems.append(f"{fqn!r} in {name} is stored with pickle")
        elif constants and not str(meta.get("path_name", "")).startswith("tensor_"):
            problems.append(f"constant {fqn!r} is a pickled object ({meta.get('path_name')})")


def check_archive(path: Path) -> list[str]:
    """What in the archive ``torch.export.load`` would unpickle or evaluate (empty:
    none of it)."""
    problems: list[str] = []
    try:
        archive = zipfile.ZipFile(path)
    except (OSError, zipfile.BadZipFile) as e:
        return [f"it is not a readable zip archive ({e})"]
    with archive:
        names = archive.namelist()
        roots = {n.split("/", 1)[0] for n in names}
        if len(roots) != 1 or any("/" not in n for n in names):
            return ["it does not have the layout torch.export.save writes (one root folder)"]
        root = roots.pop() + "/"
        for full in names:
            rel = full[len(root) :]
            if rel in _META_FILES or rel.endswith("/"):
                continue
            if not rel.startswith(_DATA_DIRS):
                problems.append(f"it holds {rel!r}, which is not part of a plain exported program")
            elif rel.startswith(("data/weights/", "data/constants/")) and rel.endswith(".pt"):
                problems.append(f"it holds {rel!r}, a pickled legacy payload")
            elif rel.startswith("data/sample_inputs/"):
                _check_sample_inputs(archive.read(full), rel, problems)
            elif rel.endswith(".json") and rel.startswith(("models/", "data/")):
                try:
                    doc = json.loads(archive.read(full))
                except ValueError:
                    problems.append(f"{rel!r} is not valid JSON")
                    continue
                if rel.startswith("models/"):
                    _check_program(doc, problems)
                else:
                    _check_payloads(doc, rel, rel.startswith("data/constants/"), problems)
    return problems


def _check_sample_inputs(data: bytes, name: str, problems: list[str]) -> None:
    if not data:
        return
    import torch

    try:
        torch.load(io.BytesIO(data), weights_only=True)
    except Exception as e:
        problems.append(f"{name} does not load with weights_only=True ({type(e).__name__})")
