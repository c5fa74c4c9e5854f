"""DVC side by side: the data benchmark's operations with DVC, on the same data.

Needs DVC in its own environment: the executable named by ``SHIPYARD_BENCH_DVC``,
else ``.bench-venv-dvc/bin/dvc`` (``make bench-dvc-env`` creates it; ``make
bench`` never installs DVC). Without one this benchmark prints how to get it
and gives no figures.

The data is ``bench_data``'s (its generators and cache under
``bench-results/cache/data``: 1 GiB of random bytes in one file, and 100,000
files of 1 KiB in 100 folders; ``--quick``: 128 MiB and 10,000 files). For each
dataset, in a fresh git-less project (``dvc init --no-scm``, analytics and the
update check off, DVC's site cache and its global and system config in the
temporary folder), the data is copied into the workspace (untimed), then each
``dvc`` command runs as a subprocess, timed from here: wall seconds, and CPU
seconds = user + sys of the child and its waited-for descendants
(``RUSAGE_CHILDREN`` deltas). Unlike Shipyard's figures these include starting
the interpreter and importing DVC (``dvc status`` of an empty project measures
that). The cache link type is DVC's default (reflink, else copy); which one
the filesystem gives is in the notes. In this order, on one project:

* ``dvc add`` (cold: empty cache and state), then one untimed ``dvc status``
  (as ``bench_data`` warms its stat cache);
* ``dvc status`` unchanged; after ``os.utime`` of every file (same content);
  after one file is modified in place (same size); ``dvc add`` again after it;
* ``dvc checkout`` into an empty workspace (the data deleted first);
* ``dvc push`` to a folder remote (``dvc remote add -d``): without git, only
  the current version's objects; ``dvc pull`` into an empty cache and
  workspace (fetch, then checkout: it writes the data twice with copy links).

As in ``bench_data``: the cheap steps take the best of two runs, ``os.sync``
runs before each step, and steps that write the large file start on
just-freed pages (``bench_data._recycle_pages``). Every figure is "info" (no
target). Peer: ``bench_data``'s figure for the same operation when it ran
earlier in the same ``run.py`` invocation (``run.py`` hands its figures over
through ``use_figures``); otherwise the floor ``bench_data`` uses for it,
measured here. The MD5 floor (DVC hashes with MD5, Shipyard with BLAKE3) is
measured either way.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_data
from _common import ROOT, Figure, temp_dir
from bench_data import (
    _best,
    _files,
    _flip,
    _measured,
    _recycle_pages,
    _touch_all,
)

NAME = "dvc"
ENV_VAR = "SHIPYARD_BENCH_DVC"
VENV_DVC = ROOT / ".bench-venv-dvc" / "bin" / "dvc"
PREFIX = "dvc: "
_DVC_TIMEOUT = 1800.0
_WORKER_TIMEOUT = 900.0
_FICLONE = 0x40049409  # linux/fs.h

Result = dict[str, Any]

# bench_data's figures from this run, by name (see use_figures).
_shipyard: dict[str, Figure] = {}


def use_figures(figures: list[Figure]) -> None:
    """Take the figures measured earlier in this run: ``bench_data``'s are the peers."""
    _shipyard.clear()
    _shipyard.update(
        {f.name: f for f in figures if f.bench == bench_data.NAME and f.value and not f.error}
    )


def find_dvc() -> Path | None:
    """``$SHIPYARD_BENCH_DVC``, else ``.bench-venv-dvc/bin/dvc``, if executable."""
    for candidate in (os.environ.get(ENV_VAR), VENV_DVC):
        if candidate and os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return Path(candidate)
    return None


# -- floors in a fresh interpreter (bench_data's workers, and MD5 here) -------------


def w_floor_md5(args: Result) -> Result:
    """Read every file and MD5 it, one process, one thread (large files memory-mapped)."""
    import hashlib
    import mmap

    paths = _files(Path(args["path"]))

    def work() -> int:
        n = 0
        for p in paths:
            with open(p, "rb") as f:
                size = os.fstat(f.fileno()).st_size
                if size >= 1 << 20:
                    with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m:
                        hashlib.md5(m).hexdigest()
                else:
                    hashlib.md5(f.read()).hexdigest()
                n += size
        return n

    n, wall, cpu = _measured(work)
    return {"wall": wall, "cpu": cpu, "bytes": n, "files": len(paths)}


