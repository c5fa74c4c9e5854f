"""``shipyard train`` and ``shipyard checkpoints list``.

``shipyard train TARGET`` runs either a Trial (``trial.py:MyTrial`` or
``pkg.module:MyTrial``) in this process through :func:`shipyard.train.fit`,
or a Core API script (``train.py``) as ``python train.py``. With ``--nproc N``
either runs on N processes through torchrun (``torch.distributed.run``), each
worker re-running this command without ``--nproc``. ``--resume RUN`` continues
a run from its latest checkpoint with its recorded hyperparameters.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import click

from shipyard.cli._common import CliState, get_client, resolve_run
from shipyard.errors import InvalidArgumentError, NotFoundError

__all__ = ["list_checkpoints", "train"]


def _load_trial(target: str) -> Any:
    """The Trial class ``file.py:Class`` or ``pkg.module:Class`` names."""
    from shipyard.train import Trial

    module_ref, sep, name = target.rpartition(":")
    if not sep or not name or not module_ref:
        raise InvalidArgumentError(
            f"training target {target!r}: expected trial.py:MyTrial, pkg.module:MyTrial "
            "or a script train.py"
        )
    if module_ref.endswith(".py"):
        path = Path(module_ref).resolve()
        if not path.is_file():
            raise NotFoundError(f"training target {target!r}: no file {path}")
        # imported by its stem from its folder, so the model package can name it
        sys.path.insert(0, str(path.parent))
        module_ref = path.stem
    try:
        module = importlib.import_module(module_ref)
    except ImportError as e:
        raise NotFoundError(f"training target {target!r}: cannot import {module_ref}: {e}") from e
    cls = getattr(module, name, None)
    if not (isinstance(cls, type) and issubclass(cls, Trial)):
        raise InvalidArgumentError(
            f"training target {target!r}: {name} in {module_ref} is "
            f"{'missing' if cls is None else type(cls).__name__}, expected a shipyard.Trial "
            "subclass"
        )
    return cls


def _environment(
    hparams_file: Path | None, sets: tuple[str, ...], resume: str | None
) -> dict[str, str]:
    """What the training process(es) are told through the environment."""
    from shipyard.train._core import ENV_RUN_ID, HPARAMS_TAG
    from shipyard.train._hparams import ENV_HPARAMS, ENV_HPARAMS_FILE, parse_assignment

    env: dict[str, str] = {}
    ctx = click.get_current_context()
    state = ctx.find_object(CliState) or CliState()
    if state.tracking_uri:
        env["SHIPYARD_TRACKING_URI"] = state.tracking_uri
    if state.blob_uri:
        env["SHIPYARD_BLOB_URI"] = state.blob_uri
    values: dict[str, Any] = {}
    if resume:
        os.environ.update(env)
        run = resolve_run(get_client(), resume)
        env[ENV_RUN_ID] = run.id
        # the recorded hyperparameters (exactly, from the tag), unless overridden
        exact = run.tags.get(HPARAMS_TAG)
        values.update(json.loads(exact) if exact else run.params)
    elif os.environ.get(ENV_HPARAMS):
        values.update(json.loads(os.environ[ENV_HPARAMS]))
    if hparams_file is not None:
        from shipyard.train._hparams import read_file

        if resume:
            values.update(read_file(hparams_file))
        else:
            env[ENV_HPARAMS_FILE] = str(hparams_file.resolve())
    values.update(parse_assignment(s) for s in sets)
    if values:
        env[ENV_HPARAMS] = json.dumps(values)
    return env


def _torchrun(nproc: int, args: list[str]) -> list[str]:
    return [
        sys.executable, "-m", "torch.distributed.run", "--standalone",
        f"--nproc-per-node={nproc}", *args,
    ]  # fmt: skip


@click.command("train", context_settings={"ignore_unknown_options": False})
@click.argument("target")
@click.option(
    "--hparams", "hparams_file", type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="YAML or JSON file of hyperparameters.",
)  # fmt: skip
@click.option("--set", "sets", multiple=True, metavar="NAME=VALUE", help="Override one (JSON).")
@click.option("--experiment", "-e", help="Experiment of the new run.")
@click.option("--run-name", help="Name of the new run.")
@click.option("--resume", metavar="RUN", help="Continue RUN from its latest checkpoint.")
@click.option(
    "--nproc",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Data-parallel processes (torchrun; gloo on CPU, NCCL on GPU).",
)
@click.option("--max-epochs", type=click.IntRange(min=1), help="Default: hparams 'epochs'.")
@click.option("--max-steps", type=click.IntRange(min=1), help="Stop after this many steps.")
@click.option("--device", help="cpu, cuda, cuda:1 (default: CUDA when available).")
@click.option(
    "--precision",
    type=click.Choice(["32", "bf16", "16"]),
    default="32",
    show_default=True,
    help="Mixed precision (16: with a gradient scaler).",
)
@click.option(
    "--accumulate",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Batches per optimizer step.",
)
@click.option("--clip-grad-norm", type=float, help="Clip the gradients' global norm.")
@click.option(
    "--log-every",
    type=click.IntRange(min=1),
    default=10,
    show_default=True,
    help="Log the training loss every N steps.",
)
@click.option(
    "--val-every", type=click.IntRange(min=1), help="Validate every N steps (default: each epoch)."
)
@click.option(
    "--checkpoint-every",
    type=click.IntRange(min=1),
    help="Also checkpoint every N steps (always at each epoch's end).",
)
@click.option(
    "--keep-last",
    type=click.IntRange(min=1),
    default=3,
    show_default=True,
    help="Checkpoints kept: the newest N ...",
)
@click.option(
    "--keep-best",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="... and the best K by --monitor.",
)
@click.option("--monitor", help="Metric for --keep-best and --patience (e.g. val_loss).")
@click.option("--mode", type=click.Choice(["min", "max"]), default="min", show_default=True)
@click.option(
    "--patience",
    type=click.IntRange(min=1),
    help="Early stopping: validations without improvement of --monitor.",
)
@click.option(
    "--init-from",
    metavar="URI",
    help="Warm-start weights: runs:/RUN (checkpoint), models:/NAME@alias, or a .safetensors file.",
)
@click.option("--deterministic", is_flag=True, help="Deterministic algorithms (bit-identical).")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
@click.option("--no-model", is_flag=True, help="Do not log the final model package.")
def train(target: str, hparams_file: Path | None, sets: tuple[str, ...], experiment: str | None,
          run_name: str | None, resume: str | None, nproc: int, **opts: Any) -> None:  # fmt: skip
    """Train TARGET: a Trial (trial.py:MyTrial, pkg.module:MyTrial) or a Core API
    script (train.py).

    \b
    Hyperparameters: the Trial's defaults < --hparams FILE < --set NAME=VALUE.
    --resume RUN continues RUN from its latest checkpoint with its recorded
    hyperparameters (--set still overrides).
    """
    env = _environment(hparams_file, sets, resume)
    if experiment:
        env["SHIPYARD_EXPERIMENT"] = experiment
    script = target.endswith(".py") and ":" not in target
    if nproc > 1 or script:
        if script:
            path = Path(target)
            if not path.is_file():
                raise NotFoundError(f"training script {target!r} not found")
            args = [str(path)] if nproc > 1 else [sys.executable, str(path)]
        else:
            args = ["-m", "shipyard.cli", *_worker_args(target, experiment, run_name, opts)]
        cmd = _torchrun(nproc, args) if nproc > 1 else args
        code = _call(cmd, {**os.environ, **env})
        if code:
            raise click.ClickException(f"training exited with status {code}")
        run_id = os.environ.get("SHIPYARD_RUN_ID")
        if run_id and os.environ.get(ENV_CONTRACT):
            _check_contract(run_id, f"runs:/{run_id}/model", only_if_logged=True)
        return
    os.environ.update(env)
    _fit_here(target, experiment, run_name, opts)


def _call(cmd: list[str], env: dict[str, str]) -> int:
    """Run the training process and wait for it, forwarding SIGTERM: a scheduler that
    stops this command must stop the training (which checkpoints) and see this
    command end only after it has."""
    import signal
    import threading

    proc = subprocess.Popen(cmd, env=env)
    if threading.current_thread() is not threading.main_thread():
        return proc.wait()

    def forward(signum: int, frame: Any) -> None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signum)

    previous = signal.signal(signal.SIGTERM, forward)
    try:
        try:
            return proc.wait()
        except KeyboardInterrupt:  # Ctrl-C reached the child too: let it end (a second
            return proc.wait()  # Ctrl-C leaves without waiting)
    finally:
        signal.signal(signal.SIGTERM, previous)


#: A production contract (JSON) to check the trained model against: a search sets
#: it per trial, and the measured latency becomes the run's ``contract.*`` metrics.
ENV_CONTRACT = "SHIPYARD_CONTRACT"
CONTRACT_TAG = "shipyard.contract"


def _check_contract(run_id: str, model_uri: str, *, only_if_logged: bool = False) -> None:
    """Check the run's model against ``SHIPYARD_CONTRACT``; log what was measured."""
    from shipyard.export._check import check_package_contract
    from shipyard.validation import MAX_TAG_LENGTH

    client = get_client()
    if only_if_logged and not client.list_artifacts(run_id, "model"):
        return
    contract = json.loads(os.environ[ENV_CONTRACT])
    report = check_package_contract(model_uri, contract, metrics=client.get_run(run_id).metrics)
    for key in ("latency_p50_ms", "latency_p99_ms"):
        if key in report:
            client.log_metric(run_id, f"contract.{key}", float(report[key]))
    text = json.dumps(report, sort_keys=True)
    client.set_tag(
        run_id, CONTRACT_TAG, text if len(text) <= MAX_TAG_LENGTH else text[:MAX_TAG_LENGTH]
    )
    client.set_tag(run_id, f"{CONTRACT_TAG}.passed", str(bool(report["passed"])).lower())
    verdict = "meets" if report["passed"] else "fails"
    latency = report.get("latency_p99_ms")
    extra = f" (p99 {latency:.3f} ms)" if latency is not None else ""
    click.echo(f"  contract: {verdict} the production contract{extra}")


