"""``shipyard serve``: the inference server (see :mod:`shipyard.serve`)."""

from __future__ import annotations

import os

import click

from shipyard.cli._common import CliState
from shipyard.errors import InvalidArgumentError

__all__ = ["serve_command"]


@click.command("serve")
@click.argument("uris", nargs=-1, metavar="[MODEL_URI]...")
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    metavar="FILE",
    help="A YAML file of models and settings (see shipyard.serve._config).",
)
@click.option("--host", default=None, help="Interface to bind [default: 127.0.0.1].")
@click.option("--port", type=int, default=None, help="Port [default: 8080; 0: any free port].")
@click.option("--workers", type=int, default=None, help="Server processes [default: 1].")
@click.option(
    "--native", is_flag=True, help="Serve the native flavor even where an ONNX export exists."
)
@click.option(
    "--batch-max-size",
    type=int,
    default=None,
    metavar="ROWS",
    help="Turn on micro-batching: at most ROWS rows per model call.",
)
@click.option(
    "--batch-max-wait-ms",
    type=float,
    default=None,
    metavar="MS",
    help="With batching: how long a lone request waits for company [default: 2].",
)
@click.option(
    "--poll-seconds",
    type=float,
    default=None,
    help="How often aliases are checked for a hot swap [default: 5; 0: never].",
)
@click.option(
    "--max-body-bytes", type=int, default=None, help="Largest request body [default: 16 MiB]."
)
@click.option(
    "--log-sample-rate",
    type=float,
    default=None,
    metavar="RATE",
    help="Log this share of requests (0-1) for shipyard monitor [default: 0].",
)
@click.pass_context
def serve_command(
    ctx: click.Context,
    uris: tuple[str, ...],
    config_path: str | None,
    host: str | None,
    port: int | None,
    workers: int | None,
    native: bool,
    batch_max_size: int | None,
    batch_max_wait_ms: float | None,
    poll_seconds: float | None,
    max_body_bytes: int | None,
    log_sample_rate: float | None,
) -> None:
    """Serve model versions over HTTP: Open Inference Protocol v2 and MLflow /invocations.

    \b
    shipyard serve models:/rides-pricing@production --port 8080
    shipyard serve --config models.yaml
    Endpoints: /v2/models/NAME/infer, /invocations, /v2/health/ready, /metrics.
    When the alias moves, the new version is loaded and swapped in live.
    """
    from shipyard.serve import load_config, parse_config
    from shipyard.serve._server import serve

    state = ctx.find_object(CliState) or CliState()
    if state.tracking_uri:
        os.environ["SHIPYARD_TRACKING_URI"] = state.tracking_uri
    if state.blob_uri:
        os.environ["SHIPYARD_BLOB_URI"] = state.blob_uri
    if config_path and uris:
        raise InvalidArgumentError("give model URIs or --config, not both")
    if not config_path and not uris:
        raise InvalidArgumentError(
            "nothing to serve: give a model URI (models:/NAME@production, models:/NAME/3) "
            "or --config FILE"
        )
    doc = load_config(config_path).model_dump() if config_path else {"models": []}
    per_model: dict[str, object] = {}
    if native:
        per_model["native"] = True
    if batch_max_size is not None or batch_max_wait_ms is not None:
        per_model["batching"] = {
            k: v
            for k, v in (("max_batch_size", batch_max_size), ("max_wait_ms", batch_max_wait_ms))
            if v is not None
        }
    if log_sample_rate is not None:
        per_model["log_sample_rate"] = log_sample_rate
    if uris:
        doc["models"] = [{"uri": u} for u in uris]
    doc["models"] = [{**m, **per_model} for m in doc["models"]]
    for key, value in (
        ("host", host),
        ("port", port),
        ("workers", workers),
        ("poll_seconds", poll_seconds),
        ("max_body_bytes", max_body_bytes),
    ):
        if value is not None:
            doc[key] = value
    config = parse_config(doc, source=config_path or "shipyard serve options")

    def announce(url: str) -> None:
        names = ", ".join(m.uri for m in config.models)
        click.echo(f"serving {names} on {url}", err=True)
        click.echo(
            f"  v2: {url}/v2/models/NAME/infer   MLflow: {url}/invocations   "
            f"ready: {url}/v2/health/ready   metrics: {url}/metrics",
            err=True,
        )
        click.echo(f"listening on {url}", err=False)

    serve(config, announce=announce)
