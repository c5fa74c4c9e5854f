"""What :mod:`shipyard.train._reproduce` can and cannot bring back of a run: its code
(in a fresh folder), the command that ran it, its dataset versions, and how today's
environment differs from the recorded one. See that module's docstring for the rules.

Each step appends what it restored, and what it could not, to a :class:`Notes`.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shipyard.errors import NotFoundError, ShipyardError, StateError
from shipyard.tracking import TrackingClient
from shipyard.types import Run

__all__ = ["Note", "Notes", "command_for", "data_pins", "environment_notes", "restore_code"]

_GIT_TIMEOUT = 600.0
#: Untracked files larger than this are not copied (they are usually data).
MAX_UNTRACKED_COPY = 100 * 2**20
_BINARY = re.compile(
    rb"^Binary files (?:a/(.+?)|/dev/null) and (?:b/(.+?)|/dev/null) differ$", re.MULTILINE
)

Echo = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class Note:
    """One thing of the recorded run that was restored (or not), and how."""

    what: str
    detail: str


@dataclass
class Notes:
    """What was restored and what was not, in the order it was found."""

    restored: list[Note] = field(default_factory=list)
    missing: list[Note] = field(default_factory=list)

    def ok(self, what: str, detail: str) -> None:
        self.restored.append(Note(what, detail))

    def lost(self, what: str, detail: str) -> None:
        self.missing.append(Note(what, detail))


def _git(
    args: Sequence[str], cwd: Path, data: bytes | None = None
) -> subprocess.CompletedProcess[bytes]:
    try:
        return subprocess.run(
            ["git", "-c", "advice.detachedHead=false", *args],
            cwd=cwd,
            input=data,
            capture_output=True,
            timeout=_GIT_TIMEOUT,
            check=False,
        )
    except (OSError, subprocess.SubprocessError) as e:
        need = "; reproducing a run needs git on PATH" if shutil.which("git") is None else ""
        raise StateError(f"running git {args[0]} in {cwd} failed: {e}{need}") from e


def _err(out: subprocess.CompletedProcess[bytes]) -> str:
    """git's last line of complaint."""
    lines = out.stderr.decode("utf-8", "replace").strip().splitlines()
    return lines[-1] if lines else f"exit status {out.returncode}"


def restore_code(
    run_id: str,
    code: Mapping[str, Any],
    workdir: Path,
    get_blob: Callable[[str], bytes],
    notes: Notes,
    echo: Echo,
) -> Path | None:
    """Clone the recorded commit under ``workdir``, apply the diff, copy untracked
    files; return the restored repository root (None: the run recorded no commit)."""
    if not code.get("git_commit"):
        return None
    workdir.mkdir(parents=True, exist_ok=True)
    dest = workdir / (Path(str(code.get("git_root") or "code")).name or "code")
    _clone(run_id, code, dest, notes, echo)
    echo("applying the uncommitted diff")
    _apply_diff(run_id, code, dest, get_blob, notes)
    _copy_untracked(code, dest, notes)
    return dest


def _clone(run_id: str, code: Mapping[str, Any], dest: Path, notes: Notes, echo: Echo) -> None:
    commit, root, remote = code["git_commit"], code.get("git_root"), code.get("git_remote")
    sources = [s for s in (root if root and Path(root).is_dir() else None, remote) if s]
    if not sources:
        raise NotFoundError(
            f"cannot restore the code of run {run_id}: its repository folder {root} is gone "
            f"and no remote was recorded; expected the folder, or an 'origin' remote, holding "
            f"commit {commit}"
        )
    failures = []
    for source in sources:
        shutil.rmtree(dest, ignore_errors=True)
        echo(f"cloning {source} at {commit[:12]} into {dest}")
        out = _git(["clone", "--quiet", "--no-checkout", source, str(dest)], dest.parent)
        if out.returncode != 0:
            failures.append(f"cloning {source} failed: {_err(out)}")
            continue
        out = _git(["checkout", "--quiet", "--detach", commit], dest)
        if out.returncode != 0:  # on no branch: ask the source for it by name
            _git(["fetch", "--quiet", "origin", commit], dest)
            out = _git(["checkout", "--quiet", "--detach", commit], dest)
        if out.returncode != 0:
            failures.append(f"commit {commit[:12]} is not in {source} ({_err(out)})")
            continue
        branch = f" (branch {code['git_branch']})" if code.get("git_branch") else ""
        gone = "" if source == root else f", because the folder {root} is gone"
        notes.ok("code", f"commit {commit[:12]}{branch} cloned from {source}{gone}")
        if (dest / ".gitmodules").exists():
            sub = _git(["submodule", "update", "--init", "--recursive", "--quiet"], dest)
            if sub.returncode == 0:
                notes.ok("submodules", "checked out at the commits the recorded commit names")
            else:
                notes.lost("submodules", f"git submodule update failed: {_err(sub)}")
        return
    shutil.rmtree(dest, ignore_errors=True)
    raise NotFoundError(
        f"cannot restore the code of run {run_id}: {'; '.join(failures)}. Was the commit "
        f"amended or rebased away, or never pushed? Fetch it into {root or remote} and try "
        "again"
    )


