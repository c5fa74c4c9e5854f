"""The ``shipyard`` command: a click group whose subcommands load on demand.

``shipyard --help`` and ``shipyard runs --help`` import neither rich nor
SQLAlchemy nor NumPy: the groups below name their commands as
``"module:attribute"`` with a static one-line help, and a command's module is
imported only when that command runs (or its own ``--help`` is asked for).

Every :class:`~shipyard.errors.ShipyardError` is printed as ``error: <message>``
on stderr without a traceback, with exit status 1; usage errors are click's
(exit status 2).
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping, Sequence
from typing import IO, Any

import click

from shipyard import __version__
from shipyard.cli._common import CliState
from shipyard.errors import ShipyardError

__all__ = ["LazyGroup", "cli", "main"]

CONTEXT_SETTINGS: dict[str, Any] = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


class CliError(click.ClickException):
    """A failure the user can fix: printed as ``error: <message>``, exit status 1."""

    exit_code = 1

    def show(self, file: IO[Any] | None = None) -> None:
        click.echo(f"error: {self.format_message()}", file=file, err=file is None)


class LazyGroup(click.Group):
    """A group whose commands are imported when first used.

    Args:
        lazy: command name -> ``("package.module:attribute", "one-line help")``.
            The help is shown in the group's listing without importing anything.
    """

    def __init__(
        self, *args: Any, lazy: Mapping[str, tuple[str, str]] | None = None, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.lazy: dict[str, tuple[str, str]] = dict(lazy or {})

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        cmd = super().get_command(ctx, cmd_name)
        if cmd is None and cmd_name in self.lazy:
            cmd = self.load(cmd_name)
        return cmd

    def load(self, cmd_name: str) -> click.Command:
        """Import a lazy command and register it under its listed name."""
        target, _ = self.lazy[cmd_name]
        module_name, _, attribute = target.partition(":")
        cmd = getattr(importlib.import_module(module_name), attribute)
        if not isinstance(cmd, click.Command):
            raise TypeError(f"{target} is {type(cmd).__name__}, not a click command")
        self.add_command(cmd, cmd_name)
        return cmd

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        names = self.list_commands(ctx)
        if not names:
            return
        limit = formatter.width - 6 - max(len(n) for n in names)
        rows = []
        for name in names:
            if name in self.commands:
                cmd = self.commands[name]
                if cmd.hidden:
                    continue
                rows.append((name, cmd.get_short_help_str(limit)))
            else:
                rows.append((name, self.lazy[name][1]))
        with formatter.section("Commands"):
            formatter.write_dl(rows)


class RootGroup(LazyGroup):
    """The top-level group: turns ShipyardError into a one-line message."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ShipyardError as e:
            raise CliError(str(e)) from None


@click.group(cls=RootGroup, context_settings=CONTEXT_SETTINGS)
@click.option(
    "--tracking-uri",
    metavar="URI",
    help="Store to use: sqlite:///PATH or postgresql://... "
    "[default: env SHIPYARD_TRACKING_URI, else $SHIPYARD_HOME/shipyard.db]",
)
@click.option(
    "--blob-uri",
    metavar="URI",
    help="Blob store of artifacts and diffs: a folder or fsspec URL "
    "[default: env SHIPYARD_BLOB_URI, else $SHIPYARD_HOME/blobs]",
)
@click.version_option(__version__, "--version", "-V", prog_name="shipyard")
@click.pass_context
def cli(ctx: click.Context, tracking_uri: str | None, blob_uri: str | None) -> None:
    """Shipyard: track, compare and ship machine-learning runs.

    \b
    Runs are recorded from Python (shipyard.start_run(), shipyard.log_metric(), ...);
    these commands look at them. RUN arguments accept a full run id, a unique
    id prefix or suffix of at least 6 hex digits, or a unique run name.
    """
    ctx.obj = CliState(tracking_uri=tracking_uri or None, blob_uri=blob_uri or None)


@cli.group(
    cls=LazyGroup,
    lazy={
        "create": ("shipyard.cli._experiments:create_experiment", "Create an experiment."),
        "list": ("shipyard.cli._experiments:list_experiments", "List experiments."),
    },
)
def experiments() -> None:
    """List and create experiments (groups of runs)."""


@cli.group(
    cls=LazyGroup,
    lazy={
        "run": ("shipyard.cli._search:run", "Run the hyperparameter search a YAML file describes."),
        "resume": (
            "shipyard.cli._search:resume",
            "Continue a paused or crashed EXPERIMENT where it stood.",
        ),
        "pause": (
            "shipyard.cli._search:pause",
            "Pause EXPERIMENT: its trials checkpoint and stop; resume continues them.",
        ),
        "kill": ("shipyard.cli._search:kill", "End EXPERIMENT for good: its trials stop now."),
        "show": ("shipyard.cli._search:show", "Show an experiment's trials and its best so far."),
        "list": ("shipyard.cli._search:list_searches", "List search experiments, newest first."),
    },
)
def experiment() -> None:
    """Hyperparameter searches: run, watch, pause, resume, kill.

    \b
    shipyard experiment run search.yaml [--executor ray --address ADDR]
    (``shipyard experiments`` lists the experiments that group runs.)
    """


