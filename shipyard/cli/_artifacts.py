"""``shipyard artifacts list | download``."""

from __future__ import annotations

from pathlib import Path

import click

from shipyard.cli._common import get_client, resolve_run
from shipyard.cli._render import artifact_json, artifacts_table, console, hint, print_json

__all__ = ["download_artifacts", "list_artifacts"]


@click.command("list")
@click.argument("run")
@click.argument("path", required=False, default="")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
def list_artifacts(run: str, path: str, as_json: bool) -> None:
    """List a run's artifacts.

    All of them, or those under PATH (inside logged directories too). RUN is a
    run id, a unique id prefix or suffix, or a unique name.
    """
    client = get_client()
    found = resolve_run(client, run)
    artifacts = client.list_artifacts(found.id, path or None)
    if as_json:
        print_json([artifact_json(a) for a in artifacts])
    elif artifacts:
        console().print(artifacts_table(artifacts))
    if not artifacts:
        where = f" under {path!r}" if path else ""
        hint(f"run {found.id} has no artifacts{where}")


@click.command("download")
@click.argument("run")
@click.argument("path", required=False, default="")
@click.option(
    "--dest", "-d", type=click.Path(file_okay=False, path_type=Path), default=Path("."),
    show_default=True, help="Folder to download into (created if missing).",
)  # fmt: skip
def download_artifacts(run: str, path: str, dest: Path) -> None:
    """Download a run's artifacts.

    All of them, or the file or folder at PATH, into DEST. Every byte is checked
    against its content digest.
    """
    client = get_client()
    found = resolve_run(client, run)
    local = client.download_artifacts(found.id, path, dest)
    click.echo(str(local))