def _apply_diff(
    run_id: str,
    code: Mapping[str, Any],
    dest: Path,
    get_blob: Callable[[str], bytes],
    notes: Notes,
) -> None:
    digest, text = code.get("git_diff_digest"), code.get("git_diff")
    data: bytes | None = None
    why = "no blob of the full diff was stored"
    if digest:
        try:
            data = get_blob(digest)
        except ShipyardError as e:
            why = f"the full diff's blob is unreadable ({e})"
    if data is None and text and not code.get("git_diff_truncated"):
        data = str(text).encode("utf-8")
    if data is None:
        if text:
            notes.lost(
                "uncommitted diff",
                f"only its first {len(str(text).encode())} bytes were kept on the run and "
                f"{why}; ran the committed code without the diff",
            )
        else:
            notes.ok("uncommitted diff", "none: the tracked files were unchanged")
        return
    binary = sorted(
        {(m.group(2) or m.group(1)).decode("utf-8", "replace") for m in _BINARY.finditer(data)}
    )
    args = ["apply", "--whitespace=nowarn", *(f"--exclude={p}" for p in binary), "-"]
    out = _git(args, dest, data)
    if out.returncode != 0:
        raise StateError(
            f"cannot apply the uncommitted diff of run {run_id} to commit "
            f"{code['git_commit'][:12]}: {_err(out)}; see the diff with "
            f"'shipyard runs show {run_id} --diff'"
        )
    notes.ok("uncommitted diff", f"applied ({len(data)} bytes)")
    if binary:
        notes.lost(
            "binary changes",
            "the diff says only that these files changed, not how; their committed "
            "content was used: " + ", ".join(binary),
        )


def _copy_untracked(code: Mapping[str, Any], dest: Path, notes: Notes) -> None:
    names = [str(n) for n in code.get("git_untracked") or []]
    root = Path(str(code.get("git_root") or ""))
    copied, gone = [], []
    for name in names:
        src, dst = root / name, dest / name
        inside = dst.resolve().is_relative_to(dest.resolve())
        if inside and src.is_file() and src.stat().st_size <= MAX_UNTRACKED_COPY:
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst)
            copied.append(name)
        else:
            gone.append(name)
    if copied:
        notes.lost(
            "untracked files",
            f"their content was never recorded; copied today's from {root} (it may differ "
            "from what the run read): " + ", ".join(copied),
        )
    if gone:
        notes.lost(
            "untracked files",
            f"their content was never recorded and they are gone from {root} (or larger than "
            f"{MAX_UNTRACKED_COPY >> 20} MiB): " + ", ".join(gone),
        )
    more = int(code.get("git_untracked_count") or len(names)) - len(names)
    if more > 0:
        notes.lost("untracked files", f"{more} more were not even named on the run")


def _is_cli(entry: str, argv: Sequence[str]) -> bool:
    """Was the run started by the ``shipyard`` command (or ``python -m shipyard.cli``)?"""
    path = Path(entry).as_posix()
    return (
        Path(entry).name == "shipyard"
        or path.endswith(("shipyard/cli/__main__.py", "shipyard/cli/_main.py"))
        or (bool(argv) and Path(argv[0]).name == "shipyard")
    )


