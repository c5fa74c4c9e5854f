"""``shipyard experiment run | resume | pause | kill | show | list``: searches.

An experiment's ID is its search run's id (any unique prefix or suffix works,
as for runs). ``run`` and ``resume`` show live progress on a terminal (trials
by state, the best so far) and a line per event otherwise; Ctrl-C pauses the
experiment, which ``resume`` continues.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from rich.console import Group
from rich.text import Text

from shipyard.cli._common import get_client, resolve_run
from shipyard.cli._render import console, fmt_duration, fmt_float, hint, print_json, table

if TYPE_CHECKING:
    from shipyard.search._experiment import Driver
    from shipyard.search._state import ExperimentState

__all__ = ["kill", "list_searches", "pause", "resume", "run", "show"]

_STATE_STYLE = {
    "running": "cyan", "paused": "yellow", "completed": "green", "stopped": "dim",
    "failed": "red",
}  # fmt: skip


def _fmt_config(config: dict[str, Any]) -> str:
    return " ".join(
        f"{k}={fmt_float(v, 4) if isinstance(v, float) else v}" for k, v in config.items()
    )


def _headline(run_id: str, state: ExperimentState, started: float) -> Text:
    cfg = state.config
    counts = state.counts()
    text = Text()
    text.append(f"experiment {run_id} ", style="bold")
    text.append(f"{cfg['name']}  {cfg['searcher']['name']}  ")
    text.append(fmt_duration(time.time() - started), style="dim")
    text.append("\ntrials: ")
    text.append(
        " · ".join(f"{n} {s}" for s, n in counts.items() if n),
        style="",
    )
    text.append(f"  ({len(state.trials)} / {cfg['searcher']['max_trials']} started)", style="dim")
    objectives = _objectives(state)
    if state.best is not None and state.best in state.trials:
        best = state.trials[state.best]
        metric = objectives[0][0]
        text.append("\nbest: ", style="bold")
        text.append(
            f"trial {best.trial_id}  {metric}={fmt_float(best.values.get(metric, float('nan')))}"
            f"  {_fmt_config(best.config)}",
            style="green",
        )
    return text


def _short(run_id: str) -> str:
    """A run id's last 12 digits (ids start with their time: prefixes collide)."""
    return "…" + run_id[-12:] if run_id else ""


def _objectives(state: ExperimentState) -> list[tuple[str, str]]:
    cfg = state.config
    if cfg.get("objectives"):
        return [(o["metric"], o["mode"]) for o in cfg["objectives"]]
    return [(cfg["metric"], cfg.get("mode", "min"))]


class _Live:
    """Live progress on a terminal; plain event lines otherwise."""

    def __init__(self, show: bool) -> None:
        self.show = show
        self.live: Any = None
        self.started = time.time()
        self.events: list[str] = []
        self.run_id = ""

    def __enter__(self) -> _Live:
        if self.show:
            from rich.live import Live

            self.live = Live(console=console(), refresh_per_second=4, transient=False)
            self.live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.live is not None:
            self.live.__exit__(None, None, None)

    def event(self, driver: Driver, what: str) -> None:
        self.run_id = driver.run_id
        stamp = time.strftime("%H:%M:%S")
        if self.live is None:
            click.echo(f"{stamp} {what}", err=True)
            return
        self.events = [*self.events[-5:], f"{stamp} {what}"]
        body = Group(
            _headline(driver.run_id, driver.state, self.started),
            Text("\n".join(self.events), style="dim"),
        )
        self.live.update(body)


def _results(run_id: str, state: ExperimentState, limit: int = 10) -> None:
    objectives = _objectives(state)
    metric, mode = objectives[0]
    scored = [t for t in state.trials.values() if metric in t.values]
    scored.sort(key=lambda t: (-t.resource, (1 if mode == "min" else -1) * t.values[metric]))
    t = table("trial", "state", "resource", *(m for m, _ in objectives), "config", "run")
    front = set(state.front)
    for rec in scored[:limit]:
        mark = " *" if rec.trial_id == state.best or rec.trial_id in front else ""
        t.add_row(
            f"{rec.trial_id}{mark}",
            Text(rec.state, style=_STATE_STYLE.get(rec.state, "")),
            f"{rec.resource:g}",
            *(fmt_float(rec.values[m]) if m in rec.values else "-" for m, _ in objectives),
            _fmt_config(rec.config),
            _short(rec.run_id),
        )
    console().print(t)
    failed = [r for r in state.trials.values() if r.state == "failed"]
    for rec in failed[:5]:
        hint(f"trial {rec.trial_id} failed: {rec.error}")
    if len(objectives) > 1 and state.front:
        hint(f"Pareto front ({len(state.front)} trials, marked *): trials {state.front}")
    best = state.trials.get(state.best) if state.best is not None else None
    if best is not None:
        hint(
            f"best: trial {best.trial_id}, run {best.run_id}; its model: runs:/{best.run_id}/model"
        )
    if state.status == "paused":
        hint(f"paused: continue with 'shipyard experiment resume {run_id}'")


def _state_json(run_id: str, state: ExperimentState) -> dict[str, Any]:
    body = {"id": run_id, **{k: v for k, v in vars(state).items() if k != "trials"}}
    body["trials"] = [t.to_dict() for t in sorted(state.trials.values(), key=lambda t: t.trial_id)]
    body["best_run"] = state.trials[state.best].run_id if state.best in state.trials else None
    return body


