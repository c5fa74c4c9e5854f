"""``shipyard reproduce RUN_OR_MODEL``: re-run a recorded training and check its metrics."""

from __future__ import annotations

import click
from rich.text import Text

from shipyard.cli._common import get_client, resolve_run
from shipyard.cli._render import console, fmt_float, hint, table
from shipyard.errors import NotFoundError
from shipyard.tracking import TrackingClient
from shipyard.train._reproduce import MetricComparison, ReproduceReport, reproduce

__all__ = ["reproduce_command"]


def _source(client: TrackingClient, ref: str) -> str:
    """A run id for a RUN argument (id part, name), else the model reference as given."""
    if ref.startswith(("models:/", "runs:/")):
        return ref
    try:
        return resolve_run(client, ref).id
    except NotFoundError:
        if "/" in ref or "@" in ref:  # NAME/3 or NAME@alias: a model version
            return ref
        raise


@click.command("reproduce")
@click.argument("ref", metavar="RUN_OR_MODEL")
@click.option("--workdir", type=click.Path(file_okay=False), default=None,
              help="Restore the code into this new or empty folder, and keep it "
              "[default: a temporary folder, removed afterwards].")  # fmt: skip
@click.option("--tolerance", type=float, default=0.0, show_default=True, metavar="X",
              help="Final values agree when |reproduced - recorded| <= X * max(1, |recorded|) "
              "(absolute up to 1, relative above); 0 asks for equality.")  # fmt: skip
@click.option("--timeout", type=float, default=None, metavar="SECONDS",
              help="Stop the re-run after this long.")  # fmt: skip
@click.option("--keep", is_flag=True, help="Keep the temporary folder with the restored code.")
def reproduce_command(
    ref: str, workdir: str | None, tolerance: float, timeout: float | None, keep: bool
) -> None:
    """Re-run a recorded training in a fresh folder and check that its metrics agree.

    \b
    RUN_OR_MODEL is a run (id, id part or name) or a model version (models:/NAME/3,
    models:/NAME@production, NAME/3), which stands for the run that trained it.
    The recorded commit is cloned, the uncommitted diff applied, the entry point run
    with the recorded arguments, params (SHIPYARD_HPARAMS, seeds included) and
    dataset versions (SHIPYARD_DATA_PINS). What could not be restored (untracked
    files, other package versions, ...) is listed. Exit status 0 when the final
    metric values agree, 1 when they do not or the re-run failed.
    """
    client = get_client()
    report = reproduce(
        _source(client, ref),
        workdir=workdir,
        tolerance=tolerance,
        timeout=timeout,
        keep=keep,
        tracking_uri=client.tracking_uri,
        blob_uri=client.blob_uri,
        echo=lambda line: hint(f"reproduce: {line}"),
    )
    _print(report)
    if not report.agrees:
        raise click.exceptions.Exit(1)


def _cell(value: float | None) -> str:
    return "-" if value is None else fmt_float(value, 10)


def _print(report: ReproduceReport) -> None:
    con = console()
    con.print()
    new = report.new_run_id or "(none)"
    model = "" if report.source == report.original_run_id else f"{report.source}: "
    con.print(f"[bold]{model}run {report.original_run_id} -> re-run {new}[/bold]")
    for title, notes in (("Restored", report.restored), ("Not restored", report.not_restored)):
        if notes:
            t = table("what", "how", title=title)
            for n in notes:
                t.add_row(n.what, n.detail)
            con.print(t)
    if report.metrics:
        t = table("metric", "recorded", "reproduced", "abs diff", "agrees", title="Metrics")
        for m in report.metrics:
            t.add_row(
                m.key,
                _cell(m.recorded),
                _cell(m.reproduced),
                _cell(m.abs_diff),
                Text("yes", style="green") if m.agrees else Text(_why(m), style="bold red"),
            )
        con.print(t)
    if report.kept:
        con.print(f"restored code kept in {report.workdir}")
    if report.problem is not None:
        con.print(Text(f"could not check the metrics: {report.problem}", style="bold red"))
    elif report.agrees:
        how = "exactly" if report.tolerance == 0 else f"within tolerance {report.tolerance:g}"
        con.print(Text(f"metrics agree {how}: run {new} reproduces run "
                       f"{report.original_run_id}", style="bold green"))  # fmt: skip
    else:
        bad = ", ".join(f"{m.key} ({_why(m)})" for m in report.disagreements)
        con.print(Text(f"metrics DISAGREE: {bad}", style="bold red"))


def _why(m: MetricComparison) -> str:
    if m.note:
        return f"no: {m.note}"
    return f"no: recorded {_cell(m.recorded)}, reproduced {_cell(m.reproduced)}"