def _worker_args(
    target: str, experiment: str | None, run_name: str | None, opts: dict[str, Any]
) -> list[str]:
    """This command again, for each torchrun worker (hparams travel in the env)."""
    args = ["train", target]
    if experiment:
        args += ["--experiment", experiment]
    if run_name:
        args += ["--run-name", run_name]
    for key, value in opts.items():
        flag = "--" + key.replace("_", "-")
        if value is None or value is False:
            continue
        args += [flag] if value is True else [flag, str(value)]
    return args


def _fit_here(
    target: str, experiment: str | None, run_name: str | None, opts: dict[str, Any]
) -> None:
    from shipyard.train import fit

    trial = _load_trial(target)
    options = dict(opts)  # the command's options are fit's keyword arguments, but two
    progress = False if options.pop("no_progress") else None
    log_model = None if options.pop("no_model") else "model"
    result = fit(
        trial,
        experiment=experiment,
        run_name=run_name,
        progress=progress,
        log_model=log_model,
        **options,
    )
    if result.run_id is None:  # a worker other than rank 0
        return
    shown = "  ".join(f"{k}={v:.5g}" for k, v in sorted(result.metrics.items()))
    how = (
        "preempted (resume with --resume)" if result.preempted
        else "stopped early" if result.stopped_early else "finished"
    )  # fmt: skip
    click.echo(f"run {result.run_id} {how} at epoch {result.epoch}, step {result.step}")
    if shown:
        click.echo(f"  {shown}")
    if result.model_uri:
        click.echo(f"  model: {result.model_uri}")
        if os.environ.get(ENV_CONTRACT) and not result.preempted:
            _check_contract(result.run_id, result.model_uri)


