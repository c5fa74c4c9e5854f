"""``shipyard data add | status | list | log | ls | diff | checkout | lineage | push | pull``.

Dataset references are ``NAME``, ``NAME@latest``, ``NAME@3`` or ``NAME@v3``.
Commands that only read never create the SQLite store: where nothing was ever
tracked, ``list`` and ``status`` say so and the others fail with a hint.
"""

from __future__ import annotations

from collections.abc import Sequence

import click

from shipyard.cli._common import get_client, missing_store
from shipyard.cli._data_render import (
    LIST_LIMIT,
    ByteProgress,
    change_lines,
    changes_json,
    describe,
    entries_table,
    entry_json,
    lineage_view,
    ref,
    run_row_json,
    transfer_json,
    transfer_line,
    version_json,
    versions_table,
)
from shipyard.cli._render import console, hint, print_json
from shipyard.data import DataClient, parse_ref
from shipyard.errors import InvalidArgumentError, NotFoundError
from shipyard.types import Dataset, DatasetVersion, Run

__all__ = [
    "add_data",
    "checkout_data",
    "diff_data",
    "lineage_data",
    "list_data",
    "log_data",
    "ls_data",
    "pull_data",
    "push_data",
    "status_data",
]

_NO_DATA_HINT = "no datasets yet: version a file or folder with 'shipyard data add PATH'"


def data_client(*, read_only: bool = True) -> DataClient:
    """A data client on the stores named by the global options (else the environment).

    Raises:
        NotFoundError: ``read_only`` and the SQLite store was never created.
    """
    tracking = get_client()
    path = missing_store(tracking)
    if read_only and path is not None:
        raise NotFoundError(f"no store at {path}: {_NO_DATA_HINT}")
    return DataClient(tracking.tracking_uri, tracking.blob_uri)


def _name_of(client: DataClient, version: DatasetVersion) -> str:
    return client.store.get_dataset(version.dataset_id).name


def _experiment(client: DataClient, run: Run, cache: dict[str, str | None]) -> str | None:
    if run.experiment_id not in cache:
        try:
            cache[run.experiment_id] = client.store.get_experiment(run.experiment_id).name
        except NotFoundError:
            cache[run.experiment_id] = None
    return cache[run.experiment_id]


# -- add / status ------------------------------------------------------------------------