def _original_cwd(entry: Path, argv0: str) -> Path | None:
    """``python src/train.py`` ran in the folder that holds ``src``."""
    a = Path(argv0)
    if not argv0 or a.is_absolute() or ".." in a.parts or len(a.parts) > len(entry.parts):
        return None
    if entry.parts[-len(a.parts) :] != a.parts:
        return None
    return Path(*entry.parts[: -len(a.parts)])


def _trial_command(
    run_id: str, trial: Mapping[str, Any], code: Mapping[str, Any], dest: Path, notes: Notes
) -> tuple[list[str], Path]:
    """``shipyard train FILE:CLASS OPTIONS`` for a run that fit() made: the Trial
    alone, not the whole script that called fit() (which may train many)."""
    root = Path(str(code.get("git_root") or ""))
    file = Path(str(trial.get("file") or ""))
    try:
        rel = file.relative_to(root)
    except ValueError:
        raise StateError(
            f"cannot reproduce run {run_id}: its Trial {trial.get('class')} is defined in "
            f"{file}, outside its repository {root}, so the recorded commit does not hold it"
        ) from None
    if not (dest / rel).is_file():
        raise StateError(
            f"cannot reproduce run {run_id}: {rel}, which defines its Trial, is not in "
            f"commit {str(code.get('git_commit'))[:12]} with the diff applied"
        )
    options = [str(o) for o in trial.get("options") or []]
    args = ["train", f"{dest / rel}:{trial['class']}", *options, "--no-progress"]
    shown = " ".join(["shipyard", "train", f"{rel}:{trial['class']}", *options])
    notes.ok("entry point", f"{shown} (the Trial fit() ran), at the root")
    return [sys.executable, "-m", "shipyard.cli", *args], dest


def command_for(
    run_id: str,
    code: Mapping[str, Any],
    dest: Path | None,
    notes: Notes,
    *,
    trial: Mapping[str, Any] | None = None,
) -> tuple[list[str], Path]:
    """The command line and working directory that re-run the recorded entry point in
    ``dest`` (the restored code; None: run the current file where it is). A run that
    fit() made (``trial``: its ``shipyard.trial`` tag) re-runs that Trial alone."""
    if trial is not None and dest is not None:
        return _trial_command(run_id, trial, code, dest, notes)
    entry = str(code.get("entry_point") or "")
    argv = [str(a) for a in code.get("argv") or []]
    args = argv[1:]
    if not _is_cli(entry, argv) and {"site-packages", "dist-packages"} & set(Path(entry).parts):
        raise StateError(
            f"cannot reproduce run {run_id}: it was started by {entry}, an installed program "
            "(a notebook kernel, a test runner...), not a training script; expected a run "
            "started as 'python script.py' or by the shipyard command"
        )
    if dest is None:
        if not entry or _is_cli(entry, argv) or not Path(entry).is_file():
            raise StateError(
                f"cannot reproduce run {run_id}: it recorded no git commit (its code was not "
                f"in a git repository) and its entry point {entry or '(none)'} cannot be run "
                "again; expected a run started by a script inside a git repository. Commit "
                "the training code to git so that runs record it"
            )
        notes.lost(
            "code",
            f"no git commit was recorded; ran the current {entry}, which may differ from "
            "what the run ran",
        )
        return [sys.executable, entry, *args], Path(entry).parent
    root = Path(str(code.get("git_root") or ""))
    args = [
        str(dest / Path(a).relative_to(root)) if a.startswith(f"{root}{os.sep}") else a
        for a in args
    ]
    if _is_cli(entry, argv):
        notes.ok("entry point", f"shipyard {' '.join(args)} (python -m shipyard.cli), at the root")
        return [sys.executable, "-m", "shipyard.cli", *args], dest
    try:
        rel = Path(entry).relative_to(root)
    except ValueError:
        raise StateError(
            f"cannot reproduce run {run_id}: its entry point {entry} is outside its "
            f"repository {root}, so the recorded commit does not hold it"
        ) from None
    script = dest / rel
    if not script.is_file():
        raise StateError(
            f"cannot reproduce run {run_id}: its entry point {rel} is not in commit "
            f"{str(code['git_commit'])[:12]} with the diff applied (was it an untracked file "
            "that is gone?)"
        )
    cwd = _original_cwd(Path(entry), argv[0] if argv else "")
    if cwd is not None and cwd.is_relative_to(root):
        where, run_in = "the folder argv[0] was relative to", dest / cwd.relative_to(root)
    else:
        where, run_in = (
            "the script's folder (the working directory was not recorded)",
            script.parent,
        )
    shown = " ".join([str(rel), *args])
    notes.ok("entry point", f"{shown}, run by {sys.executable} in {where}")
    return [sys.executable, str(script), *args], run_in


