"""``shipyard reproduce``: a training recorded by a real script in a real git repository
is re-run from its recorded commit, diff, params and dataset version, and its metrics
compared.

The recording is made once per module (a dirty tree, an untracked file, non-default
hparams, a dataset); afterwards the tree moves on (a new commit and another diff) and
the dataset gets a newer version, so every reproduction below would disagree if it
used today's code or data. Tests that change the store work on a copy of it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from git_support import git

from shipyard.data import DataClient
from shipyard.errors import InvalidArgumentError, StateError
from shipyard.registry import MANIFEST_NAME, RegistryClient
from shipyard.store import series
from shipyard.tracking import TrackingClient
from shipyard.train._reproduce import Note, ReproduceReport, reproduce, resolve_source
from shipyard.types import RunStatus

pytestmark = [
    pytest.mark.skipif(shutil.which("git") is None, reason="needs git"),
    pytest.mark.xdist_group("reproduce"),  # one recording per module, not per worker
]

Cli = Callable[..., "subprocess.CompletedProcess[str]"]  # the shipyard_cli fixture

SCRIPT = textwrap.dedent(
    """
    import sys

    import numpy as np

    import shipyard
    from shipyard.train._hparams import load_hparams

    OFFSET = 0.5

    hp = load_hparams({"seed": 0, "lr": 0.1, "steps": 20})
    scale = float(sys.argv[1])
    with shipyard.start_run(experiment="toy", run_name="toy-train") as run:
        shipyard.log_params(hp)
        x = np.loadtxt(shipyard.data.use("toy"), delimiter=",", ndmin=2)
        w = np.random.default_rng(hp["seed"]).normal(size=x.shape[1])
        y = x.sum(axis=1) * scale + OFFSET
        for step in range(hp["steps"]):
            err = x @ w - y
            shipyard.log_metric("loss", float(np.mean(err**2)), step=step)
            w -= hp["lr"] * x.T @ err / len(x)
        shipyard.log_metric("score", float(w.sum() + OFFSET), step=hp["steps"])
    print(run.id)
    """
)


def _env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHIPYARD_")}
    return {**env, "SHIPYARD_HOME": str(home), **extra}


def _data(home: Path) -> DataClient:
    return DataClient(f"sqlite:///{home / 'shipyard.db'}", str(home / "blobs"), home=home)


@dataclass(frozen=True)
class Recorded:
    home: Path  # the store as it was left; copy it before changing it
    repo: Path
    run_id: str
    commit: str


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Recorded:
    """Run train.py 2 with lr=0.05 on toy@1, from a commit plus a diff that matters."""
    root = tmp_path_factory.mktemp("recorded")
    home, repo = root / "home", root / "repo"
    repo.mkdir()
    (repo / "train.py").write_text(SCRIPT)
    git(repo, "init", "-q")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "train")
    commit = git(repo, "rev-parse", "HEAD").strip()
    (repo / "train.py").write_text(SCRIPT.replace("OFFSET = 0.5", "OFFSET = 1.5"))
    (repo / "notes.txt").write_text("untracked\n")
    (repo / "gone.txt").write_text("deleted after the run\n")
    (root / "toy.csv").write_text("1.0,2.0\n0.5,-1.0\n2.0,0.25\n")
    data = _data(home)
    data.add(root / "toy.csv", "toy")
    proc = subprocess.run(
        [sys.executable, "train.py", "2"], cwd=repo, capture_output=True, text=True,
        env=_env(home, SHIPYARD_HPARAMS='{"lr": 0.05}'), timeout=120, check=True,
    )  # fmt: skip
    run_id = proc.stdout.strip().splitlines()[-1]
    # Afterwards: newer data, a new commit and another diff.
    (root / "toy.csv").write_text("3.0,1.0\n")
    data.add(root / "toy.csv", "toy")
    data.store.close()
    (repo / "gone.txt").unlink()
    (repo / "train.py").write_text(SCRIPT.replace("OFFSET = 0.5", "OFFSET = 2.5"))
    git(repo, "commit", "-q", "-am", "later")
    (repo / "train.py").write_text(SCRIPT.replace("OFFSET = 0.5", "OFFSET = 3.5"))
    return Recorded(home, repo, run_id, commit)


@pytest.fixture(scope="module")
def reproduced(
    recorded: Recorded, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[ReproduceReport, TrackingClient]]:
    """One reproduction of the recorded run, on a copy of its store."""
    home = tmp_path_factory.mktemp("reproduced") / "home"
    shutil.copytree(recorded.home, home)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SHIPYARD_HOME", str(home))
        mp.delenv("SHIPYARD_TRACKING_URI", raising=False)
        mp.delenv("SHIPYARD_BLOB_URI", raising=False)
        report = reproduce(recorded.run_id)
        yield report, TrackingClient()


@pytest.fixture
def store_copy(recorded: Recorded, home: Path) -> TrackingClient:
    """The test's SHIPYARD_HOME holds a copy of the recorded store."""
    shutil.copytree(recorded.home, home)
    return TrackingClient()


