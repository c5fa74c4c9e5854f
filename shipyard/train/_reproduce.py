"""``reproduce``: re-run a recorded training from what its run captured, and check
that the metrics come out the same.

What is restored, and how:

* **code**: the recorded commit is cloned (from the recorded repository folder,
  else its ``origin`` remote) into a fresh folder, and the run's uncommitted diff is
  applied: the full diff from the blob store, else the text kept on the run when it
  was not truncated. Untracked files were never recorded: those still in the
  original folder are copied from there (today's content, not the run's), and the
  report says so.
* **entry point and argv**: the same script, at the same path inside the fresh
  folder, runs with the current Python and the recorded arguments (arguments that
  are paths inside the original repository are moved to the fresh folder); runs of
  the ``shipyard`` command run as ``python -m shipyard.cli ...``. The working
  directory was not recorded: it is inferred from a relative ``argv[0]``
  (``python src/train.py`` ran from the repository root), else the script's folder.
* **hyperparameters**: the recorded params, as JSON in ``SHIPYARD_HPARAMS``, which
  :func:`~shipyard.train._hparams.load_hparams` lays over the script's defaults.
  Seeds are params (``seed``), so they travel the same way; a seed the script
  neither reads through its hparams nor logs cannot be restored.
* **data**: ``SHIPYARD_DATA_PINS`` maps each dataset the run read to the version it
  read, so ``shipyard.data.use("rides")`` and ``"rides@latest"`` resolve to it.
* **environment**: not rebuilt; Python, package, CPU and GPU differences between
  the run and the re-run are named in the report.

The child's runs are tagged ``shipyard.reproduces=<original id>`` (``start_run``
reads ``SHIPYARD_REPRODUCES``); the new run's final metric values (the last value
of each key, ``system/*`` and ``contract.*`` excepted: machine measurements, not
what training computed) are compared with the original's by
:func:`compare_metrics`.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from shipyard import context
from shipyard.data._client import ENV_DATA_PINS
from shipyard.errors import InvalidArgumentError, StateError
from shipyard.registry import RegistryClient
from shipyard.tracking import TrackingClient
from shipyard.tracking._fluent import ENV_REPRODUCES, REPRODUCES_TAG
from shipyard.train._core import HPARAMS_TAG, TRIAL_TAG
from shipyard.train._restore import (
    Note,
    Notes,
    command_for,
    data_pins,
    environment_notes,
    restore_code,
)
from shipyard.types import MetricSummary, Run, RunStatus
from shipyard.uris import parse_models_uri, parse_runs_uri

__all__ = [
    "MetricComparison",
    "Note",
    "ReproduceReport",
    "compare_metrics",
    "reproduce",
    "resolve_source",
]

#: Metric prefixes that measure the machine (system metrics, contract timings).
_MEASURED = ("system/", "contract.")

_FULL_ID = re.compile(r"[0-9a-f]{32}")
_SOURCE_FORMS = (
    "expected a run id, runs:/RUN, or a model version (models:/NAME/3, models:/NAME@alias)"
)

Echo = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class MetricComparison:
    """One metric's final value in the original run and in the re-run (None: absent)."""

    key: str
    recorded: float | None
    reproduced: float | None
    abs_diff: float | None
    agrees: bool
    note: str = ""


@dataclass(frozen=True, slots=True)
class ReproduceReport:
    """What :func:`reproduce` restored, ran and found."""

    source: str
    original_run_id: str
    new_run_id: str | None
    workdir: Path
    kept: bool
    command: tuple[str, ...]
    cwd: Path | None
    #: The child's exit status; None when it timed out.
    exit_code: int | None
    tolerance: float
    restored: tuple[Note, ...] = ()
    not_restored: tuple[Note, ...] = ()
    metrics: tuple[MetricComparison, ...] = ()
    #: Why agreement could not be checked (the re-run failed, started no run, ...).
    problem: str | None = None

    @property
    def agrees(self) -> bool:
        """The re-run succeeded and every compared metric agrees."""
        return self.problem is None and bool(self.metrics) and all(m.agrees for m in self.metrics)

    @property
    def disagreements(self) -> tuple[MetricComparison, ...]:
        return tuple(m for m in self.metrics if not m.agrees)

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "original_run_id": self.original_run_id,
            "new_run_id": self.new_run_id,
            "workdir": str(self.workdir),
            "kept": self.kept,
            "command": list(self.command),
            "cwd": None if self.cwd is None else str(self.cwd),
            "exit_code": self.exit_code,
            "tolerance": self.tolerance,
            "agrees": self.agrees,
            "problem": self.problem,
            "restored": [asdict(n) for n in self.restored],
            "not_restored": [asdict(n) for n in self.not_restored],
            "metrics": [asdict(m) for m in self.metrics],
        }


