"""``shipyard monitor MODEL_URI``: input drift and prediction distributions of a
served model version over a recent window, from its sampled prediction logs."""

from __future__ import annotations

import math
import re
from typing import TYPE_CHECKING, Any

import click
from rich.text import Text

from shipyard.cli._models import registry_client
from shipyard.cli._render import console, fmt_duration, fmt_float, fmt_time, print_json, table

if TYPE_CHECKING:
    from shipyard.monitor import MonitorReport, OutputSummary

__all__ = ["monitor", "parse_window"]

_WINDOW = re.compile(r"(\d+(?:\.\d+)?)\s*([smhd]?)")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
_STATUS_STYLE = {"stable": "green", "moderate": "yellow", "drift": "bold red", "few rows": "dim"}
#: Features listed in the table (the most drifted first); --json has them all.
_SHOWN = 30


def parse_window(text: str) -> float:
    """Seconds in ``1h``, ``30m``, ``2d``, ``90s`` or ``3600``.

    Raises:
        click.BadParameter: anything else, or zero.
    """
    match = _WINDOW.fullmatch(text.strip().lower())
    seconds = float(match.group(1)) * _UNITS[match.group(2)] if match else 0.0
    if not match or not seconds > 0 or not math.isfinite(seconds):
        raise click.BadParameter(
            f"expected a duration such as 1h, 30m, 2d or a number of seconds, got {text!r}",
            param_hint="--window",
        )
    return seconds


def _window_text(text: str, seconds: float) -> str:
    return text.strip() if text.strip()[-1:].isalpha() else fmt_duration(seconds, coarse=True)


@click.command("monitor")
@click.argument("uri", metavar="MODEL_URI")
@click.option(
    "--window",
    default="1h",
    show_default=True,
    metavar="DURATION",
    help="How far back to read: 1h, 30m, 2d, or seconds.",
)
@click.option(
    "--version",
    "version",
    type=int,
    default=None,
    help="Report on this version (default: the one MODEL_URI names now).",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
def monitor(uri: str, window: str, version: int | None, as_json: bool) -> None:
    """Report input drift and prediction distributions of a served model.

    \b
    MODEL_URI is models:/NAME@ALIAS or models:/NAME/3 (or NAME@ALIAS, NAME/3).
    Reads the predictions that 'shipyard serve ... --log-sample-rate R' sampled in
    the window and scores each input feature against the training profile stored
    in the version's package with the population stability index (PSI):
    below 0.1 stable, 0.1 to 0.25 moderate, above 0.25 drift.
    """
    from shipyard.monitor import monitor_report

    seconds = parse_window(window)
    report = monitor_report(uri, window_seconds=seconds, version=version, client=registry_client())
    if as_json:
        print_json(report.to_dict())
        return
    _print_report(report, _window_text(window, seconds))


def _print_report(report: MonitorReport, window: str) -> None:
    con = console()
    current = (
        f" (now version {report.current_version})"
        if report.current_version != report.version
        else ""
    )
    con.print(
        Text(f"models:/{report.model}/{report.version}", style="bold"), f"via {report.uri}{current}"
    )
    if report.rows == 0:
        others = {v: n for v, n in report.versions.items() if v != report.version}
        seen = (
            "; rows of other versions: "
            + ", ".join(f"version {v}: {n}" for v, n in sorted(others.items()))
            if others
            else ""
        )
        click.echo(
            f"no sampled predictions for {report.uri} (version {report.version}) in the last "
            f"{window}{seen}: serve it with shipyard serve {report.uri} --log-sample-rate 0.01"
        )
        _print_notes(report)
        return
    versions = ", ".join(f"{v}: {n}" for v, n in sorted(report.versions.items()))
    click.echo(
        f"  window    last {window}: {report.rows} sampled rows from "
        f"{fmt_time(report.first)} to {fmt_time(report.last)} ({report.runs} serving "
        f"run(s), {report.files} file(s)); rows per version {versions}"
    )
    if report.profile_source is not None:
        click.echo(
            f"  profile   {report.profile_rows} rows of {report.profile_source.replace('_', ' ')}"
        )
    _print_features(report)
    _print_outputs(report)
    _print_notes(report)


def _psi_text(score: float | None) -> str:
    return "-" if score is None or math.isnan(score) else f"{score:.3f}"


def _print_features(report: MonitorReport) -> None:
    from shipyard.monitor import PSI_MODERATE, PSI_SIGNIFICANT

    if not report.features:
        return
    ranked = sorted(
        report.features, key=lambda f: -1.0 if math.isnan(f.psi) else f.psi, reverse=True
    )
    t = table(
        "feature",
        "kind",
        "PSI",
        "status",
        "missing",
        title="input drift",
    )
    t.columns[2].justify = "right"
    t.columns[4].justify = "right"
    for f in ranked[:_SHOWN]:
        t.add_row(
            Text(f.name),
            f.kind,
            _psi_text(f.psi),
            Text(f.status, style=_STATUS_STYLE.get(f.status, "")),
            f"{f.missing:.1%}",
        )
    con = console()
    con.print()
    con.print(t)
    if len(ranked) > _SHOWN:
        click.echo(f"  ... and {len(ranked) - _SHOWN} more features (--json lists them all)")
    click.echo(
        f"  PSI against the training profile: < {PSI_MODERATE:g} stable, {PSI_MODERATE:g} to "
        f"{PSI_SIGNIFICANT:g} moderate, > {PSI_SIGNIFICANT:g} drift"
    )


def _distribution(values: dict[str, Any], kind: str) -> str:
    if not values:
        return "-"
    if kind == "numeric":
        return "  ".join(
            f"{k} {'-' if v is None else fmt_float(float(v), 4)}" for k, v in values.items()
        )
    return "  ".join(f"{k} {v:.1%}" for k, v in list(values.items())[:8])


def _print_outputs(report: MonitorReport) -> None:
    if not report.outputs:
        return
    t = table("output", "", "distribution", "PSI", "status", title="predictions")
    for o in report.outputs:
        _output_rows(t, o)
    con = console()
    con.print()
    con.print(t)


def _output_rows(t: Any, o: OutputSummary) -> None:
    status = Text(
        "-" if o.status is None else o.status, style=_STATUS_STYLE.get(o.status or "", "")
    )
    serving = Text(_distribution(o.serving, o.kind))
    t.add_row(Text(o.name), "serving", serving, _psi_text(o.psi), status)
    if o.training:
        t.add_row("", "training", Text(_distribution(o.training, o.kind)), "", "")


def _print_notes(report: MonitorReport) -> None:
    for note in report.notes:
        click.echo(f"  note      {note}")
