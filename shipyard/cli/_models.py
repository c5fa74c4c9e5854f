"""``shipyard models register | list | show | versions | alias | events | promote | export``
and ``shipyard lineage``.

Models are named as ``models:/NAME/3``, ``models:/NAME@production``, or on the
command line simply ``NAME/3`` and ``NAME@production``.
"""

from __future__ import annotations

from typing import Any

import click

from shipyard.cli._common import get_client, missing_store
from shipyard.cli._render import (
    console,
    fmt_float,
    fmt_param,
    fmt_time,
    hint,
    print_json,
    table,
)
from shipyard.errors import NotFoundError
from shipyard.registry import Lineage, RegistryClient
from shipyard.types import AliasEvent, ModelVersion, RegisteredModel

__all__ = [
    "alias_model",
    "contract_model",
    "events_model",
    "export_model",
    "lineage",
    "list_models",
    "promote_model",
    "register_model",
    "show_model",
    "versions_model",
]

_NO_MODELS_HINT = (
    "no registered models yet: log one with shipyard.log_model(model, 'model') in a run, "
    "then 'shipyard models register runs:/RUN/model NAME'"
)


def registry_client(*, read_only: bool = True) -> RegistryClient:
    """A registry client on the stores named by the global options (else the environment)."""
    tracking = get_client()
    path = missing_store(tracking)
    if read_only and path is not None:
        raise NotFoundError(f"no store at {path}: {_NO_MODELS_HINT}")
    return RegistryClient(tracking.tracking_uri, tracking.blob_uri)


def version_json(name: str, mv: ModelVersion, aliases: list[str] | None = None) -> dict[str, Any]:
    meta = dict(mv.metadata)
    return {
        "model": name,
        "version": mv.version,
        "uri": f"models:/{name}/{mv.version}",
        "package_digest": mv.package_digest,
        "run_id": mv.run_id,
        "source": mv.source,
        "flavor": meta.get("flavor", {}).get("name")
        if isinstance(meta.get("flavor"), dict)
        else meta.get("flavor"),
        "aliases": aliases or [],
        "description": mv.description,
        "tags": dict(mv.tags),
        "created_by": mv.created_by,
        "created_at": mv.created_at,
    }


def event_json(e: AliasEvent) -> dict[str, Any]:
    return {
        "id": e.id,
        "alias": e.alias,
        "from_version": e.from_version,
        "to_version": e.to_version,
        "outcome": e.outcome,
        "actor": e.actor,
        "reason": e.reason,
        "report": dict(e.report),
        "time": e.created_at,
    }


def _flavor(mv: ModelVersion) -> str:
    flavor = mv.metadata.get("flavor")
    if isinstance(flavor, dict):
        return str(flavor.get("name", ""))
    return str(flavor or "")


def _by_version(aliases: dict[str, int]) -> dict[int, list[str]]:
    out: dict[int, list[str]] = {}
    for alias, number in aliases.items():
        out.setdefault(number, []).append(alias)
    return out


# -- register / list / show / versions ------------------------------------------------