def _executor(kind: str, address: str | None, max_concurrent: int | None) -> Any:
    from shipyard.search._run import make_executor

    if address and kind != "ray":
        raise click.UsageError("--address is for --executor ray")
    return make_executor(kind, address=address, max_concurrent=max_concurrent)


_executor_options = [
    click.option(
        "--executor", type=click.Choice(["local", "ray"]), default="local", show_default=True,
        help="Where trials run: processes here, or Ray tasks on a cluster.",
    ),
    click.option("--address", help="Ray cluster address (with --executor ray; default: local)."),
    click.option("--max-concurrent", type=click.IntRange(min=1), help="Trials at once."),
    click.option("--progress/--no-progress", default=None,
                 help="Live progress (default: on a terminal)."),
    click.option("--json", "as_json", is_flag=True, help="Print the final state as JSON."),
]  # fmt: skip


def _with_executor_options(f: Any) -> Any:
    for option in reversed(_executor_options):
        f = option(f)
    return f


def _show(progress: bool | None, as_json: bool) -> bool:
    if progress is not None:
        return progress and not as_json
    return console().is_terminal and not as_json


def _drive(
    kind: str,
    address: str | None,
    limit: int | None,
    progress: bool | None,
    as_json: bool,
    session: Callable[[Any, Callable[..., None]], tuple[str, ExperimentState]],
) -> None:
    """Run one session of an experiment on an executor, with live progress, then
    print its results."""
    ex = _executor(kind, address, limit)
    try:
        with _Live(_show(progress, as_json)) as live:
            run_id, state = session(ex, live.event)
    finally:
        ex.close()
    if as_json:
        print_json(_state_json(run_id, state))
    else:
        _results(run_id, state)


@click.command("run")
@click.argument("config_file", type=click.Path(dir_okay=False, path_type=Path))
@_with_executor_options
def run(config_file: Path, executor: str, address: str | None, max_concurrent: int | None,
        progress: bool | None, as_json: bool) -> None:  # fmt: skip
    """Run the hyperparameter search a YAML file describes.

    CONFIG_FILE: the search (see the README: space, metric, searcher, resources).
    """
    from shipyard.search._config import load_config
    from shipyard.search._run import run_experiment

    config = load_config(config_file)
    limit = max_concurrent or config.max_concurrent
    client = get_client()
    _drive(
        executor, address, limit, progress, as_json,
        lambda ex, on_event: run_experiment(
            config, client=client, executor=ex, on_event=on_event,
            on_start=lambda rid: click.echo(f"experiment {rid}", err=True),
        ),
    )  # fmt: skip


@click.command("resume")
@click.argument("experiment")
@_with_executor_options
def resume(experiment: str, executor: str, address: str | None, max_concurrent: int | None,
           progress: bool | None, as_json: bool) -> None:  # fmt: skip
    """Continue a paused or crashed EXPERIMENT where it stood."""
    from shipyard.search._run import resume_experiment
    from shipyard.search._state import read_state

    client = get_client()
    run_id = resolve_run(client, experiment).id
    config = read_state(client, run_id).config
    limit = max_concurrent or config.get("max_concurrent")
    _drive(
        executor, address, limit, progress, as_json,
        lambda ex, on_event: (
            run_id, resume_experiment(run_id, client=client, executor=ex, on_event=on_event)
        ),
    )  # fmt: skip


def _control(experiment: str, action: str) -> None:
    from shipyard.search._run import request

    client = get_client()
    run_id = resolve_run(client, experiment).id
    click.echo(request(run_id, action, client=client))


@click.command("pause")
@click.argument("experiment")
def pause(experiment: str) -> None:
    """Pause EXPERIMENT: its trials checkpoint and stop; resume continues them."""
    _control(experiment, "pause")


@click.command("kill")
@click.argument("experiment")
def kill(experiment: str) -> None:
    """End EXPERIMENT for good: its trials stop now."""
    _control(experiment, "kill")


@click.command("show")
@click.argument("experiment")
@click.option("--all", "show_all", is_flag=True, help="Every trial, not the best 10.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
def show(experiment: str, show_all: bool, as_json: bool) -> None:
    """Show an experiment's trials and its best so far."""
    from shipyard.search._state import read_state

    client = get_client()
    run_id = resolve_run(client, experiment).id
    state = read_state(client, run_id)
    if as_json:
        print_json(_state_json(run_id, state))
        return
    console().print(_headline(run_id, state, state.started_at))
    console().print(Text(f"status: {state.status}"))
    _results(run_id, state, limit=len(state.trials) if show_all else 10)


@click.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
def list_searches(as_json: bool) -> None:
    """List search experiments, newest first."""
    from shipyard.search._state import SEARCH_TAG

    client = get_client()
    runs = list(
        client.search_runs(
            filter=f"tags.`{SEARCH_TAG}` = 'experiment'", order_by=["start_time DESC"]
        )
    )
    if as_json:
        print_json([{"id": r.id, "experiment_id": r.experiment_id, "status": r.status.value,
                     "start_time": r.start_time} for r in runs])  # fmt: skip
        return
    if not runs:
        hint("no search experiments yet: run one with 'shipyard experiment run search.yaml'")
        return
    t = table("id", "experiment", "status", "started", "best run")
    names = {e.id: e.name for e in client.list_experiments()}
    for r in runs:
        t.add_row(
            r.id, names.get(r.experiment_id, r.experiment_id), r.status.value,
            time.strftime("%Y-%m-%d %H:%M", time.localtime(r.start_time)),
            _short(r.tags.get("shipyard.search.best_run", "")),
        )  # fmt: skip
    console().print(t)
