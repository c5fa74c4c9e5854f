"""``shipyard runs compare | history``."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

import click
from rich.text import Text

from shipyard.cli._common import get_client, resolve_run
from shipyard.cli._render import (
    console,
    fmt_duration,
    fmt_float,
    fmt_param,
    fmt_time,
    hint,
    print_json,
    run_duration,
    table,
)
from shipyard.errors import NotFoundError
from shipyard.types import Run, same_param

__all__ = ["compare_runs", "metric_history"]

#: Points a history table shows when --max-points is not given (CSV and JSON get all).
TABLE_POINTS = 1000
_DIFF_STYLE = "bold yellow"


_MISSING: Any = object()


def _same(values: Sequence[Any]) -> bool:
    """Whether every value is the same: NaN equals NaN, 1 differs from True,
    and a missing value only equals another missing one."""
    first = values[0]
    for v in values[1:]:
        if (first is _MISSING) or (v is _MISSING):
            if first is not v:
                return False
        elif not same_param(first, v):
            return False
    return True


def _rows(
    runs: Sequence[Run], summary: str, experiments: dict[str, str]
) -> list[tuple[str, list[Any], list[str], bool]]:
    """``(field, values, shown values, differs)`` for the attributes, params and metrics;
    a missing value is ``_MISSING``."""
    rows: list[tuple[str, list[Any], list[str], bool]] = [
        (
            "experiment",
            [r.experiment_id for r in runs],
            [experiments.get(r.experiment_id, r.experiment_id) for r in runs],
            False,
        ),
        ("status", [r.status.value for r in runs], [r.status.value for r in runs], False),
        (
            "start",
            [r.start_time for r in runs],
            [fmt_time(r.start_time, short=True) for r in runs],
            False,
        ),
        (
            "duration",
            [run_duration(r) for r in runs],
            [fmt_duration(run_duration(r)) for r in runs],
            False,
        ),
    ]
    for key in sorted({k for r in runs for k in r.params}):
        values: list[Any] = [r.params.get(key, _MISSING) for r in runs]
        shown = ["" if v is _MISSING else fmt_param(v) for v in values]
        rows.append((f"params.{key}", values, shown, False))
    for key in sorted({k for r in runs for k in r.summaries}):
        values = []
        for r in runs:
            s = r.summaries.get(key)
            values.append(_MISSING if s is None else float(getattr(s, summary)))
        shown = ["" if v is _MISSING else fmt_float(v, 8) for v in values]
        rows.append((f"metrics.{key}", values, shown, False))
    # start and duration always differ, which is not what a comparison is about
    return [
        (f, v, shown, f not in ("start", "duration") and not _same(v)) for f, v, shown, _ in rows
    ]


@click.command("compare")
@click.argument("runs", nargs=-1, required=True)
@click.option(
    "--summary", "-s", type=click.Choice(["last", "min", "max"]), default="last",
    show_default=True, help="Which value of each metric to compare.",
)  # fmt: skip
@click.option("--only-diff", "-d", is_flag=True, help="Show only the rows that differ.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
def compare_runs(runs: tuple[str, ...], summary: str, only_diff: bool, as_json: bool) -> None:
    """Compare runs side by side.

    Params and metrics of two or more runs (each RUN an id, a unique id prefix or
    suffix, or a unique name); rows whose values differ are marked with * and
    highlighted.
    """
    if len(runs) < 2:
        raise click.UsageError("expected at least two runs to compare")
    client = get_client()
    found = [resolve_run(client, ref) for ref in runs]
    names = {e.id: e.name for e in client.list_experiments(include_deleted=True)}
    rows = _rows(found, summary, names)
    if only_diff:
        rows = [row for row in rows if row[3]]
    if as_json:
        print_json(
            {
                "runs": [{"id": r.id, "name": r.name} for r in found],
                "summary": summary,
                "rows": [
                    {
                        "field": f,
                        "values": [None if v is _MISSING else v for v in values],
                        "differs": differs,
                    }
                    for f, values, _, differs in rows
                ],
            }
        )
        return
    headers = [f"{r.name}\n…{r.id[-8:]}" for r in found]
    t = table("field", *headers, caption="* values differ", caption_justify="left")
    for f, _, shown, differs in rows:
        style = _DIFF_STYLE if differs else ""
        label = Text(f"* {f}" if differs else f"  {f}", style=style)
        t.add_row(label, *(Text(v, style=style) for v in shown))
    console().print(t)
    if only_diff and not rows:
        hint("the runs do not differ in params or metrics")


@click.command("history")
@click.argument("run")
@click.argument("key")
@click.option(
    "--max-points", "-n", type=click.IntRange(min=1), default=None,
    help="Downsample to about this many points, keeping each bucket's min and max "
    f"[default: all; a table shows at most {TABLE_POINTS}].",
)  # fmt: skip
@click.option("--csv", "as_csv", is_flag=True, help="Print step,value,timestamp CSV.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
def metric_history(run: str, key: str, max_points: int | None, as_csv: bool, as_json: bool) -> None:
    """Print a metric's history.

    Its steps, values and times, as a table, CSV or JSON.

    RUN is a run id, a unique id prefix or suffix, or a unique name; KEY a metric key.
    """
    if as_csv and as_json:
        raise click.UsageError("choose one of --csv and --json")
    client = get_client()
    found = resolve_run(client, run)
    summary = found.summaries.get(key)
    if summary is None and found.summaries:
        known = ", ".join(sorted(found.summaries))
        raise NotFoundError(f"run {found.id} has no metric {key!r}; its metrics are: {known}")
    table_out = not (as_csv or as_json)
    if max_points is None and table_out and summary is not None and summary.count > TABLE_POINTS:
        max_points = TABLE_POINTS
    series = client.get_metric_history(found.id, key, max_points=max_points)
    points = series.points()
    if series.downsampled:
        hint(
            f"showing {len(series)} of {series.total} points, downsampled keeping each "
            "bucket's min and max (see --max-points)"
        )
    if as_csv:
        out = sys.stdout
        out.write("step,value,timestamp\n")
        for step, value, ts in points:
            out.write(f"{step},{value!r},{ts!r}\n")
    elif as_json:
        print_json(
            {
                "run_id": found.id,
                "key": key,
                "total": series.total,
                "downsampled": series.downsampled,
                "points": [{"step": s, "value": v, "timestamp": ts} for s, v, ts in points],
            }
        )
    else:
        t = table("step", "value", "time", title=f"{key} of run {found.name}")
        t.columns[0].justify = t.columns[1].justify = "right"
        for step, value, ts in points:
            t.add_row(str(step), fmt_float(value, 10), fmt_time(ts))
        console().print(t)