def _notes(notes: tuple[Note, ...]) -> str:
    return "\n".join(f"{n.what}: {n.detail}" for n in notes)


def test_the_re_run_agrees_exactly(reproduced: tuple[ReproduceReport, TrackingClient]) -> None:
    """Every final metric of the re-run equals the recorded one, and the folder is removed."""
    report, _ = reproduced
    assert report.problem is None, report.problem
    assert report.agrees
    assert report.exit_code == 0
    assert [(m.key, m.abs_diff, m.agrees) for m in report.metrics] == [
        ("loss", 0.0, True),
        ("score", 0.0, True),
    ]
    assert report.new_run_id not in (None, report.original_run_id)
    assert not report.kept
    assert not report.workdir.exists()
    as_json = json.loads(json.dumps(report.to_dict()))
    assert as_json["agrees"] is True
    row = as_json["metrics"][1]
    assert (row["key"], row["abs_diff"], row["agrees"], row["note"]) == ("score", 0.0, True, "")


def test_the_recorded_commit_and_diff_run_not_todays_tree(
    recorded: Recorded, reproduced: tuple[ReproduceReport, TrackingClient]
) -> None:
    """The code is the recorded commit plus its diff, though the tree has moved on since."""
    report, _ = reproduced
    assert git(recorded.repo, "rev-parse", "HEAD").strip() != recorded.commit
    assert "OFFSET = 3.5" in (recorded.repo / "train.py").read_text()
    restored = _notes(report.restored)
    assert f"code: commit {recorded.commit[:12]}" in restored
    assert "uncommitted diff: applied" in restored
    assert report.command[1:] == (str(report.workdir / "repo" / "train.py"), "2")
    assert report.agrees


def test_params_dataset_version_and_tag_reach_the_re_run(
    recorded: Recorded, reproduced: tuple[ReproduceReport, TrackingClient]
) -> None:
    """The re-run gets the recorded hparams and toy@1 (not the newer toy@2), and is tagged."""
    report, tracking = reproduced
    assert report.new_run_id is not None
    original, new = tracking.get_run(recorded.run_id), tracking.get_run(report.new_run_id)
    assert dict(new.params) == dict(original.params) == {"seed": 0, "lr": 0.05, "steps": 20}
    assert new.tags["shipyard.reproduces"] == recorded.run_id
    read = [tracking.store.get_dataset_version_by_id(i.dataset_version_id).version
            for i in tracking.store.list_run_inputs(new.id)]  # fmt: skip
    assert read == [1]
    assert "dataset toy@1: train: pinned" in _notes(report.restored)


def test_untracked_files_are_named_as_not_restored(
    reproduced: tuple[ReproduceReport, TrackingClient],
) -> None:
    """Untracked files are copied from today's tree when present, and named either way."""
    report, _ = reproduced
    missing = _notes(report.not_restored)
    assert "copied today's from" in missing
    assert "notes.txt" in missing
    assert "gone from" in missing
    assert "gone.txt" in missing


def _register(tracking: TrackingClient, run_id: str, tmp_path: Path) -> RegistryClient:
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / MANIFEST_NAME).write_text(json.dumps({"format": "shipyard.model/1"}))
    tracking.store.log_artifacts(run_id, [tracking._put(pkg, "model")])
    registry = RegistryClient(tracking.tracking_uri, tracking.blob_uri)
    registry.register(f"runs:/{run_id}/model", "toy-model")
    return registry