@click.command("list")
@click.argument("run")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
def list_checkpoints(run: str, as_json: bool) -> None:
    """List a run's checkpoints: step, epoch, metrics, size.

    RUN is a run id, a unique id prefix or suffix, or a unique name.
    """
    from rich.table import Table

    from shipyard.cli._render import console, hint, print_json
    from shipyard.train import Checkpoints

    client = get_client()
    found = resolve_run(client, run)
    infos = Checkpoints(client, found.id).list()
    if as_json:
        print_json(
            [
                {
                    "step": i.step, "epoch": i.epoch, "metrics": dict(i.metrics),
                    "size": i.size, "created_at": i.created_at, "uri": i.uri,
                    "digest": i.digest,
                }
                for i in infos
            ]
        )  # fmt: skip
        return
    if not infos:
        hint(f"run {found.id} has no checkpoints")
        return
    keys = sorted({k for i in infos for k in i.metrics})[:6]
    table = Table(box=None, header_style="bold")
    for col in ("step", "epoch", *keys, "size", "uri"):
        table.add_column(col, justify="right" if col not in ("uri",) else "left")
    for i in infos:
        metrics = [f"{i.metrics[k]:.5g}" if k in i.metrics else "" for k in keys]
        size = f"{i.size / 1024:.1f} KiB" if i.size < 1 << 20 else f"{i.size / (1 << 20):.1f} MiB"
        table.add_row(str(i.step), "" if i.epoch is None else str(i.epoch), *metrics, size, i.uri)
    console().print(table)