WORKERS: dict[str, Callable[[Result], Result]] = {"floor_md5": w_floor_md5}


def _worker(name: str, args: Result) -> Result:
    """A floor in a fresh interpreter: ``WORKERS`` here, else ``bench_data``'s."""
    if name not in WORKERS:
        return bench_data._worker(name, args)
    proc = subprocess.run(
        [sys.executable, __file__, name, json.dumps(args)],
        capture_output=True,
        text=True,
        timeout=_WORKER_TIMEOUT,
        cwd=str(ROOT),
    )
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
        raise RuntimeError(
            f"dvc worker {name} failed (exit {proc.returncode}): " + " | ".join(tail)
        )
    result: Result = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


# -- dvc as a subprocess -------------------------------------------------------------


def _children_cpu() -> float:
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return kids.ru_utime + kids.ru_stime


class _Dvc:
    """Runs ``dvc`` commands with an isolated configuration; times each one."""

    def __init__(self, exe: Path, tmp: Path) -> None:
        self.exe = exe
        for sub in ("site-cache", "global-config", "system-config"):
            (tmp / "dvc" / sub).mkdir(parents=True, exist_ok=True)
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
        env.update(
            DVC_NO_ANALYTICS="1",
            DVC_SITE_CACHE_DIR=str(tmp / "dvc" / "site-cache"),
            DVC_GLOBAL_CONFIG_DIR=str(tmp / "dvc" / "global-config"),
            DVC_SYSTEM_CONFIG_DIR=str(tmp / "dvc" / "system-config"),
        )
        self.env = env

    def __call__(self, cwd: Path, *args: str) -> Result:
        c0, w0 = _children_cpu(), time.perf_counter()
        proc = subprocess.run(
            [str(self.exe), *args],
            cwd=str(cwd),
            env=self.env,
            capture_output=True,
            text=True,
            timeout=_DVC_TIMEOUT,
        )
        wall, cpu = time.perf_counter() - w0, _children_cpu() - c0
        if proc.returncode != 0:
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
            raise RuntimeError(
                f"dvc {' '.join(args)} failed (exit {proc.returncode}): " + " | ".join(tail)
            )
        return {"wall": wall, "cpu": cpu, "out": proc.stdout}

    def init(self, project: Path) -> None:
        project.mkdir(parents=True)
        self(project, "init", "--no-scm", "-q")
        self(project, "config", "core.analytics", "false")
        self(project, "config", "core.check_update", "false")

    def version(self) -> str:
        return str(self(ROOT, "--version")["out"]).strip()


def _link_type(folder: Path) -> str:
    """What DVC's default cache link (reflink, else copy) gives on ``folder``'s filesystem."""
    src, dst = folder / ".reflink-probe-src", folder / ".reflink-probe-dst"
    src.write_bytes(b"x" * 4096)
    try:
        with open(src, "rb") as s, open(dst, "wb") as d:
            fcntl.ioctl(d.fileno(), _FICLONE, s.fileno())
        return "reflink"
    except OSError as e:
        if e.errno not in (errno.EOPNOTSUPP, errno.EXDEV, errno.EINVAL, errno.ENOTTY):
            raise
        return "copy"
    finally:
        src.unlink()
        dst.unlink(missing_ok=True)


def _status(res: Result) -> Any:
    out = str(res["out"]).strip()
    return json.loads(out) if out else {}


def _dvcfile(path: Path) -> dict[str, str]:
    """``md5``, ``size`` and ``nfiles`` of the one output in a ``.dvc`` file."""
    text = path.read_text()
    return dict(re.findall(r"^\s*-?\s*(md5|size|nfiles):\s*(\S+)\s*$", text, re.MULTILINE))


def _tree(root: Path) -> tuple[int, int]:
    """Files and bytes under ``root`` (a file or a folder)."""
    files = _files(root) if root.exists() else []
    return len(files), sum(map(os.path.getsize, files))