# -- the run -------------------------------------------------------------------------


def resolve_source(ref: str, tracking: TrackingClient) -> tuple[Run, str | None]:
    """The run to reproduce and, for a model reference, ``models:/NAME/VERSION``.

    ``ref`` is a full run id, ``runs:/RUN[/path]``, or a registered model version
    (``models:/NAME/3``, ``models:/NAME@alias``, or ``NAME/3``, ``NAME@alias``), which
    stands for the run that created it (resolved as ``shipyard lineage`` does).

    Raises:
        InvalidArgumentError: ``ref`` is none of those forms.
        NotFoundError: no such run or model version.
        StateError: the model version was registered without a run.
    """
    if ref.startswith("runs:/"):
        return tracking.get_run(parse_runs_uri(ref).run_id), None
    if _FULL_ID.fullmatch(ref):
        return tracking.get_run(ref), None
    try:
        parsed = parse_models_uri(ref, bare=True)
    except InvalidArgumentError:
        raise InvalidArgumentError(f"cannot reproduce {ref!r}: {_SOURCE_FORMS}") from None
    registry = RegistryClient(tracking.tracking_uri, tracking.blob_uri, store=tracking.store)
    mv = registry.resolve(parsed)
    name = f"models:/{parsed.name}/{mv.version}"
    if mv.run_id is None:
        raise StateError(
            f"cannot reproduce {name}: it was registered without a run, so nothing records "
            "how it was trained; register packages logged in a run (runs:/RUN/model)"
        )
    return tracking.get_run(mv.run_id), name


# -- metrics ---------------------------------------------------------------------------


def _close(a: float, b: float, tolerance: float) -> bool:
    if a == b or (math.isnan(a) and math.isnan(b)):
        return True
    if not (math.isfinite(a) and math.isfinite(b)):
        return False
    return abs(a - b) <= tolerance * max(1.0, abs(a))


def _check_tolerance(tolerance: float) -> float:
    if not (tolerance >= 0 and math.isfinite(tolerance)):
        raise InvalidArgumentError(
            f"invalid tolerance: expected a finite number >= 0, got {tolerance!r}"
        )
    return tolerance


def compare_metrics(
    recorded: Mapping[str, MetricSummary],
    reproduced: Mapping[str, MetricSummary],
    tolerance: float = 0.0,
) -> tuple[MetricComparison, ...]:
    """Compare the last value of each metric, by key (``system/*`` and ``contract.*``,
    timings of this machine, are skipped).

    Two values agree when they are equal (NaN equals NaN), or when
    ``|reproduced - recorded| <= tolerance * max(1, |recorded|)``: an absolute
    tolerance for values up to 1 in size, a relative one above. They must also be
    the value of the same last step. A key on one side only disagrees.
    """
    _check_tolerance(tolerance)
    rows = []
    for key in sorted({*recorded, *reproduced}):
        if key.startswith(_MEASURED):
            continue
        a, b = recorded.get(key), reproduced.get(key)
        if a is None or b is None:
            side = "the re-run" if b is None else "the original run"
            rows.append(
                MetricComparison(
                    key,
                    None if a is None else a.last,
                    None if b is None else b.last,
                    None,
                    False,
                    f"missing in {side}",
                )
            )
            continue
        diff = 0.0 if a.last == b.last else abs(a.last - b.last)
        agrees = _close(a.last, b.last, tolerance)
        note = ""
        if a.last_step != b.last_step:
            agrees, note = False, f"last step {a.last_step} recorded, {b.last_step} reproduced"
        rows.append(MetricComparison(key, a.last, b.last, diff, agrees, note))
    return tuple(rows)


