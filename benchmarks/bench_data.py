"""Data versioning: add, status, checkout, push and pull on generated data.

Two generated datasets (nothing downloaded), kept under
``bench-results/cache/data`` between runs: one file of 1 GiB of random bytes,
and 100,000 files of 1 KiB (distinct content) in 100 folders. ``--quick``:
128 MiB and 10,000 files.

Each operation runs in a fresh interpreter through the public ``DataClient``
(SQLite metadata, local blob folder, stat cache in a temporary SHIPYARD_HOME);
``shipyard`` and the modules the operation imports lazily are imported, and the
store is opened, before the clock starts. Figures are wall seconds and CPU
seconds (user + sys of the whole process, every thread) around the call only,
in this order on one home:

* add (cold: empty stat cache and blob store), then one untimed ``status`` to
  warm the stat cache;
* status unchanged; status after ``os.utime`` of every file (same content:
  everything is re-hashed, nothing changes); status after one file is
  modified in place (same size); re-add after that modification;
* checkout of version 1 into an empty folder;
* push of both versions to a folder remote; pull of them into an empty blob
  store (same metadata).

Floors, measured in the same run in fresh interpreters: reading the same bytes
and hashing them with BLAKE3 in one process (for the large file: memory-mapped,
all cores and one thread), ``shutil.copyfile`` of the same bytes (on the
filesystem of the blob store), and for the small files a ``scandir`` + ``stat``
walk. The cheap operations take the best of two runs. Dirty pages are flushed
(``os.sync``) before each step, and steps that write the large file start on
just-freed memory (see ``_recycle_pages``); files stay in the page cache
throughout (nothing here drops it).

Targets (issue): status unchanged on 100,000 files <= 0.6 CPU-s; add of 1 GiB
<= 1 CPU-s beyond the copy; push of 100,000 small files <= 100 object writes.
``--quick`` scales the two CPU targets with the data size.
"""

from __future__ import annotations

import json
import os
import random
import resource
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import CACHE_DIR, ROOT, Figure, temp_dir

NAME = "data"
TARGET_STATUS_CPU_S = 0.6  # status of 100,000 unchanged files
TARGET_ADD_BEYOND_COPY_S = 1.0  # add of 1 GiB, CPU beyond the copy
TARGET_PUSH_WRITES = 100  # objects written by a push of 100,000 small files
FOLDERS = 100
SMALL_SIZE = 1024
DATA_DIR = CACHE_DIR / "data"
_GEN_VERSION = 1
_WORKER_TIMEOUT = 900.0

Result = dict[str, Any]


# -- generated data -----------------------------------------------------------------


def _big_file(size: int) -> Path:
    """One file of ``size`` random bytes (seeded: the same bytes every run)."""
    folder = DATA_DIR / f"big-{size >> 20}MiB"
    path = folder / "big.bin"
    marker = folder / ".complete"
    spec = json.dumps({"v": _GEN_VERSION, "size": size})
    if marker.exists() and marker.read_text() == spec and path.stat().st_size == size:
        return path
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    rng = random.Random(1)
    chunk = 16 << 20
    with open(path, "wb") as f:
        for offset in range(0, size, chunk):
            f.write(rng.randbytes(min(chunk, size - offset)))
    marker.write_text(spec)
    return path