# -- one dataset --------------------------------------------------------------------


class _Dataset:
    """Runs every DVC operation on one dataset and turns the results into figures."""

    def __init__(self, dvc: _Dvc, label: str, src: Path, tmp: Path, reps: int) -> None:
        self.dvc, self.label, self.src, self.tmp, self.reps = dvc, label, src, tmp, reps
        self.project = tmp / "project"
        self.data = self.project / src.name
        self.dvcfile = self.project / f"{src.name}.dvc"
        if src.is_file():
            self.paths = [str(self.data)]
        else:
            self.paths = [str(self.data / os.path.relpath(p, src)) for p in _files(src)]
        self.figures: list[Figure] = []

    def _repeat(
        self,
        what: str,
        call: Callable[[], Result],
        reps: int,
        before: Callable[[int], None] | None,
        recycle: int,
    ) -> Result:
        runs = []
        for i in range(reps):
            if before is not None:
                before(i)
            if recycle:
                _recycle_pages(self.src, self.tmp / "ballast", recycle)
            os.sync()
            t0 = time.perf_counter()
            runs.append(call())
            took = time.perf_counter() - t0
            print(f"    .. dvc {self.label}: {what} {took:.1f} s", file=sys.stderr, flush=True)
        return _best(runs)

    def step(
        self,
        *args: str,
        reps: int = 1,
        before: Callable[[int], None] | None = None,
        recycle: int = 0,
    ) -> Result:
        """The best of ``reps`` runs of ``dvc ARGS`` in the project."""
        return self._repeat(
            " ".join(args), lambda: self.dvc(self.project, *args), reps, before, recycle
        )

    def floor(
        self,
        name: str,
        reps: int = 1,
        before: Callable[[int], None] | None = None,
        recycle: int = 0,
        **args: Any,
    ) -> Result:
        """The best of ``reps`` runs of floor worker ``name`` in a fresh interpreter."""
        args = {"path": str(self.src), **args}
        return self._repeat(name, lambda: _worker(name, args), reps, before, recycle)

    def shipyard(self, op: str, kind: str) -> Figure | None:
        return _shipyard.get(f"{self.label}: {op}, {'CPU' if kind == 'cpu' else 'wall'}")

    def pair(
        self,
        op: str,
        res: Result,
        *,
        note: str = "",
        floor: str | None = None,
        floor_res: Result | None = None,
        error: str = "",
    ) -> None:
        """Two figures, CPU and wall; peer: Shipyard's same figure, else the floor."""
        for kind in ("cpu", "wall"):
            ours = self.shipyard(op, kind)
            extra = ""
            if ours is not None:
                peer: str | None = "shipyard"
                peer_value: float | None = ours.value
                if floor and floor_res:
                    extra = f"{floor} {floor_res['cpu']:.2f} CPU-s"
            else:
                peer = floor if floor_res else None
                peer_value = floor_res[kind] if floor_res else None
            self.figures.append(
                Figure(
                    NAME,
                    f"{PREFIX}{self.label}: {op}, {'CPU' if kind == 'cpu' else 'wall'}",
                    res[kind],
                    "s",
                    peer=peer,
                    peer_value=peer_value,
                    note="; ".join(x for x in (note, extra) if x) if kind == "cpu" else "",
                    samples=res.get(f"{kind}_samples", [res[kind]]),
                    error=error if kind == "cpu" else "",
                )
            )

    def shipyard_floor(self, op: str) -> Result | None:
        """A floor ``bench_data`` measured in this run (no need to measure it again)."""
        cpu, wall = self.shipyard(op, "cpu"), self.shipyard(op, "wall")
        if cpu is None or wall is None:
            return None
        return {"cpu": cpu.value, "wall": wall.value}


def _sum(a: Result | None, b: Result | None) -> Result | None:
    if a is None or b is None:
        return None
    return {"cpu": a["cpu"] + b["cpu"], "wall": a["wall"] + b["wall"]}


def _count(n: int, what: str) -> str:
    return f"{n:,} {what}{'' if n == 1 else 's'}"


def _check(problems: list[str]) -> str:
    return "; ".join(p for p in problems if p)