# -- data and environment ------------------------------------------------------------------


def data_pins(run: Run, tracking: TrackingClient, notes: Notes) -> dict[str, int]:
    """``{dataset name: version}`` of what the run read (for ``SHIPYARD_DATA_PINS``),
    noting versions whose files are not in the blob store."""
    store, blobs = tracking.store, tracking.blobs
    read: dict[str, set[int]] = {}
    for item in store.list_run_inputs(run.id):
        try:
            dv = store.get_dataset_version_by_id(item.dataset_version_id)
            name = store.get_dataset(dv.dataset_id).name
        except NotFoundError:
            notes.lost(
                "dataset",
                f"version {item.dataset_version_id} ({item.role}) is no longer in the store",
            )
            continue
        read.setdefault(name, set()).add(dv.version)
        ref = f"{name}@{dv.version}"
        try:
            files = blobs.read_manifest(dv.digest).entries
            absent = sum(1 for e in files if not blobs.exists(e.digest))
        except ShipyardError:
            files, absent = (), max(dv.num_files, 1)
        if absent:
            notes.lost(
                f"dataset {ref}",
                f"{absent} of {max(dv.num_files, len(files))} files are not in the blob store "
                f"{tracking.blob_uri}; fetch them with 'shipyard data pull REMOTE {ref}'",
            )
        else:
            count = f"{dv.num_files} file{'' if dv.num_files == 1 else 's'}"
            notes.ok(f"dataset {ref}", f"{item.role}: pinned, {count} available")
    pins = {}
    for name, versions in read.items():
        if len(versions) == 1:
            pins[name] = next(iter(versions))
        else:
            shown = " and ".join(str(v) for v in sorted(versions))
            notes.lost(
                f"dataset {name}",
                f"the run read versions {shown}; not pinned, so only references that name a "
                "version get the same one",
            )
    return pins


def _normalize(packages: Any) -> dict[str, str]:
    if not isinstance(packages, Mapping):
        return {}
    return {re.sub(r"[-_.]+", "-", str(k)).lower(): str(v) for k, v in packages.items()}


def environment_notes(
    recorded: Mapping[str, Any], current: Mapping[str, Any], notes: Notes
) -> None:
    """Note how ``current`` (the re-run's environment) differs from ``recorded``:
    Python, CPU, GPUs, and every package installed then or now."""
    if not recorded:
        notes.lost("environment", "the run recorded none; versions cannot be compared")
        return
    for key, label in (
        ("python", "Python"),
        ("python_implementation", "Python implementation"),
        ("cpu", "CPU"),
    ):
        a, b = recorded.get(key), current.get(key)
        if a and b and a != b:
            notes.lost(label, f"recorded {a}, now {b}")
        elif a and key == "python":
            notes.ok(label, f"{a}, as recorded")
    gpus_a = ", ".join(str(g.get("name")) for g in recorded.get("gpus") or []) or "none"
    gpus_b = ", ".join(str(g.get("name")) for g in current.get("gpus") or []) or "none"
    if gpus_a != gpus_b:
        notes.lost("GPUs", f"recorded {gpus_a}, now {gpus_b}")
    then, now = _normalize(recorded.get("packages")), _normalize(current.get("packages"))
    if not then:
        notes.lost("packages", "the run recorded no package versions")
        return
    changed = [f"{k} {v} -> {now[k]}" for k, v in then.items() if k in now and now[k] != v]
    missing = [f"{k} {v}" for k, v in then.items() if k not in now]
    added = [f"{k} {v}" for k, v in now.items() if k not in then]
    if changed:
        notes.lost("package versions", "recorded -> now: " + ", ".join(changed))
    if missing:
        notes.lost("packages", "installed then, missing now: " + ", ".join(missing))
    if added:
        notes.lost("packages", "installed now, not then: " + ", ".join(added))
    if not (changed or missing):
        notes.ok(
            "packages", f"the {len(then)} recorded packages are installed at the recorded versions"
        )
