"""``shipyard experiments list | create``."""

from __future__ import annotations

import click
from rich.text import Text

from shipyard.cli._common import get_client, missing_store, no_runs_hint
from shipyard.cli._render import console, experiment_json, fmt_time, hint, print_json, table
from shipyard.types import Lifecycle
from shipyard.validation import check_name

__all__ = ["create_experiment", "list_experiments"]


@click.command("list")
@click.option("--all", "-a", "include_deleted", is_flag=True, help="Include deleted experiments.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
def list_experiments(include_deleted: bool, as_json: bool) -> None:
    """List experiments."""
    client = get_client()
    if missing_store(client) is not None:
        if as_json:
            print_json([])
        hint(no_runs_hint())
        return
    found = client.list_experiments(include_deleted=include_deleted)
    if as_json:
        print_json([experiment_json(e) for e in found])
        return
    if not found:
        hint("no experiments yet: create one with 'shipyard experiments create NAME'")
        return
    described = any(e.description for e in found)
    t = table("id", "name", "created", *(["description"] if described else []))
    t.columns[0].no_wrap = t.columns[2].no_wrap = True
    if include_deleted:
        t.add_column("lifecycle")
    for e in found:
        row: list[str | Text] = [
            Text(e.id),
            Text(e.name, style="bold"),
            fmt_time(e.created_at),
        ]
        if described:
            row.append(Text(e.description))
        if include_deleted:
            deleted = e.lifecycle is Lifecycle.DELETED
            row.append(Text(e.lifecycle.value, style="red" if deleted else ""))
        t.add_row(*row)
    console().print(t)


@click.command("create")
@click.argument("name")
@click.option("--description", "-d", default="", help="What the experiment is for.")
@click.option("--json", "as_json", is_flag=True, help="Print the new experiment as JSON.")
def create_experiment(name: str, description: str, as_json: bool) -> None:
    """Create an experiment."""
    check_name(name, "experiment name")
    client = get_client()
    experiment = client.create_experiment(name, description=description)
    if as_json:
        print_json(experiment_json(experiment))
    else:
        click.echo(f"created experiment {experiment.name!r} with id {experiment.id}")