def _measure(ds: _Dataset, *, small: bool, link: str) -> None:
    n = len(ds.paths)
    reps = ds.reps
    tmp = ds.tmp
    size = sum(map(os.path.getsize, _files(ds.src)))
    big = 0 if small else size

    # Floors: MD5 (DVC's hash) here; bench_data's copy and walk floors from this run,
    # else measured here.
    md5 = ds.floor("floor_md5", reps)
    ds.pair("floor: read + md5", md5, note=f"{_count(n, 'file')}, 1 thread")
    walk = None
    if small:
        walk = ds.shipyard_floor("floor: scandir + stat walk")
        if walk is None:
            walk = ds.floor("floor_walk", reps)
            ds.pair("floor: scandir + stat walk", walk)
    copy = ds.shipyard_floor("floor: copyfile")
    if copy is None:
        copy_dest = tmp / "copy"

        def clear_copy(_: int) -> None:
            shutil.rmtree(copy_dest, ignore_errors=True)

        copy = ds.floor(
            "floor_copy",
            1 if small else reps,
            before=clear_copy,
            recycle=2 * big,
            dest=str(copy_dest),
        )
        clear_copy(0)
        ds.pair("floor: copyfile", copy)
    copy_md5 = _sum(copy, md5)

    # A fresh project, the data copied into its workspace (untimed).
    ds.dvc.init(ds.project)
    if small:
        shutil.copytree(ds.src, ds.data)
    else:
        shutil.copyfile(ds.src, ds.data)
    target = ds.src.name

    # add (cold), then one untimed status (as bench_data warms its stat cache).
    add = ds.step("add", target, recycle=2 * big)
    out = _dvcfile(ds.dvcfile) if ds.dvcfile.exists() else {}
    ds.pair(
        "add (cold)",
        add,
        note=f"cache link: {link} (DVC's default: reflink, else copy)",
        floor="copy + md5 floor",
        floor_res=copy_md5,
        error=_check(
            [
                "" if out.get("md5") else f"no {ds.dvcfile.name} after add",
                "" if int(out.get("nfiles", 1)) == n else f"add tracked {out.get('nfiles')} files",
                "" if int(out.get("size", -1)) == size else f"add tracked {out.get('size')} bytes",
            ]
        ),
    )
    v1 = out.get("md5")
    ds.dvc(ds.project, "status", "--json")

    # status unchanged.
    st = ds.step("status", "--json", reps=reps)
    ds.pair(
        "status unchanged",
        st,
        floor="stat walk floor" if small else None,
        floor_res=walk,
        error="" if _status(st) == {} else f"status: {_status(st)}",
    )

    # status after touching every file: same content, new mtimes (in the past).
    base_ns = time.time_ns() - 3600 * 1_000_000_000

    def touch(i: int) -> None:
        _touch_all(ds.paths, base_ns + i * 1_000_000_000)

    st = ds.step("status", "--json", reps=reps, before=touch)
    ds.pair(
        "status, every file touched",
        st,
        floor="md5 floor",
        floor_res=md5,
        error="" if _status(st) == {} else f"status: {_status(st)}",
    )

    # One file modified in place (same size), a new content each repetition.
    victim = ds.paths[len(ds.paths) // 2]
    with open(victim, "rb") as f:
        original = f.read(16)

    def modify(i: int) -> None:
        _flip(victim, original, i + 1)

    st = ds.step("status", "--json", reps=reps, before=modify)
    ds.pair(
        "status, 1 file modified",
        st,
        floor="stat walk floor" if small else "md5 floor",
        floor_res=walk if small else md5,
        error="" if "modified" in json.dumps(_status(st)) else f"status: {_status(st)}",
    )
    readd = ds.step("add", target, recycle=2 * big)
    v2 = _dvcfile(ds.dvcfile).get("md5")
    ds.pair(
        "re-add, 1 file modified",
        readd,
        floor="stat walk floor" if small else "copy + md5 floor",
        floor_res=walk if small else copy_md5,
        error="" if v2 and v2 != v1 else f"re-add left md5 {v2} (was {v1})",
    )

    # checkout into an empty workspace.
    def clear_data(_: int) -> None:
        if small:
            shutil.rmtree(ds.data)
        else:
            ds.data.unlink()

    co = ds.step("checkout", before=clear_data, recycle=2 * big)
    files, nbytes = _tree(ds.data)
    ds.pair(
        "checkout to empty folder",
        co,
        note=f"{_count(files, 'file')}; cache link: {link}",
        floor="copy + md5 floor",
        floor_res=copy_md5,
        error="" if (files, nbytes) == (n, size) else f"checkout wrote {files} files, {nbytes} B",
    )

    # push to a folder remote (the current version: no git, no other revisions).
    remote = tmp / "remote"
    ds.dvc(ds.project, "remote", "add", "-d", "bench", str(remote))
    expected = n + 1 if small else 1  # every file and the .dir listing / the one file
    push = ds.step("push", recycle=3 * big)
    pushed = len(_files(remote)) if remote.exists() else 0
    ds.pair(
        "push to folder remote",
        push,
        note=f"{_count(pushed, 'file')} written (the current version only)",
        error="" if pushed == expected else f"remote holds {pushed} files, not {expected}",
    )
    ours = _shipyard.get(f"{ds.label}: push, objects written")
    ds.figures.append(
        Figure(
            NAME,
            f"{PREFIX}{ds.label}: push, objects written",
            pushed,
            "writes",
            peer="shipyard" if ours else None,
            peer_value=ours.value if ours else None,
            note="one file per object",
        )
    )

    # pull into an empty cache and workspace.
    def clear_all(_: int) -> None:
        shutil.rmtree(ds.project / ".dvc" / "cache")
        clear_data(0)

    pull = ds.step("pull", before=clear_all, recycle=3 * big)
    files, nbytes = _tree(ds.data)
    cached = len(_files(ds.project / ".dvc" / "cache"))
    ds.pair(
        "pull from folder remote",
        pull,
        note=f"{_count(cached, 'object')} into the cache, then {_count(files, 'file')} checked out",
        error=_check(
            [
                "" if (files, nbytes) == (n, size) else f"pull wrote {files} files, {nbytes} B",
                "" if cached == expected else f"cache holds {cached} files, not {expected}",
            ]
        ),
    )


def run(quick: bool = False) -> list[Figure]:
    exe = find_dvc()
    if exe is None:
        print(
            f"  DVC not found (${ENV_VAR} or {VENV_DVC.relative_to(ROOT)}): "
            "`make bench-dvc-env` installs it in its own environment; no figures"
        )
        return []
    reps = 2
    sets = bench_data.datasets(quick)
    figures: list[Figure] = []
    with temp_dir("dvc") as tmp:
        dvc = _Dvc(exe, tmp)
        version = dvc.version()
        link = _link_type(tmp)
        empty = tmp / "empty"
        dvc.init(empty)
        runs = []
        for _ in range(reps):
            runs.append(dvc(empty, "status", "--json"))
        overhead = _best(runs)
        for kind in ("cpu", "wall"):
            figures.append(
                Figure(
                    NAME,
                    f"{PREFIX}status of an empty project, {'CPU' if kind == 'cpu' else 'wall'}",
                    overhead[kind],
                    "s",
                    note=f"DVC {version} ({exe}): start-up and import, in every figure below"
                    if kind == "cpu"
                    else "",
                    samples=overhead[f"{kind}_samples"],
                )
            )
    for label, src, is_small, _ in sets:
        with temp_dir("dvc") as tmp:
            ds = _Dataset(_Dvc(exe, tmp), label, src, tmp, reps)
            try:
                _measure(ds, small=is_small, link=link)
            except Exception as e:  # keep what was measured; the rest fails visibly
                ds.figures.append(bench_data.failed_rest(NAME, f"{PREFIX}{label}", e))
            figures += ds.figures
    return figures


if __name__ == "__main__":
    _name, _raw = sys.argv[1], sys.argv[2]
    _out = WORKERS[_name](json.loads(_raw))
    sys.stdout.write("\n" + json.dumps(_out) + "\n")
    sys.stdout.flush()