@click.command("add")
@click.argument("path", type=click.Path(exists=True, file_okay=True, dir_okay=True))
@click.option("--name", "-n", metavar="NAME", help="Dataset name [default: the folder's name].")
@click.option("--message", "-m", default="", help="What changed in this version.")
@click.option(
    "--exclude", "-x", multiple=True, metavar="GLOB",
    help="Leave out paths matching GLOB (e.g. '*.tmp', 'cache/**'); repeatable.",
)  # fmt: skip
@click.option("--verbose", "-v", is_flag=True, help="List the added, modified and deleted paths.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
def add_data(
    path: str,
    name: str | None,
    message: str,
    exclude: tuple[str, ...],
    verbose: bool,
    as_json: bool,
) -> None:
    """Version a file or folder as a dataset.

    Content equal to the dataset's latest version makes no new version. Files
    already stored (in any dataset) are not copied again.
    """
    client = data_client(read_only=False)
    with ByteProgress(f"adding {name or path}") as progress:
        result = client.add(path, name, message, exclude=exclude, progress=progress)
    v, ds = result.version, result.dataset
    if as_json:
        out = version_json(ds.name, v)
        out.update(created=result.created, changes=changes_json(result.changes))
        print_json(out)
        return
    if result.created:
        click.echo(f"added {ref(ds.name, v)} ({describe(v)}): {result.changes.summary()}")
    else:
        click.echo(f"unchanged: {ref(ds.name, v)} ({describe(v)})")
    if verbose:
        for line in change_lines(result.changes):
            click.echo(line)


@click.command("status")
@click.argument("name", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts (every path).")
def status_data(name: str | None, as_json: bool) -> None:
    """Show what changed in datasets' source folders.

    Compares each dataset's latest version with the file or folder it was added
    from (all datasets, or NAME).
    """
    tracking = get_client()
    if name is None and missing_store(tracking) is not None:
        if as_json:
            print_json([])
        hint(_NO_DATA_HINT)
        return
    reports = data_client().status(name)
    if as_json:
        print_json(
            [
                {
                    **version_json(r.dataset.name, r.version),
                    "missing": r.missing,
                    "clean": r.changes.empty and not r.missing,
                    "changes": changes_json(r.changes),
                }
                if r.version is not None
                else {"dataset": r.dataset.name, "source": r.source, "missing": r.missing}
                for r in reports
            ]
        )
        return
    if not reports:
        hint(_NO_DATA_HINT if name is None else f"dataset {name!r} has no local source to check")
    for i, r in enumerate(reports):
        label = ref(r.dataset.name, r.version) if r.version is not None else r.dataset.name
        if i:
            click.echo()
        click.echo(f"{label}  {r.source}")
        if r.missing:
            click.echo("  source missing: the path no longer exists")
        elif r.changes.empty:
            click.echo("  clean")
        else:
            click.echo(f"  {r.changes.summary()}")
            for line in change_lines(r.changes, LIST_LIMIT):
                click.echo(line)


# -- inspect -----------------------------------------------------------------------------


@click.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
def list_data(as_json: bool) -> None:
    """List datasets with their latest version."""
    if missing_store(get_client()) is not None:
        if as_json:
            print_json([])
        hint(_NO_DATA_HINT)
        return
    client = data_client()
    store = client.store
    rows: list[tuple[Dataset, DatasetVersion | None]] = [
        (ds, store.latest_dataset_version(ds.id))
        for ds in store.list_datasets(store.get_or_create_project(client.project).id)
    ]
    if as_json:
        print_json(
            [
                {
                    "id": ds.id,
                    "name": ds.name,
                    "description": ds.description,
                    "created_at": ds.created_at,
                    "latest": None if v is None else version_json(ds.name, v),
                }
                for ds, v in rows
            ]
        )
    elif rows:
        console().print(versions_table(rows, with_name=True))
    else:
        hint(_NO_DATA_HINT)


@click.command("log")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
def log_data(name: str, as_json: bool) -> None:
    """List a dataset's versions, newest first."""
    client = data_client()
    if parse_ref(name).version is not None or "@" in name:
        raise InvalidArgumentError(
            f"invalid dataset name {name!r}: expected NAME without a version; "
            f"'shipyard data ls {name}' lists one version's files"
        )
    ds = client.dataset(name)
    versions = list(reversed(client.log(ds.name)))
    if as_json:
        print_json([version_json(ds.name, v) for v in versions])
    elif versions:
        console().print(versions_table([(ds, v) for v in versions], with_name=False))
    else:
        hint(f"dataset {ds.name!r} has no versions yet")


@click.command("ls")
@click.argument("dataset", metavar="NAME[@VERSION]")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts (full digests).")
def ls_data(dataset: str, as_json: bool) -> None:
    """List the files of a dataset version.

    NAME alone means its latest version. Sizes are in bytes with --json.
    """
    client = data_client()
    version = client.resolve(dataset)
    entries = list(client.manifest(version).entries)
    if as_json:
        print_json([entry_json(e) for e in entries])
        return
    console().print(entries_table(entries))
    hint(f"{ref(_name_of(client, version), version)}: {describe(version)}")


@click.command("diff")
@click.argument("ref_a", metavar="NAME@A")
@click.argument("ref_b", metavar="[NAME@B]", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
def diff_data(ref_a: str, ref_b: str | None, as_json: bool) -> None:
    """Show what changed between two versions.

    With one version, what changed from the version before it. Lines start with
    A (added), M (modified) or D (deleted).
    """
    client = data_client()
    va = client.resolve(ref_a)
    name_a = _name_of(client, va)
    if ref_b is None:
        old = f"{name_a}@{va.version - 1}" if va.version > 1 else "(nothing)"
        new = ref(name_a, va)
    else:
        vb = client.resolve(ref_b)
        old, new = ref(name_a, va), ref(_name_of(client, vb), vb)
    changes = client.diff(ref_a, ref_b)
    if as_json:
        print_json({"from": old, "to": new, **changes_json(changes)})
        return
    click.echo(f"{old} -> {new}: {changes.summary()}")
    for line in change_lines(changes, indent=""):
        click.echo(line)


@click.command("lineage")
@click.argument("dataset", metavar="NAME[@VERSION]")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
def lineage_data(dataset: str, as_json: bool) -> None:
    """Show the run that made a version and the runs that used it."""
    client = data_client()
    found = client.lineage(dataset)
    v, name = found.version, _name_of(client, found.version)
    names: dict[str, str | None] = {}
    producer = found.produced_by
    used = [(run, role, _experiment(client, run, names)) for run, role in found.runs]
    if as_json:
        print_json(
            {
                "version": version_json(name, v),
                "produced_by": None
                if producer is None
                else run_row_json(producer, _experiment(client, producer, names)),
                "used_by": [run_row_json(run, exp, role) for run, role, exp in used],
                "model_versions": [
                    {"model": n, "version": mv, "uri": f"models:/{n}/{mv}"}
                    for n, mv in found.models
                ],
            }
        )
        return
    made_in = None if producer is None else _experiment(client, producer, names)
    console().print(lineage_view(name, v, producer, made_in, used, found.models))


# -- restore / move ----------------------------------------------------------------------


@click.command("checkout")
@click.argument("dataset", metavar="NAME@VERSION")
@click.argument("dest", type=click.Path(file_okay=False, dir_okay=True))
@click.option(
    "--force", "-f", is_flag=True,
    help="Write into a non-empty folder, removing files the version does not list.",
)  # fmt: skip
def checkout_data(dataset: str, dest: str, force: bool) -> None:
    """Restore a dataset version into a folder.

    DEST must be missing or empty unless --force. Every byte is verified; the
    files are independent copies.
    """
    client = data_client()
    version = client.checkout(dataset, dest, force=force)
    label = ref(_name_of(client, version), version)
    click.echo(f"checked out {label} ({describe(version)}) into {dest}")


def _transfer(verb: str, remote: str, refs: Sequence[str], as_json: bool) -> None:
    client = data_client()
    with ByteProgress(f"{verb[:-2]}ing") as progress:
        if verb == "pushed":
            report = client.push(remote, refs, progress=progress)
        else:
            report = client.pull(remote, refs, progress=progress)
    if as_json:
        print_json({"remote": remote, **transfer_json(report)})
        return
    click.echo(transfer_line(verb, remote, report))


_REMOTE = click.option(
    "--remote", "-r", required=True, metavar="URL",
    help="A folder or fsspec URL (s3://bucket/prefix, gs://...).",
)  # fmt: skip
_REFS = click.argument("refs", nargs=-1, metavar="[REF]...")
_JSON = click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")


@click.command("push")
@_REMOTE
@_REFS
@_JSON
def push_data(remote: str, refs: tuple[str, ...], as_json: bool) -> None:
    """Copy dataset versions to a remote.

    REF is NAME (every version), NAME@VERSION, or nothing for all datasets.
    Objects the remote already holds are skipped.
    """
    _transfer("pushed", remote, refs, as_json)


@click.command("pull")
@_REMOTE
@_REFS
@_JSON
def pull_data(remote: str, refs: tuple[str, ...], as_json: bool) -> None:
    """Fetch dataset versions from a remote.

    REF is NAME (every version), NAME@VERSION, or nothing for all datasets.
    Objects already here are skipped.
    """
    _transfer("pulled", remote, refs, as_json)