@cli.group(
    cls=LazyGroup,
    lazy={
        "compare": ("shipyard.cli._compare:compare_runs", "Compare runs side by side."),
        "history": (
            "shipyard.cli._compare:metric_history",
            "Print a metric's history.",
        ),
        "list": ("shipyard.cli._runs:list_runs", "List runs, newest first."),
        "show": ("shipyard.cli._runs:show_run", "Show everything recorded about a run."),
    },
)
def runs() -> None:
    """List, inspect and compare runs."""


@cli.group(
    cls=LazyGroup,
    lazy={
        "download": (
            "shipyard.cli._artifacts:download_artifacts",
            "Download a run's artifacts.",
        ),
        "list": ("shipyard.cli._artifacts:list_artifacts", "List a run's artifacts."),
    },
)
def artifacts() -> None:
    """List and download the files logged to runs."""


@cli.group(
    cls=LazyGroup,
    lazy={
        "add": ("shipyard.cli._data:add_data", "Version a file or folder as a dataset."),
        "checkout": (
            "shipyard.cli._data:checkout_data",
            "Restore a dataset version into a folder.",
        ),
        "diff": ("shipyard.cli._data:diff_data", "Show what changed between two versions."),
        "lineage": (
            "shipyard.cli._data:lineage_data",
            "Show the run that made a version and the runs that used it.",
        ),
        "list": ("shipyard.cli._data:list_data", "List datasets with their latest version."),
        "log": ("shipyard.cli._data:log_data", "List a dataset's versions, newest first."),
        "ls": ("shipyard.cli._data:ls_data", "List the files of a dataset version."),
        "pull": ("shipyard.cli._data:pull_data", "Fetch dataset versions from a remote."),
        "push": ("shipyard.cli._data:push_data", "Copy dataset versions to a remote."),
        "status": (
            "shipyard.cli._data:status_data",
            "Show what changed in datasets' source folders.",
        ),
    },
)
def data() -> None:
    """Version datasets, restore them, and see which runs used them.

    \b
    NAME@VERSION references: rides (the latest), rides@latest, rides@3, rides@v3.
    """


@cli.group(
    cls=LazyGroup,
    lazy={
        "alias": (
            "shipyard.cli._models:alias_model",
            "Point ALIAS of NAME at VERSION (or remove it with --delete).",
        ),
        "contract": (
            "shipyard.cli._models:contract_model",
            "Show or set the production contract of a registered model.",
        ),
        "events": (
            "shipyard.cli._models:events_model",
            "The audit log: every attempt to move an alias, with who, why and the outcome.",
        ),
        "export": (
            "shipyard.cli._models:export_model",
            "Export a model version (models:/NAME/3 or NAME@alias) to ONNX and check parity.",
        ),
        "list": (
            "shipyard.cli._models:list_models",
            "List registered models with their latest version and aliases.",
        ),
        "promote": (
            "shipyard.cli._models:promote_model",
            "Move ALIAS of NAME to VERSION if it passes the production gates.",
        ),
        "register": (
            "shipyard.cli._models:register_model",
            "Register a run's model package as the next version of NAME.",
        ),
        "show": (
            "shipyard.cli._models:show_model",
            "Show a registered model: contract, aliases, versions and recent alias moves.",
        ),
        "versions": (
            "shipyard.cli._models:versions_model",
            "List a model's versions with their aliases, flavor and run.",
        ),
    },
)
def models() -> None:
    """Register model versions, move aliases through the production gates, export.

    \b
    Versions: models:/NAME/3 or NAME/3; aliases: models:/NAME@production or NAME@production.
    """


@cli.group(
    cls=LazyGroup,
    lazy={
        "list": (
            "shipyard.cli._train:list_checkpoints",
            "List a run's checkpoints: step, epoch, metrics, size.",
        )
    },
)
def checkpoints() -> None:
    """The checkpoints training runs stored (shipyard train, shipyard.train.init)."""


cli.lazy["train"] = (
    "shipyard.cli._train:train",
    "Train a Trial (trial.py:MyTrial) or a Core API script, here or on N processes.",
)
cli.lazy["lineage"] = (
    "shipyard.cli._models:lineage",
    "Trace a model version: run, code commit and diff, data, params, metrics, experiment.",
)
cli.lazy["serve"] = (
    "shipyard.cli._serve:serve_command",
    "Serve model versions over HTTP: Open Inference Protocol v2 and MLflow /invocations.",
)
cli.lazy["monitor"] = (
    "shipyard.cli._monitor:monitor",
    "Report input drift and prediction distributions of a served model.",
)
cli.lazy["reproduce"] = (
    "shipyard.cli._reproduce:reproduce_command",
    "Re-run a recorded training in a fresh folder and check that its metrics agree.",
)


def main(argv: Sequence[str] | None = None) -> None:
    """Run the ``shipyard`` command (the console-script entry point); exits the process."""
    cli.main(args=list(argv) if argv is not None else None, prog_name="shipyard")