def _small_files(n: int) -> Path:
    """``n`` files of 1 KiB of distinct random bytes in ``FOLDERS`` folders."""
    root = DATA_DIR / f"small-{n}"
    tree = root / "tree"
    marker = root / ".complete"
    spec = json.dumps({"v": _GEN_VERSION, "n": n, "size": SMALL_SIZE, "folders": FOLDERS})
    if marker.exists() and marker.read_text() == spec:
        return tree
    shutil.rmtree(root, ignore_errors=True)
    rng = random.Random(2)
    per = -(-n // FOLDERS)
    for d in range(FOLDERS):
        folder = tree / f"d{d:03d}"
        folder.mkdir(parents=True)
        for i in range(d * per, min(n, (d + 1) * per)):
            with open(folder / f"f{i:06d}.bin", "wb") as f:
                f.write(rng.randbytes(SMALL_SIZE))
    marker.write_text(spec)
    return tree


def _files(root: Path) -> list[str]:
    if root.is_file():
        return [str(root)]
    out = []
    for folder, _, names in os.walk(root):
        out.extend(os.path.join(folder, n) for n in names)
    out.sort()
    return out


def _recycle_pages(src: Path, folder: Path, nbytes: int) -> None:
    """Write ``nbytes`` of copies of ``src`` and delete them (untimed).

    On this kind of VM, writing a GiB into memory not recently freed costs ~2.5
    sys-s against ~0.3 into memory just freed (copyfile of 1 GiB, back to back:
    0.4, 2.4, 2.7, 2.5 sys-s; 0.3 after deleting 2 GiB). Steps that write a large
    file start after this, so they and their floors are measured alike.
    """
    folder.mkdir(parents=True, exist_ok=True)
    made = []
    for i in range(max(1, -(-nbytes // max(1, src.stat().st_size)))):
        made.append(folder / f"ballast-{i}")
        shutil.copyfile(src, made[-1])
    for path in made:
        path.unlink()


def _touch_all(paths: list[str], when_ns: int) -> None:
    for p in paths:
        os.utime(p, ns=(when_ns, when_ns))


def _flip(path: str, original: bytes, key: int) -> None:
    """Overwrite the first bytes in place with ``original`` XOR ``key`` (same size)."""
    fd = os.open(path, os.O_WRONLY)
    try:
        os.pwrite(fd, bytes(b ^ key for b in original), 0)
    finally:
        os.close(fd)


# -- workers: one operation in a fresh interpreter ----------------------------------


def _cpu() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def _measured(fn: Callable[[], Any]) -> tuple[Any, float, float]:
    """``fn()``, its wall seconds and CPU seconds."""
    c0, w0 = _cpu(), time.perf_counter()
    out = fn()
    return out, time.perf_counter() - w0, _cpu() - c0


def _client(args: Result) -> Any:
    os.environ["SHIPYARD_HOME"] = args["home"]
    import fsspec.core  # noqa: F401  (imported lazily by push/pull: not timed)

    import shipyard
    import shipyard.data._remote
    import shipyard.data._scan
    import shipyard.data._statcache
    from shipyard.data import DataClient

    home = Path(args["home"])
    client = DataClient(tracking_uri=f"sqlite:///{args['db']}", blob_uri=args["blobs"], home=home)
    client._project_id()  # opens (and on first use creates) the metadata store
    client.blobs  # noqa: B018
    client.stat_cache  # noqa: B018
    scans: list[Any] = []
    real_scan = shipyard.data._scan.scan

    def recording_scan(*a: Any, **kw: Any) -> Any:
        result = real_scan(*a, **kw)
        scans.append(result)
        return result

    shipyard.data._scan.scan = recording_scan  # type: ignore[assignment]
    client.bench_scans = scans  # type: ignore[attr-defined]
    return client


def _scanned(client: Any) -> Result:
    scans = client.bench_scans
    out = {
        "files_hashed": sum(s.files_hashed for s in scans),
        "bytes_hashed": sum(s.bytes_hashed for s in scans),
        "scan_s": sum(s.seconds for s in scans),
    }
    scans.clear()
    return out


def _changes(changes: Any) -> Result:
    return {k: len(getattr(changes, k)) for k in ("added", "modified", "deleted")}


def _report(rep: Any) -> Result:
    keys = ("objects_moved", "bytes_moved", "objects_skipped", "requests", "packs_written")
    return {k: getattr(rep, k) for k in keys}


def w_add(args: Result) -> Result:
    client = _client(args)
    res, wall, cpu = _measured(lambda: client.add(args["path"], args["name"]))
    out = {"wall": wall, "cpu": cpu, "created": res.created, **_changes(res.changes)}
    out.update(_scanned(client), version=res.version.version, files=res.version.num_files)
    if args.get("warm"):  # the untimed status that fills the stat cache's reads
        client.status(args["name"])
        out["warm_files_hashed"] = _scanned(client)["files_hashed"]
    return out


def w_status(args: Result) -> Result:
    client = _client(args)
    reports, wall, cpu = _measured(lambda: client.status(args["name"]))
    (rep,) = reports
    return {"wall": wall, "cpu": cpu, **_changes(rep.changes), **_scanned(client)}


def w_checkout(args: Result) -> Result:
    client = _client(args)
    _, wall, cpu = _measured(lambda: client.checkout(args["ref"], args["dest"]))
    files = _files(Path(args["dest"]))
    return {
        "wall": wall,
        "cpu": cpu,
        "files": len(files),
        "bytes": sum(map(os.path.getsize, files)),
    }


def w_push(args: Result) -> Result:
    client = _client(args)
    rep, wall, cpu = _measured(lambda: client.push(args["remote"]))
    root = Path(args["remote"])
    written = [p for p in _files(root) if not os.path.relpath(p, root).startswith("tmp/")]
    return {"wall": wall, "cpu": cpu, "remote_files": len(written), **_report(rep)}


def w_pull(args: Result) -> Result:
    client = _client(args)
    rep, wall, cpu = _measured(lambda: client.pull(args["remote"]))
    return {"wall": wall, "cpu": cpu, **_report(rep)}


def w_floor_hash(args: Result) -> Result:
    """Read every file and BLAKE3 it, one process (mode: read, mmap-auto, mmap-1)."""
    import mmap

    import blake3

    paths = _files(Path(args["path"]))
    mode = args["mode"]

    def work() -> int:
        n = 0
        for p in paths:
            if mode == "read":
                fd = os.open(p, os.O_RDONLY)
                try:
                    data = os.read(fd, os.fstat(fd).st_size + 1)
                finally:
                    os.close(fd)
                blake3.blake3(data).hexdigest()
                n += len(data)
            else:
                threads = blake3.blake3.AUTO if mode == "mmap-auto" else 1
                with open(p, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m:
                    blake3.blake3(m, max_threads=threads).hexdigest()
                    n += len(m)
        return n

    n, wall, cpu = _measured(work)
    return {"wall": wall, "cpu": cpu, "bytes": n, "files": len(paths)}


def w_floor_copy(args: Result) -> Result:
    """``shutil.copyfile`` of every file to ``dest`` (folders made untimed)."""
    src, dest = Path(args["path"]), Path(args["dest"])
    paths = _files(src)
    base = src.parent if src.is_file() else src
    pairs = [(p, str(dest / os.path.relpath(p, base))) for p in paths]
    for d in {os.path.dirname(t) for _, t in pairs}:
        os.makedirs(d, exist_ok=True)

    def work() -> None:
        for s, t in pairs:
            shutil.copyfile(s, t)

    _, wall, cpu = _measured(work)
    return {"wall": wall, "cpu": cpu, "files": len(pairs)}


def w_floor_walk(args: Result) -> Result:
    """``scandir`` + ``stat`` of every file: what a stat-cache walk cannot avoid."""

    def work() -> int:
        n, folders = 0, [args["path"]]
        while folders:
            folder = folders.pop()
            with os.scandir(folder) as it:
                for e in it:
                    if e.is_dir(follow_symlinks=False):
                        folders.append(e.path)
                    else:
                        e.stat()
                        n += 1
        return n

    n, wall, cpu = _measured(work)
    return {"wall": wall, "cpu": cpu, "files": n}


WORKERS: dict[str, Callable[[Result], Result]] = {
    "add": w_add,
    "status": w_status,
    "checkout": w_checkout,
    "push": w_push,
    "pull": w_pull,
    "floor_hash": w_floor_hash,
    "floor_copy": w_floor_copy,
    "floor_walk": w_floor_walk,
}


def _worker(name: str, args: Result) -> Result:
    """Run ``WORKERS[name](args)`` in a fresh interpreter (as ``_common.run_worker``)."""
    env = dict(os.environ)
    env.pop("SHIPYARD_TRACKING_URI", None)
    env.pop("SHIPYARD_BLOB_URI", None)
    proc = subprocess.run(
        [sys.executable, __file__, name, json.dumps(args)],
        capture_output=True,
        text=True,
        timeout=_WORKER_TIMEOUT,
        env=env,
        cwd=str(ROOT),
    )
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
        raise RuntimeError(
            f"data worker {name} failed (exit {proc.returncode}): " + " | ".join(tail)
        )
    result: Result = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def _best(runs: list[Result]) -> Result:
    """The run with the least CPU, its wall replaced by the least wall; samples kept."""
    best = dict(min(runs, key=lambda r: r["cpu"]))
    best["wall"] = min(r["wall"] for r in runs)
    best["cpu_samples"] = [r["cpu"] for r in runs]
    best["wall_samples"] = [r["wall"] for r in runs]
    return best


# -- one dataset --------------------------------------------------------------------


class _Dataset:
    """Runs every operation on one dataset and turns the results into figures."""

    def __init__(self, label: str, src: Path, tmp: Path, reps: int) -> None:
        self.label, self.src, self.tmp, self.reps = label, src, tmp, reps
        self.home = tmp / "home"
        self.base = {
            "home": str(self.home),
            "db": str(self.home / "s.db"),
            "blobs": str(self.home / "blobs"),
            "name": "bench",
            "path": str(src),
        }
        self.paths = _files(src)
        self.figures: list[Figure] = []
        self.results: dict[str, Result] = {}

    def run(
        self,
        name: str,
        reps: int = 1,
        before: Callable[[int], None] | None = None,
        recycle: int = 0,
        **args: Any,
    ) -> Result:
        """The best of ``reps`` runs of worker ``name``; ``before(i)`` prepares run i;
        ``recycle`` bytes of pages are freed just before each (see ``_recycle_pages``)."""
        runs = []
        for i in range(reps):
            if before is not None:
                before(i)
            if recycle:
                _recycle_pages(self.src, self.tmp / "ballast", recycle)
            os.sync()  # no writeback of an earlier step's gigabyte lands in this one
            t0 = time.perf_counter()
            runs.append(_worker(name, {**self.base, **args}))
            took = time.perf_counter() - t0
            print(f"    .. {self.label}: {name} {took:.1f} s", file=sys.stderr, flush=True)
        return _best(runs)

    def pair(
        self,
        op: str,
        res: Result,
        *,
        note: str = "",
        target: float | None = None,
        peer: str | None = None,
        peer_res: Result | None = None,
        error: str = "",
    ) -> None:
        """Two figures: CPU (with the target) and wall."""
        self.results[op] = res
        for kind in ("cpu", "wall"):
            self.figures.append(
                Figure(
                    NAME,
                    f"{self.label}: {op}, {'CPU' if kind == 'cpu' else 'wall'}",
                    res[kind],
                    "s",
                    target=target if kind == "cpu" else None,
                    peer=peer if peer_res else None,
                    peer_value=peer_res[kind] if peer_res else None,
                    note=note if kind == "cpu" else "",
                    samples=res.get(f"{kind}_samples", [res[kind]]),
                    error=error if kind == "cpu" else "",
                )
            )


def _sum(a: Result, b: Result) -> Result:
    return {"cpu": a["cpu"] + b["cpu"], "wall": a["wall"] + b["wall"]}


def _hashed(res: Result) -> str:
    return f"hashed {res['files_hashed']:,} files, {res['bytes_hashed'] / 2**20:,.0f} MiB"


def _check(problems: list[str]) -> str:
    return "; ".join(p for p in problems if p)


def _measure(ds: _Dataset, *, small: bool, scale: float) -> None:
    n = len(ds.paths)
    reps = ds.reps
    tmp = ds.tmp

    # Floors.
    if small:
        hash_floor = ds.run("floor_hash", reps, mode="read")
        ds.pair("floor: read + blake3", hash_floor, note=f"{n:,} files, 1 thread")
        walk = ds.run("floor_walk", reps)
        ds.pair("floor: scandir + stat walk", walk)
    else:
        auto = ds.run("floor_hash", reps, mode="mmap-auto")
        ds.pair("floor: blake3 mmap, all cores", auto)
        hash_floor = ds.run("floor_hash", reps, mode="mmap-1")
        ds.pair("floor: blake3 mmap, 1 thread", hash_floor)
        walk = None
    copy_dest = tmp / "copy"

    def clear_copy(_: int) -> None:
        shutil.rmtree(copy_dest, ignore_errors=True)

    # 100,000 file creations (~10 s here): once for the small files.
    # Steps writing the large file start on recycled pages (see _recycle_pages).
    big = 0 if small else os.path.getsize(ds.src)
    copy = ds.run(
        "floor_copy", 1 if small else reps, before=clear_copy, recycle=2 * big, dest=str(copy_dest)
    )
    clear_copy(0)
    ds.pair("floor: copyfile", copy)
    copy_hash = _sum(copy, hash_floor)

    # add (cold), then one untimed status to warm the stat cache.
    add = ds.run("add", recycle=2 * big, warm=True)
    ds.pair(
        "add (cold)",
        add,
        note=_hashed(add) + f"; warm-up status hashed {add['warm_files_hashed']:,}",
        peer="copy + hash floor",
        peer_res=copy_hash,
        error=_check(
            [
                "" if add["created"] and add["files"] == n else f"add made {add}",
                "" if add["files_hashed"] == n else f"add hashed {add['files_hashed']} of {n}",
            ]
        ),
    )
    if not small:
        ds.figures.append(
            Figure(
                NAME,
                f"{ds.label}: add CPU beyond the copy",
                add["cpu"] - copy["cpu"],
                "s",
                target=TARGET_ADD_BEYOND_COPY_S * scale,
                peer="1-thread hash floor",
                peer_value=hash_floor["cpu"],
                note=f"add {add['cpu']:.2f} - copyfile {copy['cpu']:.2f} CPU-s",
            )
        )

    # status unchanged (warm stat cache).
    st = ds.run("status", reps)
    ds.pair(
        "status unchanged",
        st,
        note=_hashed(st),
        target=TARGET_STATUS_CPU_S * scale if small else None,
        peer="stat walk floor" if small else None,
        peer_res=walk,
        error=_check(
            [
                "" if st["files_hashed"] == 0 else f"re-hashed {st['files_hashed']} files",
                "" if st["modified"] + st["added"] + st["deleted"] == 0 else f"changes: {st}",
            ]
        ),
    )

    # status after touching every file: re-hash everything, same content.
    # New mtimes in the past: a file modified within the stat cache's racy window
    # (as a future mtime would be) is re-hashed on every scan, by design.
    base_ns = time.time_ns() - 3600 * 1_000_000_000

    def touch(i: int) -> None:
        _touch_all(ds.paths, base_ns + i * 1_000_000_000)

    st = ds.run("status", reps, before=touch)
    ds.pair(
        "status, every file touched",
        st,
        note=_hashed(st),
        peer="hash floor",
        peer_res=hash_floor,
        error=_check(
            [
                "" if st["files_hashed"] == n else f"hashed {st['files_hashed']} of {n}",
                "" if st["modified"] + st["added"] + st["deleted"] == 0 else f"changes: {st}",
            ]
        ),
    )

    # One file modified in place (same size), a new mtime each repetition.
    victim = ds.paths[len(ds.paths) // 2]
    with open(victim, "rb") as f:
        original = f.read(16)
    try:

        def modify(i: int) -> None:
            _flip(victim, original, i + 1)

        st = ds.run("status", reps, before=modify)
        ds.pair(
            "status, 1 file modified",
            st,
            note=_hashed(st),
            peer="stat walk floor" if small else "1-thread hash floor",
            peer_res=walk if small else hash_floor,
            error=_check(
                [
                    "" if st["files_hashed"] == 1 else f"hashed {st['files_hashed']} files, not 1",
                    "" if st["modified"] == 1 else f"changes: {st}",
                ]
            ),
        )
        readd = ds.run("add", recycle=2 * big)
        ds.pair(
            "re-add, 1 file modified",
            readd,
            note=_hashed(readd),
            peer="stat walk floor" if small else "copy + hash floor",
            peer_res=walk if small else copy_hash,
            error=_check(
                [
                    "" if readd["created"] and readd["version"] == 2 else f"re-add made {readd}",
                    "" if readd["modified"] == 1 else f"re-add saw {readd}",
                ]
            ),
        )
    finally:
        _flip(victim, original, 0)

    # checkout of version 1 into an empty folder.
    dest = tmp / "checkout"
    co = ds.run("checkout", recycle=2 * big, ref="bench@1", dest=str(dest))
    size = sum(os.path.getsize(p) for p in ds.paths)
    ds.pair(
        "checkout to empty folder",
        co,
        note=f"{co['files']:,} files",
        peer="copy + hash floor",
        peer_res=copy_hash,
        error="" if co["files"] == n and co["bytes"] == size else f"checkout wrote {co}",
    )
    shutil.rmtree(dest, ignore_errors=True)

    # push both versions to a folder remote; pull them into an empty blob store.
    remote = tmp / "remote"
    expected = n + 1 + 2  # every file, the modified one's new blob, two manifests
    push = ds.run("push", recycle=3 * big, remote=str(remote))
    ds.pair(
        "push to folder remote",
        push,
        note=f"{push['objects_moved']:,} objects, {push['requests']:,} requests, "
        f"{push['packs_written']} packs, {push['remote_files']:,} files written",
        error="" if push["objects_moved"] == expected else f"push moved {push['objects_moved']}",
    )
    ds.figures.append(
        Figure(
            NAME,
            f"{ds.label}: push, objects written",
            push["remote_files"],
            "writes",
            target=TARGET_PUSH_WRITES if small else None,
            note=f"{push['requests']:,} remote requests (listings, writes, renames, mkdirs)",
        )
    )
    shutil.rmtree(ds.home / "blobs", ignore_errors=True)  # disk space; pushed already
    other = tmp / "home2"
    pull = ds.run(
        "pull", recycle=3 * big, home=str(other), blobs=str(other / "blobs"), remote=str(remote)
    )
    ds.pair(
        "pull from folder remote",
        pull,
        note=f"{pull['objects_moved']:,} objects, {pull['requests']:,} requests",
        error="" if pull["objects_moved"] == expected else f"pull moved {pull['objects_moved']}",
    )


def datasets(quick: bool) -> list[tuple[str, Path, bool, float]]:
    """``(label, path, small, scale)`` of the two generated datasets (made once, cached);
    ``scale`` is the size relative to the full one, for scaling the targets."""
    big_size = (128 << 20) if quick else (1 << 30)
    n_small = 10_000 if quick else 100_000
    return [
        (f"{n_small // 1000}k x 1 KiB", _small_files(n_small), True, n_small / 100_000),
        (
            f"{big_size >> 20} MiB file" if quick else "1 GiB file",
            _big_file(big_size),
            False,
            big_size / 2**30,
        ),
    ]


def failed_rest(bench: str, label: str, e: Exception) -> Figure:
    """The figure that stands for the steps a failure left unmeasured (it fails visibly)."""
    return Figure(
        bench, f"{label}: remaining steps", None, "s", note=f"{e}"[:300], error=f"{e}"[:500]
    )


def run(quick: bool = False) -> list[Figure]:
    reps = 2
    t0 = time.perf_counter()
    sets = datasets(quick)
    gen_s = time.perf_counter() - t0
    figures: list[Figure] = []  # DVC beside these figures: bench_dvc (make bench-dvc-env)
    for label, src, is_small, scale in sets:
        with temp_dir("data") as tmp:
            ds = _Dataset(label, src, tmp, reps)
            try:
                _measure(ds, small=is_small, scale=scale)
            except Exception as e:  # keep what was measured; the rest fails visibly
                ds.figures.append(failed_rest(NAME, label, e))
            figures += ds.figures
    figures.append(
        Figure(NAME, "  data generation (setup, cached)", gen_s, "s", note=str(DATA_DIR))
    )
    return figures


if __name__ == "__main__":
    _name, _raw = sys.argv[1], sys.argv[2]
    _out = WORKERS[_name](json.loads(_raw))
    sys.stdout.write("\n" + json.dumps(_out) + "\n")
    sys.stdout.flush()