@click.command("register")
@click.argument("source", metavar="runs:/RUN/PATH")
@click.argument("name")
@click.option("--description", "-d", default="", help="What this version is.")
@click.option("--tag", "tags", multiple=True, metavar="KEY=VALUE", help="A tag; repeatable.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
def register_model(
    source: str, name: str, description: str, tags: tuple[str, ...], as_json: bool
) -> None:
    """Register a run's model package as the next version of NAME.

    NAME is created on first registration. The version is immutable: it points at
    the package's content digest and the run that made it.
    """
    client = registry_client(read_only=False)
    tag_map = {}
    for item in tags:
        key, sep, value = item.partition("=")
        if not sep:
            raise click.BadParameter(f"expected KEY=VALUE, got {item!r}", param_hint="--tag")
        tag_map[key] = value
    mv = client.register(source, name, description=description, tags=tag_map)
    if as_json:
        print_json(version_json(name, mv))
        return
    click.echo(f"registered models:/{name}/{mv.version} ({_flavor(mv)}, from {source})")


@click.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
def list_models(as_json: bool) -> None:
    """List registered models with their latest version and aliases."""
    tracking = get_client()
    if missing_store(tracking) is not None:
        if as_json:
            print_json([])
        hint(_NO_MODELS_HINT)
        return
    client = registry_client()
    rows = []
    for model in client.list_models():
        versions = client.store.list_model_versions(model.id)
        aliases = client.store.list_aliases(model.id)
        rows.append((model, versions[-1] if versions else None, aliases))
    if as_json:
        print_json(
            [
                {
                    "name": m.name,
                    "latest_version": v.version if v else None,
                    "aliases": aliases,
                    "description": m.description,
                    "updated_at": m.updated_at,
                }
                for m, v, aliases in rows
            ]
        )
        return
    if not rows:
        hint(_NO_MODELS_HINT)
        return
    out = table("name", "latest", "aliases", "flavor", "updated", "description")
    for m, v, aliases in rows:
        out.add_row(
            m.name,
            str(v.version) if v else "-",
            ", ".join(f"{a}={n}" for a, n in aliases.items()) or "-",
            _flavor(v) if v else "-",
            fmt_time(m.updated_at, relative=True),
            m.description,
        )
    console().print(out)


def _model_json(client: RegistryClient, model: RegisteredModel) -> dict[str, Any]:
    aliases = client.store.list_aliases(model.id)
    by_version = _by_version(aliases)
    return {
        "name": model.name,
        "description": model.description,
        "tags": dict(model.tags),
        "contract": dict(model.contract),
        "aliases": aliases,
        "versions": [
            version_json(model.name, mv, by_version.get(mv.version))
            for mv in client.store.list_model_versions(model.id)
        ],
    }


@click.command("show")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
def show_model(name: str, as_json: bool) -> None:
    """Show a registered model: contract, aliases, versions and recent alias moves."""
    client = registry_client()
    model = client.model(name)
    data = _model_json(client, model)
    events = client.events(name)
    if as_json:
        data["events"] = [event_json(e) for e in events]
        print_json(data)
        return
    con = console()
    con.print(f"[bold]{model.name}[/bold]  {model.description}".rstrip())
    if model.contract:
        terms = ", ".join(
            f"{k}={fmt_param(v) if not isinstance(v, dict) else v}"
            for k, v in model.contract.items()
        )
        con.print(f"contract: {terms}")
    aliases = data["aliases"]
    con.print("aliases: " + (", ".join(f"{a} -> {v}" for a, v in aliases.items()) or "none"))
    con.print(_versions_table(client, model))
    if events:
        con.print(_events_table(events[-10:], title="alias moves (latest 10)"))


def _versions_table(client: RegistryClient, model: RegisteredModel) -> Any:
    by_version = _by_version(client.store.list_aliases(model.id))
    out = table("version", "aliases", "flavor", "run", "registered", "by", "description")
    for mv in client.store.list_model_versions(model.id):
        out.add_row(
            str(mv.version),
            ", ".join(by_version.get(mv.version, [])) or "-",
            _flavor(mv),
            (mv.run_id or "-")[:12],
            fmt_time(mv.created_at, relative=True),
            mv.created_by,
            mv.description,
        )
    return out


def _events_table(events: list[AliasEvent], title: str | None = None) -> Any:
    out = table("time", "alias", "from", "to", "outcome", "by", "reason", title=title)
    for e in events:
        out.add_row(
            fmt_time(e.created_at),
            e.alias,
            "-" if e.from_version is None else str(e.from_version),
            "-" if e.to_version is None else str(e.to_version),
            e.outcome,
            e.actor,
            e.reason,
        )
    return out


@click.command("versions")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
def versions_model(name: str, as_json: bool) -> None:
    """List a model's versions with their aliases, flavor and run."""
    client = registry_client()
    model = client.model(name)
    if as_json:
        print_json(_model_json(client, model)["versions"])
        return
    console().print(_versions_table(client, model))


@click.command("alias")
@click.argument("name")
@click.argument("alias")
@click.argument("version", type=int, required=False)
@click.option("--delete", is_flag=True, help="Remove the alias instead.")
@click.option("--reason", "-r", default="", help="Why (kept in the audit log).")
def alias_model(name: str, alias: str, version: int | None, delete: bool, reason: str) -> None:
    """Point ALIAS of NAME at VERSION (or remove it with --delete).

    Aliases gated by the model's production contract (``production`` unless the
    contract says otherwise) move only through 'shipyard models promote'.
    """
    client = registry_client(read_only=False)
    if delete:
        event = client.delete_alias(name, alias, reason=reason)
        click.echo(f"removed {name}@{alias} (was version {event.from_version})")
        return
    if version is None:
        raise click.UsageError("give the VERSION the alias should point at, or --delete")
    event = client.set_alias(name, alias, version, reason=reason)
    before = "unset" if event.from_version is None else f"version {event.from_version}"
    click.echo(f"{name}@{alias} -> version {version} (was {before})")


@click.command("events")
@click.argument("name")
@click.option("--alias", "-a", default=None, help="Only this alias.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
def events_model(name: str, alias: str | None, as_json: bool) -> None:
    """The audit log: every attempt to move an alias, with who, why and the outcome."""
    events = registry_client().events(name, alias)
    if as_json:
        print_json([event_json(e) for e in events])
        return
    if not events:
        hint(f"no alias moves recorded for {name!r}")
        return
    console().print(_events_table(events))


@click.command("contract")
@click.argument("name")
@click.option(
    "--set", "terms", multiple=True, metavar="KEY=VALUE",
    help="A term, VALUE in YAML (latency_p99_ms=100, min_metrics='{val_auc: 0.9}'); repeatable.",
)  # fmt: skip
@click.option("--file", "path", type=click.Path(exists=True, dir_okay=False),
              help="A YAML or JSON file with the whole contract.")  # fmt: skip
@click.option("--clear", is_flag=True, help="Remove the registered model's contract.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
def contract_model(
    name: str, terms: tuple[str, ...], path: str | None, clear: bool, as_json: bool
) -> None:
    """Show or set the production contract of a registered model.

    \b
    Its terms override those each version was logged with when the gates run:
    shipyard models contract rides --set latency_p99_ms=50 --set format=onnx
    Keys: latency_p99_ms, latency_p50_ms, batch_size, device, format, min_metrics,
    parity_rtol, parity_atol, and gated_aliases (aliases only promote may move).
    """
    import yaml

    from shipyard.models import Contract

    client = registry_client(read_only=not (terms or path or clear))
    model = client.model(name)
    if terms or path or clear:
        new: dict[str, Any] = {} if clear or path else dict(model.contract)
        if path:
            with open(path, encoding="utf-8") as f:
                loaded = yaml.safe_load(f) or {}
            if not isinstance(loaded, dict):
                raise click.BadParameter("expected a mapping of terms", param_hint="--file")
            new.update(loaded)
        for item in terms:
            key, sep, value = item.partition("=")
            if not sep:
                raise click.BadParameter(f"expected KEY=VALUE, got {item!r}", param_hint="--set")
            new[key.strip()] = yaml.safe_load(value)
        gated = new.pop("gated_aliases", None)
        Contract.from_dict(new)  # refuses unknown keys and bad values, naming them
        if gated is not None:
            new["gated_aliases"] = gated
        model = client.set_contract(name, new)
    data = dict(model.contract)
    if as_json:
        print_json(data)
        return
    if not data:
        hint(f"{name!r} has no registered-model contract (versions keep their own)")
        return
    for key, value in data.items():
        click.echo(f"{key}: {value}")


# -- promote / export ---------------------------------------------------------------------


@click.command("promote")
@click.argument("name")
@click.argument("version", type=int)
@click.option("--alias", "-a", default="production", show_default=True, help="Alias to move.")
@click.option("--force", is_flag=True, help="Move it even if gates fail (needs --reason).")
@click.option("--reason", "-r", default="", help="Why (kept in the audit log).")
@click.option("--calls", default=None, type=int, help="Predict calls timed by the latency gate.")
@click.option("--json", "as_json", is_flag=True, help="Print the gate report as JSON.")
def promote_model(
    name: str,
    version: int,
    alias: str,
    force: bool,
    reason: str,
    calls: int | None,
    as_json: bool,
) -> None:
    """Move ALIAS of NAME to VERSION if it passes the production gates.

    \b
    Gates: signature present; export parity (when the contract's format is onnx);
    latency p50/p99 measured in-process within the budget; metrics meeting the
    contract's thresholds and no worse than the alias's current holder.
    A failing gate refuses with the report; --force --reason "..." moves it anyway
    and the audit log keeps the reason.
    """
    from shipyard.export import GateFailedError, promote

    client = registry_client(read_only=False)
    try:
        result = promote(
            name, version, alias, force=force, reason=reason, calls=calls, client=client
        )
    except GateFailedError as e:
        if as_json:
            print_json(e.report.to_dict())
        else:
            console().print(e.report.table())
        raise
    if as_json:
        print_json(result.to_dict())
        return
    console().print(result.report.table())
    before = (
        "unset" if result.event.from_version is None else f"version {result.event.from_version}"
    )
    verb = "forced" if result.event.outcome == "forced" else "promoted"
    click.echo(f"{verb}: {name}@{alias} -> version {version} (was {before})")


@click.command("export")
@click.argument("uri")
@click.option("--format", "fmt", default="onnx", show_default=True, help="Target format.")
@click.option("--json", "as_json", is_flag=True, help="Print the parity report as JSON.")
def export_model(uri: str, fmt: str, as_json: bool) -> None:
    """Export a model version (models:/NAME/3 or NAME@alias) to ONNX and check parity.

    Parity is checked against the original on the package's golden examples and a
    generated batch; the export is attached to the version only when it passes.
    """
    from shipyard.export import export_version

    result = export_version(uri, fmt, client=registry_client(read_only=False))
    if as_json:
        print_json(result.to_dict())
        return
    p = result.parity
    err = ", ".join(
        f"max {what} {'-' if v is None else fmt_float(v, 3)}"
        for what, v in (("abs", p.max_abs), ("rel", p.max_rel))
    )
    click.echo(
        f"exported {uri} to {fmt} ({result.converter}): parity ok on {p.rows} rows "
        f"({err}; tolerance rtol {p.rtol:g}, atol {p.atol:g}); package {result.package_digest[:12]}"
    )


# -- lineage --------------------------------------------------------------------------------


@click.command("lineage")
@click.argument("uri")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
def lineage(uri: str, as_json: bool) -> None:
    """Trace a model version: run, code commit and diff, data, params, metrics, experiment.

    URI is models:/NAME/3, models:/NAME@production, or NAME/3, NAME@production.
    """
    found = registry_client().lineage(uri)
    if as_json:
        print_json(found.to_dict())
        return
    _print_lineage(found)


def _print_lineage(found: Lineage) -> None:
    con = console()
    mv = found.version
    aliases = f" ({', '.join(found.aliases)})" if found.aliases else ""
    con.print(f"[bold]models:/{found.model.name}/{mv.version}[/bold]{aliases}")
    con.print(f"  package   {mv.package_digest}  flavor {_flavor(mv)}")
    for e in found.exports:
        passed = e["report"].get("passed")
        con.print(
            f"  export    {e['format']} {e['package_digest'][:12]} parity "
            f"{'ok' if passed else 'FAILED' if passed is False else '?'}"
        )
    if found.run is None:
        con.print("  run       (registered without a run)")
        return
    run, code = found.run, found.code
    con.print(f"  run       {run['id']}  {run['name']}  {run['status']}")
    if found.experiment:
        con.print(f"  experiment {found.experiment['name']}")
    commit = code.get("git_commit")
    if commit:
        dirty = " + uncommitted diff" if code.get("git_dirty") else ""
        branch = f" on {code['git_branch']}" if code.get("git_branch") else ""
        con.print(f"  code      {commit[:12]}{branch}{dirty}")
        if code.get("git_diff_digest"):
            con.print(f"            diff blob {code['git_diff_digest']}")
    else:
        con.print("  code      (no git commit recorded)")
    for d in found.datasets:
        con.print(f"  data      {d['ref']} ({d['role']}) {d['digest'][:12]}")
    if not found.datasets:
        con.print("  data      (no dataset versions recorded; use shipyard.data.use in the run)")
    if found.params:
        con.print(
            "  params    " + ", ".join(f"{k}={fmt_param(v)}" for k, v in found.params.items())
        )
    if found.metrics:
        con.print(
            "  metrics   " + ", ".join(f"{k}={fmt_float(v)}" for k, v in found.metrics.items())
        )
