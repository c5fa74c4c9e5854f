"""``shipyard runs list | show``."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import click
from rich.console import Group, RenderableType
from rich.text import Text

from shipyard.cli._common import get_client, missing_store, no_runs_hint, resolve_run, search_all
from shipyard.cli._details import code_section, diff_text, environment_section, info_section
from shipyard.cli._render import (
    artifact_json,
    artifacts_table,
    console,
    fmt_duration,
    fmt_float,
    fmt_param,
    fmt_time,
    hint,
    print_json,
    run_duration,
    run_json,
    status_text,
    table,
)
from shipyard.errors import NotFoundError
from shipyard.tracking import TrackingClient
from shipyard.types import DatasetVersion, Run

__all__ = ["list_runs", "show_run"]

#: Widest a param or tag cell gets in the automatic columns (longer ones end in ...).
AUTO_CELL_WIDTH = 24
_AGG_COLUMN = re.compile(r"(min|max|last|count)\((metrics?)\.(.+)\)")
_ATTR_COLUMNS = ("user", "end", "experiment", "experiment_id", "parent", "lifecycle")


@dataclass(frozen=True, slots=True)
class Column:
    header: str
    cell: Callable[[Run], str | Text]
    justify: str = "left"
    max_width: int | None = None
    #: Never shortened to fit the terminal (ids must stay whole to be copied).
    fixed: bool = False


def metric_column(key: str, agg: str = "last") -> Column:
    def cell(run: Run) -> str:
        s = run.summaries.get(key)
        if s is None:
            return ""
        return str(s.count) if agg == "count" else fmt_float(getattr(s, agg))

    label = "metrics" if agg == "last" else f"{agg}(metrics)"
    return Column(f"{label}\n{key}", cell, "right")


def param_column(key: str, max_width: int | None = None) -> Column:
    def cell(run: Run) -> str:
        return fmt_param(run.params[key]) if key in run.params else ""

    return Column(f"params\n{key}", cell, max_width=max_width)


def tag_column(key: str) -> Column:
    return Column(f"tags\n{key}", lambda run: Text(run.tags.get(key, "")))


def experiment_column(names: dict[str, str]) -> Column:
    return Column("experiment", lambda r: Text(names.get(r.experiment_id, r.experiment_id)))


def base_columns(experiments: dict[str, str] | None) -> list[Column]:
    columns = [
        Column("id", lambda r: Text(r.id), fixed=True),
        Column("name", lambda r: Text(r.name, style="bold")),
    ]
    if experiments is not None:
        columns.append(experiment_column(experiments))
    columns += [
        Column("status", lambda r: status_text(r.status), fixed=True),
        Column("start", lambda r: fmt_time(r.start_time, short=True), fixed=True),
        Column("duration", lambda r: fmt_duration(run_duration(r)), "right", fixed=True),
    ]
    return columns


def parse_columns(specs: Sequence[str], experiments: dict[str, str]) -> list[Column]:
    """Columns named by ``--columns``: metrics.KEY, min(metrics.KEY), params.KEY, tags.KEY..."""
    columns: list[Column] = []
    for spec in (s.strip() for item in specs for s in item.split(",")):
        if not spec:
            continue
        kind, _, key = spec.partition(".")
        agg = _AGG_COLUMN.fullmatch(spec)
        if agg is not None:
            columns.append(metric_column(agg.group(3), agg.group(1)))
        elif kind in ("metrics", "metric") and key:
            columns.append(metric_column(key))
        elif kind in ("params", "param") and key:
            columns.append(param_column(key))
        elif kind in ("tags", "tag") and key:
            columns.append(tag_column(key))
        elif spec == "user":
            columns.append(Column("user", lambda r: Text(r.user)))
        elif spec == "end":
            columns.append(Column("end", lambda r: fmt_time(r.end_time, short=True)))
        elif spec == "experiment":
            columns.append(experiment_column(experiments))
        elif spec == "experiment_id":
            columns.append(Column("experiment_id", lambda r: r.experiment_id))
        elif spec == "parent":
            columns.append(Column("parent", lambda r: r.parent_run_id or ""))
        elif spec == "lifecycle":
            columns.append(Column("lifecycle", lambda r: r.lifecycle.value))
        else:
            raise click.BadParameter(
                f"unknown column {spec!r}: expected metrics.KEY, min|max|count(metrics.KEY), "
                f"params.KEY, tags.KEY or one of {', '.join(_ATTR_COLUMNS)}",
                param_hint="'--columns'",
            )
    return columns


def _width(column: Column, runs: Sequence[Run]) -> int:
    cells = [column.cell(r) for r in runs]
    widest = max((len(c.plain if isinstance(c, Text) else c) for c in cells), default=0)
    if column.max_width is not None:
        widest = min(widest, column.max_width)
    # a column takes its cells' width plus 3: padding either side and the separator
    return max(widest, *(len(line) for line in column.header.splitlines())) + 3


def auto_columns(runs: Sequence[Run], room: int) -> list[Column]:
    """The most common metrics (``system/*`` last), then params, while they fit in ``room``."""
    metric_counts = Counter(k for r in runs for k in r.summaries)
    param_counts = Counter(k for r in runs for k in r.params)
    metric_keys = sorted(
        metric_counts, key=lambda k: (k.startswith("system/"), -metric_counts[k], k)
    )
    param_keys = sorted(param_counts, key=lambda k: (-param_counts[k], k))
    candidates = [metric_column(k) for k in metric_keys]
    candidates += [param_column(k, AUTO_CELL_WIDTH) for k in param_keys]
    chosen: list[Column] = []
    for column in candidates:
        width = _width(column, runs)
        if width > room:
            break
        chosen.append(column)
        room -= width
    return chosen


@click.command("list")
@click.option(
    "--experiment", "-e", "experiments", multiple=True, metavar="NAME",
    help="Only runs of this experiment (name or id); repeat for several.",
)  # fmt: skip
@click.option(
    "--filter", "-f", "filter_", metavar="EXPR",
    help="e.g. \"metrics.val_rmse < 3 and params.alpha >= 0.05\".",
)  # fmt: skip
@click.option(
    "--order-by", "-o", multiple=True, metavar="KEY",
    help="e.g. metrics.val_rmse or \"start_time DESC\" (the default); repeatable.",
)  # fmt: skip
@click.option(
    "--max", "-n", "limit", type=click.IntRange(min=1), default=50, show_default=True,
    help="Show at most this many runs.",
)  # fmt: skip
@click.option(
    "--columns", "-c", multiple=True, metavar="COLS",
    help="Comma-separated extra columns instead of the automatic ones: metrics.KEY, "
    "min(metrics.KEY), params.KEY, tags.KEY, user, end, experiment, parent.",
)  # fmt: skip
@click.option("--all", "-a", "include_deleted", is_flag=True, help="Include deleted runs.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts (every field).")
def list_runs(
    experiments: tuple[str, ...],
    filter_: str | None,
    order_by: tuple[str, ...],
    limit: int,
    columns: tuple[str, ...],
    include_deleted: bool,
    as_json: bool,
) -> None:
    """List runs, newest first.

    The id, name, status, start time and duration of each run, then the most
    common metrics (last values) and params as far as the terminal is wide;
    --columns picks those columns instead.
    """
    client = get_client()
    if missing_store(client) is not None:
        if as_json:
            print_json([])
        hint(no_runs_hint())
        return
    names = {e.id: e.name for e in client.list_experiments(include_deleted=True)}
    chosen = parse_columns(columns, names)
    found, more = search_all(
        client, experiments, filter_, order_by, limit, include_deleted=include_deleted
    )
    if as_json:
        print_json([run_json(r, names.get(r.experiment_id)) for r in found])
    elif found:
        several = len({r.experiment_id for r in found}) > 1
        render_runs(found, chosen if columns else None, names if several else None)
    if not found:
        if filter_ or experiments:
            hint("no runs match")
        else:
            hint(no_runs_hint())
    elif more:
        hint(f"showing the first {len(found)} runs; more match (raise --max to see them)")


def render_runs(
    runs: Sequence[Run], extra: list[Column] | None, experiments: dict[str, str] | None
) -> None:
    out = console()
    columns = base_columns(experiments)
    if experiments is not None and sum(_width(c, runs) for c in columns) - 3 > out.width:
        columns = base_columns(None)  # a narrow terminal: the id and status matter more
    if extra is None:
        room = out.width + 3 - sum(_width(c, runs) for c in columns)
        extra = auto_columns(runs, room)
    else:  # columns the user asked for are never dropped: lines get longer instead
        out.width = max(out.width, sum(_width(c, runs) for c in columns + extra) - 3)
    t = table()
    for c in columns + extra:
        t.add_column(
            c.header,
            justify="right" if c.justify == "right" else "left",
            no_wrap=True,
            min_width=_width(c, runs) - 3 if c.fixed else None,
            max_width=c.max_width,
            overflow="ellipsis",
        )
    for run in runs:
        t.add_row(*(c.cell(run) for c in columns + extra))
    out.print(t)


# -- show ------------------------------------------------------------------------------


@click.command("show")
@click.argument("run")
@click.option(
    "--diff", "diff_only", is_flag=True,
    help="Print only the uncommitted diff recorded with the run (for git apply).",
)  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts (every field).")
def show_run(run: str, diff_only: bool, as_json: bool) -> None:
    """Show everything recorded about a run.

    RUN is a run id, a unique id prefix or suffix of at least 6 hex digits, or a
    unique run name. Prints the run's info, params, metric summaries, tags,
    code version, environment and artifacts.
    """
    client = get_client()
    found = resolve_run(client, run)
    if diff_only:
        text = diff_text(client, found)
        if text is None:
            hint(f"run {found.id} recorded no uncommitted changes")
        else:
            click.echo(text, nl=not text.endswith("\n"))
        return
    experiment = _experiment_name(client, found)
    artifacts = client.list_artifacts(found.id)
    inputs = _data_inputs(client, found)
    if as_json:
        data = run_json(found, experiment, full=True)
        data["artifacts"] = [artifact_json(a) for a in artifacts]
        data["inputs"] = [
            {"dataset": name, "version": v.version, "role": role, "digest": v.digest, "id": v.id}
            for name, v, role in inputs
        ]
        print_json(data)
        return
    parts: list[RenderableType] = [info_section(found, experiment)]
    if found.params:
        t = table("param", "value", title="Params")
        for key, value in sorted(found.params.items()):
            t.add_row(Text(key), Text(fmt_param(value)))
        parts.append(t)
    if found.summaries:
        t = table("metric", "last", "step", "min", "max", "count", title="Metrics")
        for column in t.columns[1:]:
            column.justify = "right"
        for key, s in sorted(found.summaries.items()):
            values = (fmt_float(v, 10) for v in (s.last, s.last_step, s.min, s.max, s.count))
            t.add_row(Text(key), *values)
        parts.append(t)
    if found.tags:
        t = table("tag", "value", title="Tags")
        for key, tag in sorted(found.tags.items()):
            t.add_row(Text(key), Text(tag))
        parts.append(t)
    parts.append(code_section(found))
    parts.append(environment_section(found))
    if artifacts:
        parts.append(artifacts_table(artifacts, title="Artifacts"))
    else:
        parts.append(Text("Artifacts: none", style="dim"))
    if inputs:
        t = table("dataset", "role", "digest", title="Data inputs")
        for name, v, role in inputs:
            t.add_row(Text(f"{name}@{v.version}"), Text(role), Text(v.digest[:12], style="dim"))
        parts.append(t)
    console().print(Group(*_spaced(parts)))


def _spaced(parts: list[RenderableType]) -> list[RenderableType]:
    out: list[RenderableType] = []
    for p in parts:
        if out:
            out.append(Text(""))
        out.append(p)
    return out


def _data_inputs(client: TrackingClient, run: Run) -> list[tuple[str, DatasetVersion, str]]:
    """(dataset name, version, role) of each dataset version the run read."""
    store = client.store
    out = []
    for i in store.list_run_inputs(run.id):
        version = store.get_dataset_version_by_id(i.dataset_version_id)
        out.append((store.get_dataset(version.dataset_id).name, version, i.role))
    return out


def _experiment_name(client: TrackingClient, run: Run) -> str | None:
    try:
        return client.store.get_experiment(run.experiment_id).name
    except NotFoundError:
        return None