def _absolute(uri: str) -> str:
    """Store and blob URIs the child can open from another working directory."""
    if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
        path, sep, query = uri[len("sqlite:///") :].partition("?")
        if path and path != ":memory:":
            return f"sqlite:///{Path(path).resolve()}{sep}{query}"
    if "://" not in uri and not uri.startswith("memory:"):
        return str(Path(uri).resolve())
    return uri


# -- the whole job ---------------------------------------------------------------------------


def _child_env(run: Run, tracking: TrackingClient, pins: Mapping[str, int]) -> dict[str, str]:
    project = tracking.store.get_project(
        tracking.store.get_experiment(run.experiment_id).project_id
    ).name
    env = dict(os.environ)
    # The recorded params are the whole truth, and the re-run starts afresh: no other
    # hparams file, no run to continue or warm-start from.
    for name in ("SHIPYARD_HPARAMS_FILE", "SHIPYARD_RUN_ID", "SHIPYARD_RESUME_FROM"):
        env.pop(name, None)
    env.update(
        SHIPYARD_TRACKING_URI=_absolute(tracking.tracking_uri),
        SHIPYARD_BLOB_URI=_absolute(tracking.blob_uri),
        SHIPYARD_HOME=str(tracking.settings.home.resolve()),
        SHIPYARD_PROJECT=project,
        # the exact values (lists, mappings) when the run recorded them; else the params
        SHIPYARD_HPARAMS=run.tags.get(HPARAMS_TAG) or json.dumps(dict(run.params)),
    )
    env[ENV_DATA_PINS] = json.dumps(dict(pins))
    env[ENV_REPRODUCES] = run.id
    return env


def _tagged(tracking: TrackingClient, run_id: str) -> list[Run]:
    return list(
        tracking.store.iter_runs(None, f"tags.`{REPRODUCES_TAG}` = '{run_id}'", ["start_time"])
    )


def _pick(new: list[Run], original: Run) -> Run | None:
    """The re-run of ``original`` among the runs the child started: a top-level one,
    of the same name if there is one, else the first started."""
    ids = {r.id for r in new}
    top = [r for r in new if r.parent_run_id not in ids] or new
    same = [r for r in top if r.name == original.name]
    return (same or top)[0] if top else None


def _problem(exit_code: int | None, timeout: float | None, new_run: Run | None) -> str | None:
    if exit_code is None:
        return f"the re-run was stopped after the {timeout} s timeout"
    if exit_code != 0:
        return f"the re-run failed with exit status {exit_code} (its output is above)"
    if new_run is None:
        return (
            "the re-run ended without starting a run: does the entry point call "
            "shipyard.start_run()?"
        )
    if new_run.status is not RunStatus.FINISHED:
        return f"the re-run's run {new_run.id} ended {new_run.status}"
    return None


