"""Formatting for people (rich tables) and for scripts (JSON).

Numbers: NaN and infinities print as ``nan``, ``inf`` and ``-inf`` in tables;
in JSON, where they are not valid, they become the strings ``"nan"``,
``"inf"`` and ``"-inf"``. Times print in local time, durations as ``1m 03s``.
"""

from __future__ import annotations

import json
import math
import sys
import time
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

import click
from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from shipyard.types import Artifact, Experiment, MetricSummary, ParamValue, Run, RunStatus

__all__ = [
    "STATUS_STYLES",
    "artifact_json",
    "artifacts_table",
    "console",
    "experiment_json",
    "fmt_duration",
    "fmt_float",
    "fmt_param",
    "fmt_size",
    "fmt_time",
    "hint",
    "jsonable",
    "print_json",
    "run_duration",
    "run_json",
    "status_text",
    "summary_json",
    "table",
]

STATUS_STYLES = {
    RunStatus.SCHEDULED: "dim",
    RunStatus.RUNNING: "cyan",
    RunStatus.FINISHED: "green",
    RunStatus.FAILED: "red",
    RunStatus.KILLED: "yellow",
}


def console() -> Console:
    """Standard output, with no automatic highlighting of numbers and paths."""
    return Console(highlight=False, soft_wrap=False)


def hint(message: str) -> None:
    """A note for people on stderr, so it never mixes into piped output."""
    click.echo(message, err=True)


def table(*columns: str, title: str | None = None, **kwargs: Any) -> Table:
    """A table with a rule under the header and no other lines (easy to copy from)."""
    t = Table(
        title=title,
        title_justify="left",
        title_style="bold italic",
        header_style="bold",
        box=box.SIMPLE_HEAD,
        show_edge=False,
        pad_edge=False,
        **kwargs,
    )
    for c in columns:
        t.add_column(c)
    return t


# -- values ----------------------------------------------------------------------------


def fmt_float(value: float, digits: int = 6) -> str:
    """``digits`` significant digits; ``nan``, ``inf``, ``-inf`` for the others."""
    if math.isnan(value):
        return "nan"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return f"{value:.{digits}g}"


def fmt_param(value: ParamValue) -> str:
    """A param as logged: strings bare, numbers in full, JSON words for the rest."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else fmt_float(value)
    return str(value)


def fmt_time(ts: float | None, *, short: bool = False, relative: bool = False) -> str:
    """Local time ``2024-05-01 12:03:04``; ``short``: ``05-01 12:03`` this year, else
    ``2023-05-01``; with ``relative``, ``(5m 12s ago)`` appended."""
    if ts is None:
        return "-"
    when = datetime.fromtimestamp(ts)
    if short:
        return when.strftime("%m-%d %H:%M" if when.year == datetime.now().year else "%Y-%m-%d")
    text = when.strftime("%Y-%m-%d %H:%M:%S")
    if relative:
        ago = time.time() - ts
        text += " (just now)" if ago < 1 else f" ({fmt_duration(ago, coarse=True)} ago)"
    return text


def fmt_duration(seconds: float | None, *, coarse: bool = False) -> str:
    """``0.42s``, ``12.3s``, ``1m 03s``, ``2h 05m``, ``3d 04h`` (``coarse``: whole seconds)."""
    if seconds is None or not math.isfinite(seconds):
        return "-"
    seconds = max(seconds, 0.0)
    if seconds < 60:
        if coarse:
            return f"{int(seconds)}s"
        return f"{seconds:.2f}s" if seconds < 1 else f"{seconds:.1f}s"
    whole = int(seconds)
    minutes, secs = divmod(whole, 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    if days:
        return f"{days}d {hours:02d}h"
    if hours:
        return f"{hours}h {minutes:02d}m"
    return f"{minutes}m {secs:02d}s"


def fmt_size(size: int | None) -> str:
    """``512 B``, ``1.5 KiB``, ``3.2 MiB``..."""
    if size is None:
        return "-"
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{size} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def run_duration(run: Run) -> float | None:
    """How long a run took, or has been running for."""
    if run.end_time is not None:
        return run.end_time - run.start_time
    if run.status is RunStatus.RUNNING:
        return time.time() - run.start_time
    return None


def status_text(status: RunStatus) -> Text:
    return Text(status.value, style=STATUS_STYLES.get(status, ""))


# -- JSON ------------------------------------------------------------------------------


def jsonable(value: Any) -> Any:
    """Plain JSON data: non-finite floats become ``"nan"``/``"inf"``/``"-inf"``."""
    if isinstance(value, float):
        return value if math.isfinite(value) else fmt_float(value)
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    return value


def print_json(data: Any) -> None:
    """Strict JSON on stdout (no NaN literals), indented, ending in a newline."""
    sys.stdout.write(json.dumps(jsonable(data), indent=2, allow_nan=False) + "\n")


def summary_json(s: MetricSummary) -> dict[str, Any]:
    return {
        "last": s.last,
        "last_step": s.last_step,
        "last_time": s.last_time,
        "min": s.min,
        "max": s.max,
        "count": s.count,
    }


def run_json(run: Run, experiment: str | None = None, *, full: bool = False) -> dict[str, Any]:
    """A run for scripts; ``full`` adds the code version and environment."""
    out: dict[str, Any] = {
        "id": run.id,
        "name": run.name,
        "experiment_id": run.experiment_id,
    }
    if experiment is not None:
        out["experiment"] = experiment
    out.update(
        status=run.status.value,
        lifecycle=run.lifecycle.value,
        user=run.user,
        start_time=run.start_time,
        end_time=run.end_time,
        duration=run.duration,
        parent_run_id=run.parent_run_id,
        params=dict(run.params),
        metrics={k: summary_json(s) for k, s in sorted(run.summaries.items())},
        tags=dict(run.tags),
    )
    if full:
        out["code"] = dict(run.code)
        out["environment"] = dict(run.environment)
    return out


def experiment_json(e: Experiment) -> dict[str, Any]:
    return {
        "id": e.id,
        "name": e.name,
        "description": e.description,
        "tags": dict(e.tags),
        "lifecycle": e.lifecycle.value,
        "created_at": e.created_at,
    }


def artifact_json(a: Artifact) -> dict[str, Any]:
    return {"path": a.path, "kind": a.kind, "size": a.size, "digest": a.digest}


def artifacts_table(artifacts: Iterable[Artifact], title: str | None = None) -> Table:
    t = table("path", "kind", "size", "digest", title=title)
    t.columns[2].justify = "right"
    for a in artifacts:
        t.add_row(Text(a.path), a.kind, fmt_size(a.size), Text(a.digest[:12], style="dim"))
    return t