def test_a_model_version_stands_for_its_run(
    recorded: Recorded, store_copy: TrackingClient, tmp_path: Path
) -> None:
    """models:/NAME/N, NAME@alias and runs:/ resolve to the run; a bad ref says which forms."""
    registry = _register(store_copy, recorded.run_id, tmp_path)
    registry.set_alias("toy-model", "candidate", 1)
    for ref in ("models:/toy-model/1", "toy-model@candidate", f"runs:/{recorded.run_id}/model"):
        run, model = resolve_source(ref, store_copy)
        assert run.id == recorded.run_id
        assert model == (None if ref.startswith("runs:/") else "models:/toy-model/1")
    with pytest.raises(InvalidArgumentError, match="expected a run id, runs:/RUN, or a model"):
        resolve_source("not a run", store_copy)


def test_cli_reproduces_a_model_version(
    recorded: Recorded, store_copy: TrackingClient, tmp_path: Path, shipyard_cli: Cli
) -> None:
    """`shipyard reproduce models:/NAME/1` re-runs the version's run, prints what was and
    was not restored and the metric table, and exits 0 as the metrics agree."""
    _register(store_copy, recorded.run_id, tmp_path)
    ok = shipyard_cli("reproduce", "models:/toy-model/1")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    for text in ("models:/toy-model/1", "Restored", "Not restored", "notes.txt", "score",
                 "metrics agree exactly"):  # fmt: skip
        assert text in ok.stdout, text
    assert "reproduce: cloning" in ok.stderr


def test_cli_names_what_disagrees_and_exits_1(
    recorded: Recorded, store_copy: TrackingClient, shipyard_cli: Cli
) -> None:
    """A final value that differs, or a metric the re-run does not log, is named, and the
    command exits 1."""
    store_copy.store.log_metrics(
        recorded.run_id,
        [series("score", [20], [99.0], [2e9]), series("extra", [0], [1.0], [2e9])],
    )
    bad = shipyard_cli("reproduce", recorded.run_id[-8:], "--tolerance", "0.01")
    assert bad.returncode == 1, bad.stdout + bad.stderr
    assert "metrics DISAGREE: extra (no: missing in the re-run), score (no: recorded 99, " \
        "reproduced" in bad.stdout  # fmt: skip


def test_a_run_without_git_and_without_its_script_is_refused(home: Path, tmp_path: Path) -> None:
    """No commit and no entry point file: a clear error, and nothing is run."""
    tracking = TrackingClient()
    run = tracking.store.create_run(tracking.get_or_create_experiment("e").id)
    gone = str(tmp_path / "gone.py")
    tracking.store.update_run(
        run.id, status=RunStatus.FINISHED, code={"entry_point": gone, "argv": [gone]}
    )
    with pytest.raises(StateError, match=r"recorded no git commit .* cannot be run again"):
        reproduce(run.id)


def test_a_run_without_git_reruns_the_current_file_with_a_warning(
    home: Path, tmp_path: Path
) -> None:
    """No commit but the script is still there: it is re-run where it is, and that is named."""
    script = tmp_path / "plain.py"
    script.write_text(
        "import shipyard\nwith shipyard.start_run():\n    shipyard.log_metric('v', 1.5, step=0)\n"
    )
    tracking = TrackingClient()
    run = tracking.store.create_run(tracking.get_or_create_experiment("e").id)
    tracking.store.log_metrics(run.id, [series("v", [0], [1.5], [1e9])])
    code = {"entry_point": str(script), "argv": [str(script)]}
    tracking.store.update_run(run.id, status=RunStatus.FINISHED, code=code)
    report = reproduce(run.id)
    assert report.agrees, report.problem
    assert "code: no git commit was recorded; ran the current" in _notes(report.not_restored)


def test_a_running_run_and_a_bad_workdir_are_refused(
    recorded: Recorded, store_copy: TrackingClient, tmp_path: Path
) -> None:
    """A run still running has no final metrics; the workdir must be new or empty."""
    run = store_copy.store.create_run(store_copy.get_or_create_experiment("e").id)
    with pytest.raises(StateError, match="metrics are not final"):
        reproduce(run.id)
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "f").write_text("x")
    with pytest.raises(InvalidArgumentError, match="expected a new or empty folder"):
        reproduce(recorded.run_id, workdir=tmp_path / "busy")
    with pytest.raises(InvalidArgumentError, match="tolerance"):
        reproduce(recorded.run_id, tolerance=-1)