def reproduce(
    ref: str,
    *,
    workdir: str | os.PathLike[str] | None = None,
    tolerance: float | None = None,
    timeout: float | None = None,
    keep: bool = False,
    tracking_uri: str | None = None,
    blob_uri: str | None = None,
    echo: Echo | None = None,
) -> ReproduceReport:
    """Re-run a recorded training in a fresh folder and compare its metrics.

    See the module docstring for what is restored and how. The child's output goes
    to this process's stdout and stderr.

    Args:
        ref: a run id, ``runs:/RUN``, or a model version (``models:/NAME/3``,
            ``models:/NAME@alias``), which stands for the run that created it.
        workdir: where to restore the code: a new or empty folder, kept afterwards.
            Default: a temporary folder, removed afterwards unless ``keep``.
        tolerance: how far final metric values may drift (see
            :func:`compare_metrics`); default 0: exactly equal, as a CPU run with
            deterministic settings gives.
        timeout: seconds the re-run may take before it is killed (default: no limit).
        keep: keep the temporary folder.
        tracking_uri, blob_uri: the stores (default: those in use); the re-run logs
            to the same ones.
        echo: called with a line for each step (cloning, applying, running).

    Returns:
        The report; ``report.agrees`` says whether the metrics came out the same.

    Raises:
        InvalidArgumentError: a malformed ``ref`` or tolerance, a non-empty
            ``workdir``, or a store only this process can see (``memory:``).
        NotFoundError: no such run or model version, or the recorded commit is
            nowhere to be found.
        StateError: the run is still running, or its code cannot be restored
            (no git commit and no entry point, or a diff that does not apply).
    """
    say = echo or (lambda _line: None)
    tol = _check_tolerance(0.0 if tolerance is None else float(tolerance))
    tracking = TrackingClient(tracking_uri or context.tracking_uri(), blob_uri)
    if tracking.tracking_uri.startswith("memory:"):
        raise InvalidArgumentError(
            "cannot reproduce from an in-memory store: the re-run is another process and "
            "must log to the same store; expected a sqlite:///, postgresql:// or http(s):// "
            "tracking URI"
        )
    run, model = resolve_source(ref, tracking)
    if run.status in (RunStatus.RUNNING, RunStatus.SCHEDULED):
        raise StateError(
            f"run {run.id} is {run.status}: its metrics are not final yet; wait for it to "
            "end, then reproduce it"
        )
    if workdir is None:
        wd, kept = Path(tempfile.mkdtemp(prefix="shipyard-reproduce-")), keep
    else:
        wd, kept = Path(workdir).expanduser().resolve(), True
        if wd.exists() and (not wd.is_dir() or any(wd.iterdir())):
            raise InvalidArgumentError(
                f"invalid workdir {wd}: expected a new or empty folder to restore the code "
                "into, got one that is not empty; name another folder"
            )
        wd.mkdir(parents=True, exist_ok=True)
    notes = Notes()
    if model is not None:
        notes.ok("model", f"{model} was trained by run {run.id}")
    try:
        code = run.code
        dest = restore_code(run.id, code, wd, tracking.blobs.get_bytes, notes, say)
        trial = json.loads(run.tags[TRIAL_TAG]) if TRIAL_TAG in run.tags else None
        command, cwd = command_for(run.id, code, dest, notes, trial=trial)
        pins = data_pins(run, tracking, notes)
        params = ", ".join(f"{k}={v!r}" for k, v in run.params.items())
        notes.ok("hyperparameters", f"SHIPYARD_HPARAMS: {params}" if params else "none recorded")
        if not any("seed" in k.lower() for k in run.params):
            notes.lost(
                "seed",
                "no param names a seed: random numbers drawn from a seed the script neither "
                "reads from its hparams nor logs may differ",
            )
        env = _child_env(run, tracking, pins)
        before = {r.id for r in _tagged(tracking, run.id)}
        say(f"running {' '.join(command)} in {cwd}")
        try:
            exit_code: int | None = subprocess.run(
                command, cwd=cwd, env=env, timeout=timeout, check=False
            ).returncode
        except subprocess.TimeoutExpired:
            exit_code = None
        new = _pick([r for r in _tagged(tracking, run.id) if r.id not in before], run)
        new_run = tracking.get_run(new.id) if new is not None else None
        if new_run is not None and new_run.environment.get("packages"):
            current: Mapping[str, Any] = new_run.environment
        else:
            from shipyard.tracking._context import capture_environment

            current = capture_environment()
        environment_notes(run.environment, current, notes)
        problem = _problem(exit_code, timeout, new_run)
        rows = compare_metrics(run.summaries, new_run.summaries, tol) if new_run else ()
        if problem is None and not rows:
            problem = (
                "the original run recorded no metrics (other than system/*, contract.*): nothing "
                "to compare"
            )
        return ReproduceReport(
            source=model or ref,
            original_run_id=run.id,
            new_run_id=None if new_run is None else new_run.id,
            workdir=wd,
            kept=kept,
            command=tuple(command),
            cwd=cwd,
            exit_code=exit_code,
            tolerance=tol,
            restored=tuple(notes.restored),
            not_restored=tuple(notes.missing),
            metrics=rows,
            problem=problem,
        )
    finally:
        if not kept:
            shutil.rmtree(wd, ignore_errors=True)
